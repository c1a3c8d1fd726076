"""The order in which a sweep hands its units to the executor: seed by seed, longest first within a seed.

With several units at once, units started in grid order leave a tail: the
last long unit runs alone while the other workers idle. Starting the longest
units first (Graham's LPT rule) keeps every worker busy until near the end:
when the estimates are right, within 4/3 - 1/(3 × workers) of the best wall time.

Seeds keep their grid order, so that a sweep cut short still has whole seeds
(every cell and setting at the first seeds), not the long units of every seed.

The order never changes a number: each unit runs alone in its own process
with its own seed. Only the wall time of the sweep changes.
"""

from __future__ import annotations

from statistics import median
from typing import Any, Mapping, Sequence, TypeVar

from harness.sweep.grid import Unit

U = TypeVar("U", bound=Unit)


def work(config: Mapping[str, Any], cell: str) -> float:
    """A unit's work in arbitrary units: steps × batch × T × layers × H² (a recurrent step costs about H² per
    sequence and layer). It ranks units of one cell well; between cells it is only a first guess."""
    hidden = (config.get("cell_hidden") or {}).get(cell) or config.get("hidden_size") or 1
    return (float(config.get("steps") or 1) * (config.get("batch_size") or 1) * (config.get("seq_len") or 1)
            * (config.get("layers") or 1) * hidden * hidden)


def seconds_per_work(known: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """Each cell's median seconds per unit of :func:`work`, from the finished units of this sweep folder
    (``SweepFolder.units``), so that a resumed or widened sweep ranks slow cells (numpy-lstm, mamba) first."""
    rates: dict[str, list[float]] = {}
    for unit in known.values():
        result = unit.get("result") or {}
        wall = result.get("wall_s")
        if result.get("status") == "ok" and wall:
            rates.setdefault(unit["cell"], []).append(wall / work(unit.get("config") or {}, unit["cell"]))
    return {cell: median(r) for cell, r in rates.items()}


def longest_first(units: Sequence[U], known: Mapping[str, Mapping[str, Any]] | None = None) -> list[U]:
    """``units`` (in grid order) seed by seed, each seed's units by estimated seconds, longest first; ties keep
    grid order. A cell without finished units in ``known`` is costed at the median rate of those with some (all
    at 1 when none have)."""
    rates = seconds_per_work(known or {})
    default = median(rates.values()) if rates else 1.0

    def seconds(unit: Unit) -> float:
        return work(unit.config, unit.cell) * rates.get(unit.cell, default)
    seeds = {seed: i for i, seed in enumerate(dict.fromkeys(u.seed for u in units))}
    return sorted(units, key=lambda u: (seeds[u.seed], -seconds(u)))

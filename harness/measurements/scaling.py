"""Cost curves: ``bench --scaling T=100,300,1000`` times every cell along one dimension of the shape, the other
three fixed at a base shape, and fits the slope of time and memory against that dimension on log-log axes.

A slope of 1 is cost linear in the dimension (an RNN in T), 2 quadratic, 0 flat. The fit is the least-squares
line through ``(log x, log y)`` over the points a cell was timed at (at least two).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from harness.contract.errors import HarnessError
from harness.measurements.bench import Shape

DIMENSIONS = {"T": "sequence length", "B": "batch size", "I": "input size", "H": "hidden size"}
DEFAULT_BASE = "100x8x32x64"
"""The base shape T x B x I x H of ``--scaling`` when ``--shapes`` gives none."""
EXAMPLE = "T=100,300,1000"
SCALING_COLUMNS = ["cell", "pass", "dimension", "value", "T", "B", "I", "H", "median_s", "q25_s", "q75_s",
                   "tokens_per_s", "peak_mem_bytes", "noisy", "time_slope", "memory_slope"]


@dataclass(frozen=True)
class Scaling:
    """One swept dimension (``T``, ``B``, ``I`` or ``H``) and its values, smallest first."""

    dimension: str
    values: tuple[int, ...]

    def shapes(self, base: Shape) -> list[Shape]:
        """``base`` with the swept dimension set to each value in turn."""
        return [dataclasses.replace(base, **{self.dimension: v}) for v in self.values]


def parse_scaling(text: str) -> Scaling:
    """``"T=100,300,1000"`` -> ``Scaling("T", (100, 300, 1000))``; a one-line :class:`HarnessError` naming the fix
    for anything else."""
    m = re.fullmatch(r"\s*([A-Za-z]+)\s*=\s*(.*)", text)
    if not m:
        raise HarnessError(f"bad --scaling {text!r}: write DIM=V1,V2,... with DIM one of T, B, I, H, e.g. {EXAMPLE}")
    dimension, values_text = m.group(1), m.group(2)
    if dimension.upper() in DIMENSIONS and dimension not in DIMENSIONS:
        dimension = dimension.upper()
    if dimension not in DIMENSIONS:
        raise HarnessError(f"bad --scaling {text!r}: the dimension must be one of T, B, I, H (not {dimension!r}), "
                           f"e.g. {EXAMPLE}")
    parts = [p.strip() for p in values_text.split(",")]
    if not all(re.fullmatch(r"\d+", p) for p in parts) or not all(1 <= int(p) <= 1_000_000 for p in parts):
        raise HarnessError(f"bad --scaling {text!r}: the values must be whole numbers from 1 to 1000000, "
                           f"comma-separated, e.g. {EXAMPLE}")
    values = tuple(sorted({int(p) for p in parts}))
    if len(values) < 2:
        raise HarnessError(f"bad --scaling {text!r}: give at least two different values to fit a slope, "
                           f"e.g. {EXAMPLE}")
    return Scaling(dimension, values)


def fit_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Slope of the least-squares line through ``(log x, log y)``, over the points where both are positive and
    finite; NaN with fewer than two such points at different x."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    lx, ly = np.log(x[keep]), np.log(y[keep])
    if len(np.unique(lx)) < 2:
        return math.nan
    return float(np.polyfit(lx, ly, 1)[0])


def scaling_table(bench: pd.DataFrame, scaling: Scaling) -> pd.DataFrame:
    """One row per (cell, pass, swept value) that was timed, from ``bench.csv``'s rows, with the cell's fitted
    slopes of ``median_s`` (``time_slope``) and ``peak_mem_bytes`` (``memory_slope``) against the swept
    dimension repeated on each of its rows. Cells in the order timed, values ascending."""
    ok = bench[bench["status"] == "ok"].copy()
    if ok.empty:
        return pd.DataFrame(columns=SCALING_COLUMNS)
    ok["dimension"] = scaling.dimension
    ok["value"] = ok[scaling.dimension].astype(int)
    if "peak_mem_bytes" not in ok:
        ok["peak_mem_bytes"] = math.nan
    if "noisy" not in ok:
        ok["noisy"] = False
    parts = []
    for (_, _), group in ok.groupby(["cell", "pass"], sort=False):
        group = group.sort_values("value").copy()
        group["time_slope"] = fit_slope(group["value"], group["median_s"])
        group["memory_slope"] = fit_slope(group["value"], group["peak_mem_bytes"])
        parts.append(group)
    return pd.concat(parts, ignore_index=True)[SCALING_COLUMNS]


def slopes(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (cell, pass) of a :func:`scaling_table`: the two slopes and the range swept."""
    return (table.groupby(["cell", "pass"], sort=False)
            .agg(points=("value", "size"), smallest=("value", "min"), largest=("value", "max"),
                 time_slope=("time_slope", "first"), memory_slope=("memory_slope", "first"))
            .reset_index())

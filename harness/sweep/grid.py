"""What a sweep is, and its expansion into units.

A sweep is one task, some cells, lists of values for any run settings and
task options, and seeds. The grid is the product of those lists and the
seeds; each point of it for one cell is a **unit**, one call of the core run
function (:func:`harness.run.execute.execute`) whose folder holds exactly what
``harness run`` writes.

A unit's identity is a hash of its fully resolved settings (everything in
its ``config.json`` that decides its numbers), so that re-running a sweep
finds the units it already has however the grid was written, and a widened
grid adds only new units.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from harness.contract.errors import HarnessError
from harness.plugins.registry import Registry
from harness.reports.columns import BEAT_MARGIN
from harness.run.config import OPTIONS_BY_NAME, RUN_OPTIONS, SWEEPABLE, RunConfig, resolve_config
from harness.run.runner import make_task
from harness.run.widths import match_width

NOT_IDENTITY = ("threads", "log_every")
"""Settings that do not make a unit another unit: the thread count is the executor's (recorded per unit: see
docs/sweeps.md on reproducibility), and logging is not a result."""


@dataclass(frozen=True)
class HorizonRule:
    """The memory-horizon verdict's parameters (docs/sweeps.md)."""

    margin: float = BEAT_MARGIN
    """A cell remembers at T when the whole confidence interval of test loss / baseline lies below this."""
    solve_lower_bound: float = 0.5
    """A cell solves T when the lower Wilson bound of its solve rate is at least this."""
    confidence: float = 0.95
    """Confidence level of every interval."""


@dataclass
class SweepSpec:
    """A sweep before expansion. Every list is a swept dimension; a single value is fixed."""

    task: str
    cells: list[str]
    seeds: list[int]
    settings: dict[str, list[Any]] = field(default_factory=dict)
    """Run settings (``harness.run.config.RUN_OPTIONS`` names) -> values."""
    task_options: dict[str, list[Any]] = field(default_factory=dict)
    """Task options -> values (checked against the task's declarations when units are resolved)."""
    cell_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per-cell fixed settings, e.g. ``{"rnn": {"hidden_size": 80}}`` for equal parameter counts."""
    preset: str | None = None
    grad_at: list[int] = field(default_factory=list)
    reference: str = "lstm"
    horizon: HorizonRule = field(default_factory=HorizonRule)
    tune: dict[str, list[Any]] = field(default_factory=dict)
    """Run settings or task options -> candidate values (``--tune lr=1e-3,3e-3``): each (cell, point, seed) runs every
    candidate, and the one with the best validation loss stands for it (docs/sweeps.md, "Tuning")."""

    def swept(self) -> list[str]:
        """The names of the swept dimensions (more than one value), settings first, in declaration order."""
        names = [o.name for o in RUN_OPTIONS if len(self.settings.get(o.name, ())) > 1]
        return names + [k for k, v in self.task_options.items() if len(v) > 1]

    def check(self, registry: Registry) -> None:
        """Names exist, lists are not empty, and nothing is both swept and set per cell; one line otherwise."""
        registry.task(self.task)
        if not self.cells:
            raise HarnessError("no cells to sweep; name at least one, e.g. --cells lstm,rnn")
        for cell in self.cells:
            registry.cell(cell)
        if not self.seeds:
            raise HarnessError("no seeds; give --seeds N (seeds 0..N-1) or a list such as --seeds 0,3,7")
        for name, values in self.settings.items():
            if name not in OPTIONS_BY_NAME:
                raise HarnessError(f"unknown setting {name!r}; valid settings: {', '.join(OPTIONS_BY_NAME)}")
            if not values:
                raise HarnessError(f"{OPTIONS_BY_NAME[name].flag} has no values")
            if len(values) > 1 and not OPTIONS_BY_NAME[name].sweepable:
                raise HarnessError(f"{OPTIONS_BY_NAME[name].flag} cannot be swept; give one value")
        for name, values in self.task_options.items():
            if not values:
                raise HarnessError(f"task option {name} has no values")
        for cell, values in self.cell_settings.items():
            if cell not in self.cells:
                raise HarnessError(f"settings are given for cell {cell!r}, which is not among the swept cells "
                                   f"({', '.join(self.cells)})")
            for name in values:
                if name in self.swept():
                    raise HarnessError(f"{name} is both swept and set for cell {cell}; do one or the other")
        if len(set(self.seeds)) != len(self.seeds):
            raise HarnessError(f"seeds repeat: {self.seeds}")
        options = {o.name for o in registry.task(self.task).options}
        for name, values in self.tune.items():
            if name in OPTIONS_BY_NAME and not OPTIONS_BY_NAME[name].sweepable:
                raise HarnessError(f"--tune {name}: {OPTIONS_BY_NAME[name].flag} cannot be tuned (it does not change "
                                   f"what is learnt); tune one of: {', '.join(SWEEPABLE)}")
            if name not in OPTIONS_BY_NAME and name not in options:
                raise HarnessError(f"--tune {name}: not a run setting or an option of task {self.task}; tune one of: "
                                   f"{', '.join([*SWEEPABLE, *sorted(options)])}")
            if len(values) < 2:
                raise HarnessError(f"--tune {name}: give at least two values to choose from, e.g. --tune "
                                   f"{name}=A,B (one value is a fixed setting: {OPTIONS_BY_NAME[name].flag if name in OPTIONS_BY_NAME else '--task-opt ' + name} A)")
            if name in self.settings or name in self.task_options:
                raise HarnessError(f"--tune {name}: {name} is also set or swept; tune it or set it, not both")
            if any(name in values for values in self.cell_settings.values()):
                raise HarnessError(f"--tune {name}: {name} is also set for one cell; tune it or set it, not both")

    def points(self) -> list[dict[str, Any]]:
        """Every combination of the swept values (settings and task options), in grid order."""
        names = self.swept()
        lists = [self.settings[n] if n in self.settings else self.task_options[n] for n in names]
        return [dict(zip(names, combo)) for combo in itertools.product(*lists)]

    def candidates(self) -> list[dict[str, Any]]:
        """Every combination of the tuned values (``[{}]`` when nothing is tuned)."""
        names = list(self.tune)
        return [dict(zip(names, combo)) for combo in itertools.product(*(self.tune[n] for n in names))]


@dataclass(frozen=True)
class Unit:
    """One run of one cell at one point of the grid with one seed: picklable, for any executor."""

    id: str
    folder: str
    cell: str
    seed: int
    point: Mapping[str, Any]
    """The swept values, by name."""
    config: Mapping[str, Any]
    """The resolved :class:`~harness.run.config.RunConfig`, as a dict."""
    plugins: Mapping[str, Any] = field(default_factory=dict)
    """``{"only": [...] or None, "disable": [...]}``: which plugin entry points the worker loads."""
    width: str = ""
    """With ``--match-params``: the width chosen and its parameter count, in words (for the sweep's header)."""

    @property
    def label(self) -> str:
        values = ", ".join(f"{k}={v}" for k, v in self.point.items())
        return f"{self.cell} ({values + ', ' if values else ''}seed {self.seed})"


ADDED_LATER = {"match_params": None, "cell_hidden": {}}
"""Settings added after sweeps existed: at these values they stay out of the hash, so older units keep their ids."""


def unit_id(config: Mapping[str, Any]) -> str:
    """The hash of everything in a unit's settings that decides its numbers (16 hex digits)."""
    key = {k: v for k, v in config.items() if k not in NOT_IDENTITY
           and not (k in ADDED_LATER and v == ADDED_LATER[k])}
    return hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def folder_name(cell: str, point: Mapping[str, Any], seed: int, uid: str) -> str:
    """A readable, unique folder name: ``lstm-seq_len-20-seed-0-1a2b3c4d``."""
    parts = [cell, *(f"{k}-{v}" for k, v in point.items()), f"seed-{seed}", uid[:8]]
    return re.sub(r"[^A-Za-z0-9_.\-]+", "_", "-".join(str(p) for p in parts))


def fixed_values(spec: SweepSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """The single-valued settings and task options (fixed for every unit)."""
    settings = {k: v[0] for k, v in spec.settings.items() if len(v) == 1}
    options = {k: v[0] for k, v in spec.task_options.items() if len(v) == 1}
    return settings, options


def expand(spec: SweepSpec, registry: Registry, root: Path, threads: int | None,
           plugins: Mapping[str, Any] | None = None) -> list[Unit]:
    """Every unit of the grid, ordered seed by seed, so that a partial sweep has whole seeds for every cell.

    :param root: the sweep folder; units live in ``root/units/<folder_name>``.
    :param threads: torch/BLAS threads for each unit (recorded in its config).
    """
    spec.check(registry)
    task_spec = registry.task(spec.task)
    settings, options = fixed_values(spec)
    tasks: dict[str, Any] = {}  # --match-params: the task built once per distinct setting, for its head
    units = []
    for seed in spec.seeds:
        for point in spec.points():
            for candidate in spec.candidates():
                for cell in spec.cells:
                    values = {**point, **candidate}
                    run_settings = {**settings, **spec.cell_settings.get(cell, {}),
                                    **{k: v for k, v in values.items() if k in OPTIONS_BY_NAME},
                                    "seed": seed, "threads": threads}
                    run_options = {**options, **{k: v for k, v in values.items() if k not in OPTIONS_BY_NAME}}
                    cfg: RunConfig = resolve_config(task_spec, [cell], preset=spec.preset, settings=run_settings,
                                                    task_options=run_options, grad_at=spec.grad_at)
                    width = _match(cfg, registry, task_spec, tasks) if cfg.match_params is not None else ""
                    config = cfg.to_dict()
                    uid = unit_id(config)
                    units.append(Unit(uid, str(Path(root) / "units" / folder_name(cell, values, seed, uid)), cell,
                                      seed, values, config, dict(plugins or {}), width))
    return units


def _match(cfg: RunConfig, registry: Registry, task_spec, tasks: dict[str, Any]) -> str:
    """Set ``cfg.hidden_size`` to the width that gives its cell ``cfg.match_params`` parameters; -> it in words."""
    key = json.dumps([cfg.seq_len, cfg.batch_size, cfg.seed, cfg.task_options], sort_keys=True, default=str)
    if key not in tasks:
        tasks[key] = make_task(task_spec, cfg)
    width = match_width(registry.cell(cfg.cells[0]), tasks[key], cfg.match_params, cfg.layers, cfg.dropout)
    cfg.hidden_size = width.hidden_size
    return width.describe()


def parse_seeds(text: str) -> list[int]:
    """``"5"`` -> seeds 0..4; ``"10:15"`` -> 10..14; ``"0,3,7"`` -> those seeds."""
    text = text.strip()
    try:
        if "," in text:
            seeds = [int(s) for s in text.split(",") if s.strip()]
        elif ":" in text:
            start, stop = (int(s) for s in text.split(":", 1))
            seeds = list(range(start, stop))
        else:
            count = int(text)
            if count < 1:
                raise ValueError
            seeds = list(range(count))
    except ValueError:
        raise HarnessError(f"--seeds {text!r}: give a count (5 = seeds 0..4), a range (10:15) or a list (0,3,7)") \
            from None
    seeds = list(dict.fromkeys(seeds))
    if not seeds or min(seeds) < 0 or max(seeds) > 2**31 - 1:
        raise HarnessError(f"--seeds {text!r}: seeds must be between 0 and {2**31 - 1}")
    return seeds


def parse_values(text: str, parse: Any) -> list[Any]:
    """``"10,20,40"`` -> each part through ``parse``, without duplicates, in the given order."""
    values = [parse(part.strip()) for part in str(text).split(",") if part.strip()]
    return list(dict.fromkeys(values))


def union(old: Sequence[Any], new: Sequence[Any]) -> list[Any]:
    """``old`` then the new values not in it."""
    return list(dict.fromkeys([*old, *new]))

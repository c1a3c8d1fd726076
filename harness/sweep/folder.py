"""The sweep folder: ``sweep.json``, one run folder per unit under ``units/``, and the tables.

::

    SWEEP/
      sweep.json            the task, preset, reference, horizon rule and every invocation (command, executor)
      units/<unit>/         one run folder per unit (exactly what ``harness run`` writes) + unit.json, result.json
      units.csv             one row per unit: the swept values, the seed, the status and every summary column
      sweep_summary.csv     one row per (cell, setting): counts, means and 95% intervals, solve rate, paired
                            comparison with the reference cell; with --tune, over the picked units and with the
                            values picked (``tuned_<name>``) and the runs per seed (``tune_runs``)
      horizon.csv           the memory-horizon verdict per cell
      figures/, report.md   from ``harness plot SWEEP``

Re-running a sweep command on the same folder runs only the units that are
not finished; a folder that holds a sweep of another task or preset, or
anything that is not a sweep, is refused.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from harness.contract.errors import HarnessError
from harness.reports.columns import SUMMARY_NAMES
from harness.reports.results import HAVE_PARQUET
from harness.run.config import OPTIONS_BY_NAME
from harness.sweep.aggregate import sweep_summary
from harness.sweep.grid import HorizonRule, NOT_IDENTITY, SweepSpec, Unit
from harness.sweep.horizon import horizons
from harness.sweep.tuning import pick, picked_values
from harness.sweep.unit import read_result

SWEEP_FILE = "sweep.json"
UNIT_FILE = "unit.json"
NOT_POINT_KEYS = {*NOT_IDENTITY, "cells", "seed", "task", "preset", "grad_steps", "warmup", "device", "dtype",
                  "cell_hidden"}
"""Config entries that never make a point of the grid (the seed is its own dimension)."""


def is_sweep(folder: Path | str) -> bool:
    return (Path(folder) / SWEEP_FILE).is_file()


def _write_table(folder: Path, name: str, frame: pd.DataFrame) -> None:
    tmp = folder / f"{name}.csv.tmp"
    frame.to_csv(tmp, index=False)
    tmp.replace(folder / f"{name}.csv")  # never a torn table, even if the process dies mid-write
    if HAVE_PARQUET and len(frame):
        frame.to_parquet(folder / f"{name}.parquet", index=False)


class SweepFolder:
    """One sweep folder on disk; see the module docstring."""

    def __init__(self, path: Path, meta: dict[str, Any]):
        self.path = Path(path)
        self.meta = meta
        self.units: dict[str, dict[str, Any]] = {}
        """unit id -> its ``unit.json`` (``cell``, ``seed``, ``point``, ``config``) plus its result, if any."""

    # ----------------------------------------------------------------- opening

    @classmethod
    def open(cls, path: Path | str, spec: SweepSpec, command: Iterable[str] = ()) -> "SweepFolder":
        """Create the folder, or reopen one that holds a sweep of the same task and preset."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise HarnessError(f"--out {path} is a file, not a folder")
        if is_sweep(path):
            meta = json.loads((path / SWEEP_FILE).read_text())
            for key, flag in (("task", "--task"), ("preset", "--preset")):
                if meta.get(key) != getattr(spec, key):
                    raise HarnessError(f"{path} holds a sweep of {key} {meta.get(key)!r}, not {getattr(spec, key)!r}; "
                                       f"choose another --out for this one (or the same {flag} to resume that one)")
        elif path.exists() and any(path.iterdir()):
            raise HarnessError(f"{path} is not empty and holds no {SWEEP_FILE}; choose a new --out for a sweep")
        else:
            meta = {"kind": "sweep", "task": spec.task, "preset": spec.preset, "created": time.strftime("%F %T"),
                    "invocations": []}
        meta.update(reference=spec.reference, horizon=vars(spec.horizon),
                    cells=list(dict.fromkeys([*meta.get("cells", []), *spec.cells])))
        tune = meta.setdefault("tune", {})
        if tune and spec.tune and set(tune) != set(spec.tune):
            raise HarnessError(f"{path} tunes {', '.join(tune)}, not {', '.join(spec.tune)}; tune the same settings "
                               "to widen it, or choose another --out")
        if tune and not spec.tune:
            raise HarnessError(f"{path} is a tuned sweep (--tune {', '.join(tune)}); give --tune again to resume it")
        if spec.tune and not tune and meta["invocations"]:
            raise HarnessError(f"{path} holds an untuned sweep; choose another --out for a tuned one")
        for name, values in spec.tune.items():
            tune[name] = list(dict.fromkeys([*tune.get(name, []), *values]))
        meta["invocations"].append({"started": time.strftime("%F %T"), "command": list(command),
                                    "grid": {"cells": spec.cells, "seeds": spec.seeds, "settings": spec.settings,
                                             "task_options": spec.task_options, "cell_settings": spec.cell_settings,
                                             "tune": spec.tune}})
        try:
            (path / "units").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HarnessError(f"cannot create sweep folder {path}: {exc.strerror}") from None
        folder = cls(path, meta)
        folder.save_meta()
        folder.scan()
        return folder

    @classmethod
    def read(cls, path: Path | str) -> "SweepFolder":
        """An existing sweep folder, for plotting and comparing."""
        path = Path(path)
        if not is_sweep(path):
            raise HarnessError(f"{path} is not a sweep folder (no {SWEEP_FILE}); pass a folder written by "
                               "'harness sweep'")
        folder = cls(path, json.loads((path / SWEEP_FILE).read_text()))
        folder.scan()
        return folder

    def save_meta(self, **updates: Any) -> None:
        self.meta.update(updates)
        tmp = self.path / (SWEEP_FILE + ".tmp")
        tmp.write_text(json.dumps(self.meta, indent=2, default=str) + "\n")
        tmp.replace(self.path / SWEEP_FILE)

    def scan(self) -> None:
        """Read every unit's ``unit.json`` and result from disk."""
        self.units = {}
        for path in sorted((self.path / "units").glob(f"*/{UNIT_FILE}")):
            try:
                unit = json.loads(path.read_text())
            except ValueError:
                continue  # a unit.json cut off mid-write: the unit is simply run again
            result = read_result(path.parent)
            unit["result"] = None if result is None else vars(result)
            self.units[unit["id"]] = unit

    # ------------------------------------------------------------------ units

    @property
    def rule(self) -> HorizonRule:
        return HorizonRule(**self.meta.get("horizon", {}))

    def state(self, unit: Unit) -> str:
        """``pending`` (never ran or cut off), or the status of its result."""
        known = self.units.get(unit.id)
        result = known.get("result") if known else None
        return result["status"] if result else "pending"

    def prepare(self, unit: Unit) -> None:
        """Make the unit's folder empty but for its ``unit.json``, so that it can run (again)."""
        folder = Path(unit.folder)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        record = {"id": unit.id, "cell": unit.cell, "seed": unit.seed, "point": dict(unit.point),
                  "config": dict(unit.config), "folder": folder.name}
        (folder / UNIT_FILE).write_text(json.dumps(record, indent=2, default=str) + "\n")
        self.units[unit.id] = {**record, "result": None}

    def record(self, unit_id: str, result: dict[str, Any] | None) -> None:
        if unit_id in self.units:
            self.units[unit_id]["result"] = result

    # ------------------------------------------------------------------ tables

    @property
    def tuned(self) -> dict[str, list[Any]]:
        """``--tune``: the tuned names and every value tried, or ``{}``."""
        return dict(self.meta.get("tune") or {})

    def point_keys(self) -> list[str]:
        """The settings and task options that vary between the units of one cell (the grid's dimensions), and
        ``seq_len`` always; never a tuned name (its candidates make one point), nor the width that
        ``--match-params`` chose (it follows the budget)."""
        keys: list[str] = []
        by_cell: dict[str, list[dict[str, Any]]] = {}
        for unit in self.units.values():
            by_cell.setdefault(unit["cell"], []).append(_flat_config(unit["config"]))
        names = [o for o in OPTIONS_BY_NAME if o not in NOT_POINT_KEYS]
        options = sorted({k for units in by_cell.values() for u in units for k in u if k not in OPTIONS_BY_NAME
                          and k not in NOT_POINT_KEYS and k not in ("task", "cells")})
        for name in [*names, *options]:
            if name in self.tuned or (name == "hidden_size" and any(u.get("match_params") is not None
                                                                    for units in by_cell.values() for u in units)):
                continue
            if name == "seq_len" or any(len({json.dumps(u.get(name), default=str) for u in units}) > 1
                                        for units in by_cell.values()):
                keys.append(name)  # T is always a key, swept or not: the horizon is stated in it
        return keys

    def units_frame(self) -> pd.DataFrame:
        """``units.csv``: one row per unit, ordered by cell, point and seed."""
        keys = self.point_keys()
        tuned = list(self.tuned)
        cells = self.meta.get("cells", [])
        rows = []
        for uid, unit in self.units.items():
            config = _flat_config(unit["config"])
            result = unit.get("result") or {}
            row: dict[str, Any] = {"unit": uid, "cell": unit["cell"], "seed": unit["seed"],
                                   **{k: config.get(k) for k in [*keys, *tuned]},
                                   "status": result.get("status", "pending"), "reason": result.get("reason", "")}
            summary = result.get("row") or {}
            for name in SUMMARY_NAMES:
                if name not in row:
                    row[name] = summary.get(name, config.get(name))
            row["task"] = row.get("task") or config.get("task")
            row.update(threads=config.get("threads"), folder=unit.get("folder", ""))
            rows.append(row)
        frame = pd.DataFrame(rows)
        if frame.empty:
            return frame
        frame["_cell"] = frame["cell"].map(lambda c: cells.index(c) if c in cells else len(cells))
        frame = frame.sort_values(["_cell", *keys, "seed", *tuned], kind="stable").drop(columns="_cell")
        frame = frame.reset_index(drop=True)
        if tuned:
            frame["picked"] = pick(frame, keys)
        return frame

    def write_tables(self, summary: bool = True) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
        """Write ``units.csv`` and (with ``summary``) ``sweep_summary.csv`` and ``horizon.csv``; return them."""
        units = self.units_frame()
        _write_table(self.path, "units", units)
        if not summary:
            return units, None, None
        keys = self.point_keys()
        table = sweep_summary(standing(units), keys, self.meta.get("reference", "lstm"), self.rule)
        if self.tuned and len(table):
            table = table.merge(picked_values(units, keys, list(self.tuned)), on=["task", "cell", *keys], how="left")
        _write_table(self.path, "sweep_summary", table)
        verdict = horizons(table, keys, self.rule)
        _write_table(self.path, "horizon", verdict)
        return units, table, verdict


def standing(units: pd.DataFrame) -> pd.DataFrame:
    """The units that stand for their (cell, point, seed): with ``--tune``, the picked candidates; else every unit."""
    if "picked" not in units or units.empty:
        return units
    picked = units["picked"].map(lambda v: str(v).strip().lower() in ("true", "1", "1.0"))
    return units[picked.to_numpy(dtype=bool)]


def _flat_config(config: dict[str, Any]) -> dict[str, Any]:
    """A unit's run settings with its task options beside them, by name."""
    flat = {k: v for k, v in config.items() if k != "task_options"}
    flat.update(config.get("task_options") or {})
    return flat


def read_sweep(path: Path | str) -> dict[str, Any]:
    """A sweep folder's tables for plotting and comparing: ``meta``, ``units``, ``sweep_summary``, ``horizon``,
    ``point_keys``; the summary and horizon are recomputed from the units when their files are missing."""
    folder = SweepFolder.read(path)
    units, summary, verdict = folder.write_tables() if not (folder.path / "sweep_summary.csv").exists() \
        else (pd.read_csv(folder.path / "units.csv"), pd.read_csv(folder.path / "sweep_summary.csv"),
              pd.read_csv(folder.path / "horizon.csv") if (folder.path / "horizon.csv").exists() else None)
    return {"folder": folder.path, "meta": folder.meta, "units": units, "sweep_summary": summary,
            "horizon": verdict, "point_keys": folder.point_keys()}


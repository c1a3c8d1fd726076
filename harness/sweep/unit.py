"""Running one unit, and reading its state back from its folder.

:func:`run_unit` is what every executor calls, in whatever process it chose
(a fresh local process, a Ray worker, a Slurm job). It loads the plugins,
calls the core run function (:func:`harness.run.execute.execute`) for the unit's one
cell, and returns a :class:`UnitResult`; it never raises for a problem of the
run itself, which becomes the result's status. It writes ``result.json``
beside the run's tables, so the sweep knows what finished even if its own
process was killed. A unit with a time limit (:class:`TimedUnit`) stops its
own run when the time is up (``timeout``: :mod:`harness.run.deadline`).
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from harness.contract.errors import one_line
from harness.contract.executors import UnitResult
from harness.plugins.registry import load_registry
from harness.run.config import RunConfig
from harness.run.execute import RunInterrupted, execute
from harness.sweep.grid import Unit

FINISHED = ("ok", "diverged")
"""Statuses a re-run never repeats."""
RETRYABLE = ("failed", "timeout", "skipped")
"""Statuses repeated only with ``--retry-failed``."""
RESULT_FILE = "result.json"
STARTED_FILE = "started.json"


@dataclass(frozen=True)
class TimedUnit(Unit):
    """A unit as the sweep hands it to an executor: with the seconds it may run (``--unit-timeout``; ``None``: no
    limit), which :func:`run_unit` enforces from inside."""

    timeout_s: float | None = None

    @classmethod
    def of(cls, unit: Unit, timeout_s: float | None) -> "TimedUnit":
        return cls(**{f.name: getattr(unit, f.name) for f in fields(unit)}, timeout_s=timeout_s)


def write_result(result: UnitResult, folder: Path | str) -> None:
    """``result.json`` in ``folder``, whole or absent (written through a temporary file)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (RESULT_FILE + ".tmp")
    tmp.write_text(json.dumps(asdict(result), indent=2, default=_plain) + "\n")
    tmp.replace(folder / RESULT_FILE)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)


def read_result(folder: Path | str) -> UnitResult | None:
    """The unit's result from its folder: ``result.json``, else a finished row of ``summary.csv`` (a unit whose
    sweep process died after the run finished), else ``None`` (never ran, was cut off mid-run, or its
    ``result.json`` is damaged: :func:`damaged` says why, and the sweep says so before running it again)."""
    folder = Path(folder)
    path = folder / RESULT_FILE
    if path.exists():
        try:
            return UnitResult(**json.loads(path.read_text()))
        except (ValueError, TypeError, OSError):
            return None
    summary = folder / "summary.csv"
    if summary.exists():
        import pandas as pd
        try:
            rows = pd.read_csv(summary).to_dict("records")
        except (ValueError, OSError):
            return None
        if rows and rows[-1].get("status") in (*FINISHED, *RETRYABLE):
            row = rows[-1]
            reason = row.get("reason")
            return UnitResult(folder.name, str(row["status"]), reason if isinstance(reason, str) else "", row)
    return None


def damaged(path: Path | str, result: bool = False) -> str | None:
    """Why the JSON file at ``path`` cannot be used (cut off, emptied, edited into something else), or ``None``
    when it reads or does not exist. ``result``: it must also be a :class:`UnitResult`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
    except ValueError as exc:
        return "empty" if not path.read_text().strip() else f"not valid JSON: {exc}"
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not an object"
    if result:
        try:
            UnitResult(**data)
        except TypeError as exc:
            return f"not a unit result: {one_line(exc).removeprefix('TypeError: UnitResult.__init__() ')}"
    return None


def run_unit(unit: Unit) -> UnitResult:
    """Execute ``unit`` in this process and write its ``result.json``; see the module docstring. A
    :class:`TimedUnit`'s run is stopped at its time limit (counted from the start of its cell) and comes back as
    ``timeout``."""
    start = time.perf_counter()
    result = UnitResult(unit.id, "failed", host=socket.gethostname(), pid=os.getpid())
    folder = Path(unit.folder)
    try:
        registry = _registry(unit)
        folder.mkdir(parents=True, exist_ok=True)
        started = folder / (STARTED_FILE + ".tmp")
        started.write_text(json.dumps({"pid": os.getpid(), "host": result.host, "started": time.time()}) + "\n")
        started.replace(folder / STARTED_FILE)  # whole or absent, for whoever watches the folder
        # The unit's one cell gets the whole limit: loading the plugins and the task before it takes seconds, and
        # the executor's kill from outside comes well after the limit anyway.
        done = execute(RunConfig.from_dict(unit.config), registry, out=folder, progress=False, plots=False,
                       cell_timeout=getattr(unit, "timeout_s", None))
        result.row = dict(done.rows[0])
        result.status = str(result.row["status"])
        result.reason = str(result.row.get("reason") or "")
    except RunInterrupted:
        result.status, result.reason = "interrupted", "interrupted by the user (Ctrl-C)"
    except KeyboardInterrupt:
        result.status, result.reason = "interrupted", "interrupted before the run started"
    except Exception as exc:  # a bad plugin or a broken folder is this unit's problem, not the sweep's
        result.reason = one_line(exc)
    result.wall_s = time.perf_counter() - start
    if result.status != "interrupted":
        write_result(result, folder)  # an interrupted unit stays unfinished on disk, so a re-run repeats it
    return result


def _registry(unit: Unit):
    only = unit.plugins.get("only")
    return load_registry(only=only, disable=unit.plugins.get("disable") or ())

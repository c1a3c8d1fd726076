"""Running a sweep: choose the units that are not finished, hand them to an executor, keep the tables current.

The executor (``harness/executors/``) does the distribution; this module only
decides what to run, shows one progress bar over units (done / total, ETA)
and one line per failed unit, writes ``units.csv`` as each unit finishes, and
on Ctrl-C keeps every finished unit and says how to resume.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

from tqdm.auto import tqdm

from harness.contract.errors import HarnessError
from harness.measurements.environment import available_cpus
from harness.contract.executors import ExecutorSettings, ExecutorSpec, UnitResult
from harness.plugins.registry import Registry
from harness.run.config import DEFAULT_THREADS
from harness.sweep.folder import UNIT_FILE, SweepFolder
from harness.sweep.grid import SweepSpec, Unit, expand
from harness.sweep.order import longest_first
from harness.sweep.unit import FINISHED, RESULT_FILE, RETRYABLE, TimedUnit, damaged, run_unit, write_result


def default_jobs() -> int:
    """Units at once when ``--jobs`` is not given: the CPUs available to this process (affinity, cgroup quota,
    Slurm), each unit on one thread (:data:`~harness.run.config.DEFAULT_THREADS`)."""
    return available_cpus()[0]


def threads_per_unit(given: int | None = None) -> int:
    """``given``, or the run's default thread count. Never derived from ``--jobs``: the thread count changes the
    numbers slightly, and the same seed must give the same numbers whatever ``--jobs`` or executor."""
    return given if given is not None else DEFAULT_THREADS


def check_threads(folder: SweepFolder, units: list[Unit]) -> None:
    """Refuse a resume that would mix units computed with another thread count (their numbers differ slightly)."""
    counts: dict[Any, int] = {}
    for unit in units:
        known = folder.units.get(unit.id) or {}
        if (known.get("result") or {}).get("status") in FINISHED:
            ran = (known.get("config") or {}).get("threads")
            if ran != unit.config.get("threads"):
                counts[ran] = counts.get(ran, 0) + 1
    if counts:
        ran, n = max(counts.items(), key=lambda item: item[1])
        asked = units[0].config.get("threads")
        raise HarnessError(f"{n} finished unit(s) in {folder.path} ran with {ran} thread(s) each and this sweep asks "
                           f"{asked} per unit, which gives slightly other numbers; resume with --threads-per-unit "
                           f"{ran}, or give another --out")


@dataclass
class SweepOutcome:
    """What one ``harness sweep`` invocation did."""

    folder: SweepFolder
    total: int
    """Units in this invocation's grid."""
    already: int
    """Of those, finished before it started (not run again)."""
    results: list[UnitResult] = field(default_factory=list)
    """The units it ran, in the order they finished."""

    @property
    def failed(self) -> list[UnitResult]:
        return [r for r in self.results if r.status in RETRYABLE]


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep; :attr:`outcome` holds what finished."""

    def __init__(self, outcome: SweepOutcome):
        super().__init__(str(outcome.folder.path))
        self.outcome = outcome


def plugin_selection() -> dict[str, Any]:
    """The plugin entry points this process loads (``--plugins``/``HARNESS_PLUGINS``, ``--disable-plugins``), so
    that every worker, on any machine, loads the same ones."""
    def names(var: str) -> list[str] | None:
        value = os.environ.get(var)
        return None if value is None else [v.strip() for v in value.split(",") if v.strip()]
    return {"only": names("HARNESS_PLUGINS"), "disable": names("HARNESS_DISABLE_PLUGINS") or []}


def _warn(line: str) -> None:
    print(line, file=sys.stderr)


def to_run(folder: SweepFolder, units: list[Unit], retry_failed: bool,
           warn: Callable[[str], None] = _warn) -> list[Unit]:
    """The units that are not finished: never ran, were interrupted, or (with ``retry_failed``) failed, timed out
    or were skipped.

    A unit whose ``result.json`` or ``unit.json`` is damaged runs again, and ``warn`` gets one line saying which
    unit, which file and why, first: a result must never vanish without a word.
    """
    wanted = []
    for unit in units:
        state = folder.state(unit)
        if state in FINISHED or (state in RETRYABLE and not retry_failed):
            continue
        for name, is_result in ((RESULT_FILE, True), (UNIT_FILE, False)):
            path = Path(unit.folder) / name
            why = damaged(path, result=is_result)
            if why:
                warn(f"unit {unit.label}: {path} is unreadable ({why}); the unit will run again")
                break
        wanted.append(unit)
    return wanted


def run_sweep(spec: SweepSpec, registry: Registry, executor: ExecutorSpec, settings: ExecutorSettings, *,
              retry_failed: bool = False, progress: bool = True, command: Iterable[str] = (),
              say: Callable[[str], None] = print, warn: Callable[[str], None] = _warn) -> SweepOutcome:
    """Expand the grid, run what is not finished on ``executor``, and write the tables. ``say`` gets progress
    lines, ``warn`` problems found on disk (stderr by default).

    :raises SweepInterrupted: on Ctrl-C, after the tables of every finished unit are written.
    """
    missing = executor.unavailable_reason()
    if missing:
        raise HarnessError(missing)
    modules = {registry.cell(c).factory.__module__ for c in spec.cells} | {registry.task(spec.task).factory.__module__}
    settings = replace(settings, preload=tuple(sorted({*settings.preload, *modules})))
    engine = executor.factory(settings)
    if callable(getattr(engine, "start", None)):
        engine.start(run_unit)  # the workers start up while the grid is expanded below
    units = expand(spec, registry, Path(settings.folder), settings.threads_per_unit, plugin_selection())
    widths = list(dict.fromkeys(u.width for u in units if u.width))
    if widths:
        say("--match-params: " + "; ".join(widths))
    folder = SweepFolder.open(settings.folder, spec, command)
    check_threads(folder, units)
    todo = to_run(folder, units, retry_failed, warn)
    outcome = SweepOutcome(folder, total=len(units), already=len(units) - len(todo))
    folder.meta["invocations"][-1].update(executor=executor.name, jobs=settings.jobs,
                                          threads_per_unit=settings.threads_per_unit, units=len(units),
                                          to_run=len(todo), unit_timeout_s=settings.unit_timeout)
    folder.save_meta(colors={c: registry.cell(c).color for c in folder.meta["cells"] if c in registry.cells})
    if outcome.already:
        say(f"{outcome.already} of {len(units)} units already finished in {folder.path}; running the other "
            f"{len(todo)}")
    if not todo:
        folder.write_tables()
        return outcome
    # Longest first, so that no long unit starts last and runs alone (the order changes no number).
    todo = [TimedUnit.of(unit, settings.unit_timeout) for unit in longest_first(todo, folder.units)]
    for unit in todo:
        folder.prepare(unit)
    folder.write_tables(summary=False)
    by_id = {u.id: u for u in todo}
    bar = tqdm(total=len(todo), desc="sweep", unit="unit", disable=None if progress else True, dynamic_ncols=True)

    def done(result: UnitResult) -> None:
        unit = by_id.get(result.id)
        if unit is None:
            return
        if result.status != "interrupted":
            write_result(result, unit.folder)   # also for a unit whose process died before it could write its own
            folder.record(unit.id, vars(result))
            outcome.results.append(result)
        if result.status in RETRYABLE:
            tqdm.write(f"unit {unit.label} {result.status}: {result.reason}", file=sys.stderr)
        bar.update(1)
        folder.write_tables(summary=False)

    start = time.time()
    try:
        engine.run(todo, run_unit, done)
    except KeyboardInterrupt:
        bar.close()
        _finish(folder, start, interrupted=True)
        raise SweepInterrupted(outcome) from None
    bar.close()
    _finish(folder, start)
    return outcome


def _finish(folder: SweepFolder, start: float, interrupted: bool = False) -> None:
    """Record how long this invocation ran (``sweep.json``) and write the tables."""
    folder.meta["invocations"][-1].update(finished=time.strftime("%F %T"), elapsed_s=round(time.time() - start, 1),
                                          interrupted=interrupted)
    folder.save_meta()
    folder.write_tables()


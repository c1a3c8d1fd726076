"""A run, defined once: one task, some cells, one seed, one set of settings -> one run folder.

Everything that starts a run goes through here: ``harness run`` on the command
line, each unit of ``harness sweep`` and a notebook::

    from harness.run.execute import run
    result = run("copy", ["lstm", "rnn"], steps=500)      # -> RunResult(folder, config, rows, ...)

:func:`run` resolves the settings (:func:`harness.run.config.resolve_config`);
:func:`execute` then trains the cells (:class:`harness.run.runner.Runner`) and
writes the folder: ``config.json``, ``environment.json``, the tables and
(unless told not to) the figures and ``report.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from harness.contract.cells import CellSpec
from harness.contract.errors import HarnessError, one_line
from harness.contract.tasks import Task
from harness.measurements.environment import describe, prepare_cpu, threads_line, threads_record
from harness.plugins.registry import Registry, load_registry
from harness.reports.results import RunWriter, default_run_folder
from harness.run.config import DEFAULT_THREADS, RunConfig, resolve_config
from harness.run.runner import Runner, make_task
from harness.run.widths import match_widths


@dataclass
class RunResult:
    """What :func:`execute` did: the folder, the settings, the task and one summary row per cell."""

    folder: Path
    config: RunConfig
    task: Task
    rows: list[dict[str, Any]] = field(default_factory=list)


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; every finished table is on disk in :attr:`folder`."""

    def __init__(self, folder: Path):
        super().__init__(str(folder))
        self.folder = folder


def _quiet(_: str) -> None:
    pass


def execute(cfg: RunConfig, registry: Registry, *, out: Path | None = None, results_root: Path = Path("results"),
            progress: bool = True, say: Callable[[str], None] = _quiet, warn: Callable[[str], None] = _quiet,
            plots: bool = True, live_failures: bool = True, cell_timeout: float | None = None) -> RunResult:
    """Train ``cfg.cells`` on ``cfg.task`` and write the run folder.

    :param out: the folder to create (default ``results_root/<time>-<task>``); a folder holding a run is refused.
    :param say: receives progress lines (the folder); ``warn`` receives problems: a cell that failed, diverged or
        was skipped as it happens (unless ``live_failures`` is off, for a caller that reports them itself from
        the returned rows), and figures that could not be made.
    :param cell_timeout: seconds each cell may take before it is stopped and marked ``timeout`` (``None``: no limit;
        :mod:`harness.run.deadline` says what it can interrupt).
    :raises RunInterrupted: on Ctrl-C, after the finished tables are written.
    """
    task_spec = registry.task(cfg.task)
    specs: list[CellSpec] = [registry.cell(name) for name in cfg.cells]
    prepare_cpu(cfg.threads)
    task = make_task(task_spec, cfg)  # before the folder: bad data or options leave nothing behind
    if cfg.match_params is not None:
        widths = match_widths(specs, task, cfg.match_params, cfg.layers, cfg.dropout)
        cfg.cell_hidden = {name: width.hidden_size for name, width in widths.items()}
    writer = RunWriter(out if out is not None else default_run_folder(Path(results_root), cfg.task))
    provenance = {name: registry.provenance(name) for name in cfg.cells}
    writer.write_json("config.json", {**cfg.to_dict(), "task_config": task.config(), "baseline": task.baseline,
                                      "solved_rule": task.solved_rule, "accuracy": task.accuracy_name,
                                      "loss_unit": task.loss_unit, "cell_sources": provenance,
                                      "colors": {spec.name: spec.color for spec in specs},
                                      "task_source": registry.provenance(cfg.task, kind="task")})
    threads = threads_record(cfg.threads, given=cfg.threads != DEFAULT_THREADS)
    writer.write_json("environment.json", {**describe(), "cpu_threads": threads})
    say(f"run folder: {writer.folder}")
    say(threads_line(threads))
    if cfg.match_params is not None:
        say(f"--match-params {cfg.match_params:,}: " + "; ".join(w.describe() for w in widths.values()))
    runner = Runner(cfg, task_spec, specs, writer, progress=progress, say=say,
                    warn=warn if live_failures else _quiet, task=task, provenance=provenance,
                    cell_timeout=cell_timeout)
    result = RunResult(writer.folder, cfg, task)
    try:
        result.rows = runner.run()
    except KeyboardInterrupt:
        writer.flush()
        raise RunInterrupted(writer.folder) from None
    finally:
        writer.flush()
    if plots:
        _plots(writer.folder, warn)
    return result


def _plots(folder: Path, warn: Callable[[str], None]) -> None:
    """Figures and report.md; a plotting problem is reported in one line and never costs the run."""
    try:
        from harness.reports.report import render  # matplotlib: loaded only when figures are made
        render(folder)
    except Exception as exc:
        warn(f"figures not made ({one_line(exc)}); the tables are intact, "
             f"retry with 'harness plot {folder}'")


def run(task: str, cells: Sequence[str] | str, *, out: Path | str | None = None, preset: str | None = None,
        task_options: Mapping[str, Any] | None = None, grad_at: Sequence[int] = (), registry: Registry | None = None,
        progress: bool = True, plots: bool = True, say: Callable[[str], None] = _quiet,
        warn: Callable[[str], None] = _quiet, cell_timeout: float | None = None, **settings: Any) -> RunResult:
    """Resolve the settings and execute the run: the one entry point for the CLI, sweep units and notebooks.

    ``settings`` are :data:`RUN_OPTIONS` by name (``steps=500, lr=3e-3, seed=1``). ``cells`` is a list of names
    or a comma-separated string.
    """
    registry = registry if registry is not None else load_registry()
    names = [c.strip() for c in (cells.split(",") if isinstance(cells, str) else cells) if c.strip()]
    if not names:
        raise HarnessError("no cells given; name at least one, e.g. --cells lstm,rnn")
    task_spec = registry.task(task)
    for name in names:
        registry.cell(name)  # an unknown name fails here, in one line, before anything runs
    cfg = resolve_config(task_spec, names, preset=preset, settings=settings, task_options=task_options,
                         grad_at=grad_at)
    return execute(cfg, registry, out=Path(out) if out is not None else None, progress=progress, say=say, warn=warn,
                   plots=plots, cell_timeout=cell_timeout)


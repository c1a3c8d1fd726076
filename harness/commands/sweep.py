"""Train cells over seeds, sequence lengths and settings, and give each cell a memory-horizon verdict.

Every run option takes a comma list (--seq-len 10,20,40 --lr 1e-3,3e-3), task
options too (--task-opt copy_len=5,10). The grid is the product of the lists
and the seeds; each (cell, setting, seed) is a unit, one 'harness run' of one
cell, in SWEEP/units/. Re-running the same command resumes: finished units
are kept, interrupted ones run again, --retry-failed repeats failed ones, and
a widened grid runs only its new units. A sweep can also be written in a TOML
file (--config FILE; docs/sweeps.md); options given here override the file.

At the end: sweep_summary.csv (means and 95% confidence intervals over seeds,
solve rates, a paired comparison with --reference), horizon.csv, a table per
task and one sentence per cell, and figures with report.md.

A unit that runs longer than --unit-timeout (default 24 hours: about twice
what the longest unit of the studies here is estimated to need on one CPU
core; 'none' for no limit) is stopped and marked 'timeout'; the other units
go on, and --retry-failed runs it again. The unit stops itself between Python operations; the executor
stops it from outside if it is stuck in one long C or CUDA call (local: its
processes are killed a minute later; ray: the task is force-cancelled;
submitit: the Slurm time limit; docs/sweeps.md).

Exit status: 0 when every unit finished ok or diverged; 1 when a unit failed,
timed out or was skipped as unavailable; 2 for a usage error (a missing extra
included); 130 on Ctrl-C or SIGTERM (rerun the same command to resume).

Examples:
  python -m harness sweep --cells lstm,gru,rnn --task copy --seq-len 10,20,40 --seeds 4 --steps 2000 --out results/horizon
  python -m harness sweep --config studies/arjovsky2016-copy-reduced.toml
  python -m harness sweep --cells lstm,gru --task adding --seq-len 50,100 --seeds 3 --executor ray
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from pathlib import Path

from harness.commands.options import add_run_options, bounded_float, parse_pairs
from harness.contract.errors import HarnessError, one_line
from harness.contract.executors import ExecutorSettings
from harness.plugins.registry import load_registry
from harness.run.config import RUN_OPTIONS, GradStepError, RunOption, task_defaults
from harness.sweep.engine import SweepInterrupted, default_jobs, run_sweep, threads_per_unit
from harness.sweep.files import SweepRequest, load
from harness.sweep.grid import HorizonRule, SweepSpec, parse_seeds, parse_values
from harness.sweep.tuning import sentence as tuning_sentence
from harness.sweep.unit import RETRYABLE

HELP = "run cells over seeds and settings, with confidence intervals and a memory-horizon verdict"
DEFAULT_SEEDS = 3
DEFAULT_UNIT_TIMEOUT_S = 24 * 3600
"""A day: generous, so that no real unit is cut off, yet a hung one frees its executor slot within a day. The
longest unit of the studies here (arjovsky2016-adding: lstm at T = 750, 100,000 steps, batch 50, 128 units) is
estimated at 6 to 12 hours on one CPU core, scaled from arjovsky2016-adding-long-reduced (its four units of
2,000 steps at T = 400 and 750, batch 20, took 16.4 minutes in all: docs/reproductions.md). It is also
submitit's default Slurm time limit."""


def comma_list(option: RunOption):
    """An argparse type: ``"10,20,40"`` -> each value checked as ``option`` checks one."""
    def parse(text: str) -> list:
        try:
            return parse_values(text, option.parse)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    parse.__name__ = option.name
    return parse


def add_arguments(p) -> None:
    p.add_argument("--config", type=Path, metavar="FILE", help="a sweep file (TOML; docs/sweeps.md); the options "
                   "below override its keys")
    p.add_argument("--cells", help="comma-separated cell names, e.g. lstm,gru,rnn")
    p.add_argument("--task", help="task name (see 'harness list')")
    p.add_argument("--preset", help="a named set of task defaults (docs/tasks.md)")
    p.add_argument("--seeds", help=f"a count (5 = seeds 0..4), a range (10:15) or a list (0,3,7) (default "
                   f"{DEFAULT_SEEDS})")
    add_run_options(p, names=tuple(o.name for o in RUN_OPTIONS if o.name != "seed" and o.name != "threads"),
                    type_for=lambda o: comma_list(o) if o.sweepable else _single(o),
                    help_suffix="; a comma list sweeps it")
    p.add_argument("--grad-at", default=None, help="extra training steps at which to record gradient norms")
    p.add_argument("--task-opt", action="append", default=[], metavar="NAME=V1,V2",
                   help="a task option, or a comma list of values to sweep (repeatable)")
    p.add_argument("--reference", help="the cell every other is paired with, seed by seed (default: lstm if swept, "
                   "else the first cell)")
    p.add_argument("--out", type=Path, help="the sweep folder (default results/<time>-sweep-<task>); give the same "
                   "one again to resume")
    p.add_argument("--tune", action="append", default=[], metavar="NAME=V1,V2,...",
                   help="tune a run setting or task option per cell (repeatable): every candidate runs, and for each "
                        "cell, point and seed the one with the best validation loss stands in the summary (the test "
                        "split never decides; docs/sweeps.md, Tuning), e.g. --tune lr=3e-4,1e-3,3e-3")
    p.add_argument("--retry-failed", action="store_true", help="run failed, timed-out and skipped units again")
    runner = p.add_argument_group("executor")
    runner.add_argument("--executor", help="local (default, a process pool), ray, submitit, or a plugin's")
    runner.add_argument("--jobs", type=int, help="units at once: local workers, or Slurm's array parallelism "
                        "(default: the CPUs available to this process); never changes the numbers")
    runner.add_argument("--threads-per-unit", type=int, help="torch and BLAS threads per unit (default 1, as for "
                        "'harness run'); the numbers are bit-identical for the same thread count, and a resume "
                        "refuses to mix thread counts")
    runner.add_argument("--gpus-per-unit", type=float, help="GPUs per unit for ray and submitit; 0.25 lets four "
                        "units share one (default 0)")
    runner.add_argument("--unit-timeout", type=bounded_float(0, 1e9, allow_none=True), metavar="SECONDS",
                        help=f"stop a unit that runs longer, mark it 'timeout' and go on with the others ('none': no "
                             f"limit; default {DEFAULT_UNIT_TIMEOUT_S} s = {DEFAULT_UNIT_TIMEOUT_S // 3600} hours)")
    runner.add_argument("--ray-address", help="connect to this Ray cluster (default: start a local one)")
    runner.add_argument("--slurm-partition", help="submitit: the Slurm partition")
    runner.add_argument("--slurm-time", type=int, metavar="MINUTES", help="submitit: time limit per unit")
    runner.add_argument("--slurm-param", action="append", default=[], metavar="KEY=VALUE",
                        help="submitit: an extra Slurm parameter (repeatable), e.g. --slurm-param qos=high")
    runner.add_argument("--submitit-cluster", choices=("slurm", "local"),
                        help="submitit: force Slurm or submitit's local executor (default: Slurm where there is one)")
    runner.add_argument("--executor-opt", action="append", default=[], metavar="KEY=VALUE",
                        help="an option for a plugin's executor (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--no-plots", action="store_true", help="skip the figures and report.md")


def _single(option: RunOption):
    def parse(text: str):
        if "," in text:
            raise argparse.ArgumentTypeError(f"{option.flag} cannot be swept; give one value")
        try:
            return [option.parse(text)]
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    parse.__name__ = option.name
    return parse


def request_from_args(args) -> SweepRequest:
    """The options given on the command line, as a request (unset ones stay unset, so a file's values apply)."""
    request = SweepRequest(task=args.task, preset=args.preset, reference=args.reference,
                           out=str(args.out) if args.out else None)
    if args.cells is not None:
        request.cells = [c.strip() for c in args.cells.split(",") if c.strip()]
        if not request.cells:
            raise HarnessError("--cells is empty; name at least one cell, e.g. --cells lstm,rnn")
    if args.seeds is not None:
        request.seeds = parse_seeds(args.seeds)
    if args.grad_at is not None:
        request.grad_at = parse_values(args.grad_at, int)
    for option in RUN_OPTIONS:
        values = getattr(args, option.name, None)
        if values is not None:
            request.settings[option.name] = values
    for name, text in parse_pairs(args.task_opt).items():
        request.task_options[name] = parse_values(text, str)
    for name, text in parse_pairs(args.tune, "--tune").items():
        option = next((o for o in RUN_OPTIONS if o.name == name.replace("-", "_")), None)
        try:
            request.tune[option.name if option else name] = parse_values(text, option.parse if option else str)
        except ValueError as exc:
            raise HarnessError(f"--tune {name}={text}: {exc}") from None
    executor = {"name": args.executor, "jobs": args.jobs, "threads_per_unit": args.threads_per_unit,
                "gpus_per_unit": args.gpus_per_unit, "ray_address": args.ray_address,
                "slurm_partition": args.slurm_partition, "slurm_time": args.slurm_time,
                "submitit_cluster": args.submitit_cluster, "unit_timeout": args.unit_timeout}
    request.executor = {k: v for k, v in executor.items() if v is not None}
    if args.slurm_param:
        request.executor["slurm_params"] = parse_pairs(args.slurm_param, "--slurm-param")
    return request


@contextlib.contextmanager
def blame(request: SweepRequest, key: str):
    """Name the sweep file and its key in any error about ``key``'s value, when the value came from a file."""
    try:
        yield
    except HarnessError as exc:
        origin = request.origins.get(key)
        if origin is None:
            raise
        raise HarnessError(f"{origin}: {key}: {exc}") from None


def check_task_options(request: SweepRequest, task_spec) -> None:
    """Every task option's name and every value of it, against the task's declarations, before anything runs;
    the error names the file's key, or ``--task-opt``."""
    declared = {o.name: o for o in task_spec.options}
    valid = ", ".join(sorted(declared)) or "(this task has none)"
    for name, values in request.task_options.items():
        key = f"task_options.{name}"
        origin = request.origins.get(key)
        if name not in declared:
            where = f"{origin}: {key}" if origin else f"--task-opt {name}"
            raise HarnessError(f"{where}: unknown option of task {task_spec.name}; valid options: {valid}")
        for value in values:
            try:
                declared[name].value_of(value)
            except ValueError as exc:
                where = f"{origin}: {key} = {value!r}" if origin else f"--task-opt {name}={value}"
                raise HarnessError(f"{where}: {exc}") from None


def build(request: SweepRequest, registry) -> tuple[SweepSpec, str, dict]:
    """-> the sweep, the executor's name, and its settings (without the folder)."""
    if not request.task:
        raise HarnessError("no task: give --task NAME (or a --config file with task = ...)")
    if not request.cells:
        raise HarnessError("no cells: give --cells a,b (or a --config file with cells = [...])")
    with blame(request, "task"):
        task_spec = registry.task(request.task)
    with blame(request, "cells"):
        for cell in request.cells:
            registry.cell(cell)
    with blame(request, "preset"):
        task_defaults(task_spec, request.preset)
    check_task_options(request, task_spec)
    cells = request.cells
    reference = request.reference or ("lstm" if "lstm" in cells else cells[0])
    if reference not in cells:
        with blame(request, "reference"):
            raise HarnessError(f"--reference {reference}: not among the swept cells ({', '.join(cells)})"
                               if "reference" not in request.origins else
                               f"{reference!r} is not among the swept cells ({', '.join(cells)})")
    spec = SweepSpec(task=request.task, cells=cells, seeds=request.seeds or list(range(DEFAULT_SEEDS)),
                     settings=dict(request.settings), task_options=dict(request.task_options),
                     cell_settings=request.cell_settings, preset=request.preset, grad_at=request.grad_at or [],
                     reference=reference, horizon=HorizonRule(**request.horizon), tune=dict(request.tune))
    spec.check(registry)
    ex = request.executor
    for key, low in (("jobs", 1), ("threads_per_unit", 1)):
        if key in ex and (not isinstance(ex[key], int) or isinstance(ex[key], bool) or ex[key] < low):
            raise HarnessError(f"--{key.replace('_', '-')} must be a whole number >= {low}, got {ex[key]!r}")
    if "gpus_per_unit" in ex and not (isinstance(ex["gpus_per_unit"], (int, float)) and ex["gpus_per_unit"] >= 0):
        raise HarnessError(f"--gpus-per-unit must be a number >= 0, got {ex['gpus_per_unit']!r}")
    jobs = ex.get("jobs") or default_jobs()
    settings = {"jobs": jobs, "threads_per_unit": threads_per_unit(ex.get("threads_per_unit")),
                "unit_timeout": unit_timeout(ex.get("unit_timeout", DEFAULT_UNIT_TIMEOUT_S)),
                "gpus_per_unit": float(ex.get("gpus_per_unit") or 0.0), "ray_address": ex.get("ray_address"),
                "slurm": {"partition": ex.get("slurm_partition"), "time_min": ex.get("slurm_time"),
                          "cluster": ex.get("submitit_cluster"), "additional": ex.get("slurm_params") or {}}}
    return spec, ex.get("name") or "local", settings


def unit_timeout(value) -> float | None:
    """``--unit-timeout`` / ``unit_timeout`` -> seconds, or ``None`` for no limit (``none``, infinity)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "off")):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def duration(seconds: float) -> str:
    """``86400`` -> ``"24 h"``, ``90`` -> ``"1.5 min"``, ``2`` -> ``"2 s"``."""
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:g} s"


def main(args) -> int:
    registry = load_registry()
    for problem in registry.problems:
        print(f"warning: {problem}", file=sys.stderr)
    request = request_from_args(args)
    if args.config is not None:
        request = load(args.config).merged(request)
    spec, executor_name, settings = build(request, registry)
    with blame(request, "executor.name"):
        executor = registry.executor(executor_name)
    out = Path(request.out) if request.out else Path("results") / f"{time.strftime('%Y%m%d-%H%M%S')}-sweep-{spec.task}"
    options = parse_pairs(args.executor_opt, "--executor-opt")
    exec_settings = ExecutorSettings(folder=str(out.resolve()), options=options, **settings)
    limit = "no time limit" if exec_settings.unit_timeout is None else f"at most {duration(exec_settings.unit_timeout)} each"
    print(f"sweep folder: {out}  ({executor.name} executor, {exec_settings.jobs} at a time, "
          f"{exec_settings.threads_per_unit} thread(s) per unit, {limit})")
    try:
        outcome = run_sweep(spec, registry, executor, exec_settings, retry_failed=args.retry_failed,
                            progress=not args.no_progress, command=sys.argv[1:])
    except GradStepError as exc:
        origin = request.origins.get("grad_at")
        if origin is None:
            raise
        raise HarnessError(f"{origin}: grad_at: {exc.step} is not a training step; each must be between 0 and "
                           f"{exc.steps}, the run's steps") from None
    except SweepInterrupted as stop:
        done = stop.outcome
        finished = done.already + len(done.results)
        print(f"\ninterrupted: {finished} of {done.total} units are finished and kept in {out}; run the same "
              f"command again to resume (finished units are not repeated)", file=sys.stderr)
        return 130
    (out / "sweep.toml").write_text(request.to_toml())
    return report(outcome, plots=not args.no_plots)


def report(outcome, plots: bool = True) -> int:
    """Print the tables and sentences, draw the figures; -> the exit status."""
    from harness.sweep.horizon import horizon_table

    folder = outcome.folder
    units, summary, verdict = folder.write_tables()
    keys = folder.point_keys()
    print()
    for task, table in summary.groupby("task", sort=False):
        print(f"task {task}: test loss / memoryless baseline, mean [95% CI] over seeds, and seeds solved")
        print(horizon_table(table, keys))
        print()
    if folder.tuned:
        print("\n".join(tuning_sentence(summary, folder.tuned, keys)) + "\n")
    for sentence in verdict["sentence"]:
        print(sentence)
    print(f"\ntables: {folder.path / 'units.csv'}, {folder.path / 'sweep_summary.csv'}, {folder.path / 'horizon.csv'}")
    if plots:
        try:
            from harness.sweep.plots import render
            done = render(folder.path)
            print(f"report: {done.report}")
        except Exception as exc:
            print(f"warning: figures not made ({one_line(exc)}); the tables are "
                  f"intact, retry with 'harness plot {folder.path}'", file=sys.stderr)
    bad = units[units["status"].isin(RETRYABLE)]
    for row in bad.itertuples():
        print(f"harness sweep: unit {row.unit} ({row.cell}, seed {row.seed}) {row.status}: {row.reason}",
              file=sys.stderr)
    if len(bad):
        timed_out = (bad["status"] == "timeout").any()
        more_time = " (a timed-out unit: or give it more time with --unit-timeout)" if timed_out else ""
        print(f"harness sweep: {len(bad)} unit(s) failed, timed out or were skipped; fix the cause{more_time} and "
              "rerun with --retry-failed", file=sys.stderr)
    return 1 if len(bad) else 0

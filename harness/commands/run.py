"""Train cells on a task and compare them on the same data, seed and budget.

Every unset option takes the task's default (docs/tasks.md), then the
preset's. Writes a new run folder (config.json, environment.json,
summary.csv, metrics.csv, gradnorms.csv, gradsummary.csv), prints a summary,
and draws the figures and report.md (skip with --no-plots).

--cell-timeout SECONDS stops a cell that runs longer (none by default): it
is marked 'timeout', its tables so far are kept, and the next cell runs. The
limit is checked between Python operations of the run's own process, so it
stops a training loop or a sleep, but not one long call into C or CUDA, which
finishes first (docs/results.md).

Exit status: 0 when every cell finished ok or diverged; 1 when a cell failed,
timed out or was skipped as unavailable here; 2 for a usage error; 130 on
Ctrl-C or SIGTERM. Failures are reported on stderr.

Examples:
  python -m harness run --cells lstm,rnn --task copy
  python -m harness run --cells lstm,gru --task adding --seq-len 100 --steps 3000
  python -m harness run --cells lstm --task copy --preset paper
"""

from __future__ import annotations

import sys
from pathlib import Path

from harness.commands.options import add_run_options, bounded_float, given_settings, parse_pairs
from harness.contract.errors import HarnessError
from harness.plugins.registry import load_registry
from harness.reports.summary import closing_lines, summary_table, verdicts
from harness.run.config import resolve_config
from harness.run.execute import RunInterrupted, execute

HELP = "train cells on a task and compare them"

FAILED_STATUSES = ("failed", "timeout", "skipped")
"""Statuses that make ``run`` exit 1: a requested cell produced no result."""


def add_arguments(p) -> None:
    p.add_argument("--cells", required=True, help="comma-separated cell names, e.g. lstm,rnn (see 'harness list')")
    p.add_argument("--task", required=True, help="task name: copy, adding, ... (see 'harness list')")
    p.add_argument("--preset", help="a named set of task defaults, e.g. 'paper' for copy (docs/tasks.md)")
    add_run_options(p)
    p.add_argument("--grad-at", default="",
                   help="extra steps at which to record gradient norms over time, comma-separated "
                        "(always at 0 and at the end)")
    p.add_argument("--task-opt", action="append", default=[], metavar="NAME=VALUE",
                   help="a task-specific option (repeatable); 'harness list' names the tasks, docs/tasks.md their options")
    p.add_argument("--cell-timeout", type=bounded_float(0, 1e8, allow_none=True), metavar="SECONDS",
                   help="stop a cell that takes longer than this (building, training and measurements), mark it "
                        "'timeout', keep its tables and go on with the next (default: none; stops Python code, not "
                        "one long call into C or CUDA)")
    p.add_argument("--out", type=Path, help="run folder to create (default: results/<time>-<task>); never overwritten")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.add_argument("--no-plots", action="store_true",
                   help="skip the figures and report.md at the end (make them later with 'harness plot RUN')")


def parse_steps(text: str) -> list[int]:
    """``"100,500"`` -> ``[100, 500]`` (the range is checked once the step budget is known)."""
    steps = []
    for part in (s.strip() for s in text.split(",") if s.strip()):
        if not part.isdigit():
            raise HarnessError(f"--grad-at {part!r}: each entry must be a whole training step, e.g. --grad-at 100,500")
        steps.append(int(part))
    return steps


def main(args) -> int:
    registry = load_registry()
    for problem in registry.problems:
        print(f"warning: {problem}", file=sys.stderr)
    task_spec = registry.task(args.task)
    cells = [spec.name for spec in registry.parse_cells(args.cells)]
    cfg = resolve_config(task_spec, cells, preset=args.preset, settings=given_settings(args),
                         task_options=parse_pairs(args.task_opt), grad_at=parse_steps(args.grad_at))
    try:
        # Failed and skipped cells are reported once, on stderr, after the summary (below), and a diverged one in
        # its verdict, so the runner's live failure lines are left out.
        result = execute(cfg, registry, out=args.out, progress=not args.no_progress, say=print,
                         warn=lambda line: print(f"warning: {line}", file=sys.stderr), plots=not args.no_plots,
                         live_failures=False, cell_timeout=args.cell_timeout)
    except RunInterrupted as stop:
        print(f"\ninterrupted: the finished tables are kept in {stop.folder}", file=sys.stderr)
        return 130

    from harness.reports.results import read_run
    tables = read_run(result.folder)
    summary = tables["summary"]
    task = result.task
    print()
    width = f"H={cfg.hidden_size}" if cfg.match_params is None else f"H per cell for {cfg.match_params:,} parameters"
    print(f"task {cfg.task} (T={cfg.seq_len}, {cfg.steps} steps, batch {cfg.batch_size}, {width}); "
          f"memoryless baseline loss {task.baseline:.4f}; solved means {task.solved_rule}")
    print(summary_table(summary))
    print()
    lines = verdicts(summary, tables.get("gradsummary"), task.accuracy_name)
    for line, status in zip(lines, summary["status"]):
        if status not in FAILED_STATUSES:  # those are reported on stderr below
            print(line)
    findings = task.findings(tables)  # the task's own tables in words, e.g. copy's gates
    if findings:
        print("\n" + "\n".join(findings))
    for line in closing_lines(summary, cfg):
        print(line)
    print(f"\ntables: {result.folder}")
    if (result.folder / "report.md").exists():
        print(f"report: {result.folder / 'report.md'}")
    bad = summary[summary["status"].isin(FAILED_STATUSES)]
    for row in bad.itertuples(index=False):
        print(f"harness run: {row.cell} {row.status}: {row.reason}", file=sys.stderr)
    return 1 if len(bad) else 0

"""Train cells on a task and compare them on the same data, seed and budget.

Every unset option takes the task's default (shown by 'harness list' and in
docs/tasks.md). Writes a new run folder (config.json, environment.json,
summary.csv, metrics.csv, gradnorms.csv, gradsummary.csv), prints a summary,
and draws the figures and report.md (skip with --no-plots).

Examples:
  python -m harness run --cells lstm,rnn --task copy
  python -m harness run --cells lstm,gru --task adding --seq-len 100 --steps 3000
  python -m harness run --cells lstm --task copy --preset paper
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from harness.commands.options import DTYPES, apply_threads, bounded_float, bounded_int, parse_task_options, resolve_device
from harness.environment import describe
from harness.errors import HarnessError
from harness.registry import load_registry
from harness.results import RunWriter, default_run_folder
from harness.runner import OPTIMIZERS, RunConfig, Runner, make_task
from harness.summary import summary_table, verdicts

HELP = "train cells on a task and compare them"

# Used when neither the option nor the task's defaults set a value.
GLOBAL_DEFAULTS = {"steps": 1000, "seq_len": 50, "batch_size": 64, "hidden_size": 64, "layers": 1, "dropout": 0.0,
                   "lr": 1e-3, "optimizer": "adam", "clip": 1.0}


def add_arguments(p) -> None:
    p.add_argument("--cells", required=True, help="comma-separated cell names, e.g. lstm,rnn (see 'harness list')")
    p.add_argument("--task", required=True, help="task name: copy, adding, ... (see 'harness list')")
    p.add_argument("--preset", help="a named set of task defaults, e.g. 'paper' for copy (docs/tasks.md)")
    p.add_argument("--steps", type=bounded_int(1, 10_000_000), help="training steps per cell")
    p.add_argument("--seq-len", type=bounded_int(1, 100_000), help="sequence length T (copy: the delay T)")
    p.add_argument("--batch-size", type=bounded_int(1, 65_536), help="sequences per training batch")
    p.add_argument("--hidden-size", type=bounded_int(1, 16_384), help="hidden units H per layer")
    p.add_argument("--layers", type=bounded_int(1, 64), help="stacked layers L")
    p.add_argument("--dropout", type=bounded_float(-1e-12, 0.99), help="dropout between stacked layers (0 to 0.99)")
    p.add_argument("--lr", type=bounded_float(0.0, 10.0), help="learning rate")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), help="optimiser")
    p.add_argument("--clip", type=bounded_float(0.0, 1e6, allow_none=True),
                   help="clip the gradient norm to this value ('none' to disable); the norm before clipping is logged")
    p.add_argument("--seed", type=bounded_int(0, 2**31 - 1), default=0, help="seed for data and weights (default 0)")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu", help="where to train (default cpu)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="parameter and input dtype (default float32)")
    p.add_argument("--threads", type=bounded_int(1, 1024), help="CPU threads for torch (default: torch's choice, "
                   "usually the core count); recorded in environment.json")
    p.add_argument("--log-every", type=bounded_int(1, 10_000_000), default=None,
                   help="log train/val loss every N steps (default: steps/30)")
    p.add_argument("--grad-at", default="",
                   help="extra steps at which to record gradient norms over time, comma-separated "
                        "(always at 0 and at the end)")
    p.add_argument("--task-opt", action="append", default=[], metavar="NAME=VALUE",
                   help="a task-specific option (repeatable); 'harness list' names the tasks, docs/tasks.md their options")
    p.add_argument("--out", type=Path, help="run folder to create (default: results/<time>-<task>); never overwritten")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.add_argument("--no-plots", action="store_true",
                   help="skip the figures and report.md at the end (make them later with 'harness plot RUN')")


def resolve_config(args, task_spec, device) -> RunConfig:
    defaults = dict(GLOBAL_DEFAULTS)
    defaults.update(task_spec.defaults)
    preset_options: dict = {}
    if args.preset:
        presets = getattr(task_spec, "presets", {}) or {}
        if args.preset not in presets:
            valid = ", ".join(sorted(presets)) or "(this task has none)"
            raise HarnessError(f"unknown preset {args.preset!r} for task {task_spec.name}; valid presets: {valid}")
        preset = dict(presets[args.preset])
        preset_options = dict(preset.pop("task_options", {}))  # a preset may also choose task options
        defaults.update(preset)
    value = {k: (getattr(args, k) if getattr(args, k, None) is not None else defaults[k]) for k in GLOBAL_DEFAULTS}
    if value["clip"] is not None and math.isinf(value["clip"]):
        value["clip"] = None
    steps = value["steps"]
    grad_steps = []
    for part in (s.strip() for s in args.grad_at.split(",") if s.strip()):
        if not part.isdigit() or not 0 <= int(part) <= steps:
            raise HarnessError(f"--grad-at {part!r}: each entry must be a step between 0 and {steps}")
        grad_steps.append(int(part))
    task_options = parse_task_options(args.task_opt, task_spec.options, preset_options)
    return RunConfig(task=task_spec.name, cells=[], steps=steps, seq_len=value["seq_len"],
                     batch_size=value["batch_size"], hidden_size=value["hidden_size"], layers=value["layers"],
                     dropout=value["dropout"], lr=value["lr"], optimizer=value["optimizer"], clip=value["clip"],
                     seed=args.seed, device=str(device), dtype=args.dtype,
                     log_every=args.log_every or max(1, steps // 30), grad_steps=sorted(set(grad_steps)),
                     task_options=task_options)


def _plots(folder: Path) -> None:
    """Figures and report.md; a plotting problem is reported in one line and never costs the run."""
    try:
        from harness.report import render
        done = render(folder)
        print(f"report: {done.report}")
    except Exception as exc:
        text = str(exc).strip().splitlines()
        print(f"warning: figures not made ({type(exc).__name__}: {text[0] if text else ''}); the tables are intact, "
              f"retry with 'harness plot {folder}'", file=sys.stderr)


def main(args) -> int:
    registry = load_registry()
    for problem in registry.problems:
        print(f"warning: {problem}", file=sys.stderr)
    task_spec = registry.task(args.task)
    cell_specs = registry.parse_cells(args.cells)
    device = resolve_device(args.device)
    apply_threads(args.threads)
    cfg = resolve_config(args, task_spec, device)
    cfg.cells = [s.name for s in cell_specs]

    task = make_task(task_spec, cfg)  # before the folder: bad data or options leave nothing behind
    writer = RunWriter(args.out if args.out else default_run_folder(Path("results"), cfg.task))
    runner = Runner(cfg, task_spec, cell_specs, writer, progress=not args.no_progress, task=task)
    writer.write_json("config.json", {**cfg.to_dict(), "task_config": runner.task.config(),
                                      "baseline": runner.task.baseline, "solved_rule": runner.task.solved_rule,
                                      "accuracy": runner.task.accuracy_name})
    writer.write_json("environment.json", describe())
    print(f"run folder: {writer.folder}")
    try:
        runner.run()
    except KeyboardInterrupt:
        writer.flush()
        print(f"\ninterrupted: the finished tables are kept in {writer.folder}", file=sys.stderr)
        return 130
    finally:
        writer.flush()

    summary = writer.frame("summary")
    print()
    print(f"task {cfg.task} (T={cfg.seq_len}, {cfg.steps} steps, batch {cfg.batch_size}, H={cfg.hidden_size}); "
          f"memoryless baseline loss {runner.task.baseline:.4f}; solved means {runner.task.solved_rule}")
    print(summary_table(summary))
    print()
    for line in verdicts(summary, writer.frame("gradsummary"), runner.task.accuracy_name):
        print(line)
    print(f"\ntables: {writer.folder}")
    if not args.no_plots:
        _plots(writer.folder)
    failed = summary["status"].isin(["failed", "diverged"]).all() and len(summary)
    return 1 if failed else 0

"""The runner's training loop against a bare PyTorch loop: what the harness's bookkeeping costs.

    python benchmarks/bench_training_loop.py                       # copy, adding, selective-copy; lstm; ~6 min
    python benchmarks/bench_training_loop.py --tasks copy --steps 500 --repeats 3

For each task at its defaults (one thread), the same model (the task's head and the cell, built from the same
seeds as the runner builds them), the same optimiser, clipping and batch stream are trained twice, in this one
process, alternately ``--repeats`` times:

* **runner**: ``harness.run.runner.Runner`` as ``harness run`` drives it, with everything it does at its default
  frequency: gradient norms over time at step 0 and at the end, validation and logging every ``steps / 30`` steps,
  the progress bar (off: ``--no-progress``), the test evaluation, the task's extra tables;
* **bare**: the loop below and nothing else.

A first untimed bare loop pays the one-off imports (torch's optimisers load ``torch._dynamo`` on first use), and the
two loops take turns going first.

The overhead is the runner's median wall time over the bare loop's, minus 1. Goal: <= 5 %.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.contract import seeding  # noqa: E402
from harness.measurements.environment import prepare_cpu  # noqa: E402
from harness.plugins.model import TaskModel, build_cell  # noqa: E402
from harness.plugins.registry import load_registry  # noqa: E402
from harness.reports.results import RunWriter  # noqa: E402
from harness.run.config import OPTIMIZERS, resolve_config  # noqa: E402
from harness.run.runner import Runner, make_task  # noqa: E402


def bare_loop(cfg, task_spec, cell_spec) -> float:
    """Train as a user would by hand: same model, optimiser, clipping and batches. -> wall seconds."""
    start = time.perf_counter()
    task = make_task(task_spec, cfg)
    seeding.seed_everything(cfg.seed)
    head = task.make_head(cfg.hidden_size)
    seeding.seed_everything(seeding.derived_seed(cfg.seed, seeding.INIT))
    model = TaskModel(head, build_cell(cell_spec, head.input_size, cfg.hidden_size, cfg.layers, cfg.dropout))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = OPTIMIZERS[cfg.optimizer](params, lr=cfg.lr)
    clip = cfg.clip if cfg.clip is not None else math.inf
    for step in range(cfg.steps):
        batch = task.train_batch(step)
        loss = task.loss(model(batch.x), batch.y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
    return time.perf_counter() - start


def runner_loop(cfg, task_spec, cell_spec, folder: Path) -> tuple[float, float]:
    """The harness's training of one cell, as ``harness run --no-progress`` does it. -> (wall s, final loss)."""
    start = time.perf_counter()
    writer = RunWriter(folder)
    row = Runner(cfg, task_spec, [cell_spec], writer, progress=False, say=lambda _: None).run()[0]
    writer.flush()
    if row["status"] != "ok":
        raise SystemExit(f"{cell_spec.name} on {task_spec.name}: {row['status']}: {row['reason']}")
    return time.perf_counter() - start, row["eval_loss"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="copy,adding,selective-copy")
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--steps", type=int, help="training steps (default: each task's own)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    prepare_cpu(1)
    registry = load_registry()
    cell_spec = registry.cell(args.cell)
    warm = resolve_config(registry.task("copy"), [args.cell], settings={"threads": 1, "steps": 5})
    bare_loop(warm, registry.task("copy"), cell_spec)  # untimed: one-off imports
    print("| task | T | B | H | steps | bare s (median) | runner s (median) | overhead |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.tasks.split(","):
            task_spec = registry.task(name)
            settings = {"threads": 1, **({"steps": args.steps} if args.steps else {})}
            cfg = resolve_config(task_spec, [args.cell], settings=settings)
            bare, runner = [], []
            for repeat in range(args.repeats):  # alternate which goes first, so that order favours neither
                if repeat % 2 == 0:
                    bare.append(bare_loop(cfg, task_spec, cell_spec))
                runner.append(runner_loop(cfg, task_spec, cell_spec, Path(tmp) / f"{name}-{repeat}")[0])
                if repeat % 2 == 1:
                    bare.append(bare_loop(cfg, task_spec, cell_spec))
            b, r = statistics.median(bare), statistics.median(runner)
            print(f"| {name} | {cfg.seq_len} | {cfg.batch_size} | {cfg.hidden_size} | {cfg.steps} | {b:.2f} | "
                  f"{r:.2f} | {100 * (r / b - 1):+.1f} % |", flush=True)


if __name__ == "__main__":
    main()

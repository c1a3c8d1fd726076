"""Train every requested cell on the same task data, seed, optimiser and budget.

For each cell: build the task head (same initial weights for every cell) and
the cell, check the cell against the contract, measure gradient flow at
initialisation, train with optional clipping (recording the norm before
clipping), log loss/accuracy on part of the validation split at an interval
(all of it at the end), evaluate on the test split, and measure gradient flow
again at the end. A task with ``carries_state`` (language modelling) gets each
training batch's final state, detached, as the next batch's initial state, and
is evaluated with the state carried through each split (:func:`evaluate_carried`).

Failures stay with their cell: a non-finite loss marks it ``diverged``, an
exception inside the plugin marks it ``failed`` with the reason, a cell that
runs past ``cell_timeout`` seconds is stopped and marked ``timeout``
(:mod:`harness.run.deadline` says how, and what it cannot interrupt), and the
next cell runs. Ctrl-C marks the current cell ``interrupted``, writes every
table and re-raises so the CLI can say where they are.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import nn
from tqdm.auto import tqdm

from harness.contract import seeding
from harness.contract.cells import CellSpec
from harness.contract.errors import HarnessError, one_line
from harness.contract.tasks import Batch, Task, TaskSpec
from harness.measurements.gradflow import state_gradient_norms, summarise_curve
from harness.measurements.throughput import StepTimer
from harness.plugins.model import TaskModel, build_cell, verify_cell
from harness.reports.columns import BEAT_MARGIN, SUMMARY_NAMES
from harness.reports.results import RunWriter
from harness.run.config import OPTIMIZERS, RunConfig
from harness.run.deadline import CellTimeout, deadline


class Diverged(Exception):
    pass


def make_task(spec: TaskSpec, cfg: RunConfig) -> Task:
    """Build the run's task; a bad option or missing data is a one-line :class:`HarnessError`."""
    try:
        return spec.build(cfg.seq_len, cfg.batch_size, cfg.seed, cfg.task_options)
    except HarnessError:
        raise
    except (ValueError, FileNotFoundError) as exc:
        raise HarnessError(f"task {spec.name}: {exc}") from None


VAL_LOG_SEQUENCES = 128
"""Sequences of the validation split that each periodic log evaluates; the last log, at the end of training,
evaluates the whole split. It keeps the harness's own work within a few per cent of the training it measures
(``benchmarks/bench_training_loop.py``, docs/benchmarks.md)."""


GRADFLOW_SEQUENCES = 512
"""The gradient norms over time are measured on at most this many sequences of the first validation batch (copy,
selective-copy and mqar hold 512; adding's 1,000 cost it 3.5 % of its training at the defaults, measured)."""


def _batch_dim(tensor: torch.Tensor) -> int:
    """Time-major: the batch is dim 1 of (T, B, ...) tensors and dim 0 of (B,) ones."""
    return 1 if tensor.dim() >= 2 else 0


def _cat_batches(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Join batches along the batch dimension."""
    if len(tensors) == 1:
        return tensors[0]
    return torch.cat(tensors, dim=_batch_dim(tensors[0]))


def first_sequences(batches: list[Batch], count: int) -> list[Batch]:
    """The first ``count`` sequences of ``batches`` (all of them when there are fewer), as batches."""
    kept, left = [], count
    for batch in batches:
        if left <= 0:
            break
        if batch.batch_size > left:
            batch = Batch(batch.x.narrow(_batch_dim(batch.x), 0, left), batch.y.narrow(_batch_dim(batch.y), 0, left))
        kept.append(batch)
        left -= batch.batch_size
    return kept


def evaluate(model: nn.Module, task: Task, batches: Iterable[Batch], device: torch.device) -> dict[str, float]:
    """Loss and metrics over all batches of a held-out split (predictions concatenated along the batch; for a
    ``carries_state`` task, :func:`evaluate_carried`)."""
    if task.carries_state:
        return evaluate_carried(model, task, batches, device)
    was_training = model.training
    model.eval()
    preds, ys = [], []
    with torch.no_grad():
        for batch in batches:
            batch = batch.to(device)
            preds.append(model(batch.x))
            ys.append(batch.y)
    model.train(was_training)
    pred, y = _cat_batches(preds), _cat_batches(ys)
    result = {"loss": task.loss(pred, y).item()}
    result.update(task.metrics(pred, y))
    return result


def evaluate_carried(model: TaskModel, task: Task, batches: Iterable[Batch], device: torch.device) -> dict[str, float]:
    """A split as one pass of consecutive batches, the state carried from zeros at its start; loss and metrics are
    means over the batches weighted by ``task.n_predicted(y)`` (exact for per-token means), one batch in memory."""
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    total, state = 0, None
    try:
        with torch.no_grad():
            for batch in batches:
                batch = batch.to(device)
                pred, state = model.forward_with_state(batch.x, state)
                n = task.n_predicted(batch.y)
                for name, value in {"loss": task.loss(pred, batch.y).item(), **task.metrics(pred, batch.y)}.items():
                    sums[name] = sums.get(name, 0.0) + float(value) * n
                total += n
    finally:
        model.train(was_training)
    return {name: value / total for name, value in sums.items()}


class Runner:
    """Trains ``cell_specs`` one after another on the run's task; see the module docstring.

    :param say: receives progress lines; ``warn`` receives failures (the CLI sends them to stderr).
    :param provenance: cell name -> ``{"package", "version", "path"}`` of the plugin that supplied it.
    :param cell_timeout: seconds each cell may take, building and measurements included (``None``: no limit).
    """

    def __init__(self, cfg: RunConfig, task_spec: TaskSpec, cell_specs: list[CellSpec],
                 writer: RunWriter, progress: bool = True, say: Callable[[str], None] = print,
                 task: Task | None = None, warn: Callable[[str], None] | None = None,
                 provenance: Mapping[str, Mapping[str, str]] | None = None, cell_timeout: float | None = None):
        self.cfg = cfg
        self.cell_timeout = cell_timeout
        self.task_spec = task_spec
        self.cell_specs = cell_specs
        self.writer = writer
        self.progress = progress
        self.say = say
        self.warn = warn or say
        self.provenance = provenance or {}
        self.device = torch.device(cfg.device)
        self.dtype = getattr(torch, cfg.dtype)
        self.task = task if task is not None else make_task(task_spec, cfg)

    # ------------------------------------------------------------------ run

    def run(self) -> list[dict[str, Any]]:
        """Train every cell; return the summary rows. Tables are flushed after each cell."""
        rows = []
        for spec in self.cell_specs:
            row = self.run_cell(spec)
            rows.append(row)
        return rows

    def base_row(self, spec: CellSpec) -> dict[str, Any]:
        """A summary row (columns: ``harness.reports.columns.SUMMARY``) before training: no numbers yet."""
        source = self.provenance.get(spec.name, {})
        row: dict[str, Any] = dict.fromkeys(SUMMARY_NAMES, math.nan)
        row.update(cell=spec.name, task=self.task_spec.name, seed=self.cfg.seed, seq_len=self.cfg.seq_len, steps=0,
                   hidden_size=self.cfg.hidden_for(spec.name), grad_state=spec.memory_state,
                   baseline=self.task.baseline, solved=False, beats_baseline=False, wall_s=0.0, status="ok",
                   reason="", cell_package=source.get("package", ""), cell_version=source.get("version", ""),
                   cell_path=source.get("path", ""))
        return row

    def run_cell(self, spec: CellSpec) -> dict[str, Any]:
        row = self.base_row(spec)
        reason = spec.unavailable_reason(self.device, self.dtype)
        if reason:
            row.update(status="skipped", reason=reason)
            self.warn(f"skipped {spec.name}: {reason}")
            self._finish(row)
            return row
        start = time.perf_counter()
        try:
            with deadline(self.cell_timeout):
                self._train(spec, row)
        except CellTimeout:
            row.update(status="timeout", reason=f"ran past its time limit of {self.cell_timeout:g} s, after "
                                                f"{row['steps']} of {self.cfg.steps} training steps")
            self.warn(f"{spec.name} timed out: {row['reason']}")
        except KeyboardInterrupt:
            row.update(status="interrupted", reason="interrupted by the user (Ctrl-C)")
            row["wall_s"] = time.perf_counter() - start
            self._finish(row)
            raise
        except Diverged as exc:
            row.update(status="diverged", reason=str(exc))
            self.warn(f"{spec.name} diverged: {exc}")
        except Exception as exc:  # a plugin's bug must not take the other cells down
            row.update(status="failed", reason=one_line(exc))
            self.warn(f"{spec.name} failed: {row['reason']}")
        row["wall_s"] = time.perf_counter() - start
        self._finish(row)
        return row

    def _finish(self, row: dict[str, Any]) -> None:
        self.writer.add("summary", [row])
        self.writer.flush()

    # ---------------------------------------------------------------- train

    def _build(self, spec: CellSpec) -> TaskModel:
        cfg = self.cfg
        seeding.seed_everything(cfg.seed)                 # same head weights for every cell
        hidden = cfg.hidden_for(spec.name)
        head = self.task.make_head(hidden)
        seeding.seed_everything(seeding.derived_seed(cfg.seed, seeding.INIT))
        cell = build_cell(spec, head.input_size, hidden, cfg.layers, cfg.dropout)
        model = TaskModel(head, cell).to(device=self.device, dtype=self.dtype)
        verify_cell(spec, model.cell, head.input_size, hidden, cfg.layers, self.device, self.dtype)
        return model

    def _gradflow(self, spec: CellSpec, model: TaskModel, step: int, batch: Batch) -> dict[str, float]:
        """Gradient norms over time on ``batch`` (the first validation batch), recorded at training step ``step``."""
        norms = state_gradient_norms(model, spec, self.task, batch, self.cfg.layers, self.cfg.hidden_for(spec.name))
        decay = {}
        for state, curve in norms.items():
            self.writer.add("gradnorms", ({"cell": spec.name, "step": step, "t": t, "state": state, "norm": float(v)}
                                          for t, v in enumerate(curve)))
            s = summarise_curve(curve)
            self.writer.add("gradsummary", [{"cell": spec.name, "step": step, "state": state, "first": s.first,
                                             "last": s.last, "decay_per_step": s.decay_per_step,
                                             "steps_to_10x": s.steps_to_10x}])
            decay[state] = s.decay_per_step
        return decay

    def _log(self, cell: str, step: int, values: dict[str, float]) -> None:
        self.writer.add("metrics", ({"cell": cell, "step": step, "metric": k, "value": float(v)} for k, v in values.items()))

    def _train(self, spec: CellSpec, row: dict[str, Any]) -> None:
        cfg, task = self.cfg, self.task
        model = self._build(spec)
        row["params"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = OPTIMIZERS[cfg.optimizer](params, lr=cfg.lr)
        grad_steps = set(cfg.grad_steps) | {0, cfg.steps}
        clip = cfg.clip if cfg.clip is not None else math.inf
        timer = StepTimer(self.device, warmup=cfg.warmup)
        val_all = [batch.to(self.device) for batch in task.eval_batches("val")]  # generated once, not per log
        if task.carries_state:  # a batch is a window of the streams: the first windows, with the state carried
            val_log = val_all[:max(1, math.ceil(VAL_LOG_SEQUENCES / val_all[0].batch_size))]
            grad_batch = val_all[0]
        else:
            val_log = first_sequences(val_all, VAL_LOG_SEQUENCES)
            grad_batch = first_sequences(val_all[:1], GRADFLOW_SEQUENCES)[0]

        if 0 in grad_steps:
            row["grad_decay_init"] = self._gradflow(spec, model, 0, grad_batch)[spec.memory_state]
        window: dict[str, list[float]] = {"train_loss": [], "train_accuracy": [], "grad_norm": []}
        bar = tqdm(total=cfg.steps, desc=f"{spec.name:>12}", unit="step", disable=None if self.progress else True,
                   leave=True, dynamic_ncols=True)
        state = None  # carries_state: the last batch's final state, detached (truncated BPTT)
        try:
            for step in range(cfg.steps):
                batch = task.train_batch(step).to(self.device)
                timer.start()
                if task.carries_state:
                    pred, final = model.forward_with_state(batch.x, state)
                    state = tuple(s.detach() for s in final)
                else:
                    pred = model(batch.x)
                loss = task.loss(pred, batch.y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = float(torch.nn.utils.clip_grad_norm_(params, clip))  # the norm before clipping
                loss_value = loss.item()
                if not math.isfinite(loss_value) or not math.isfinite(grad_norm):
                    row["steps"] = step
                    self._log(spec.name, step, {"train_loss": loss_value, "grad_norm": grad_norm})
                    raise Diverged(f"non-finite {'loss' if not math.isfinite(loss_value) else 'gradient norm'} "
                                   f"at step {step} (try a lower --lr or --clip)")
                optimizer.step()
                timer.stop(tokens=batch.batch_size * batch.seq_len)
                row["steps"] = step + 1

                window["train_loss"].append(loss_value)
                window["grad_norm"].append(grad_norm)
                if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
                    with torch.no_grad():
                        window["train_accuracy"].append(task.metrics(pred.detach(), batch.y)["accuracy"])
                    logged = {k: sum(v) / len(v) for k, v in window.items() if v}
                    val = val_all if step + 1 == cfg.steps else val_log
                    logged.update({f"val_{k}": v for k, v in evaluate(model, task, val, self.device).items()})
                    self._log(spec.name, step + 1, logged)
                    self.writer.flush(parquet=False)  # a crash mid-cell still leaves the curve so far on disk
                    row["loss"] = logged["train_loss"]
                    if val is val_all:
                        row["val_loss"] = logged["val_loss"]  # the whole split: what --tune picks by
                    window = {k: [] for k in window}
                    bar.set_postfix(loss=f"{logged['train_loss']:.4f}", val=f"{logged['val_loss']:.4f}")
                if step + 1 in grad_steps and step + 1 != cfg.steps:
                    self._gradflow(spec, model, step + 1, grad_batch)
                bar.update(1)
        finally:
            bar.close()
            row["tokens_per_s"] = timer.tokens_per_s()

        test = evaluate(model, task, task.eval_batches("test"), self.device)
        self._log(spec.name, cfg.steps, {f"test_{k}": v for k, v in test.items()})
        ratio = test["loss"] / task.baseline if task.baseline > 0 else math.nan
        row.update(eval_loss=test["loss"], loss_ratio=ratio, accuracy=test["accuracy"], solved=bool(task.solved(test)),
                   beats_baseline=bool(ratio < BEAT_MARGIN))
        row["grad_decay_final"] = self._gradflow(spec, model, cfg.steps, grad_batch)[spec.memory_state]
        for name, frame in (task.artifacts(model, spec, self.device) or {}).items():
            frame.insert(0, "cell", spec.name)
            self.writer.add_frame(name, frame)

"""``listops``: evaluate a nested list expression (Long Range Arena's ListOps). See ``docs/tasks.md``.

Each sequence is one expression from :mod:`tasks.listops.generator` (the LRA generator's distribution: MIN,
MAX, MED and SM, sum modulo 10, over digits 0-9), one token per step, *left*-padded to ``T = --seq-len``
so that the last step is the expression's last token::

    tokens (T, B) -> one-hot over the 15 tokens, padding all zeros (T, B, 15) -> cell (T, B, H)
                  -> linear readout of h[T - 1] -> logits (1, B, 10)

The target is the expression's value, a class 0-9; loss: cross-entropy; accuracy: argmax. Memoryless
baseline: the entropy of the exact value distribution of accepted expressions (:mod:`tasks.listops.prior`),
the loss of the best predictor that ignores the tokens. Solved: test accuracy >= 0.9 (or ``solved_at``).
"""

from __future__ import annotations

import random
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness import Batch, HarnessError, TaskConfig, TaskHead, TaskOption, TaskSpec, hookimpl
from harness.contract import seeding
from tasks.classify import LastStepClassification
from tasks.listops.generator import CLOSE, Limits, N_VALUES, OPERATORS, PAD_ID, VOCAB, expression
from tasks.listops.prior import prior

SOLVED_AT = 0.9
EVAL_BATCH = 500
MIN_ACCEPTANCE = 1e-4     # below this, drawing expressions of the asked lengths would take too long

OPTIONS = (
    TaskOption("max_depth", int, 3, "deepest nesting: the root is depth 1, digits only at max_depth (LRA: 10)",
               minimum=1, maximum=20),
    TaskOption("max_args", int, 5, "most arguments per operator, at least 2 (LRA: 10)", minimum=2, maximum=20),
    TaskOption("min_length", int, 5, "fewest tokens in an expression (LRA: 501)", minimum=1, maximum=100_000),
    TaskOption("max_length", int, 0, "most tokens in an expression, at most --seq-len (0: --seq-len; LRA: 1999)",
               minimum=0, maximum=100_000),
    TaskOption("eval_size", int, 1000, "expressions in the validation and in the test set", minimum=1,
               maximum=1_000_000),
    TaskOption("solved_at", float, SOLVED_AT, "test accuracy that counts as solved", minimum=0.0, maximum=1.0),
)


def limits_of(seq_len: int, options: Mapping[str, Any]) -> Limits:
    """The generator's limits from the options and ``--seq-len``; one line when they cannot be met."""
    max_length = options["max_length"] or seq_len
    if max_length > seq_len:
        raise HarnessError(f"--task-opt max_length={max_length} is longer than --seq-len {seq_len}, which the "
                           f"expressions are padded to; raise --seq-len or lower max_length")
    if options["min_length"] > max_length:
        raise HarnessError(f"--task-opt min_length={options['min_length']} is more than max_length {max_length} "
                           f"(max_length 0 means --seq-len); lower min_length or raise --seq-len")
    return Limits(options["max_depth"], options["max_args"], options["min_length"], max_length)


class ListOpsHead(TaskHead):
    """One-hot tokens in (padding is all zeros); a linear readout of the last step's hidden state."""

    input_size = len(VOCAB) - 1

    def __init__(self, hidden_size: int):
        super().__init__()
        self.out = nn.Linear(hidden_size, N_VALUES)

    def embed(self, x: Tensor) -> Tensor:
        """x: (T, B) token ids -> (T, B, 15); padding (id 0) becomes zeros."""
        return F.one_hot(x, len(VOCAB))[..., 1:].to(self.out.weight.dtype)

    def readout(self, h: Tensor) -> Tensor:
        """h: (T, B, H) -> (1, B, 10) logits from the last step (time-major: evaluation joins batches on dim 1)."""
        return self.out(h[-1:])


class ListOpsTask(LastStepClassification):
    name = "listops"
    accuracy_name = "test accuracy (value 0-9)"
    loss_unit = "cross-entropy (nats)"

    def __init__(self, cfg: TaskConfig):
        self.seq_len, self.batch_size, self.seed = cfg.seq_len, cfg.batch_size, cfg.seed
        self.opts = dict(cfg.options)
        self.limits = limits_of(cfg.seq_len, self.opts)
        self.prior = prior(self.limits)
        if self.prior.acceptance < MIN_ACCEPTANCE:
            raise HarnessError(
                f"expressions of depth <= {self.limits.max_depth} with <= {self.limits.max_args} arguments have "
                f"{self.limits.min_length}-{self.limits.max_length} tokens with probability "
                f"{self.prior.acceptance:.2g}: too rare to draw; lower min_length or raise max_depth/max_args")
        self.baseline = self.prior.entropy
        self.solved_at = self.opts["solved_at"]
        self.solved_rule = f"test accuracy >= {self.solved_at:g}"
        self._eval: dict[str, Batch] = {}

    def generate(self, n: int, rng: random.Random) -> Batch:
        """``n`` expressions -> x (T, B) int64 token ids, left-padded with 0; y (B,) int64 values."""
        x = torch.full((self.seq_len, n), PAD_ID, dtype=torch.long)
        y = torch.empty(n, dtype=torch.long)
        for b in range(n):
            ids, value = expression(rng, self.limits)
            x[self.seq_len - len(ids):, b] = torch.tensor(ids, dtype=torch.long)
            y[b] = value
        return Batch(x, y)

    def _rng(self, *keys: int) -> random.Random:
        return random.Random(seeding.derived_seed(self.seed, *keys))

    def make_head(self, hidden_size: int) -> ListOpsHead:
        return ListOpsHead(hidden_size)

    def train_batch(self, step: int) -> Batch:
        return self.generate(self.batch_size, self._rng(seeding.TRAIN, step))

    def eval_batches(self, split: str):
        """``eval_size`` expressions from the split's own stream, drawn once, in batches of up to 500."""
        if split not in self._eval:
            stream = {"val": seeding.VAL, "test": seeding.TEST}[split]
            self._eval[split] = self.generate(self.opts["eval_size"], self._rng(stream))
        batch = self._eval[split]
        for start in range(0, batch.batch_size, EVAL_BATCH):
            yield Batch(batch.x[:, start:start + EVAL_BATCH], batch.y[start:start + EVAL_BATCH])

    def config(self) -> dict[str, Any]:
        return {
            "generator": "Long Range Arena's ListOps distribution (lra_benchmarks/data/listops.py), own code",
            "operators": list(OPERATORS), "close": CLOSE,
            "max_depth": self.limits.max_depth, "max_args": self.limits.max_args,
            "length_range": [self.limits.min_length, self.limits.max_length],
            "padding": "left, to seq_len (the last step is the expression's last token)",
            "value_prior": list(self.prior.probs),
            "acceptance": self.prior.acceptance,
            "mean_length": self.prior.mean_length,
            "eval_size": self.opts["eval_size"],
            "baseline": "entropy of the exact value distribution (nats)",
        }


PRESETS = {
    # Tay et al. (2021), "Long Range Arena", ListOps: the generator's defaults in lra_benchmarks/data/listops.py
    # (max_depth 10, max_args 10, 500 < L < 2000) and the training settings of
    # lra_benchmarks/listops/configs/base_listops_config.py: batch 32, 5,000 steps, max_length 2000, width 512
    # (emb_dim), and lr 0.05 * rsqrt(warmup 1000) = 1.58e-3, the peak of its warm-up / rsqrt-decay schedule, here
    # constant. 2,000 test expressions (num_test_samples). Meant for a GPU.
    "lra": {"seq_len": 2000, "steps": 5000, "batch_size": 32, "hidden_size": 512, "lr": 1.58e-3,
            "task_options": {"max_depth": 10, "max_args": 10, "min_length": 501, "max_length": 1999,
                             "eval_size": 2000}},
}

SPEC = TaskSpec(
    name="listops",
    description="ListOps (Long Range Arena): the value 0-9 of a nested MIN/MAX/MED/SM expression, one token per step",
    factory=ListOpsTask,
    options=OPTIONS,
    defaults={"seq_len": 40, "steps": 1500, "batch_size": 64, "hidden_size": 128, "lr": 3e-3},
    presets=PRESETS,
)


@hookimpl
def register_tasks(register):
    register(SPEC)

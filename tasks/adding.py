"""``adding``: the adding problem (Hochreiter & Schmidhuber, 1997).

Input ``(T, B, 2)``: channel 0 holds values drawn from U[0, 1]; channel 1 is a
marker with exactly one 1 in the first half of the sequence and one in the
second. Target ``(B,)``: the sum of the two marked values. Loss is the MSE of a
prediction read at the last step. Always predicting 1 (the mean of the sum)
gives MSE 1/6, the memoryless baseline. Accuracy is the fraction of sequences
with absolute error below 0.04, Hochreiter & Schmidhuber's criterion; a cell
has *solved* the task when that fraction is at least 0.99 on the test batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness import Batch, Task, TaskConfig, TaskHead, TaskOption, TaskSpec, hookimpl
from harness.contract import seeding

TOLERANCE = 0.04
SOLVED_AT = 0.99


class AddingHead(TaskHead):
    input_size = 2

    def __init__(self, hidden_size: int):
        super().__init__()
        self.out = nn.Linear(hidden_size, 1)

    def embed(self, x: Tensor) -> Tensor:
        """x: (T, B, 2) -> (T, B, 2) in the model's dtype."""
        return x.to(self.out.weight.dtype)

    def readout(self, h: Tensor) -> Tensor:
        """h: (T, B, H) -> (B,) prediction from the last step."""
        return self.out(h[-1]).squeeze(-1)


class AddingTask(Task):
    name = "adding"
    accuracy_name = f"fraction with |error| < {TOLERANCE}"
    solved_rule = f"test fraction with |error| < {TOLERANCE} >= {SOLVED_AT}"
    loss_unit = "mean squared error"
    baseline = 1.0 / 6.0

    def __init__(self, cfg: TaskConfig):
        if cfg.seq_len < 2:
            raise ValueError("the adding problem needs --seq-len >= 2 (one marker in each half)")
        self.seq_len = cfg.seq_len
        self.batch_size = cfg.batch_size
        self.seed = cfg.seed
        self.eval_size = cfg.options["eval_size"]

    def make_head(self, hidden_size: int) -> AddingHead:
        return AddingHead(hidden_size)

    def generate(self, batch_size: int, gen: torch.Generator) -> Batch:
        """-> x (T, B, 2) float32, y (B,) float32."""
        T, half = self.seq_len, self.seq_len // 2
        values = torch.rand(T, batch_size, generator=gen)
        first = torch.randint(0, half, (batch_size,), generator=gen)
        second = torch.randint(half, T, (batch_size,), generator=gen)
        marker = torch.zeros(T, batch_size)
        cols = torch.arange(batch_size)
        marker[first, cols] = 1.0
        marker[second, cols] = 1.0
        y = values[first, cols] + values[second, cols]
        return Batch(torch.stack([values, marker], dim=-1), y)

    def train_batch(self, step: int) -> Batch:
        return self.generate(self.batch_size, seeding.generator(self.seed, seeding.TRAIN, step))

    def eval_batches(self, split: str):
        stream = {"val": seeding.VAL, "test": seeding.TEST}[split]
        yield self.generate(self.eval_size, seeding.generator(self.seed, stream))

    def loss(self, pred: Tensor, y: Tensor) -> Tensor:
        return F.mse_loss(pred, y.to(pred.dtype))

    def metrics(self, pred: Tensor, y: Tensor) -> dict[str, float]:
        return {"accuracy": ((pred - y).abs() < TOLERANCE).float().mean().item()}

    def solved(self, test_metrics) -> bool:
        return test_metrics["accuracy"] >= SOLVED_AT

    def config(self):
        return {"sequence_length": self.seq_len, "eval_size": self.eval_size}


SPEC = TaskSpec(
    name="adding",
    description="adding problem (Hochreiter & Schmidhuber 1997): sum the two marked values of T",
    factory=AddingTask,
    options=(
        TaskOption("eval_size", int, 1000, "sequences in the val and test batches", minimum=1, maximum=100_000),
    ),
    defaults={"steps": 1500, "lr": 3e-3},
)


@hookimpl
def register_tasks(register):
    register(SPEC)

"""``selective-copy``: the selective copying task (Gu & Dao, 2023, "Mamba", section 3.1 and appendix E.1).

Symbols (the vocabulary of A = ``vocab_size``, as in the state-spaces/s4 copying
generator that the Mamba paper used): ``0`` noise, ``1..A-2`` data tokens,
``A-1`` the marker.

* input  ``(T + 2M, B)``: the first ``T + M`` steps hold M data tokens, drawn
  uniformly (with repeats) from ``1..A-2``, at M distinct random positions;
  the other T of those steps are noise. Then M markers.
* target ``(M, B)``: the M data tokens in the order they appeared, as class
  indices ``token - 1``. The readout reads the M marker steps only.

``T`` is ``--seq-len`` and counts the noise tokens, as the s4 generator's ``L``
does: the sequences are ``T + 2M`` steps long.

Loss is the mean cross-entropy over the M answer steps. The data tokens are
independent and uniform, so a predictor that ignores the history can do no
better than a uniform guess: ``ln(A - 2)``. Accuracy is the fraction of
answer tokens predicted right; a cell has *solved* the task when its test
accuracy is at least 0.99.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness import Batch, Task, TaskConfig, TaskHead, TaskOption, TaskSpec, hookimpl
from harness.contract import seeding

NOISE = 0
SOLVED_AT = 0.99


class SelectiveCopyHead(TaskHead):
    """One-hot input over the A symbols; a linear readout over the A - 2 data tokens at the M marker steps."""

    def __init__(self, vocab_size: int, n_data: int, hidden_size: int):
        super().__init__()
        self.input_size = vocab_size
        self.n_data = n_data
        self.out = nn.Linear(hidden_size, vocab_size - 2)

    def embed(self, x: Tensor) -> Tensor:
        """x: (T + 2M, B) symbol ids -> (T + 2M, B, A) one-hot."""
        return F.one_hot(x, self.input_size).to(self.out.weight.dtype)

    def readout(self, h: Tensor) -> Tensor:
        """h: (T + 2M, B, H) -> logits (M, B, A - 2) at the marker steps."""
        return self.out(h[-self.n_data:])


class SelectiveCopyTask(Task):
    name = "selective-copy"
    accuracy_name = "fraction of answer tokens right (marker steps)"
    solved_rule = f"test accuracy on the answer tokens >= {SOLVED_AT}"
    loss_unit = "cross-entropy per answer token (nats)"

    def __init__(self, cfg: TaskConfig):
        self.noise_len = cfg.seq_len
        self.batch_size = cfg.batch_size
        self.seed = cfg.seed
        self.vocab_size = cfg.options["vocab_size"]
        self.n_data = cfg.options["n_data"]
        self.eval_size = cfg.options["eval_size"]
        self.marker = self.vocab_size - 1
        self.baseline = math.log(self.vocab_size - 2)

    def make_head(self, hidden_size: int) -> SelectiveCopyHead:
        return SelectiveCopyHead(self.vocab_size, self.n_data, hidden_size)

    def generate(self, batch_size: int, gen: torch.Generator) -> Batch:
        """-> x (T + 2M, B) int64 symbols, y (M, B) int64 class indices (data token - 1)."""
        T, M, B = self.noise_len, self.n_data, batch_size
        tokens = torch.randint(1, self.vocab_size - 1, (B, M), generator=gen)
        # M distinct positions among the T + M steps before the markers, kept in order of time.
        positions = torch.rand(B, T + M, generator=gen).topk(M, dim=1).indices.sort(dim=1).values
        x = torch.full((B, T + 2 * M), NOISE, dtype=torch.long)
        x.scatter_(1, positions, tokens)
        x[:, T + M:] = self.marker
        return Batch(x.T.contiguous(), (tokens - 1).T.contiguous())

    def train_batch(self, step: int) -> Batch:
        return self.generate(self.batch_size, seeding.generator(self.seed, seeding.TRAIN, step))

    def eval_batches(self, split: str):
        stream = {"val": seeding.VAL, "test": seeding.TEST}[split]
        yield self.generate(self.eval_size, seeding.generator(self.seed, stream))

    def loss(self, pred: Tensor, y: Tensor) -> Tensor:
        """Mean cross-entropy over the answer steps; every step scored needs memory, so it is also the memory loss."""
        return F.cross_entropy(pred.reshape(-1, pred.shape[-1]), y.reshape(-1))

    def metrics(self, pred: Tensor, y: Tensor) -> dict[str, float]:
        return {"accuracy": (pred.argmax(-1) == y).float().mean().item()}

    def solved(self, test_metrics) -> bool:
        return test_metrics["accuracy"] >= SOLVED_AT

    def config(self):
        return {"noise_tokens": self.noise_len, "sequence_length": self.noise_len + 2 * self.n_data,
                "n_data": self.n_data, "vocab_size": self.vocab_size, "data_tokens": self.vocab_size - 2,
                "eval_size": self.eval_size}


SPEC = TaskSpec(
    name="selective-copy",
    description="selective copying (Gu & Dao 2023): recall M tokens scattered among T noise tokens, in order",
    factory=SelectiveCopyTask,
    options=(
        TaskOption("n_data", int, 6, "data tokens to memorize M", minimum=1, maximum=10_000),
        TaskOption("vocab_size", int, 16, "symbols A, counting the noise token and the marker (A - 2 data tokens)",
                   minimum=4, maximum=10_000),
        TaskOption("eval_size", int, 512, "sequences in the val and test batches", minimum=1, maximum=100_000),
    ),
    # Sized for lstm+gru in about 2 minutes on a 2-core CPU (docs/tasks.md has the measurements).
    defaults={"seq_len": 32, "steps": 2000, "hidden_size": 128, "lr": 5e-3},
    presets={
        # Gu & Dao (2023), appendix E.1: length 4096 (read as s4's noise count L), 16 symbols with the noise
        # token, 16 data tokens, 2 layers of width 64, 400K steps at a constant lr 1e-4, batch 64.
        "mamba": {"seq_len": 4096, "layers": 2, "hidden_size": 64, "lr": 1e-4, "batch_size": 64, "steps": 400_000,
                  "task_options": {"n_data": 16, "vocab_size": 16}},
    },
)


@hookimpl
def register_tasks(register):
    register(SPEC)

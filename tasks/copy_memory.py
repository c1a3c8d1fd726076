"""``copy``: the copy-memory task (Arjovsky, Shah & Bengio, 2016, "Unitary evolution RNNs").

Alphabet: ``0`` blank, ``1..K`` data symbols (K=8), ``K+1`` delimiter.

* input  ``(T + 2N,)``: N symbols drawn from 1..K, T-1 blanks, the delimiter, N blanks;
* target ``(T + 2N,)``: T+N blanks, then the N symbols.

N (``copy_len``) is 3 by default, so that the default run decides within
minutes on a CPU; Arjovsky et al. use N = 10, as the ``paper`` preset and the
studies do (docs/tasks.md says why and shows the measurements).

Loss is the mean cross-entropy over every step. A memoryless predictor outputs
blank for the first T+N steps and a uniform guess for the last N, so its loss
is ``N ln K / (T + 2N)`` (``10 ln 8 / (T + 20)`` in the paper). Recall accuracy counts the
correctly predicted symbols in the last N steps; a cell has *solved* the task
when its test recall accuracy is at least 0.99.

For cells that expose their gates, :meth:`CopyTask.artifacts` writes what the
gates do at the symbols, over the delay and at recall (:mod:`tasks.copy_gates`).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness import Batch, Task, TaskConfig, TaskHead, TaskOption, TaskSpec, hookimpl
from harness.contract import seeding
from tasks import copy_gates

SOLVED_AT = 0.99


class CopyHead(TaskHead):
    """One-hot input encoding and a linear readout at every step."""

    def __init__(self, n_symbols: int, hidden_size: int):
        super().__init__()
        self.input_size = n_symbols + 2
        self.out = nn.Linear(hidden_size, n_symbols + 1)

    def embed(self, x: Tensor) -> Tensor:
        """x: (T, B) symbol ids -> (T, B, K+2) one-hot."""
        return F.one_hot(x, self.input_size).to(self.out.weight.dtype)

    def readout(self, h: Tensor) -> Tensor:
        """h: (T, B, H) -> logits (T, B, K+1)."""
        return self.out(h)


class CopyTask(Task):
    name = "copy"
    accuracy_name = "recall accuracy (last N steps)"
    solved_rule = f"test recall accuracy >= {SOLVED_AT}"
    loss_unit = "cross-entropy per step (nats)"

    def __init__(self, cfg: TaskConfig):
        self.delay = cfg.seq_len
        self.batch_size = cfg.batch_size
        self.seed = cfg.seed
        self.n_symbols = cfg.options["n_symbols"]
        self.copy_len = cfg.options["copy_len"]
        self.eval_size = cfg.options["eval_size"]
        self.baseline = self.copy_len * math.log(self.n_symbols) / (self.delay + 2 * self.copy_len)

    def make_head(self, hidden_size: int) -> CopyHead:
        return CopyHead(self.n_symbols, hidden_size)

    def generate(self, batch_size: int, gen: torch.Generator) -> Batch:
        """-> x, y: (T + 2N, B) int64."""
        T, N, K = self.delay, self.copy_len, self.n_symbols
        length = T + 2 * N
        symbols = torch.randint(1, K + 1, (N, batch_size), generator=gen)
        x = torch.zeros(length, batch_size, dtype=torch.long)
        y = torch.zeros(length, batch_size, dtype=torch.long)
        x[:N] = symbols
        x[T + N - 1] = K + 1          # the delimiter: "now recall"
        y[T + N:] = symbols
        return Batch(x, y)

    def train_batch(self, step: int) -> Batch:
        return self.generate(self.batch_size, seeding.generator(self.seed, seeding.TRAIN, step))

    def eval_batches(self, split: str):
        stream = {"val": seeding.VAL, "test": seeding.TEST}[split]
        yield self.generate(self.eval_size, seeding.generator(self.seed, stream))

    def loss(self, pred: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(pred.reshape(-1, pred.shape[-1]), y.reshape(-1))

    def memory_loss(self, pred: Tensor, y: Tensor) -> Tensor:
        """Cross-entropy over the recall steps only: the part that needs memory (used for gradient flow)."""
        return self.loss(pred[-self.copy_len:], y[-self.copy_len:])

    def metrics(self, pred: Tensor, y: Tensor) -> dict[str, float]:
        recalled = pred[-self.copy_len:].argmax(-1) == y[-self.copy_len:]
        return {"accuracy": recalled.float().mean().item()}

    def solved(self, test_metrics) -> bool:
        return test_metrics["accuracy"] >= SOLVED_AT

    def config(self):
        return {"delay": self.delay, "sequence_length": self.delay + 2 * self.copy_len,
                "n_symbols": self.n_symbols, "copy_len": self.copy_len, "eval_size": self.eval_size}

    def artifacts(self, model: nn.Module, cell_spec, device: torch.device) -> dict[str, Any]:
        """For cells that expose their gates: ``gates`` (per step, the first test sequence) and ``copy_gates``
        (per gate and phase, the whole test batch); see :mod:`tasks.copy_gates`."""
        if not cell_spec.exposes_gates:
            return {}
        batch = next(iter(self.eval_batches("test")))
        means, predicted = copy_gates.read_gates(model, batch.x.to(device))
        steps = copy_gates.phases(self.delay, self.copy_len)
        return {"gates": copy_gates.step_table(means, predicted, batch.x, batch.y, steps, self.n_symbols),
                "copy_gates": copy_gates.phase_table(means, steps)}

    def findings(self, run: Mapping[str, Any]) -> list[str]:
        """``copy_gates.csv`` in plain words: the forget gate over the delay, the input gate at symbols and blanks."""
        table = run.get("copy_gates")
        return [] if table is None else copy_gates.sentences(table, self.delay, self.copy_len)


SPEC = TaskSpec(
    name="copy",
    description="copy-memory (Arjovsky et al. 2016): recall N symbols (default 3) after a delay of T steps",
    factory=CopyTask,
    options=(
        TaskOption("n_symbols", int, 8, "size of the data alphabet K", minimum=2, maximum=1000),
        TaskOption("copy_len", int, 3, "symbols to remember N (the paper preset: Arjovsky et al.'s 10)",
                   minimum=1, maximum=1000),
        TaskOption("eval_size", int, 512, "sequences in the val and test batches", minimum=1, maximum=100_000),
    ),
    # Sized so that 'run --cells lstm,rnn --task copy' decides in under 3 minutes on a 2-core CPU (docs/tasks.md).
    defaults={"seq_len": 20, "steps": 3000, "lr": 5e-3},
    presets={
        # Arjovsky et al. (2016), section 4.1: N=10 symbols, T=100, RMSProp at lr 1e-3, batch 20. Equal width
        # (H=128) for every cell rather than their equal parameter counts: see docs/tasks.md and studies/.
        "paper": {"seq_len": 100, "optimizer": "rmsprop", "lr": 1e-3, "batch_size": 20, "steps": 20000,
                  "hidden_size": 128, "task_options": {"copy_len": 10}},
    },
)


@hookimpl
def register_tasks(register):
    register(SPEC)

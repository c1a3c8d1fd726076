"""``mqar``: multi-query associative recall (Arora, Eyuboglu et al., 2023, "Zoology"; HazyResearch/zoology).

Symbols (the vocabulary of V = ``vocab_size``, split as Zoology's generator
splits it): ``0`` blank, keys ``1..V//2-1``, values ``V//2..V-1``.

* input ``(T, B)``: N key-value pairs (2N steps: key, value, key, value, ...),
  the keys distinct and the values distinct within a sequence; then the query
  region of ``T - 2N`` steps, blank except for the N keys, each once, in a
  random order, at even offsets from the region's start.
* target ``(T, B)``: at each query step the index of that key's value among
  the values (``value - V//2``); :data:`IGNORE` everywhere else.

Where the queries go: the region has ``(T - 2N) // 2`` even slots; N of them
are drawn without replacement with weights ``(i + 1) ** (power_a - 1)`` for
slot ``i``: Zoology's power law (``power_a`` 0.01, most queries soon after the
pairs); ``power_a = 1`` spreads them uniformly.

Loss is the mean cross-entropy over the query steps only (so it is also the
memory loss that gradient flow differentiates). The values are assigned at
random, so a predictor that ignores the history (even one that sees the query
key) can do no better than a uniform guess among the values:
``ln(V - V//2)``. Accuracy is the fraction of queries answered right; a cell has
*solved* the task when its test accuracy is at least 0.99.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness import Batch, Task, TaskConfig, TaskHead, TaskOption, TaskSpec, hookimpl
from harness.contract import seeding

BLANK = 0
IGNORE = -100
"""The target at every step that is not a query; the loss and the accuracy skip it."""
SOLVED_AT = 0.99


def _distinct(batch_size: int, n: int, k: int, gen: torch.Generator) -> Tensor:
    """-> (B, k) int64: for each row, k distinct indices from ``0..n-1``, uniformly, in random order."""
    if n <= 256 or k * k > n:  # few candidates, or repeats would be common: rank n random numbers per row
        return torch.rand(batch_size, n, generator=gen).topk(k, dim=1).indices
    # Many candidates and rare repeats (under one row in two): draw with replacement and redraw the rows that
    # repeat, which keeps every ordered k-tuple equally likely and costs O(B k) rather than O(B n); with the
    # preset's V = 8192 ranking took most of a step.
    out = torch.randint(0, n, (batch_size, k), generator=gen)
    while True:
        ordered = out.sort(dim=1).values
        repeats = (ordered[:, 1:] == ordered[:, :-1]).any(dim=1)
        if not repeats.any():
            return out
        out[repeats] = torch.randint(0, n, (int(repeats.sum()), k), generator=gen)


class MQARHead(TaskHead):
    """A learned token embedding of width H in (Zoology's models embed tokens too); a linear readout over the
    values at every step."""

    def __init__(self, vocab_size: int, n_values: int, hidden_size: int):
        super().__init__()
        self.input_size = hidden_size
        self.embedding = nn.Embedding(vocab_size, hidden_size)
        self.out = nn.Linear(hidden_size, n_values)

    def embed(self, x: Tensor) -> Tensor:
        """x: (T, B) token ids -> (T, B, H)."""
        return self.embedding(x)

    def readout(self, h: Tensor) -> Tensor:
        """h: (T, B, H) -> logits (T, B, n_values)."""
        return self.out(h)


class MQARTask(Task):
    name = "mqar"
    accuracy_name = "fraction of queries answered right"
    solved_rule = f"test accuracy on the queries >= {SOLVED_AT}"
    loss_unit = "cross-entropy per query (nats)"

    def __init__(self, cfg: TaskConfig):
        self.seq_len = cfg.seq_len
        self.batch_size = cfg.batch_size
        self.seed = cfg.seed
        self.vocab_size = V = cfg.options["vocab_size"]
        self.n_pairs = N = cfg.options["n_pairs"]
        self.power_a = cfg.options["power_a"]
        self.eval_size = cfg.options["eval_size"]
        self.first_value = V // 2
        self.n_keys, self.n_values = V // 2 - 1, V - V // 2
        if N > self.n_keys:
            raise ValueError(f"vocab_size={V} holds {self.n_keys} keys, fewer than n_pairs={N}: "
                             f"set --task-opt vocab_size={2 * N + 2} or more, or lower n_pairs")
        self.slots = (cfg.seq_len - 2 * N) // 2
        if self.slots < N:
            raise ValueError(f"--seq-len {cfg.seq_len} leaves no room for {N} pairs and their {N} queries: "
                             f"use --seq-len {4 * N} or more, or lower n_pairs")
        self.slot_weights = torch.arange(1, self.slots + 1, dtype=torch.float64) ** (self.power_a - 1)
        self.baseline = math.log(self.n_values)

    def make_head(self, hidden_size: int) -> MQARHead:
        return MQARHead(self.vocab_size, self.n_values, hidden_size)

    def generate(self, batch_size: int, gen: torch.Generator) -> Batch:
        """-> x (T, B) int64 tokens, y (T, B) int64 value indices at the query steps and IGNORE elsewhere."""
        T, N, B = self.seq_len, self.n_pairs, batch_size
        keys = _distinct(B, self.n_keys, N, gen) + 1                # (B, N) from 1..V//2-1
        value_ids = _distinct(B, self.n_values, N, gen)             # (B, N) indices among the values
        slots = torch.multinomial(self.slot_weights.expand(B, -1), N, replacement=False, generator=gen)
        queries = 2 * N + 2 * slots                                 # (B, N): key j is asked at queries[:, j]
        x = torch.full((B, T), BLANK, dtype=torch.long)
        x[:, 0:2 * N:2] = keys
        x[:, 1:2 * N:2] = value_ids + self.first_value
        x.scatter_(1, queries, keys)
        y = torch.full((B, T), IGNORE, dtype=torch.long)
        y.scatter_(1, queries, value_ids)
        return Batch(x.T.contiguous(), y.T.contiguous())

    def train_batch(self, step: int) -> Batch:
        return self.generate(self.batch_size, seeding.generator(self.seed, seeding.TRAIN, step))

    def eval_batches(self, split: str):
        stream = {"val": seeding.VAL, "test": seeding.TEST}[split]
        yield self.generate(self.eval_size, seeding.generator(self.seed, stream))

    def loss(self, pred: Tensor, y: Tensor) -> Tensor:
        """Mean cross-entropy over the query steps (every sequence has N of them); other steps are ignored."""
        return F.cross_entropy(pred.reshape(-1, pred.shape[-1]), y.reshape(-1), ignore_index=IGNORE)

    def metrics(self, pred: Tensor, y: Tensor) -> dict[str, float]:
        asked = y != IGNORE
        return {"accuracy": (pred.argmax(-1)[asked] == y[asked]).float().mean().item()}

    def solved(self, test_metrics) -> bool:
        return test_metrics["accuracy"] >= SOLVED_AT

    def config(self):
        return {"sequence_length": self.seq_len, "n_pairs": self.n_pairs, "vocab_size": self.vocab_size,
                "keys": self.n_keys, "values": self.n_values, "query_slots": self.slots, "power_a": self.power_a,
                "eval_size": self.eval_size}


SPEC = TaskSpec(
    name="mqar",
    description="multi-query associative recall (Zoology, Arora et al. 2023): N key-value pairs, then each key "
                "asked again",
    factory=MQARTask,
    options=(
        TaskOption("n_pairs", int, 4, "key-value pairs N per sequence", minimum=1, maximum=10_000),
        TaskOption("vocab_size", int, 32, "tokens V: the blank, V//2 - 1 keys and V - V//2 values",
                   minimum=4, maximum=1_000_000),
        TaskOption("power_a", float, 0.01, "query spacing: Zoology's power-law exponent (0.01 crowds the queries "
                   "after the pairs, 1 spreads them uniformly)", minimum=1e-4, maximum=1.0),
        TaskOption("eval_size", int, 512, "sequences in the val and test batches", minimum=1, maximum=100_000),
    ),
    # Sized for lstm+gru in about 2 minutes on a 2-core CPU (docs/tasks.md has the measurements).
    defaults={"seq_len": 32, "steps": 2000, "hidden_size": 128, "lr": 5e-3},
    presets={
        # Zoology's Figure 2 (configs in zoology/experiments/paper_configs/iclr24_zoology_figure2): T=64, 4 pairs,
        # V=8192, power law 0.01, blank filler, 2 layers, batch 512, 64 epochs of 100,000 sequences; their width
        # 128 and lr 2.15e-3 are one point of their sweeps.
        "zoology": {"seq_len": 64, "layers": 2, "hidden_size": 128, "lr": 2.15e-3, "batch_size": 512,
                    "steps": 12_500, "task_options": {"n_pairs": 4, "vocab_size": 8192, "power_a": 0.01}},
    },
)


@hookimpl
def register_tasks(register):
    register(SPEC)

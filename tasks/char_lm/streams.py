"""Cutting an encoded split into B contiguous streams and the streams into windows of T steps (truncated BPTT).

Training (:class:`TrainStreams`): the N ids of the training split give
``M = N - 1`` (input, target) pairs, ``x = ids[p]``, ``y = ids[p + 1]``.
Stream ``b`` starts at pair ``b * (M // B)``; training step ``s`` reads pairs
``start_b + s*T .. start_b + s*T + T - 1`` of every stream, modulo M. So batch
``s + 1`` continues exactly where batch ``s`` stopped, in every stream, and the
first ``M // (B*T)`` steps are the classic layout (stream b covers the b-th of B
equal parts). When a stream reaches the end of its part it reads on into the
next part, which is the text that follows, and the last stream wraps from the
corpus's end to its start: the only seam in the stream, like a document
boundary. The carried state is never reset (docs/tasks.md).

Evaluation (:class:`EvalStreams`): the M pairs of a held-out split are dealt
into ``B`` contiguous streams whose lengths differ by at most one (the longer
ones first), read window by window from the start. The shorter streams are
padded by one step at their very end: input ``<unk>`` (id 0), target
:data:`IGNORE`, which no loss or metric counts. Every pair of the split is
predicted exactly once.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor

from harness import HarnessError

IGNORE = -100
"""The target of a padding step: ``F.cross_entropy``'s default ``ignore_index``."""


class TrainStreams:
    """B circular streams over the training ids; :meth:`window` gives the (T, B) inputs and targets of a step."""

    def __init__(self, ids: Tensor, batch_size: int, seq_len: int):
        self.ids, self.batch_size, self.seq_len = ids, batch_size, seq_len
        self.pairs = len(ids) - 1
        if self.pairs < batch_size * seq_len:
            raise HarnessError(f"the training split has {len(ids):,} symbols, fewer than --batch-size {batch_size} x "
                               f"--seq-len {seq_len} + 1; lower them or add data")
        self.part = self.pairs // batch_size
        self.starts = torch.arange(batch_size, dtype=torch.int64) * self.part     # (B,)
        self._offsets = torch.arange(seq_len, dtype=torch.int64)[:, None]        # (T, 1)

    @property
    def steps_per_pass(self) -> float:
        """Training steps in which the B streams read M pairs together: one pass over the split."""
        return self.pairs / (self.batch_size * self.seq_len)

    def positions(self, step: int) -> Tensor:
        """(T, B) pair indices read at ``step``."""
        return (self.starts[None, :] + step * self.seq_len + self._offsets) % self.pairs

    def window(self, step: int) -> tuple[Tensor, Tensor]:
        """-> ``x (T, B)`` int64 ids and ``y (T, B)`` int64 targets, ``y[t, b]`` the symbol after ``x[t, b]``."""
        p = self.positions(step)
        return self.ids[p].long(), self.ids[p + 1].long()


class EvalStreams:
    """A held-out split laid out as ``(L, B)`` inputs and targets (see the module docstring)."""

    def __init__(self, ids: Tensor, streams: int, seq_len: int, split: str):
        pairs = len(ids) - 1
        if pairs < seq_len:
            raise HarnessError(f"--seq-len {seq_len} is longer than the {split} split ({max(pairs, 0):,} predicted "
                               f"symbols); lower --seq-len, or give that split more text")
        # Each stream holds at least T pairs, so that the first window (the gradient-flow window) is T long.
        self.streams = max(1, min(streams, pairs // seq_len))
        self.seq_len, self.pairs = seq_len, pairs
        q, r = divmod(pairs, self.streams)
        lengths = torch.full((self.streams,), q, dtype=torch.int64)
        lengths[:r] += 1
        starts = torch.cumsum(lengths, 0) - lengths
        t = torch.arange(int(lengths.max()), dtype=torch.int64)[:, None]          # (L, 1)
        p = starts[None, :] + t                                                   # (L, B)
        real = t < lengths[None, :]
        p = torch.where(real, p, torch.zeros_like(p))
        store = ids.dtype
        self.x = torch.where(real, ids[p].long(), 0).to(store)
        self.y = torch.where(real, ids[p + 1].long(), IGNORE).to(store)
        self.lengths = lengths

    def windows(self) -> Iterator[tuple[Tensor, Tensor]]:
        """Consecutive windows ``(x, y)``, each ``(T, B)`` int64 (the last one may be shorter)."""
        for start in range(0, self.x.shape[0], self.seq_len):
            yield self.x[start:start + self.seq_len].long(), self.y[start:start + self.seq_len].long()

    def __len__(self) -> int:
        return -(-self.x.shape[0] // self.seq_len)

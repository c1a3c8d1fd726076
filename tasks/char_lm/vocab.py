"""The symbol vocabulary of ``char-lm``, built from the training split only, and the unigram baseline.

Symbols are characters (Unicode code points) or bytes. Id 0 is ``<unk>``: every
symbol of the validation or test split that the training split lacks reads as
it. The training split's symbols get ids 1..V in increasing code-point (or
byte) order, so the same training text always gives the same ids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

UNK_ID = 0
UNK = "<unk>"


def code_points(text: str | bytes) -> np.ndarray:
    """A split as an unsigned array: Unicode code points of a ``str`` (uint32), byte values of ``bytes`` (uint8)."""
    if isinstance(text, bytes):
        return np.frombuffer(text, dtype=np.uint8)
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


@dataclass
class Vocabulary:
    """``symbols[i - 1]`` is the code point of id ``i``; ``counts[i - 1]`` its count in the training split."""

    symbols: np.ndarray
    counts: np.ndarray
    unit: str

    @classmethod
    def build(cls, train: str | bytes) -> "Vocabulary":
        points = code_points(train)
        if len(points) == 0:
            raise ValueError("the training split is empty")
        counts = np.bincount(points)             # at most 0x110000 bins: no sort over the corpus
        symbols = np.nonzero(counts)[0]
        unit = "byte" if isinstance(train, bytes) else "character"
        return cls(symbols, counts[symbols], unit)

    def __len__(self) -> int:
        """Ids in use, ``<unk>`` included: the size of the readout."""
        return len(self.symbols) + 1

    def encode(self, text: str | bytes) -> torch.Tensor:
        """A split -> ``(N,)`` ids (int16 or int32, to keep long corpora small); unseen symbols -> :data:`UNK_ID`."""
        dtype = np.int16 if len(self) <= np.iinfo(np.int16).max else np.int32
        table = np.zeros(int(self.symbols[-1]) + 2, dtype=dtype)   # the last entry: any larger code point -> <unk>
        table[self.symbols] = np.arange(1, len(self.symbols) + 1)
        points = np.minimum(code_points(text), len(table) - 1)
        return torch.from_numpy(table[points])

    def symbol(self, i: int) -> str:
        """How id ``i`` reads, for tables: the character, ``0xNN`` for a byte, ``<unk>`` for 0."""
        if i == UNK_ID:
            return UNK
        point = int(self.symbols[i - 1])
        return f"0x{point:02x}" if self.unit == "byte" else chr(point)


def unigram_entropy(counts: np.ndarray) -> float:
    """``-sum p ln p`` in nats over the symbol frequencies ``p = counts / counts.sum()``: the cross-entropy per
    symbol of the best predictor that ignores the history, on the text the counts come from."""
    p = np.asarray(counts, dtype=np.float64)
    p = p[p > 0] / p.sum()
    return float(-(p * np.log(p)).sum())


def bits(nats: float) -> float:
    """Nats -> bits: ``nats / ln 2`` (BPC when the nats are per character)."""
    return nats / math.log(2)

"""Text processing for ``sentiment``: tokeniser, vocabulary, and fixed-length encoding.

The vocabulary is built from the training split only, so validation and test
words the model never saw in training become ``<unk>``, as they would for a
deployed model. Sequences are padded *on the left* (as in the seeds'
SentimentRNN), so the last time step is always the last real token and the
readout at ``t = T - 1`` sees the whole review; longer reviews keep their
first ``T`` tokens.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
from torch import Tensor

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1

# Words (letters/digits, with inner apostrophes or hyphens: "didn't", "co-writer")
# or single punctuation marks ("!", ",", '"'). Underscores count as punctuation.
_TOKEN = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*|[^\w\s]|_")
_HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)  # IMDB reviews contain "<br /><br />"


def tokenize(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens of ``text``."""
    return _TOKEN.findall(_HTML_BREAK.sub(" ", text).lower())


@dataclass(frozen=True)
class Vocabulary:
    """Token <-> id. Id 0 is padding, id 1 stands for every unknown token."""

    tokens: tuple[str, ...]

    @classmethod
    def build(cls, texts: Iterable[Sequence[str]], max_size: int) -> "Vocabulary":
        """The ``max_size - 2`` most frequent tokens of ``texts`` (ties broken alphabetically).

        :param texts: tokenised training texts only.
        :param max_size: total size, the two special tokens included (>= 2).
        """
        if max_size < 2:
            raise ValueError(f"vocab_size must be at least 2 (padding and unknown), got {max_size}")
        counts = Counter(tok for text in texts for tok in text)
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: max_size - 2]
        return cls((PAD, UNK) + tuple(tok for tok, _ in ranked))

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {tok: i for i, tok in enumerate(self.tokens)})

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self._index  # type: ignore[attr-defined]

    def ids(self, tokens: Sequence[str]) -> list[int]:
        index = self._index  # type: ignore[attr-defined]
        return [index.get(tok, UNK_ID) for tok in tokens]

    def token(self, i: int) -> str:
        return self.tokens[i]


def encode(texts: Sequence[Sequence[str]], vocab: Vocabulary, seq_len: int) -> Tensor:
    """Tokenised texts -> ``(T, N)`` int64 ids, left-padded with 0, truncated to the first ``T`` tokens.

    An empty text becomes all padding (the cell then reads only zero embeddings).
    """
    out = torch.full((seq_len, len(texts)), PAD_ID, dtype=torch.long)
    for n, text in enumerate(texts):
        ids = vocab.ids(text[:seq_len])
        if ids:
            out[seq_len - len(ids):, n] = torch.tensor(ids, dtype=torch.long)
    return out

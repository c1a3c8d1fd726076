"""Per-token gate table: what a trained cell's gates do while it reads a few reviews.

For each inspected review and each of its real tokens (padding is skipped),
one row with the mean over ``H`` of every gate of the *top* layer, and the
model's probability of "positive" if the review ended at that token (the
readout applied to ``h_t``, as the seeds' SentimentRNN applies its linear
layer at every step and keeps the last). This makes the seeds' claim
testable: in "Amazing movie! ... hardly any boring moment." an LSTM should
open its input gate on the cue words and keep its forget gate near 1 across
the filler.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd
import torch
from torch import nn

from tasks.gate_means import inspecting, top_layer_means
from tasks.sentiment.text import PAD_ID, Vocabulary, encode

INDEX_COLUMNS = ("cell", "review", "origin", "position", "token", "in_vocab", "label", "p_positive", "prediction")
"""The table's own columns (the runner adds ``cell``); a gate named like one gets a ``_gate`` suffix."""


def gate_table(model: nn.Module, reviews: Sequence[tuple[str, list[str], int]], vocab: Vocabulary,
               seq_len: int, device: torch.device) -> pd.DataFrame:
    """One row per (review, real token).

    :param model: a ``TaskModel`` whose cell implements ``gate_activations`` -> name -> ``(L, T, B, H)``.
    :param reviews: ``(origin, tokens, label)`` per review; ``origin`` says where it came from.
    :returns: columns ``review, origin, position, token, in_vocab, label, p_positive, prediction``
        and one column per gate (``forget, input, output, ...`` for an LSTM).
    """
    tokens = [toks for _, toks, _ in reviews]
    x = encode(tokens, vocab, seq_len).to(device)                          # (T, N)
    with inspecting(model):
        emb = model.head.embed(x)                                         # (T, N, E)
        out, _ = model.cell(emb)                                          # (T, N, H)
        p_step = torch.sigmoid(model.head.step_logits(out)).cpu()         # (T, N)
        gates = top_layer_means(model.cell, emb, INDEX_COLUMNS)           # column -> (T, N), vocabulary order
    T = seq_len
    rows = []
    for n, (origin, toks, label) in enumerate(reviews):
        shown = toks[:T]
        start = T - len(shown)            # left padding: real tokens sit at the end
        ids = x[:, n].tolist()
        for pos, word in enumerate(shown):
            t = start + pos
            row = {"review": n, "origin": origin, "position": pos, "token": word,
                   "in_vocab": ids[t] != PAD_ID and word in vocab, "label": label,
                   "p_positive": float(p_step[t, n]), "prediction": float(p_step[T - 1, n])}
            row.update({name: float(value[t, n]) for name, value in gates.items()})
            rows.append(row)
    return pd.DataFrame(rows)

"""What a trained cell's gates do on ``copy``: at the symbols, over the delay, at the delimiter and at recall.

A copy sequence (delay ``T``, ``N`` symbols; :mod:`tasks.copy_memory`) has four phases, by time step ``t``
(0-based, ``T + 2N`` steps in all):

* ``symbols``:   ``t < N``, the N symbols to remember;
* ``delay``:     ``N <= t < T + N - 1``, the ``T - 1`` blanks between the last symbol and the delimiter, the first
  one included (none when ``T = 1``). "The blanks" below means these steps;
* ``delimiter``: ``t = T + N - 1``, the "now recall" marker;
* ``recall``:    ``t >= T + N``, N more blank inputs while the readout must output the symbols.

Two tables, for cells that expose their gates; every gate value is the top layer's, averaged over its ``H`` units:

* :func:`step_table` (``gates.csv``): one row per time step of one test sequence, laid out like sentiment's
  gate table, so that ``harness plot`` draws it as a heatmap;
* :func:`phase_table` (``copy_gates.csv``): one row per gate, its mean over every step of each phase of every
  sequence of the test batch.

A cell that holds the symbols across the blanks the LSTM way keeps its forget gate near 1 over the delay and
opens its input gate at the symbols, not at the blanks; :func:`sentences` states those numbers.
"""

from __future__ import annotations

import math
from typing import Sequence

import pandas as pd
import torch
from torch import Tensor, nn

from harness.contract import gates as vocabulary
from tasks.gate_means import inspecting, top_layer_means

PHASES = ("symbols", "delay", "delimiter", "recall")
STEP_COLUMNS = ("cell", "sequence", "position", "token", "phase", "target", "predicted")
"""``gates.csv``'s own columns (the runner adds ``cell``); a gate named like one gets a ``_gate`` suffix."""
SUMMARY_COLUMNS = ("gate", *PHASES, "sequences")
"""``copy_gates.csv``'s columns (the runner adds ``cell`` in front)."""
CHUNK = 64
"""Sequences per ``gate_activations`` call: bounds the memory of its ``(L, T, B, H)`` tensors on a large test batch."""


def phases(delay: int, copy_len: int) -> list[str]:
    """The phase of each of the ``delay + 2 * copy_len`` time steps."""
    return ["symbols"] * copy_len + ["delay"] * (delay - 1) + ["delimiter"] + ["recall"] * copy_len


def shown(ids: Sequence[int], n_symbols: int) -> list[str]:
    """Symbol ids as tables show them: the symbol's number, ``_`` for a blank, ``>`` for the delimiter."""
    return ["_" if i == 0 else ">" if i == n_symbols + 1 else str(i) for i in ids]


def read_gates(model: nn.Module, x: Tensor) -> tuple[dict[str, Tensor], Tensor]:
    """The trained model on inputs ``x (T, B)``, without training.

    :param model: a ``TaskModel`` whose cell implements ``gate_activations``.
    :returns: each gate's top-layer mean over ``H`` (column -> ``(T, B)``, vocabulary order) and the predicted
        symbol at every step ``(T, B)`` int64, both on the CPU.
    """
    parts: dict[str, list[Tensor]] = {}
    predicted = []
    with inspecting(model):
        for chunk in x.split(CHUNK, dim=1):
            emb = model.head.embed(chunk)                                   # (T, b, K+2)
            out, _ = model.cell(emb)                                        # (T, b, H)
            predicted.append(model.head.readout(out).argmax(-1).cpu())      # (T, b)
            for name, value in top_layer_means(model.cell, emb, STEP_COLUMNS).items():
                parts.setdefault(name, []).append(value)
    return {name: torch.cat(values, dim=1) for name, values in parts.items()}, torch.cat(predicted, dim=1)


def step_table(means: dict[str, Tensor], predicted: Tensor, x: Tensor, y: Tensor, steps: Sequence[str],
               n_symbols: int, sequence: int = 0) -> pd.DataFrame:
    """One row per time step of test sequence ``sequence``.

    :param means: column -> ``(T, B)`` gate means (:func:`read_gates`).
    :param predicted: ``(T, B)`` predicted symbols; ``x``, ``y``: ``(T, B)`` inputs and targets.
    :param steps: the phase of each step (:func:`phases`).
    :returns: columns ``sequence, position, token, phase, target, predicted`` and one per gate.
    """
    tokens = shown(x[:, sequence].tolist(), n_symbols)
    targets = shown(y[:, sequence].tolist(), n_symbols)
    guesses = shown(predicted[:, sequence].tolist(), n_symbols)
    rows = []
    for t, phase in enumerate(steps):
        row = {"sequence": sequence, "position": t, "token": tokens[t], "phase": phase,
               "target": targets[t], "predicted": guesses[t]}
        row.update({name: float(value[t, sequence]) for name, value in means.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def phase_table(means: dict[str, Tensor], steps: Sequence[str]) -> pd.DataFrame:
    """One row per gate: its mean over each phase's steps in every sequence (NaN for a phase without steps).

    :param means: column -> ``(T, B)`` gate means (:func:`read_gates`).
    :returns: columns ``gate, symbols, delay, delimiter, recall, sequences``.
    """
    where = {phase: [t for t, p in enumerate(steps) if p == phase] for phase in PHASES}
    rows = []
    for name, value in means.items():
        row = {"gate": name}
        row.update({phase: float(value[idx].double().mean()) if idx else math.nan for phase, idx in where.items()})
        row["sequences"] = int(value.shape[1])
        rows.append(row)
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def sentences(table: pd.DataFrame, delay: int, copy_len: int) -> list[str]:
    """``copy_gates.csv`` in plain words: a heading, then one sentence per cell in it.

    Each states the forget gate's mean over the delay and the input gate's at the symbols against at the blanks;
    a cell with neither gets its other [0, 1] gates at the blanks against at the symbols.
    """
    if table.empty:
        return []
    blanks = delay - 1
    forget, write = vocabulary.column("forget", STEP_COLUMNS), vocabulary.column("input", STEP_COLUMNS)
    n = int(table["sequences"].iloc[0])
    lines = [f"Gate means on the {n} test sequences (top layer, averaged over its hidden units; every phase in "
             "copy_gates.csv):"]
    for cell in dict.fromkeys(table["cell"].astype(str)):
        mine = table[table["cell"].astype(str) == cell].set_index("gate")
        parts = []
        if forget in mine.index and blanks:
            parts.append(f"{cell}'s forget gate averages {mine.at[forget, 'delay']:.3f} over the "
                         f"{_count(blanks, 'blank step')} of the delay")
        if write in mine.index:
            against = f" against {mine.at[write, 'delay']:.3f} at the blanks" if blanks else ""
            whose = "its" if parts else f"{cell}'s"
            parts.append(f"{whose} input gate averages {mine.at[write, 'symbols']:.3f} at the "
                         f"{_count(copy_len, 'symbol')}{against}")
        if parts:
            lines.append("  " + "; ".join(parts) + ".")
            continue
        unit = [g for g in mine.index if vocabulary.value_range(g) == (0.0, 1.0)]
        if not unit or not blanks:
            lines.append(f"  {cell} has no forget or input gate; its gates' means per phase are in copy_gates.csv.")
            continue
        values = ", ".join(f"{g} {mine.at[g, 'delay']:.3f} against {mine.at[g, 'symbols']:.3f}" for g in unit)
        lines.append(f"  {cell} has no forget or input gate; at the blanks against at the symbols: {values}.")
    return lines


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"

"""The gate-name vocabulary: what each name a cell's ``gate_activations`` may return means.

Cells report their gates by name (``RecurrentCell.gate_activations``); tasks
write them into tables (``gates.csv``) and ``plots`` draws them. All three
read this module, so a name is never known in one place and dropped in another.

Two naming schemes of the seed documents live side by side:

* the textbook LSTM's ``input``, ``forget``, ``cell`` (the candidate) and ``output``;
* the seeds' ``learn``, ``forget``, ``remember`` and ``use``.

A cell may return names outside the vocabulary; they are kept, after the known
ones, and drawn on their own observed scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class Gate:
    name: str
    """The key a cell returns from ``gate_activations``."""
    scheme: str
    """Which vocabulary it belongs to: ``"textbook"`` (LSTM), ``"seeds"``, ``"gru"``, ``"minimal"``."""
    meaning: str
    low: float | None = 0.0
    """The activation's range, for colour scales; ``None`` when it is unbounded (a cell state)."""
    high: float | None = 1.0
    column: str = ""
    """Its column in tables, where the name would clash with a table's own column; the name otherwise."""

    @property
    def label(self) -> str:
        return self.column or self.name


VOCABULARY: tuple[Gate, ...] = (
    Gate("forget", "textbook, seeds", "sigma: how much of the previous cell state is kept"),
    Gate("input", "textbook", "sigma: how much of the candidate is written into the cell state"),
    Gate("output", "textbook", "sigma: how much of tanh(cell state) is exposed as h"),
    Gate("cell", "textbook", "tanh: the candidate values (written 'candidate' in tables)", -1.0, 1.0,
         column="candidate"),
    Gate("learn", "seeds", "what is learned this step: input gate x candidate", -1.0, 1.0),
    Gate("remember", "seeds", "the long-term memory after this step (the new cell state)", None, None),
    Gate("use", "seeds", "the short-term memory put to use (the new h)", -1.0, 1.0),
    Gate("reset", "gru", "sigma: how much of the previous h enters the GRU candidate"),
    Gate("update", "gru, minimal", "sigma: how much of the new candidate replaces h"),
    Gate("candidate", "gru, minimal", "the new candidate: tanh in a GRU (n), g(linear) >= 0 in minGRU/minLSTM",
         None, None),
)

BY_NAME: dict[str, Gate] = {g.name: g for g in VOCABULARY}
BY_LABEL: dict[str, Gate] = {g.label: g for g in VOCABULARY}  # 'candidate': the last (the widest range) wins


def column(name: str, reserved: Iterable[str] = ()) -> str:
    """The table column for gate ``name``: its vocabulary label, with ``_gate`` added where that label is one of
    the table's own (``reserved``) columns."""
    gate = BY_NAME.get(name)
    label = gate.label if gate is not None else name
    return f"{label}_gate" if label in set(reserved) else label


def ordered(labels: Iterable[str]) -> list[str]:
    """Gate columns in vocabulary order, unknown ones after in their given order; none dropped."""
    labels = list(dict.fromkeys(labels))
    known = list(dict.fromkeys(g.label for g in VOCABULARY if g.label in labels))
    return known + [label for label in labels if label not in known]


def value_range(label: str) -> tuple[float | None, float | None]:
    """The declared ``(low, high)`` of a gate column (``(None, None)`` when unbounded or unknown)."""
    gate = BY_LABEL.get(label.removesuffix("_gate")) or BY_LABEL.get(label)
    return (gate.low, gate.high) if gate is not None else (None, None)

"""The summary table's columns, declared once.

Every place that writes or shows a summary row reads this declaration: the
runner (a row's columns), ``results`` (``summary.csv``), ``summary`` (the
terminal table), ``report`` (the Markdown/HTML table), ``compare`` and the
sweep's aggregation. ``docs/results.md`` documents the same names (a test
checks that it does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Column:
    """One column of ``summary.csv``."""

    name: str
    meaning: str
    label: str = ""
    """Header for people (terminal table, report); the name when empty."""
    fmt: str | None = None
    """Format spec for display (``".4f"``); ``None`` for text and booleans."""
    timing: bool = False
    """Measured time, which differs between executions of the same run; every other column of a finished
    row is reproducible bit for bit from the run's settings on the same CPU and thread count."""
    shown: bool = True
    """In the terminal table and the report (the CSV always has every column)."""

    @property
    def header(self) -> str:
        return self.label or self.name


SUMMARY: tuple[Column, ...] = (
    Column("cell", "the cell's name, as on the command line"),
    Column("task", "the task's name", shown=False),
    Column("status", "ok, diverged (non-finite loss or gradient), failed (the cell raised or broke the contract), "
           "timeout (ran past --cell-timeout, or a sweep's --unit-timeout), interrupted (Ctrl-C) or skipped (cannot "
           "run on this device or dtype)"),
    Column("seed", "the seed of the data stream and the initial weights", shown=False),
    Column("seq_len", "--seq-len: the sequence length T (copy: the delay T; its sequences are T + 2N long)", "T"),
    Column("hidden_size", "the cell's hidden width H: --hidden-size, or the width --match-params chose for it", "H"),
    Column("params", "trainable parameters of the whole model, the task's head and the cell (what --match-params "
           "matches)", "params"),
    Column("steps", "training steps completed"),
    Column("loss", "mean training loss over the last log interval", "train loss", ".4f"),
    Column("val_loss", "loss on the whole validation split at the end: what 'sweep --tune' picks by (the test data "
           "never decides anything)", shown=False),
    Column("eval_loss", "loss on the held-out test data at the end", "test loss", ".4f"),
    Column("baseline", "the task's memoryless baseline loss: the best a predictor that ignores the history can do",
           "baseline", ".4f"),
    Column("loss_ratio", "eval_loss / baseline: 1 is the memoryless baseline, 0 a perfect fit", "test/baseline", ".3f"),
    Column("accuracy", "the task's accuracy on the test data (its meaning is in config.json's 'accuracy')",
           "accuracy", ".3f"),
    Column("solved", "the task's documented criterion on the test data (docs/tasks.md)"),
    Column("beats_baseline", "loss_ratio < 0.9: at least 10% below the memoryless loss, so that noise around the "
           "baseline is not called memory", "beats baseline"),
    Column("grad_decay_init", "decay per time step of ||dL/dh_t|| at initialisation (docs/measurements.md): the "
           "average factor by which it shrinks (below 1: vanishing) or grows (above 1: exploding) per step back in "
           "time; to the power of the steps from the last back to the first, it is the whole-sequence ratio the "
           "sentence after the table gives", "grad decay/step init", ".3f"),
    Column("grad_decay_final", "the same after training", "grad decay/step final", ".3f"),
    Column("grad_state", "the state whose gradient the grad_decay columns follow: h, or the cell's first other state "
           "when its h is only a readout (mamba: ssm, mlstm: C)", shown=False),
    Column("tokens_per_s", "training throughput: batch x sequence steps per second of forward, backward and update, "
           "warm-up steps excluded", "tokens/s", ",.0f", timing=True),
    Column("wall_s", "wall time for the cell, measurements included", "wall s", ".1f", timing=True),
    Column("reason", "one line for any status but ok", shown=False),
    Column("cell_package", "the installed package that supplied the cell (from its entry point)", shown=False),
    Column("cell_version", "that package's version", shown=False),
    Column("cell_path", "for an editable install, the project folder the cell's code is loaded from; empty otherwise",
           shown=False),
)

SUMMARY_NAMES: list[str] = [c.name for c in SUMMARY]
BY_NAME: dict[str, Column] = {c.name: c for c in SUMMARY}
TIMING: frozenset[str] = frozenset(c.name for c in SUMMARY if c.timing)
SHOWN: list[Column] = [c for c in SUMMARY if c.shown]

BEAT_MARGIN = 0.9
"""A cell beats the memoryless baseline when ``loss_ratio < BEAT_MARGIN``."""


def display(value: Any, fmt: str | None) -> str:
    """One table cell: numbers with ``fmt``, NaN/None/empty as ``-``, booleans as yes/no."""
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()  # numpy scalar -> Python scalar (keeps bool as bool)
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) and (fmt is None or fmt.endswith("g")):
        return str(value)  # counts stay whole: 20000 steps, never 2e+04
    if isinstance(value, (int, float)) and fmt is not None:
        return "-" if isinstance(value, float) and math.isnan(value) else format(value, fmt)
    if isinstance(value, float) and math.isnan(value):
        return "-"
    text = str(value)
    return "-" if text in ("", "nan") else text


def reproducible(row: dict[str, Any]) -> dict[str, Any]:
    """The row without its timing columns: what must be identical whoever executed the run."""
    return {k: v for k, v in row.items() if k not in TIMING}

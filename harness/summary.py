"""The readable end-of-run summary: a table, then plain sentences."""

from __future__ import annotations

import math

import pandas as pd


def _fmt(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def summary_table(summary: pd.DataFrame) -> str:
    """Fixed-width table of the key columns of ``summary.csv``."""
    shown = pd.DataFrame({
        "cell": summary["cell"],
        "status": summary["status"],
        "steps": summary["steps"],
        "train loss": [_fmt(v, ".4f") for v in summary["loss"]],
        "test loss": [_fmt(v, ".4f") for v in summary["eval_loss"]],
        "baseline": [_fmt(v, ".4f") for v in summary["baseline"]],
        "accuracy": [_fmt(v, ".3f") for v in summary["accuracy"]],
        "solved": ["yes" if s else "no" for s in summary["solved"]],
        "grad decay/step init->final": [f"{_fmt(a, '.3f')} -> {_fmt(b, '.3f')}"
                                         for a, b in zip(summary["grad_decay_init"], summary["grad_decay_final"])],
        "tokens/s": [_fmt(v, ",.0f") for v in summary["tokens_per_s"]],
        "wall s": [_fmt(v, ".1f") for v in summary["wall_s"]],
    })
    return shown.to_string(index=False)


def verdicts(summary: pd.DataFrame, gradsummary: pd.DataFrame, accuracy_name: str) -> list[str]:
    """One sentence per cell: baseline, task accuracy, and how the gradient reaches step 0."""
    lines = []
    for row in summary.itertuples(index=False):
        if row.status != "ok":
            lines.append(f"{row.cell}: {row.status}" + (f" ({row.reason})" if isinstance(row.reason, str) and row.reason else ""))
            continue
        beat = "beat" if row.beats_baseline else "did NOT beat"
        text = (f"{row.cell} {beat} the memoryless baseline (test loss {row.eval_loss:.4f} = "
                f"{row.eval_loss / row.baseline:.0%} of {row.baseline:.4f}); "
                f"{accuracy_name} {row.accuracy:.3f}{', solved' if row.solved else ''}.")
        grads = gradsummary[(gradsummary["cell"] == row.cell) & (gradsummary["state"] == "h")]
        if len(grads):
            init, final = grads.iloc[0], grads.iloc[-1]
            text += (f" dL/dh at step 0 is {_ratio(init)} of the last step's at init, {_ratio(final)} after training.")
        lines.append(text)
    return lines


def _ratio(g) -> str:
    if g["last"] <= 0 or not math.isfinite(g["first"]):
        return "-"
    r = g["first"] / g["last"]
    return f"{r:.1e}x"

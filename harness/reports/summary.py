"""The readable end-of-run summary: a table, then plain sentences."""

from __future__ import annotations

import math

import pandas as pd

from harness.reports.columns import BEAT_MARGIN, SHOWN, display


def summary_table(summary: pd.DataFrame) -> str:
    """Fixed-width table of the shown columns of ``summary.csv`` (``harness.reports.columns.SUMMARY``)."""
    shown = pd.DataFrame({c.header: [display(v, c.fmt) for v in summary[c.name]]
                          for c in SHOWN if c.name in summary.columns})
    return shown.to_string(index=False)


def ratio_text(ratio: float, threshold: float = BEAT_MARGIN) -> str:
    """``ratio`` with enough digits that its side of ``threshold`` shows: 0.8996 is "0.8996", never "0.900"."""
    for digits in range(3, 8):
        text = f"{ratio:.{digits}f}"
        if (float(text) < threshold) == (ratio < threshold) and float(text) != threshold:
            return text
    return f"{ratio:.8g}"


def baseline_sentence(cell: str, eval_loss: float, baseline: float) -> str:
    """Whether the cell beat the memoryless baseline, with the rule and a ratio printed so the verdict follows."""
    ratio = eval_loss / baseline
    beat = ratio < BEAT_MARGIN
    return (f"{cell} {'beat' if beat else 'did NOT beat'} the memoryless baseline: test loss {eval_loss:.4f} = "
            f"{ratio_text(ratio)} x baseline {baseline:.4f} (the rule: below {BEAT_MARGIN:g} x baseline)")


def verdicts(summary: pd.DataFrame, gradsummary: pd.DataFrame, accuracy_name: str) -> list[str]:
    """One sentence per cell: baseline, task accuracy, and how the gradient reaches step 0."""
    lines = []
    for row in summary.itertuples(index=False):
        if row.status != "ok":
            lines.append(f"{row.cell}: {row.status}" + (f" ({row.reason})" if isinstance(row.reason, str) and row.reason else ""))
            continue
        text = (f"{baseline_sentence(row.cell, row.eval_loss, row.baseline)}; "
                f"{accuracy_name} {row.accuracy:.3f}{', solved' if row.solved else ''}.")
        state = getattr(row, "grad_state", "h") if isinstance(getattr(row, "grad_state", "h"), str) else "h"
        grads = gradsummary[(gradsummary["cell"] == row.cell) & (gradsummary["state"] == state)]
        if len(grads):
            init, final = grads.iloc[0], grads.iloc[-1]
            text += (f" dL/d{state} at the first step is {_ratio(init)} its value at the last step over the whole sequence "
                     f"at init ({_per_step(init)}), {_ratio(final)} after training ({_per_step(final)}).")
        lines.append(text)
    return lines


def _ratio(g) -> str:
    """``||dL/dh_0|| / ||dL/dh_last||``: the decay over the whole sequence."""
    if g["last"] <= 0 or not math.isfinite(g["first"]):
        return "-"
    r = g["first"] / g["last"]
    return f"{r:.1e} x"


def _per_step(g) -> str:
    """The same curve's decay per time step (the table's column), named so that it is not read as the ratio."""
    value = g["decay_per_step"]
    return f"{value:.3f} per step" if math.isfinite(value) else "per step: -"


def sweep_command(cells: list[str], task: str, seq_len: int) -> str:
    """The ``harness sweep`` command that turns this run into a verdict over seeds and sequence lengths."""
    lengths = sorted({max(1, seq_len // 2), seq_len, seq_len * 2, seq_len * 4})
    return (f"python -m harness sweep --cells {','.join(cells)} --task {task} "
            f"--seq-len {','.join(map(str, lengths))} --seeds 5")


def closing_lines(summary: pd.DataFrame, cfg) -> list[str]:
    """Plain words after the verdicts: what the two contrasts mean, and how to get a verdict over seeds."""
    ok = summary[summary["status"] == "ok"]
    lines = []
    if len(ok):
        kept = [r.cell for r in ok.itertuples() if r.loss_ratio < BEAT_MARGIN]
        words = []
        if kept:
            words.append(f"{', '.join(kept)} used information from earlier in the sequence (test loss clearly below "
                         "what any predictor ignoring the history can reach)")
        near = [r.cell for r in ok.itertuples() if BEAT_MARGIN <= r.loss_ratio <= 1 / BEAT_MARGIN]
        worse = [r.cell for r in ok.itertuples() if r.loss_ratio > 1 / BEAT_MARGIN]
        if near:
            words.append(f"{', '.join(near)} did not: {'its' if len(near) == 1 else 'their'} loss is at the level of "
                         "a predictor that ignores the history")
        if worse:
            words.append(f"{', '.join(worse)} did not even reach the loss of a predictor that ignores the history "
                         "(not trained far enough, or unstable)")
        lines.append("\nIn plain words: " + "; ".join(words) + ".")
        lines.append("dL/dh at the first step over its value at the last is how much of the loss's gradient reaches "
                     "the first step across the whole sequence: the smaller it is, the less the first inputs can still "
                     "be learned from (a vanishing gradient). The table's 'grad decay/step' columns give the same "
                     "decay per time step: raised to the power of the steps from the last back to the first, it is "
                     "the whole-sequence ratio (0.6 per step over 25 steps is 3e-06), one curve, two scales.")
    lines.append("One seed at one sequence length is an anecdote; for a verdict over seeds and lengths, with "
                 f"confidence intervals:\n  {sweep_command(list(summary['cell'].astype(str)), cfg.task, cfg.seq_len)}")
    return lines

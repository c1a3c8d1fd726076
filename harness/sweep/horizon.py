"""The memory-horizon verdict: up to which swept sequence length a cell still remembers, and how sure that is.

For one cell (at each combination of the other swept settings), over the swept
sequence lengths T (docs/sweeps.md states the same rule):

* **memory horizon**: the largest swept T at which the whole confidence interval
  of test loss / baseline lies below the margin (0.9): the cell beats a
  predictor that ignores the history, beyond the seed-to-seed noise;
* **solve horizon**: the largest swept T at which the lower Wilson bound of the
  solve rate is at least 0.5: the cell solves the task on most seeds, surely.

A T where the rule fails below the horizon is named in the sentence, since a
horizon is only as good as the lengths under it.
"""

from __future__ import annotations

import math
from typing import Sequence

import pandas as pd

from harness.sweep.grid import HorizonRule

HORIZON_COLUMNS = ["task", "cell", "memory_horizon", "solve_horizon", "lengths", "sentence"]


def _ci(row) -> str:
    if math.isnan(row.loss_ratio_lo):
        return f"{row.loss_ratio_mean:.3f} (no interval with {int(row.n_seeds)} seed{'s' if row.n_seeds != 1 else ''})"
    return f"[{row.loss_ratio_lo:.3f}, {row.loss_ratio_hi:.3f}]"


def _lengths(values) -> str:
    return ", ".join(str(int(v)) for v in values)


def cell_sentence(cell: str, rows: pd.DataFrame, rule: HorizonRule, where: str = "") -> tuple[float, float, str]:
    """-> ``(memory horizon, solve horizon, sentence)`` for one cell's rows (one per swept T, sorted by T)."""
    rows = rows.sort_values("seq_len")
    label = f"{cell}{where}"
    level = f"{rule.confidence:.0%}"
    measured = rows[rows["n_seeds"] > 0]
    if measured.empty:
        return math.nan, math.nan, f"{label}: no finished units yet, so no verdict."
    remembers = measured[measured["loss_ratio_hi"] < rule.margin]
    solves = measured[measured["solve_lo"] >= rule.solve_lower_bound]
    memory = float(remembers["seq_len"].max()) if len(remembers) else math.nan
    solve = float(solves["seq_len"].max()) if len(solves) else math.nan
    lengths = _lengths(measured["seq_len"])
    if measured["n_seeds"].max() < 2:
        return memory, solve, (f"{label}: one seed per length gives no confidence interval, so no horizon can be "
                               f"claimed; run with --seeds 3 or more.")
    parts = []
    if math.isnan(memory):
        first = next(measured.itertuples())
        parts.append(f"{label} beats the memoryless baseline at none of the swept T ({lengths}): at T = "
                     f"{int(first.seq_len)} the {level} CI of test loss / baseline is {_ci(first)}, which reaches "
                     f"{rule.margin:g}")
    else:
        at = next(r for r in measured.itertuples() if r.seq_len == memory)
        text = (f"{label} remembers up to T = {int(memory)} of the swept {lengths}: there the whole {level} CI of "
                f"test loss / baseline, {_ci(at)}, lies below {rule.margin:g} ({int(at.n_seeds)} seeds)")
        longer = measured[measured["seq_len"] > memory]
        if len(longer):
            nxt = next(longer.itertuples())
            text += f"; at T = {int(nxt.seq_len)} it is {_ci(nxt)}"
        gaps = measured[(measured["seq_len"] < memory) & ~(measured["loss_ratio_hi"] < rule.margin)]
        if len(gaps):
            text += f" (but not at T = {_lengths(gaps['seq_len'])}, where the CI reaches {rule.margin:g})"
        parts.append(text)
    if math.isnan(solve):
        best = measured.sort_values(["solve_rate", "seq_len"], ascending=[False, True]).iloc[0]
        parts.append(f"it solves the task at none of them (best: {int(best.solved)}/{int(best.n_seeds + best.n_diverged)} "
                     f"seeds at T = {int(best.seq_len)}; a solve needs the lower Wilson bound >= "
                     f"{rule.solve_lower_bound:g})")
    else:
        at = next(r for r in measured.itertuples() if r.seq_len == solve)
        parts.append(f"it solves up to T = {int(solve)} ({int(at.solved)}/{int(at.n_seeds + at.n_diverged)} seeds; "
                     f"lower Wilson bound {at.solve_lo:.2f} >= {rule.solve_lower_bound:g})")
    return memory, solve, "; ".join(parts) + "."


def horizons(summary: pd.DataFrame, point_keys: Sequence[str], rule: HorizonRule = HorizonRule()) -> pd.DataFrame:
    """One row per (task, cell, other swept settings): both horizons and the sentence (:data:`HORIZON_COLUMNS`)."""
    others = [k for k in point_keys if k != "seq_len"]
    rows = []
    if summary.empty:
        return pd.DataFrame(columns=HORIZON_COLUMNS)
    for (task, cell, *values), group in summary.groupby(["task", "cell", *others], sort=False, dropna=False):
        where = f" ({', '.join(f'{k}={v}' for k, v in zip(others, values))})" if others else ""
        memory, solve, sentence = cell_sentence(str(cell), group, rule, where)
        rows.append({"task": task, "cell": cell, **dict(zip(others, values)), "memory_horizon": memory,
                     "solve_horizon": solve, "lengths": _lengths(sorted(group["seq_len"])), "sentence": sentence})
    return pd.DataFrame(rows)


def horizon_table(summary: pd.DataFrame, point_keys: Sequence[str]) -> str:
    """Cells down, sequence lengths across: ``mean [lo, hi]`` of test loss / baseline and the solved count."""
    others = [k for k in point_keys if k != "seq_len"]
    shown = summary.copy()
    shown["row"] = shown["cell"].astype(str) + shown[others].astype(str).apply(
        lambda r: "" if not others else " (" + ", ".join(f"{k}={v}" for k, v in r.items()) + ")", axis=1) \
        if others else shown["cell"].astype(str)

    def text(r) -> str:
        if r.n_seeds == 0:
            return "-"
        ci = "" if math.isnan(r.loss_ratio_lo) else f" [{r.loss_ratio_lo:.2f},{r.loss_ratio_hi:.2f}]"
        return f"{r.loss_ratio_mean:.2f}{ci} {int(r.solved)}/{int(r.n_seeds + r.n_diverged)}"

    shown["value"] = [text(r) for r in shown.itertuples()]
    wide = shown.pivot_table(index="row", columns="seq_len", values="value", aggfunc="first", sort=False)
    wide.columns = [f"T={int(c)}" for c in wide.columns]
    wide.index.name = "test/baseline [95% CI] solved"
    return wide.to_string()

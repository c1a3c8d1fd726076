"""One table across runs: a row per (run, task, cell), key metrics, and ratios to a reference cell.

Ratios compare a cell with the reference cell *of the same run* (same task,
data, seed and budget): ``tokens_per_s_vs_REF`` > 1 means faster than the
reference, ``eval_loss_vs_REF`` < 1 means a lower test loss.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from harness.reports.columns import SHOWN, SUMMARY, display

KEY_COLUMNS = ["task"] + [c.name for c in SHOWN if c.name != "task"]
RATIO_COLUMNS = ("tokens_per_s", "eval_loss")

DISPLAY_FORMATS = {c.name: c.fmt for c in SUMMARY if c.fmt}


def run_labels(folders: Sequence[Path]) -> list[str]:
    """A short name per run: the folder name, or the whole path where two runs share a name."""
    names = [Path(f).name for f in folders]
    return [n if names.count(n) == 1 else str(Path(f)) for n, f in zip(names, folders)]


def ratio_column(name: str, reference: str) -> str:
    return f"{name}_vs_{reference}"


def compare_runs(runs: Sequence[dict[str, Any]], reference: str = "lstm") -> pd.DataFrame:
    """Join the runs' summaries into one table, one row per (run, cell), with ratio columns.

    :param runs: runs as loaded by :func:`harness.reports.results.read_run`.
    :param reference: the cell the ratio columns divide by (NaN where a run lacks it or it has no number).
    """
    labels = run_labels([r["folder"] for r in runs])
    frames = []
    for label, run in zip(labels, runs):
        summary = run["summary"]
        frame = pd.DataFrame({c: summary[c] if c in summary.columns else np.nan for c in KEY_COLUMNS})
        frame.insert(0, "run", label)
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["run", *KEY_COLUMNS])
    for name in RATIO_COLUMNS:
        ref = table[table["cell"].astype(str) == reference].drop_duplicates(["run", "task"])
        ref_values = ref.set_index(["run", "task"])[name]
        keys = pd.MultiIndex.from_frame(table[["run", "task"]])
        denominator = ref_values.reindex(keys).to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            table[ratio_column(name, reference)] = table[name].to_numpy(dtype=float) / denominator
    return table


def display_table(table: pd.DataFrame, formats: dict[str, str] | None = None) -> str:
    """The table as fixed-width text for the terminal."""
    formats = DISPLAY_FORMATS if formats is None else formats
    shown = table.copy()
    for column in shown.columns:
        spec = formats.get(column, ".3f" if "_vs_" in column else None)
        shown[column] = [display(v, spec) for v in shown[column]]
    return shown.to_string(index=False)

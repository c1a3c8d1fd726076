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

from harness.columns import SHOWN, SUMMARY, display

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

    :param runs: runs as loaded by :func:`harness.results.read_run`.
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


SWEEP_COLUMNS = ["n_seeds", "loss_ratio_mean", "loss_ratio_lo", "loss_ratio_hi", "accuracy_mean", "solve_rate",
                 "grad_decay_final_mean", "tokens_per_s_mean", "reference", "loss_ratio_diff_mean", "better_fraction"]
SWEEP_FORMATS = {"loss_ratio_mean": ".3f", "loss_ratio_lo": ".3f", "loss_ratio_hi": ".3f", "accuracy_mean": ".3f",
                 "solve_rate": ".2f", "grad_decay_final_mean": ".3f", "tokens_per_s_mean": ",.0f",
                 "loss_ratio_diff_mean": "+.3f", "better_fraction": ".2f"}


def compare_sweeps(folders: Sequence[Path]) -> pd.DataFrame:
    """One row per (sweep, task, cell, setting), from each sweep's ``sweep_summary.csv`` (docs/sweeps.md)."""
    from harness.sweep.folder import read_sweep

    frames = []
    for label, folder in zip(run_labels(folders), folders):
        sweep = read_sweep(folder)
        table = sweep["sweep_summary"]
        keys = [k for k in sweep["point_keys"] if k in table.columns]
        frame = table[["task", "cell", *keys, *[c for c in SWEEP_COLUMNS if c in table.columns]]].copy()
        frame.insert(0, "sweep", label)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)

"""One table across sweeps: ``harness compare`` on sweep folders (docs/plots.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from harness.reports.compare import run_labels
from harness.sweep.folder import read_sweep

SWEEP_COLUMNS = ["n_seeds", "loss_ratio_mean", "loss_ratio_lo", "loss_ratio_hi", "accuracy_mean", "solve_rate",
                 "grad_decay_final_mean", "tokens_per_s_mean", "reference", "loss_ratio_diff_mean", "better_fraction"]
SWEEP_FORMATS = {"loss_ratio_mean": ".3f", "loss_ratio_lo": ".3f", "loss_ratio_hi": ".3f", "accuracy_mean": ".3f",
                 "solve_rate": ".2f", "grad_decay_final_mean": ".3f", "tokens_per_s_mean": ",.0f",
                 "loss_ratio_diff_mean": "+.3f", "better_fraction": ".2f"}


def compare_sweeps(folders: Sequence[Path]) -> pd.DataFrame:
    """One row per (sweep, task, cell, setting), from each sweep's ``sweep_summary.csv`` (docs/sweeps.md)."""
    frames = []
    for label, folder in zip(run_labels(folders), folders):
        sweep = read_sweep(folder)
        table = sweep["sweep_summary"]
        keys = [k for k in sweep["point_keys"] if k in table.columns]
        frame = table[["task", "cell", *keys, *[c for c in SWEEP_COLUMNS if c in table.columns]]].copy()
        frame.insert(0, "sweep", label)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)

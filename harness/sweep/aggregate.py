"""From units to ``sweep_summary.csv``: one row per (cell, setting), with confidence intervals over seeds.

Every metric is aggregated over the units of a row that finished ``ok``; the
solve rate counts ``diverged`` units too (as not solved), since diverging is
an outcome of the cell, not a missing measurement. Units that failed, timed
out, were skipped or have not run yet are counted but give no numbers. The columns are
listed in :data:`METRICS` and ``docs/sweeps.md``.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from harness.sweep.grid import HorizonRule
from harness.sweep.stats import Interval, bootstrap_mean, wilson

METRICS: dict[str, str] = {
    "loss_ratio": "test loss / memoryless baseline",
    "accuracy": "the task's test accuracy",
    "grad_decay_init": "decay per step of ||dL/dh_t|| at initialisation",
    "grad_decay_final": "the same after training",
    "tokens_per_s": "training throughput (tokens per second)",
}
"""Each gives ``M_mean``, ``M_lo`` and ``M_hi`` (the bootstrap interval) in ``sweep_summary.csv``."""

COUNT_COLUMNS = ("n_units", "n_seeds", "n_diverged", "n_failed", "n_pending")


def _solved(values: pd.Series) -> np.ndarray:
    """``solved`` as booleans, however the CSV stored them."""
    return values.map(lambda v: str(v).strip().lower() in ("true", "1", "1.0", "yes")).to_numpy(dtype=bool)


def summarise_group(units: pd.DataFrame, rule: HorizonRule) -> dict[str, float]:
    """Counts, metric intervals and the solve rate of one (cell, setting)'s units."""
    status = units["status"].astype(str)
    ok = units[status == "ok"]
    decided = units[status.isin(["ok", "diverged"])]
    row: dict[str, float] = {
        "n_units": len(units), "n_seeds": len(ok), "n_diverged": int((status == "diverged").sum()),
        "n_failed": int(status.isin(["failed", "timeout", "skipped"]).sum()),
        "n_pending": int(status.isin(["pending", "interrupted"]).sum()),
    }
    for metric in METRICS:
        values = pd.to_numeric(ok[metric], errors="coerce") if metric in ok else pd.Series(dtype=float)
        interval = bootstrap_mean(values.to_numpy(dtype=float), rule.confidence)
        row.update({f"{metric}_mean": interval.value, f"{metric}_lo": interval.lo, f"{metric}_hi": interval.hi})
    solved = int(_solved(decided["solved"]).sum()) if len(decided) else 0
    rate = wilson(solved, len(decided), rule.confidence)
    row.update(solved=solved, solve_rate=rate.value, solve_lo=rate.lo, solve_hi=rate.hi)
    return row


def paired(units: pd.DataFrame, cell: str, reference: str, keys: Sequence[str], rule: HorizonRule
           ) -> dict[str, float]:
    """The cell against the reference cell on the same seeds at the same point: the difference in loss / baseline
    (cell minus reference; below 0 the cell is better) with its bootstrap interval, and the fraction of paired
    seeds on which the cell's loss ratio was lower."""
    ok = units[units["status"].astype(str) == "ok"]
    mine = ok[ok["cell"].astype(str) == cell].set_index([*keys, "seed"])["loss_ratio"]
    theirs = ok[ok["cell"].astype(str) == reference].set_index([*keys, "seed"])["loss_ratio"]
    both = mine.to_frame("cell").join(theirs.to_frame("ref"), how="inner").dropna()
    if cell == reference or both.empty:
        return {"n_paired": len(both) if cell != reference else 0, "loss_ratio_diff_mean": math.nan,
                "loss_ratio_diff_lo": math.nan, "loss_ratio_diff_hi": math.nan, "better_fraction": math.nan}
    diff = (both["cell"] - both["ref"]).to_numpy(dtype=float)
    interval: Interval = bootstrap_mean(diff, rule.confidence)
    return {"n_paired": len(diff), "loss_ratio_diff_mean": interval.value, "loss_ratio_diff_lo": interval.lo,
            "loss_ratio_diff_hi": interval.hi, "better_fraction": float((diff < 0).mean())}


def sweep_summary(units: pd.DataFrame, point_keys: Sequence[str], reference: str,
                  rule: HorizonRule = HorizonRule()) -> pd.DataFrame:
    """One row per (task, cell, point of the grid), in the units' order.

    :param units: ``units.csv`` as a frame (columns: ``cell``, ``seed``, ``status``, the point keys, the summary
        columns).
    :param point_keys: the swept dimensions (not the seed); the paired comparison matches on them and the seed.
    :param reference: the cell every other is paired with (``--reference``).
    """
    keys = list(point_keys)
    rows = []
    if units.empty:
        return pd.DataFrame(columns=["task", "cell", *keys, *COUNT_COLUMNS])
    for (task, cell, *point), group in units.groupby(["task", "cell", *keys], sort=False, dropna=False):
        row = {"task": task, "cell": cell, **dict(zip(keys, point))}
        row.update(summarise_group(group, rule))
        same_point = units
        for key, value in zip(keys, point):
            same_point = same_point[same_point[key] == value]
        row["reference"] = reference
        row.update(paired(same_point, str(cell), reference, keys, rule))
        rows.append(row)
    return pd.DataFrame(rows)

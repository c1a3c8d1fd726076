"""The gradient-norm curves ``||dL/dh_t||`` of a sweep's units, read back from each unit's ``gradnorms.csv``.

The summary rows carry one decay number per unit (at initialisation and after
training); the curves themselves stay in the units' folders. This module reads
them for the figures and tables that need the whole curve, or the decay at the
intermediate training steps of ``--grad-at``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from harness.measurements.gradflow import summarise_curve
from harness.sweep.folder import standing
from harness.sweep.stats import bootstrap_mean

CURVE_COLUMNS = ["cell", "seq_len", "seed", "step", "t", "norm"]


def read_curves(sweep: dict[str, Any], state: str | None = None) -> pd.DataFrame:
    """-> one row per (unit, training step, time step t): ``CURVE_COLUMNS`` plus the other swept settings.
    Only units that finished ``ok`` and wrote their curves count, and in a tuned sweep only the picked ones.

    :param state: the state's curve to read; by default each unit's ``grad_state`` (``h``, or where a cell's
        memory is when its ``h`` is only a readout), as its summary row reports."""
    folder = Path(sweep["folder"])
    others = [k for k in sweep["point_keys"] if k != "seq_len"]
    frames = []
    for unit in standing(sweep["units"]).to_dict("records"):
        path = folder / "units" / str(unit.get("folder", "")) / "gradnorms.csv"
        if unit.get("status") != "ok" or not path.is_file():
            continue
        curve = pd.read_csv(path)
        wanted = state or (unit.get("grad_state") if isinstance(unit.get("grad_state"), str) else "h")
        curve = curve[curve["state"] == wanted]
        for key in ("seq_len", "seed", *others):
            curve = curve.assign(**{key: unit[key]})
        frames.append(curve)
    if not frames:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    return pd.concat(frames, ignore_index=True)[CURVE_COLUMNS + others]


def decay_table(curves: pd.DataFrame) -> pd.DataFrame:
    """Decay per step of each curve (:func:`harness.measurements.gradflow.summarise_curve`), then its mean and 95% interval
    over seeds -> one row per (cell, other settings, seq_len, training step): ``decay``, ``lo``, ``hi``, ``seeds``."""
    keys = [c for c in curves.columns if c not in ("seed", "t", "norm", "step")]
    per_seed = (curves.sort_values("t").groupby([*keys, "step", "seed"], sort=False)["norm"]
                .apply(lambda norms: summarise_curve(norms.to_numpy()).decay_per_step).rename("decay").reset_index())
    rows = []
    for key, group in per_seed.groupby([*keys, "step"], sort=False):
        interval = bootstrap_mean(group["decay"].dropna().to_numpy())
        rows.append({**dict(zip([*keys, "step"], key)), "decay": interval.value, "lo": interval.lo,
                     "hi": interval.hi, "seeds": interval.n})
    return pd.DataFrame(rows)

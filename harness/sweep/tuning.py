"""``sweep --tune NAME=V1,V2,...``: for each cell, point of the grid and seed, the candidate with the best validation
loss stands for it; the test split never takes part in the choice.

Every candidate is a unit of its own (resume and widening work as for any unit). This module only decides, from
``units.csv``, which unit stands for each (cell, point, seed); the sweep's summary, horizon verdict, figures and
``compare`` then read those units alone, so a tuned sweep reads exactly like an untuned one whose every cell had
its own best setting.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

PENDING = ("pending", "interrupted")


def pick(units: pd.DataFrame, keys: Sequence[str]) -> pd.Series:
    """``True`` for the unit that stands for its (task, cell, point, seed): the ``ok`` candidate with the lowest
    ``val_loss`` (the first on a tie); while a candidate has not finished, one of those, so that the seed counts as
    pending rather than being judged on part of its candidates; with no ``ok`` candidate, a diverged one, else the
    first (the seed then counts as diverged or failed).

    :param keys: the grid's dimensions without the tuned names.
    """
    picked = pd.Series(False, index=units.index)
    if units.empty:
        return picked
    for _, group in units.groupby(["task", "cell", *keys, "seed"], sort=False, dropna=False):
        status = group["status"].astype(str)
        if status.isin(PENDING).any():
            chosen = group.index[status.isin(PENDING).to_numpy()][0]
        elif (status == "ok").any():
            ok = group[(status == "ok").to_numpy()]
            loss = pd.to_numeric(ok["val_loss"], errors="coerce") if "val_loss" in ok else pd.Series(np.nan, ok.index)
            chosen = loss.fillna(np.inf).idxmin()
        elif (status == "diverged").any():
            chosen = group.index[(status == "diverged").to_numpy()][0]
        else:
            chosen = group.index[0]
        picked[chosen] = True
    return picked


def picked_values(units: pd.DataFrame, keys: Sequence[str], tuned: Sequence[str]) -> pd.DataFrame:
    """Per (task, cell, point): for each tuned name, the values that stood for the seeds, most often first
    (``"0.003 x2, 0.001 x1"``), and ``tune_runs``, the candidates each seed ran (the tuning budget)."""
    rows = []
    standing = units[units["picked"]] if "picked" in units else units.iloc[0:0]
    for (task, cell, *point), group in units.groupby(["task", "cell", *keys], sort=False, dropna=False):
        row = {"task": task, "cell": cell, **dict(zip(keys, point))}
        chosen = standing.loc[standing.index.intersection(group.index)]
        chosen = chosen[chosen["status"].astype(str) == "ok"]
        for name in tuned:
            counts = chosen[name].astype(str).value_counts(sort=True)
            row[f"tuned_{name}"] = ", ".join(f"{value} x{n}" for value, n in counts.items()) or "-"
        row["tune_runs"] = int(group.groupby("seed").size().max())
        rows.append(row)
    return pd.DataFrame(rows)


def sentence(table: pd.DataFrame, tuned: dict[str, list], keys: Sequence[str]) -> list[str]:
    """The tuning in words: what was tuned over which values, the budget, and what each cell picked."""
    names = ", ".join(f"{name} over {{{', '.join(map(str, values))}}}" for name, values in tuned.items())
    runs = int(table["tune_runs"].max()) if len(table) and "tune_runs" in table else 0
    lines = [f"tuned {names} by validation loss: {runs} run(s) per cell, point and seed (the test split never "
             f"decides); picked:"]
    for row in table.to_dict("records"):
        where = ", ".join(f"{k}={row[k]}" for k in keys)
        picks = "; ".join(f"{name} {row.get(f'tuned_{name}', '-')}" for name in tuned)
        lines.append(f"  {row['cell']}{' (' + where + ')' if where else ''}: {picks}")
    return lines

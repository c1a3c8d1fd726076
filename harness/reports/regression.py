"""The regression gate of ``harness compare BASE NEW``: fail a build when NEW is slower or worse than BASE.

Both folders are of one kind: run folders (``summary.csv``), sweep folders
(``sweep.json`` + ``sweep_summary.csv``) or bench folders (``bench.csv``).
Each is read into one long table: a row per (setting, metric) with the value
and, where the folder has one, a noise band ``[lo, hi]``:

* run: one seed per cell, no band;
* sweep: the mean over seeds and its 95% bootstrap interval (``M_mean``, ``M_lo``, ``M_hi``);
* bench: tokens/s at the median, with the band from the quartiles of the timed calls
  (``B*T / q75_s`` to ``B*T / q25_s``).

A setting of BASE regresses on a metric when NEW is worse by more than the
threshold (tokens/s: by more than ``slower`` as a fraction of BASE;
``loss_ratio``: higher by more than ``worse``; accuracy: lower by more than
``worse``) and, where both sides have a band, the bands do not overlap (a
change within the noise is not a regression). A setting that BASE has and
NEW lacks, or that has no value in NEW (the cell failed), regresses too. A bench
timing marked ``noisy`` on either side (its repeats spread widely or its machine
was oversubscribed; docs/measurements.md) is ``not judged``: neither a
regression nor an improvement can be read from it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.contract.errors import HarnessError


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    threshold: str
    """Which threshold gates it: ``slower`` (relative) or ``worse`` (absolute)."""


METRICS: tuple[Metric, ...] = (
    Metric("tokens_per_s", True, "slower"),
    Metric("loss_ratio", False, "worse"),
    Metric("accuracy", True, "worse"),
)
BY_NAME = {m.name: m for m in METRICS}


@dataclass(frozen=True)
class Thresholds:
    slower: float | None = None
    """Largest allowed drop of tokens/s, as a fraction of BASE (0.10 for ``--fail-slower 10%``)."""
    worse: float | None = None
    """Largest allowed rise of loss_ratio, or drop of accuracy (absolute)."""

    def of(self, metric: Metric) -> float | None:
        return self.slower if metric.threshold == "slower" else self.worse


# ------------------------------------------------------------------ reading

LONG_COLUMNS = ["key", "metric", "value", "lo", "hi", "status", "noise"]
"""``noise``: why a bench timing is noisy (empty when quiet, and always for runs and sweeps)."""


def folder_kind(folder: Path) -> str:
    """``sweep``, ``bench`` or ``run``; a one-line error for anything else."""
    folder = Path(folder)
    if (folder / "sweep.json").is_file():
        return "sweep"
    if (folder / "bench.csv").is_file():
        return "bench"
    if (folder / "summary.csv").is_file():
        return "run"
    raise HarnessError(f"{folder} is not a run, sweep or bench folder (no summary.csv, sweep.json or bench.csv)")


def _label(row: dict[str, Any], keys: list[str]) -> str:
    return " ".join(f"{k}={_plain(row[k])}" for k in keys)


def _plain(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def read_run(folder: Path) -> pd.DataFrame:
    """``summary.csv``: one row per cell (one seed; no band). Cells that did not finish ok have no values."""
    summary = pd.read_csv(Path(folder) / "summary.csv")
    keys = [k for k in ("cell", "task", "seq_len") if k in summary.columns]
    rows = []
    for row in summary.to_dict("records"):
        ok = row.get("status", "ok") == "ok"
        for metric in METRICS:
            if metric.name in row:
                rows.append({"key": _label(row, keys), "metric": metric.name,
                             "value": row[metric.name] if ok else math.nan, "lo": math.nan, "hi": math.nan,
                             "status": row.get("status", "ok"), "noise": ""})
    return pd.DataFrame(rows, columns=LONG_COLUMNS)


SWEEP_STATISTIC = re.compile(r"(_mean|_lo|_hi)$|^n_|^solve|^solved$|^better_fraction$")
"""Columns of ``sweep_summary.csv`` that are statistics; every other column identifies the setting."""


def read_sweep(folder: Path) -> pd.DataFrame:
    """``sweep_summary.csv``: one row per (cell, setting); the setting is every column that is not a statistic
    (``cell``, ``task`` and the swept options by name); per metric ``M_mean`` with its interval ``M_lo``..``M_hi``
    (NaN with one seed). Written against the sweep's documented contract; the one place that reads it."""
    meta = json.loads((Path(folder) / "sweep.json").read_text())
    if meta.get("kind", "sweep") != "sweep":
        raise HarnessError(f"{folder}: sweep.json holds kind {meta.get('kind')!r}, not a sweep")
    table = pd.read_csv(Path(folder) / "sweep_summary.csv")
    keys = [c for c in table.columns if not SWEEP_STATISTIC.search(c)]
    rows = []
    for row in table.to_dict("records"):
        status = "ok" if row.get("n_seeds", 1) else "no seed finished"
        for metric in METRICS:
            if f"{metric.name}_mean" in row:
                rows.append({"key": _label(row, keys), "metric": metric.name, "value": row[f"{metric.name}_mean"],
                             "lo": row.get(f"{metric.name}_lo", math.nan), "hi": row.get(f"{metric.name}_hi", math.nan),
                             "status": status, "noise": ""})
    return pd.DataFrame(rows, columns=LONG_COLUMNS)


BENCH_KEYS = ["cell", "T", "B", "I", "H", "layers", "dtype", "device", "pass"]


def _noise(row: dict[str, Any]) -> str:
    """Why a bench row is noisy (its ``noise`` column, or a stand-in), or ``""``; bench.csv files written before
    the noise check have no ``noisy`` column and count as quiet."""
    flag = row.get("noisy")
    noisy = flag is True or (isinstance(flag, str) and flag.strip().lower() == "true") \
        or (isinstance(flag, (int, float, np.number)) and flag == 1)
    if not noisy:
        return ""
    reason = row.get("noise")
    return reason.strip() if isinstance(reason, str) and reason.strip() else "marked noisy"


def read_bench(folder: Path) -> pd.DataFrame:
    """``bench.csv``: tokens/s per (cell, shape, layers, dtype, device, pass), the band from the quartiles, and
    why the timing is noisy where it is."""
    table = pd.read_csv(Path(folder) / "bench.csv")
    rows = []
    for row in table.to_dict("records"):
        ok = row.get("status") == "ok"
        tokens = row["B"] * row["T"]
        rows.append({"key": _label(row, BENCH_KEYS), "metric": "tokens_per_s",
                     "value": row["tokens_per_s"] if ok else math.nan,
                     "lo": tokens / row["q75_s"] if ok else math.nan, "hi": tokens / row["q25_s"] if ok else math.nan,
                     "status": row.get("status", "ok"), "noise": _noise(row) if ok else ""})
    return pd.DataFrame(rows, columns=LONG_COLUMNS)


READERS = {"run": read_run, "sweep": read_sweep, "bench": read_bench}


def read_side(folder: Path) -> tuple[str, pd.DataFrame]:
    kind = folder_kind(folder)
    return kind, READERS[kind](folder)


# ------------------------------------------------------------------ comparing

CHANGE_COLUMNS = ["key", "metric", "base", "base_lo", "base_hi", "new", "new_lo", "new_hi", "change", "verdict",
                  "reason"]


def _band(lo: float, hi: float) -> bool:
    return math.isfinite(lo) and math.isfinite(hi)


def _judge(metric: Metric, limit: float, base: dict, new: dict | None) -> tuple[float, str, str]:
    """``(change, verdict, reason)`` for one setting and metric."""
    if not math.isfinite(base["value"]):
        return math.nan, "not compared", f"no value in BASE ({base['status']})"
    if new is None:
        return math.nan, "regression", "missing from NEW"
    if not math.isfinite(new["value"]):
        return math.nan, "regression", f"no value in NEW ({new['status']})"
    if metric.threshold == "slower":
        change = new["value"] / base["value"] - 1 if base["value"] else math.nan
        worse_by = -change
    else:
        change = new["value"] - base["value"]
        worse_by = -change if metric.higher_is_better else change
    noisy = [f"noisy in {side}: {row['noise']}" for side, row in (("BASE", base), ("NEW", new)) if row.get("noise")]
    if noisy:
        return change, "not judged", "; ".join(noisy)
    if worse_by > limit:
        if _band(base["lo"], base["hi"]) and _band(new["lo"], new["hi"]) \
                and new["lo"] <= base["hi"] and base["lo"] <= new["hi"]:
            return change, "within noise", "beyond the threshold, but the intervals overlap"
        return change, "regression", ""
    if worse_by < -limit:
        return change, "improved", ""
    return change, "ok", ""


def compare(base: pd.DataFrame, new: pd.DataFrame, thresholds: Thresholds) -> pd.DataFrame:
    """One row per (setting, gated metric) of BASE, plus settings only NEW has; columns :data:`CHANGE_COLUMNS`."""
    new_by = {(r["key"], r["metric"]): r for r in new.to_dict("records")}
    rows = []
    for b in base.to_dict("records"):
        metric = BY_NAME[b["metric"]]
        limit = thresholds.of(metric)
        if limit is None:
            continue
        n = new_by.get((b["key"], b["metric"]))
        change, verdict, reason = _judge(metric, limit, b, n)
        rows.append({"key": b["key"], "metric": metric.name, "base": b["value"], "base_lo": b["lo"],
                     "base_hi": b["hi"], "new": n["value"] if n else math.nan, "new_lo": n["lo"] if n else math.nan,
                     "new_hi": n["hi"] if n else math.nan, "change": change, "verdict": verdict, "reason": reason})
    in_base = set(zip(base["key"], base["metric"]))
    for (key, name), n in new_by.items():
        if (key, name) not in in_base and thresholds.of(BY_NAME[name]) is not None:
            rows.append({"key": key, "metric": name, "base": math.nan, "base_lo": math.nan, "base_hi": math.nan,
                         "new": n["value"], "new_lo": n["lo"], "new_hi": n["hi"], "change": math.nan,
                         "verdict": "new", "reason": "only in NEW"})
    return pd.DataFrame(rows, columns=CHANGE_COLUMNS)


def compare_folders(base: Path, new: Path, thresholds: Thresholds) -> tuple[str, pd.DataFrame]:
    """Read both folders (of one kind) and compare them. -> ``(kind, changes)``."""
    if thresholds.slower is None and thresholds.worse is None:
        raise HarnessError("give --fail-slower and/or --fail-worse to compare BASE with NEW")
    base_kind, base_table = read_side(base)
    new_kind, new_table = read_side(new)
    if base_kind != new_kind:
        raise HarnessError(f"BASE {base} is a {base_kind} folder but NEW {new} is a {new_kind} folder; "
                           "compare folders of one kind")
    gated = [m.name for m in METRICS if thresholds.of(m) is not None]
    if not base_table["metric"].isin(gated).any():
        raise HarnessError(f"BASE {base} has none of the metrics these thresholds check ({', '.join(gated)})")
    shared = set(base_table["key"]) & set(new_table["key"])
    if not shared:
        raise HarnessError(f"BASE and NEW share no setting to compare (BASE has e.g. {base_table['key'].iloc[0]!r}, "
                           f"NEW {new_table['key'].iloc[0] if len(new_table) else 'nothing'!r})")
    return base_kind, compare(base_table, new_table, thresholds)


# ------------------------------------------------------------------ showing

def _value(metric: str, value: float, lo: float = math.nan, hi: float = math.nan) -> str:
    if not math.isfinite(value):
        return "-"
    fmt = ",.0f" if metric == "tokens_per_s" else ".4f"
    text = format(value, fmt)
    return f"{text} [{format(lo, fmt)}, {format(hi, fmt)}]" if _band(lo, hi) else text


def _change(metric: str, change: float) -> str:
    if not math.isfinite(change):
        return "-"
    return f"{change:+.1%}" if metric == "tokens_per_s" else f"{change:+.4f}"


def table_text(changes: pd.DataFrame) -> str:
    """The changes as fixed-width text: BASE and NEW (with their bands), the change and the verdict."""
    shown = pd.DataFrame({
        "setting": changes["key"], "metric": changes["metric"],
        "BASE": [_value(r.metric, r.base, r.base_lo, r.base_hi) for r in changes.itertuples()],
        "NEW": [_value(r.metric, r.new, r.new_lo, r.new_hi) for r in changes.itertuples()],
        "change": [_change(r.metric, r.change) for r in changes.itertuples()],
        "verdict": changes["verdict"],
    })
    return shown.to_string(index=False)


def regression_lines(changes: pd.DataFrame, thresholds: Thresholds) -> list[str]:
    """One line per regression, naming the setting, the numbers and the threshold it broke."""
    lines = []
    for r in changes[changes["verdict"] == "regression"].itertuples():
        if r.reason:
            lines.append(f"regression: {r.key}: {r.metric} {r.reason} (BASE {_value(r.metric, r.base)})")
            continue
        limit = (f"--fail-slower {thresholds.slower:.0%}" if r.metric == "tokens_per_s"
                 else f"--fail-worse {thresholds.worse:g}")
        lines.append(f"regression: {r.key}: {r.metric} {_value(r.metric, r.base)} -> {_value(r.metric, r.new)} "
                     f"({_change(r.metric, r.change)}; limit {limit})")
    return lines


def not_judged_lines(changes: pd.DataFrame) -> list[str]:
    """One line per change left unjudged because a side's timing is noisy, naming the setting and why."""
    return [f"not judged: {r.key}: {r.metric} {_value(r.metric, r.base)} -> {_value(r.metric, r.new)} "
            f"({_change(r.metric, r.change)}): {r.reason}"
            for r in changes[changes["verdict"] == "not judged"].itertuples()]


def parse_fraction(text: str) -> float:
    """``"10%"`` or ``"0.1"`` -> 0.1; a :class:`ValueError` that says what to write otherwise."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise ValueError(f"expected a percentage like 10% or a fraction like 0.1, got {text!r}") from None
    if not 0 <= value < 1 or np.isnan(value):
        raise ValueError(f"must be at least 0% and below 100% (0 to 1 as a fraction), got {text!r}")
    return value

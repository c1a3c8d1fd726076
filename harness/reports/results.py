"""A run folder and the tidy tables in it. Formats: ``docs/results.md``.

Tables live in memory as lists of rows and are rewritten whole on every
:meth:`RunWriter.flush`; the runner flushes after every cell and on any
interruption, so whatever finished is on disk.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from harness.contract.errors import HarnessError
from harness.reports.columns import SUMMARY_NAMES as SUMMARY_COLUMNS

METRICS_COLUMNS = ["cell", "step", "metric", "value"]
GRADNORMS_COLUMNS = ["cell", "step", "t", "state", "norm"]
GRADSUMMARY_COLUMNS = ["cell", "step", "state", "first", "last", "decay_per_step", "steps_to_10x"]

STATUSES = ("ok", "diverged", "failed", "timeout", "interrupted", "skipped")

try:  # Parquet beside every CSV when pyarrow is there
    import pyarrow  # noqa: F401
    HAVE_PARQUET = True
except ImportError:
    HAVE_PARQUET = False


def default_run_folder(root: Path, task: str) -> Path:
    """``root/YYYYmmdd-HHMMSS-task``, with a numeric suffix if that already exists."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = root / f"{stamp}-{task}"
    n = 2
    while folder.exists():
        folder = root / f"{stamp}-{task}-{n}"
        n += 1
    return folder


class RunWriter:
    """Owns one run folder: config, environment and tables."""

    def __init__(self, folder: Path):
        folder = Path(folder)
        if (folder / "config.json").exists() or (folder / "summary.csv").exists():
            raise HarnessError(f"{folder} already holds a run; choose a new --out folder (runs are never overwritten)")
        if folder.exists() and not folder.is_dir():
            raise HarnessError(f"--out {folder} is a file, not a folder")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HarnessError(f"cannot create output folder {folder}: {exc.strerror}") from None
        self.folder = folder
        self.tables: dict[str, list[dict[str, Any]]] = {"summary": [], "metrics": [], "gradnorms": [], "gradsummary": []}
        self.columns = {"summary": SUMMARY_COLUMNS, "metrics": METRICS_COLUMNS,
                        "gradnorms": GRADNORMS_COLUMNS, "gradsummary": GRADSUMMARY_COLUMNS}
        self.extra: dict[str, list[pd.DataFrame]] = {}
        self.dirty: set[str] = set()

    def write_json(self, name: str, data: dict) -> None:
        (self.folder / name).write_text(json.dumps(data, indent=2, default=str) + "\n")

    def add(self, table: str, rows: Iterable[dict[str, Any]]) -> None:
        self.tables[table].extend(rows)
        self.dirty.add(table)

    def add_frame(self, name: str, frame: pd.DataFrame) -> None:
        """An extra table (e.g. a task's gate activations), concatenated across cells."""
        self.extra.setdefault(name, []).append(frame)
        self.dirty.add(name)

    def frame(self, table: str) -> pd.DataFrame:
        return pd.DataFrame(self.tables[table], columns=self.columns[table])

    def flush(self, parquet: bool = True) -> None:
        """Write every table that changed since the last flush (and, with ``parquet``, every Parquet copy).

        The runner flushes CSVs alone at each log interval (cheap, so a crash keeps the curve so far) and
        everything after each cell.
        """
        names = list(self.tables) + list(self.extra)
        for name in names if parquet else [n for n in names if n in self.dirty]:
            if not parquet and name in self.tables:
                self._write_rows(name)  # mid-cell: the csv module, a tenth of pandas' cost per flush
                continue
            frame = self.frame(name) if name in self.tables else pd.concat(self.extra[name], ignore_index=True)
            self._write(name, frame, parquet)
        self.dirty.clear()

    def _write_rows(self, name: str) -> None:
        """A table's rows as CSV, through a temporary file as :meth:`_write` does (pandas reads it back the same)."""
        path = self.folder / f"{name}.csv"
        tmp = path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=self.columns[name], extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.tables[name])
        tmp.replace(path)

    def _write(self, name: str, df: pd.DataFrame, parquet: bool) -> None:
        # Write to a temporary name and rename, so a crash mid-write never leaves a torn table.
        path = self.folder / f"{name}.csv"
        tmp = path.with_suffix(".csv.tmp")
        df.to_csv(tmp, index=False)
        tmp.replace(path)
        if parquet and HAVE_PARQUET and len(df):
            df.to_parquet(self.folder / f"{name}.parquet", index=False)


def read_run(folder: Path) -> dict[str, Any]:
    """Load a run folder: ``config``, ``environment`` and every ``*.csv`` as DataFrames."""
    folder = Path(folder)
    if not (folder / "summary.csv").exists():
        raise HarnessError(f"{folder} is not a run folder (no summary.csv); pass a folder written by 'harness run'")
    run: dict[str, Any] = {"folder": folder}
    for name in ("config", "environment"):
        path = folder / f"{name}.json"
        run[name] = json.loads(path.read_text()) if path.exists() else {}
    for path in sorted(folder.glob("*.csv")):
        run[path.stem] = pd.read_csv(path)
    return run

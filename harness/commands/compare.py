"""Compare runs in one table: cells x tasks x key metrics, with ratios to a reference cell.

Each row is one cell of one run. The ratio columns divide a cell's tokens/s
and test loss by the reference cell's in the same run (same task, data and
budget): tokens_per_s_vs_lstm = 2 means twice lstm's throughput. Prints the
table and saves compare.csv (full precision) and compare.md.

Examples:
  python -m harness compare results/*-copy results/*-adding
  python -m harness compare RUN1 RUN2 --reference rnn --out results/my-comparison
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from harness.compare import DISPLAY_FORMATS, compare_runs, display_table
from harness.errors import HarnessError
from harness.report import markdown_table
from harness.results import read_run

HELP = "one table across run folders, with ratios to a reference cell"


def add_arguments(p) -> None:
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run folders written by 'harness run'")
    p.add_argument("--reference", default="lstm", help="cell the ratio columns divide by (default lstm)")
    p.add_argument("--out", type=Path, help="folder for compare.csv and compare.md (default results/compare-<time>)")


def main(args) -> int:
    runs = [read_run(folder) for folder in args.runs]
    table = compare_runs(runs, args.reference)
    if table.empty:
        raise HarnessError("the runs hold no cells to compare (their summary.csv files are empty)")
    if not (table["cell"].astype(str) == args.reference).any():
        cells = ", ".join(dict.fromkeys(table["cell"].astype(str)))
        print(f"warning: reference cell {args.reference!r} is in none of these runs, so the ratio columns are empty; "
              f"choose one with --reference (cells here: {cells})", file=sys.stderr)
    out = args.out or Path("results") / f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HarnessError(f"cannot create output folder {out}: {exc.strerror}") from None
    table.to_csv(out / "compare.csv", index=False)
    formats = {**DISPLAY_FORMATS, **{c: ".3f" for c in table.columns if "_vs_" in c}}
    (out / "compare.md").write_text(
        f"# Comparison of {len(runs)} run(s)\n\nRatios are against `{args.reference}` in the same run.\n\n"
        + markdown_table(table, formats) + "\n")
    print(display_table(table))
    print(f"\ntables: {out / 'compare.csv'}, {out / 'compare.md'}")
    return 0

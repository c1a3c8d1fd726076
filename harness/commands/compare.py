"""Compare runs in one table, or gate NEW against BASE for regressions (in CI).

Two uses, told apart by the thresholds:

  harness compare RUN [RUN ...] [--reference CELL]
      One table, one row per cell of each run, with the cell's tokens/s and
      test loss divided by the reference cell's in the same run (same task,
      data and budget): tokens_per_s_vs_lstm = 2 means twice lstm's
      throughput. Saves compare.csv (full precision) and compare.md.

  harness compare SWEEP [SWEEP ...]
      One table, one row per (cell, setting) of each sweep: seeds, the mean
      and 95% interval of test loss / baseline, accuracy, solve rate, gradient
      decay and tokens/s, and the paired difference with the sweep's own
      reference cell.

  harness compare BASE NEW --fail-slower 10% [--fail-worse 0.05]
      Regression mode, switched on by either threshold. BASE and NEW are two
      folders of one kind: run, sweep or bench folders. NEW regresses where it
      is slower than BASE by more than --fail-slower (tokens/s), or worse by
      more than --fail-worse (loss_ratio up, or accuracy down, absolute), or
      where a setting of BASE has no result in NEW. Where both sides have an
      interval (a sweep's 95% CI over seeds; bench's quartile band), a change
      whose intervals overlap is within the noise, not a regression. A bench
      timing marked noisy on either side (docs/measurements.md) is not
      judged: it never fails the build, and gets one 'not judged' line on
      stderr. Prints the table of changes, one line per regression on
      stderr, and saves changes.csv.

Exit status: 0 (no regression), 1 (regression mode: at least one regression),
2 (usage error: bad folders, bad thresholds).

Examples:
  python -m harness compare results/*-copy results/*-adding
  python -m harness compare RUN1 RUN2 --reference rnn --out results/my-comparison
  python -m harness compare base-sweep new-sweep --fail-slower 10% --fail-worse 0.05
  python -m harness compare base-bench new-bench --fail-slower 5%
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from harness.contract.errors import HarnessError
from harness.reports.compare import DISPLAY_FORMATS, compare_runs, display_table
from harness.reports.regression import (Thresholds, compare_folders, not_judged_lines, parse_fraction,
                                        regression_lines, table_text)
from harness.reports.report import markdown_table
from harness.reports.results import read_run

HELP = "one table across run folders; with --fail-slower/--fail-worse, a regression gate NEW vs BASE"


def _fraction(text: str) -> float:
    try:
        return parse_fraction(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _absolute(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number like 0.05, got {text!r}") from None
    if not 0 <= value < 1e9:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text!r}")
    return value


def add_arguments(p) -> None:
    p.add_argument("runs", nargs="+", type=Path, metavar="FOLDER",
                   help="run folders or sweep folders (table mode), or BASE then NEW: two run, sweep or bench folders "
                        "(regression mode)")
    p.add_argument("--reference", help="table mode: the cell the ratio columns divide by (default lstm)")
    p.add_argument("--fail-slower", type=_fraction, metavar="PCT",
                   help="regression mode: fail where NEW's tokens/s is lower than BASE's by more than this "
                        "(10%% or 0.1)")
    p.add_argument("--fail-worse", type=_absolute, metavar="X",
                   help="regression mode: fail where NEW's loss_ratio (test loss / baseline) is higher, or its "
                        "accuracy lower, than BASE's by more than X (absolute, e.g. 0.05)")
    p.add_argument("--out", type=Path, help="folder for the tables (default results/compare-<time>)")


def _out_folder(out: Path | None) -> Path:
    out = out or Path("results") / f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HarnessError(f"cannot create output folder {out}: {exc.strerror}") from None
    return out


def main(args) -> int:
    thresholds = Thresholds(slower=args.fail_slower, worse=args.fail_worse)
    if thresholds.slower is not None or thresholds.worse is not None:
        return regression_mode(args, thresholds)
    return table_mode(args)


def regression_mode(args, thresholds: Thresholds) -> int:
    if len(args.runs) != 2:
        raise HarnessError(f"--fail-slower/--fail-worse compare exactly two folders, BASE then NEW; "
                           f"got {len(args.runs)}")
    if args.reference:
        raise HarnessError("--reference is for the table of runs; it does not apply with --fail-slower/--fail-worse")
    base, new = args.runs
    kind, changes = compare_folders(base, new, thresholds)
    out = _out_folder(args.out)
    changes.to_csv(out / "changes.csv", index=False)
    print(f"{kind} folders: BASE {base}, NEW {new}")
    print(table_text(changes))
    lines = regression_lines(changes, thresholds)
    noise = int((changes["verdict"] == "within noise").sum())
    unjudged = not_judged_lines(changes)
    print(f"\n{len(lines)} regression(s) in {len(changes)} comparison(s)"
          + (f"; {noise} change(s) beyond the threshold but within the noise" if noise else "")
          + (f"; {len(unjudged)} not judged (noisy timings)" if unjudged else "")
          + f"; table: {out / 'changes.csv'}")
    for line in lines + unjudged:
        print(line, file=sys.stderr)
    return 1 if lines else 0


def table_mode(args) -> int:
    from harness.sweep.folder import is_sweep

    sweeps = [is_sweep(folder) for folder in args.runs]
    if any(sweeps):
        if not all(sweeps):
            raise HarnessError("the table compares runs with runs, or sweeps with sweeps; give folders of one kind")
        return sweep_table_mode(args)
    reference = args.reference or "lstm"
    runs = []
    for folder in args.runs:
        if (folder / "bench.csv").is_file():
            raise HarnessError(f"{folder} is a bench folder; compare two of them as BASE NEW with --fail-slower "
                               "and/or --fail-worse")
        runs.append(read_run(folder))
    table = compare_runs(runs, reference)
    if table.empty:
        raise HarnessError("the runs hold no cells to compare (their summary.csv files are empty)")
    if not (table["cell"].astype(str) == reference).any():
        cells = ", ".join(dict.fromkeys(table["cell"].astype(str)))
        print(f"warning: reference cell {reference!r} is in none of these runs, so the ratio columns are empty; "
              f"choose one with --reference (cells here: {cells})", file=sys.stderr)
    out = _out_folder(args.out)
    table.to_csv(out / "compare.csv", index=False)
    formats = {**DISPLAY_FORMATS, **{c: ".3f" for c in table.columns if "_vs_" in c}}
    (out / "compare.md").write_text(
        f"# Comparison of {len(runs)} run(s)\n\nRatios are against `{reference}` in the same run.\n\n"
        + markdown_table(table, formats) + "\n")
    print(display_table(table))
    print(f"\ntables: {out / 'compare.csv'}, {out / 'compare.md'}")
    return 0


def sweep_table_mode(args) -> int:
    """One table across sweep folders: each (cell, setting) with its means, intervals and the paired comparison
    with each sweep's own reference cell (which ``--reference`` cannot change: it is computed seed by seed)."""
    from harness.sweep.compare import SWEEP_FORMATS, compare_sweeps

    if args.reference:
        raise HarnessError("--reference does not apply to sweeps: each pairs its cells with the reference it was run "
                           "with (sweep --reference)")
    table = compare_sweeps(args.runs)
    out = _out_folder(args.out)
    table.to_csv(out / "compare.csv", index=False)
    (out / "compare.md").write_text(f"# Comparison of {len(args.runs)} sweep(s)\n\nMeans over seeds with 95% "
                                    "intervals; vs_reference is the paired difference in loss ratio (below 0: "
                                    "better than the sweep's reference cell).\n\n"
                                    + markdown_table(table, SWEEP_FORMATS) + "\n")
    print(display_table(table, SWEEP_FORMATS))
    print(f"\ntables: {out / 'compare.csv'}, {out / 'compare.md'}")
    return 0

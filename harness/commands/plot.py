"""Draw a run's or a sweep's figures and write its one-page report.

For each run folder: learning curves with the memoryless baseline, gradient
norm against time step (log scale) at initialisation and after training,
throughput per cell, and, for runs with gates.csv, a heatmap of gate
activations per token. For a sweep folder (one with sweep.json): test loss /
baseline, solve rate, gradient decay per step and throughput against the
sequence length, each with its 95% band. Figures go to FOLDER/figures/ and the
report to FOLDER/report.md, unless --out says otherwise (with several folders,
one sub-folder each under --out).

Examples:
  python -m harness plot results/20250101-120000-copy
  python -m harness plot RUN1 RUN2 --format png,svg --report html
  python -m harness plot RUN --out /tmp/figs --format pdf
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.contract.errors import HarnessError

HELP = "draw figures and a report for one or more run folders"


def _formats(text: str) -> tuple[str, ...]:
    from harness.reports.plots import parse_formats
    try:
        return parse_formats(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(p) -> None:
    p.add_argument("runs", nargs="+", type=Path, metavar="FOLDER",
                   help="run folders written by 'harness run', or sweep folders written by 'harness sweep'")
    p.add_argument("--out", type=Path, help="write figures and report here instead of into each run folder")
    p.add_argument("--format", type=_formats, default=("png",),
                   help="figure formats, comma-separated: png, svg, pdf (default png)")
    p.add_argument("--report", choices=("md", "html", "none"), default="md",
                   help="write report.md or report.html beside the figures (default md)")
    p.add_argument("--review", help="sentiment runs: which review the gate heatmap shows (default: the first)")


def destinations(runs: list[Path], out: Path | None) -> list[Path]:
    """Where each run's figures go: the run folder, ``out``, or ``out/<run name>`` for several runs."""
    if out is None:
        return list(runs)
    if len(runs) == 1:
        return [out]
    names = [r.name for r in runs]
    return [out / (r.name if names.count(r.name) == 1 else f"{r.parent.name}-{r.name}") for r in runs]


def main(args) -> int:
    from harness.reports.report import render
    from harness.reports.results import read_run
    from harness.sweep import plots as sweep_plots
    from harness.sweep.folder import is_sweep

    for folder in args.runs:
        if not is_sweep(folder):
            read_run(folder)  # fail in one line before drawing anything if a folder is neither a run nor a sweep
    for folder, dest in zip(args.runs, destinations(args.runs, args.out)):
        try:
            if is_sweep(folder):
                done = sweep_plots.render(folder, dest, args.format, args.report)
            else:
                done = render(folder, dest, args.format, args.report, review=args.review)
        except ValueError as exc:
            raise HarnessError(f"{folder}: {exc}") from None
        count = sum(len(p) for p in done.figures.values())
        print(f"{folder}: {count} figure file(s) in {dest / 'figures'}"
              + (f"; report {done.report}" if done.report else ""))
    return 0

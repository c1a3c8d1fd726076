"""Draw a run's or a sweep's figures and write its one-page report.

For each run folder: learning curves with the memoryless baseline, gradient
norm against time step (log scale) at initialisation and after training,
throughput per cell, and, for runs with gates.csv, a heatmap of gate
activations per token. For a sweep folder (one with sweep.json): test loss /
baseline, solve rate, gradient decay per step and throughput against the
sequence length, each with its 95% band. Figures go to FOLDER/figures/ and the
report to FOLDER/report.md, unless --out (or --dest) says otherwise (with
several folders, one sub-folder each under --out). A folder that cannot be
written (read-only, someone else's) is reported in one line before anything is
drawn: give --out DIR to write elsewhere.

Examples:
  python -m harness plot results/20250101-120000-copy
  python -m harness plot RUN1 RUN2 --format png,svg --report html
  python -m harness plot RUN --out /tmp/figs --format pdf
"""

from __future__ import annotations

import argparse
import os
import uuid
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
    p.add_argument("--out", "--dest", dest="out", type=Path, metavar="DIR",
                   help="write figures and report here instead of into each run folder (for a run folder that is "
                        "read-only, or to keep it untouched)")
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


def check_writable(dest: Path) -> None:
    """Fail in one line, before anything is drawn, when ``dest`` (or the folder it would be made in) cannot be
    written: by creating and removing a probe file, which is what counts (permissions, a read-only mount, ACLs)."""
    try:
        (dest / "figures").mkdir(parents=True, exist_ok=True)
        probe = dest / "figures" / f".harness-write-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise HarnessError(cannot_write(dest, exc, name_file=False)) from None


def cannot_write(dest: Path, exc: OSError, name_file: bool = True) -> str:
    why = exc.strerror or str(exc)
    if name_file and exc.filename:
        why += f": {exc.filename}"
    return f"cannot write the figures into {dest} ({why}); give --out DIR to write them and the report elsewhere"


def main(args) -> int:
    from harness.reports.report import render
    from harness.reports.results import read_run
    from harness.sweep import plots as sweep_plots
    from harness.sweep.folder import is_sweep

    for folder in args.runs:
        if not is_sweep(folder):
            read_run(folder)  # fail in one line before drawing anything if a folder is neither a run nor a sweep
    targets = list(zip(args.runs, destinations(args.runs, args.out)))
    for _, dest in targets:
        check_writable(dest)
    for folder, dest in targets:
        try:
            if is_sweep(folder):
                done = sweep_plots.render(folder, dest, args.format, args.report)
            else:
                done = render(folder, dest, args.format, args.report, review=args.review)
        except ValueError as exc:
            raise HarnessError(f"{folder}: {exc}") from None
        except OSError as exc:  # the folder turned read-only or full while drawing
            raise HarnessError(cannot_write(dest, exc)) from None
        count = sum(len(p) for p in done.figures.values())
        print(f"{folder}: {count} figure file(s) in {dest / 'figures'}"
              + (f"; report {done.report}" if done.report else ""))
    return 0

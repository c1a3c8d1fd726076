"""Build docs/reproductions.md from the studies' sweep folders: each paper's claims beside the harness's numbers.

For every study file (default: the files in studies/ with a [study] table) the command reads the sweep
folder the file names (its 'out'), checks each [[claims]] entry by the rule
the page states (reproduced, partly reproduced, not reproduced), and writes
one table per study with the command, wall time, machine and date, the
gradient-flow table and the figures (copied under docs/figures/). A study
that has not run is listed as such, with its command.

Examples:
  python -m harness sweep --config studies/arjovsky2016-copy-reduced.toml      # run a study first
  python -m harness reproductions                                   # then rebuild the page
"""

from __future__ import annotations

from pathlib import Path

from harness.contract.errors import HarnessError

HELP = "build docs/reproductions.md from the studies' sweep folders"


def add_arguments(p) -> None:
    p.add_argument("studies", nargs="*", type=Path, metavar="STUDY", help="study files (default: those in studies/ with a [study] table)")
    p.add_argument("--out", type=Path, default=Path("docs/reproductions.md"), help="the page to write "
                   "(default docs/reproductions.md)")
    p.add_argument("--figures", type=Path, default=Path("docs/figures/reproductions"),
                   help="where the figures are copied (default docs/figures/reproductions)")
    p.add_argument("--root", type=Path, default=Path("."), help="the folder the studies' 'out' paths are relative "
                   "to (default: here)")


def main(args) -> int:
    from harness.sweep.studies import build

    from harness.sweep.files import load

    for file in args.studies:
        if not file.is_file():
            raise HarnessError(f"{file}: no such study file")
    # By default, the files with a [study] table: a reduced file that only runs part of a full study's grid
    # into the full study's folder has none, so its units are reported once, under the full study.
    files = args.studies or [f for f in sorted(Path("studies").glob("*.toml")) if load(f).study]
    if not files:
        raise HarnessError("no study files: give them, or run from the folder holding studies/")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(build(list(files), args.out, args.figures, args.root))
    print(f"wrote {args.out} ({len(files)} studies; figures in {args.figures})")
    return 0

"""Build docs/reproductions.md from the studies' sweep folders: each paper's claims beside the harness's numbers.

For every study file (default: studies/*.toml) the command reads the sweep
folder the file names (its 'out'), checks each [[claims]] entry by the rule
the page states (reproduced, partly reproduced, not reproduced), and writes
one table per study with the command, wall time, machine and date, the
gradient-flow table and the figures (copied under docs/figures/). A study
that has not run is listed as such, with its command.

Examples:
  python -m harness sweep --config studies/arjovsky-copy.toml      # run a study first
  python -m harness reproductions                                   # then rebuild the page
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import HarnessError

HELP = "build docs/reproductions.md from the studies' sweep folders"


def add_arguments(p) -> None:
    p.add_argument("studies", nargs="*", type=Path, metavar="STUDY", help="study files (default: studies/*.toml)")
    p.add_argument("--out", type=Path, default=Path("docs/reproductions.md"), help="the page to write "
                   "(default docs/reproductions.md)")
    p.add_argument("--figures", type=Path, default=Path("docs/figures/reproductions"),
                   help="where the figures are copied (default docs/figures/reproductions)")
    p.add_argument("--root", type=Path, default=Path("."), help="the folder the studies' 'out' paths are relative "
                   "to (default: here)")


def main(args) -> int:
    from harness.sweep.studies import build

    files = args.studies or sorted(Path("studies").glob("*.toml"))
    if not files:
        raise HarnessError("no study files: give them, or run from the folder holding studies/")
    for file in files:
        if not file.is_file():
            raise HarnessError(f"{file}: no such study file")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(build(list(files), args.out, args.figures, args.root))
    print(f"wrote {args.out} ({len(files)} studies; figures in {args.figures})")
    return 0

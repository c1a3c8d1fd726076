"""Time cells alone: forward and forward+backward throughput at given shapes.

Shapes are T x B x I x H, comma-separated. Before a cell is timed at a shape,
it is checked there: its contract (shapes, finite values, gradients present)
and, when its spec names a reference cell (numpy-lstm and triton-lstm name
lstm), the same computation by the reference on the same weights, within a
tolerance per dtype (docs/measurements.md). A cell that fails is reported
'incorrect' with the largest error and is not timed. Results go to a new
folder (bench.csv, with the check's result in the gate columns) and are
printed as a table with tokens per second.

Exit status: 0 when every available cell passed the check and was timed
(cells that cannot run on this device or dtype are listed as skipped); 1 when
a cell was incorrect or failed; 2 for a usage error; 130 on Ctrl-C or SIGTERM.

Example:
  python -m harness bench --cells lstm,gru --shapes 100x64x32x128,200x128x64x256
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd

from harness.commands.options import bounded_int
from harness.contract.errors import HarnessError
from harness.measurements.bench import (BENCH_COLUMNS, DEFAULT_SHAPES, FAILED_STATUSES, bench_cell, parse_shapes,
                                        reference_for)
from harness.measurements.environment import describe, prepare_cpu
from harness.plugins.registry import load_registry
from harness.reports.results import RunWriter
from harness.run.config import DTYPES, resolve_device

HELP = "time forward and forward+backward passes of cells"


def add_arguments(p) -> None:
    p.add_argument("--cells", default="rnn,lstm,gru", help="comma-separated cell names (default rnn,lstm,gru)")
    p.add_argument("--shapes", default=DEFAULT_SHAPES, help=f"T x B x I x H list (default {DEFAULT_SHAPES})")
    p.add_argument("--layers", type=bounded_int(1, 64), default=1, help="stacked layers (default 1)")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu", help="device (default cpu)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="dtype (default float32)")
    p.add_argument("--threads", type=bounded_int(1, 1024), help="CPU threads for torch (default: torch's choice, "
                   "usually the core count); recorded in environment.json")
    p.add_argument("--warmup", type=bounded_int(0, 10_000), default=3, help="untimed calls first (default 3)")
    p.add_argument("--repeats", type=bounded_int(1, 100_000), default=10, help="timed calls (default 10)")
    p.add_argument("--reference", help="cell the ratio column divides by (default: lstm if timed, else the first cell)")
    p.add_argument("--out", type=Path, help="folder for bench.csv (default results/<time>-bench)")


def main(args) -> int:
    registry = load_registry()
    for problem in registry.problems:
        print(f"warning: {problem}", file=sys.stderr)
    specs = registry.parse_cells(args.cells)
    shapes = parse_shapes(args.shapes)
    names = [spec.name for spec in specs]
    reference = args.reference or ("lstm" if "lstm" in names else names[0])
    if reference not in names:
        raise HarnessError(f"--reference {reference}: not among the timed cells ({', '.join(names)})")
    device = resolve_device(args.device)
    prepare_cpu(args.threads)
    dtype = DTYPES[args.dtype]
    folder = args.out or Path("results") / f"{time.strftime('%Y%m%d-%H%M%S')}-bench"
    writer = RunWriter(folder)
    writer.write_json("environment.json", describe())
    writer.write_json("config.json", {"command": "bench", **{k: str(v) for k, v in vars(args).items() if k != "handler"},
                                      "cell_sources": {name: registry.provenance(name) for name in names}})
    references = {}
    for spec in specs:
        references[spec.name], why_not = reference_for(spec, {n: r.spec for n, r in registry.cells.items()}, device)
        if why_not:
            print(f"warning: {spec.name}: {why_not}; it is checked against the contract only", file=sys.stderr)
    rows = []
    try:
        for shape in shapes:
            for spec in specs:
                print(f"checking and timing {spec.name} at {shape} ...", file=sys.stderr)
                rows.extend(bench_cell(spec, shape, device, dtype, args.layers, args.warmup, args.repeats,
                                       reference=references[spec.name]))
                pd.DataFrame(rows, columns=BENCH_COLUMNS).to_csv(writer.folder / "bench.csv", index=False)
    except KeyboardInterrupt:
        print(f"interrupted: the finished timings are in {writer.folder / 'bench.csv'}", file=sys.stderr)
        return 130
    table = pd.DataFrame(rows, columns=BENCH_COLUMNS)
    if table.empty:
        raise HarnessError("nothing was timed")
    print(format_bench(table, reference))
    print(f"\ntable: {writer.folder / 'bench.csv'}")
    bad = table[table["status"].isin(FAILED_STATUSES)].drop_duplicates(["cell", "T", "B", "I", "H"])
    for row in bad.itertuples(index=False):
        print(f"harness bench: {row.cell} at {row.T}x{row.B}x{row.I}x{row.H} {row.status}, not timed: {row.reason}",
              file=sys.stderr)
    return 1 if len(bad) else 0


def _checked(row) -> str:
    """The gate column of the printed table: the reference and the largest error, or 'contract'."""
    return f"{row.gate_reference}:{row.gate_error:.1e}" if row.gate_reference else "contract"


def format_bench(table: pd.DataFrame, reference: str) -> str:
    """One line per (shape, cell), in the order timed: what the cell was checked against, forward and
    forward+backward tokens/s, and the forward+backward ratio to the ``reference`` cell at the same shape."""
    ok = table[table["status"] == "ok"]
    keys = ["T", "B", "I", "H", "cell"]
    lines = []
    if len(ok):
        order = ok[keys].drop_duplicates()
        wide = ok.pivot_table(index=keys, columns="pass", values="tokens_per_s")
        wide = wide.reindex(pd.MultiIndex.from_frame(order))  # keep the timing order
        wide = wide.rename(columns={"forward": "fwd tok/s", "forward+backward": "fwd+bwd tok/s"}).reset_index()
        checked = ok.drop_duplicates(keys).fillna({"gate_reference": ""})
        wide.insert(5, "checked", [_checked(r) for r in checked.itertuples(index=False)])
        ref = wide[wide["cell"] == reference].set_index(["T", "B", "I", "H"])["fwd+bwd tok/s"]
        wide[f"fwd+bwd vs {reference}"] = [v / ref.get((t, b, i, h), float("nan"))
                                           for t, b, i, h, v in wide[["T", "B", "I", "H", "fwd+bwd tok/s"]].itertuples(index=False)]
        lines.append(wide.to_string(index=False, formatters={
            "fwd tok/s": "{:,.0f}".format, "fwd+bwd tok/s": "{:,.0f}".format, f"fwd+bwd vs {reference}": "{:.2f}".format}))
    for row in table[table["status"] != "ok"].drop_duplicates(keys).itertuples():
        lines.append(f"{row.cell} at {row.T}x{row.B}x{row.I}x{row.H}: {row.status} ({row.reason})")
    return "\n".join(lines)

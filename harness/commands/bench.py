"""Time cells alone: forward and forward+backward throughput and peak memory at given shapes.

Shapes are T x B x I x H, comma-separated. Before a cell is timed at a shape,
it is checked there: its contract (shapes, finite values, gradients present)
and, when its spec names a reference cell (numpy-lstm and triton-lstm name
lstm), the same computation by the reference on the same weights, within a
tolerance per dtype (docs/measurements.md). A cell that fails is reported
'incorrect' with the largest error and is not timed. Results go to a new
folder (bench.csv, with the check's result in the gate columns) and are
printed as a table with tokens per second and peak memory per call (MiB).

Noisy timings: a pass whose timed calls spread widely, or that ran while the
machine had more runnable threads than CPUs, is marked 'noisy' in bench.csv
and in the table, with one warning on stderr; compare --fail-slower does not
judge it (docs/measurements.md).

Cost curves: --scaling T=100,300,1000 (or B=, I=, H=) times every cell at the
base shape (--shapes, one shape; default 100x8x32x64) with that dimension set
to each value, checked at each, and writes scaling.csv and scaling.png: time
and memory against the dimension on log-log axes, with each cell's fitted
slope (1 = linear).

Exit status: 0 when every available cell passed the check and was timed
(cells that cannot run on this device or dtype are listed as skipped); 1 when
a cell was incorrect or failed; 2 for a usage error; 130 on Ctrl-C or SIGTERM.
Noisy timings do not change the exit status.

Examples:
  python -m harness bench --cells lstm,gru --shapes 100x64x32x128,200x128x64x256
  python -m harness bench --cells lstm,gru,rnn --scaling T=100,300,1000,3000 --shapes 100x8x32x64 --repeats 5
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from harness.commands.options import bounded_int
from harness.contract.errors import HarnessError
from harness.measurements.bench import (BENCH_COLUMNS, DEFAULT_SHAPES, FAILED_STATUSES, bench_cell, parse_shapes,
                                        reference_for)
from harness.measurements.environment import available_cpus, describe, prepare_cpu
from harness.measurements.noise import ADVICE, SPREAD_LIMIT
from harness.measurements.scaling import DEFAULT_BASE, parse_scaling, scaling_table, slopes
from harness.plugins.registry import load_registry
from harness.reports.plots import save_figures
from harness.reports.results import RunWriter
from harness.reports.scaling_plots import scaling_figure
from harness.run.config import DTYPES, resolve_device

HELP = "time forward and forward+backward passes of cells, with peak memory; --scaling for cost curves"


def add_arguments(p) -> None:
    p.add_argument("--cells", default="rnn,lstm,gru", help="comma-separated cell names (default rnn,lstm,gru)")
    p.add_argument("--shapes", help=f"T x B x I x H list (default {DEFAULT_SHAPES}); with --scaling, the one base "
                   f"shape (default {DEFAULT_BASE})")
    p.add_argument("--scaling", metavar="DIM=V1,V2,...",
                   help="cost curves: sweep one dimension (T, B, I or H) of the base shape over these values, e.g. "
                        "T=100,300,1000,3000; writes scaling.csv and scaling.png (time and peak memory against it, "
                        "log-log, with each cell's fitted slope). Cells are checked at every shape")
    p.add_argument("--no-memory", action="store_true",
                   help="skip the peak-memory measurement (one untimed call per pass, under the profiler)")
    p.add_argument("--layers", type=bounded_int(1, 64), default=1, help="stacked layers (default 1)")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu", help="device (default cpu)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="dtype (default float32)")
    p.add_argument("--threads", type=bounded_int(1, 1024), help="CPU threads for torch (default: torch's choice, "
                   "usually the core count); recorded in environment.json")
    p.add_argument("--warmup", type=bounded_int(0, 10_000), default=3, help="untimed calls first (default 3)")
    p.add_argument("--repeats", type=bounded_int(1, 100_000), default=10,
                   help="timed calls (default 10); more narrow the quartiles that the noise check reads")
    p.add_argument("--reference", help="cell the ratio column divides by (default: lstm if timed, else the first cell)")
    p.add_argument("--out", type=Path, help="folder for bench.csv (default results/<time>-bench)")


def main(args) -> int:
    registry = load_registry()
    for problem in registry.problems:
        print(f"warning: {problem}", file=sys.stderr)
    specs = registry.parse_cells(args.cells)
    scaling = parse_scaling(args.scaling) if args.scaling else None
    if scaling:
        bases = parse_shapes(args.shapes or DEFAULT_BASE)
        if len(bases) != 1:
            raise HarnessError(f"--scaling sweeps one base shape: give --shapes a single T x B x I x H "
                               f"(default {DEFAULT_BASE}), not {len(bases)}")
        shapes = scaling.shapes(bases[0])
    else:
        shapes = parse_shapes(args.shapes or DEFAULT_SHAPES)
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
    cpus, limited_by = available_cpus()
    colors = {spec.name: spec.color for spec in specs}
    writer.write_json("config.json", {"command": "bench", **{k: str(v) for k, v in vars(args).items() if k != "handler"},
                                      "cell_sources": {name: registry.provenance(name) for name in names},
                                      "colors": colors, "available_cpus": cpus, "available_cpus_source": limited_by})
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
                                       reference=references[spec.name], memory=not args.no_memory))
                pd.DataFrame(rows, columns=BENCH_COLUMNS).to_csv(writer.folder / "bench.csv", index=False)
    except KeyboardInterrupt:
        print(f"interrupted: the finished timings are in {writer.folder / 'bench.csv'}", file=sys.stderr)
        return 130
    table = pd.DataFrame(rows, columns=BENCH_COLUMNS)
    if table.empty:
        raise HarnessError("nothing was timed")
    print(format_bench(table, reference))
    print(f"\ntable: {writer.folder / 'bench.csv'}")
    if scaling:
        curves = scaling_table(table, scaling)
        curves.to_csv(writer.folder / "scaling.csv", index=False)
        base = shapes[0]
        fixed = ", ".join(f"{d} = {getattr(base, d)}" for d in "TBIH" if d != scaling.dimension)
        title = (f"{', '.join(names)}: cost against {scaling.dimension} ({fixed}; {args.dtype}, {device.type}, "
                 f"{torch.get_num_threads()} thread(s), median of {args.repeats})")
        written = save_figures({"scaling": scaling_figure(curves, colors, title)}, writer.folder)
        print("\n" + format_slopes(curves, scaling.dimension))
        print(f"\ncost curves: {writer.folder / 'scaling.csv'}, {written['scaling'][0]}")
    warning = noise_warning(table)
    if warning:
        print(warning, file=sys.stderr)
    bad = table[table["status"].isin(FAILED_STATUSES)].drop_duplicates(["cell", "T", "B", "I", "H"])
    for row in bad.itertuples(index=False):
        print(f"harness bench: {row.cell} at {row.T}x{row.B}x{row.I}x{row.H} {row.status}, not timed: {row.reason}",
              file=sys.stderr)
    return 1 if len(bad) else 0


def noise_warning(table: pd.DataFrame) -> str:
    """One line for stderr when any timing is noisy: how many, the worst figures behind it, and what to do;
    empty otherwise."""
    ok = table[table["status"] == "ok"]
    noisy = ok[ok["noisy"].fillna(False).astype(bool)]
    if noisy.empty:
        return ""
    why = []
    spread = noisy["spread"][noisy["spread"] >= SPREAD_LIMIT]
    if len(spread):
        why.append(f"repeats spread up to {spread.max():.0%} of the median")
    loaded = noisy[noisy["noise"].astype(str).str.contains("oversubscribed")]
    if len(loaded):
        why.append(f"other processes kept up to {loaded['other_load'].max():.1f} CPUs busy")
    if noisy["noise"].astype(str).str.contains("available CPUs").any():
        why.append(f"more threads than the {int(noisy['cpus'].min())} available CPUs")
    return (f"warning: {len(noisy)} of {len(ok)} timings are noisy ({'; '.join(why)}), marked 'noisy' in the table "
            f"and bench.csv: their tokens/s and ratios may be wrong; {ADVICE}")


def format_slopes(curves: pd.DataFrame, dimension: str) -> str:
    """The fitted log-log slopes, one line per cell and pass."""
    fits = slopes(curves)
    if fits.empty:
        return f"no cell was timed at two or more values of {dimension}: no slope"
    fits = fits.rename(columns={"time_slope": f"time slope vs {dimension}",
                                "memory_slope": f"memory slope vs {dimension}"})
    return (f"log-log slopes against {dimension} (1 = linear):\n"
            + fits.to_string(index=False, float_format=lambda v: f"{v:.2f}"))


def _checked(row) -> str:
    """The gate column of the printed table: the reference and the largest error, or 'contract'."""
    return f"{row.gate_reference}:{row.gate_error:.1e}" if row.gate_reference else "contract"


def _mib(value: float) -> str:
    return f"{value / 2 ** 20:,.2f}" if math.isfinite(value) else "-"


def format_bench(table: pd.DataFrame, reference: str) -> str:
    """One line per (shape, cell), in the order timed: what the cell was checked against, whether a timing was
    noisy, forward and forward+backward tokens/s and peak memory (MiB), and the forward+backward ratio to the
    ``reference`` cell at the same shape."""
    ok = table[table["status"] == "ok"]
    keys = ["T", "B", "I", "H", "cell"]
    lines = []
    if len(ok):
        order = ok[keys].drop_duplicates()
        index = pd.MultiIndex.from_frame(order)
        wide = ok.pivot_table(index=keys, columns="pass", values="tokens_per_s")
        wide = wide.reindex(index)  # keep the timing order
        wide = wide.rename(columns={"forward": "fwd tok/s", "forward+backward": "fwd+bwd tok/s"}).reset_index()
        checked = ok.drop_duplicates(keys).fillna({"gate_reference": ""})
        wide.insert(5, "checked", [_checked(r) for r in checked.itertuples(index=False)])
        noisy = ok.assign(noisy=ok["noisy"].fillna(False).astype(bool)).groupby(keys, sort=False)["noisy"].any()
        wide.insert(6, "timing", ["noisy" if v else "" for v in noisy.reindex(index).to_numpy()])
        memory = ok.pivot_table(index=keys, columns="pass", values="peak_mem_bytes", dropna=False).reindex(index)
        for name, label in (("forward", "fwd MiB"), ("forward+backward", "fwd+bwd MiB")):
            wide[label] = memory[name].to_numpy() if name in memory else math.nan
        ref = wide[wide["cell"] == reference].set_index(["T", "B", "I", "H"])["fwd+bwd tok/s"]
        wide[f"fwd+bwd vs {reference}"] = [v / ref.get((t, b, i, h), float("nan"))
                                           for t, b, i, h, v in wide[["T", "B", "I", "H", "fwd+bwd tok/s"]].itertuples(index=False)]
        lines.append(wide.to_string(index=False, formatters={
            "fwd tok/s": "{:,.0f}".format, "fwd+bwd tok/s": "{:,.0f}".format, "fwd MiB": _mib, "fwd+bwd MiB": _mib,
            f"fwd+bwd vs {reference}": "{:.2f}".format}, na_rep="-"))
    for row in table[table["status"] != "ok"].drop_duplicates(keys).itertuples():
        lines.append(f"{row.cell} at {row.T}x{row.B}x{row.I}x{row.H}: {row.status} ({row.reason})")
    return "\n".join(lines)

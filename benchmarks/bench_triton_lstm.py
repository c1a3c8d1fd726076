"""triton-lstm vs torch.nn.LSTM (cuDNN): forward and forward+backward speed, side by side, on one GPU.

One command produces the table of docs/benchmarks.md ("triton-lstm vs cuDNN (GPU)")::

    python benchmarks/bench_triton_lstm.py

Grid: B in {1, 16, 64, 256} x H in {128, 256, 512, 1024}, T = 256, I = H, one
layer, float32 and bfloat16. Both cells get the same weights and the same input.
Each pass is warmed up, then timed ``--repeats`` times with CUDA events
(``harness.measurements.throughput.time_call``); the table shows medians. Forward runs under
``torch.no_grad()``; forward+backward differentiates ``out.sum()`` with respect
to the input and every parameter (as ``harness bench`` does).

float32 is compared with TF32 off on both sides: for cuDNN and cuBLAS (torch
enables it for cuDNN by default) and for triton-lstm, whose fp32 products then
run on tensor cores as tf32x3 (close to fp32; see docs/triton-lstm.md);
``--tf32`` allows TF32 on both sides. Shapes with H above the kernels' limit (512) run triton-lstm's fallback,
``torch.lstm``, and are marked ``fallback``. Targets (H200): forward >= 1.0x
cuDNN for H <= 128 and B <= 64; forward+backward >= 0.5x across the grid.

``--device cpu`` runs the same code through Triton's interpreter (set
HARNESS_TRITON_INTERPRET=1) at tiny sizes: a smoke test of this script, not a
measurement.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from cells.triton_lstm import TritonLSTM, function  # noqa: E402
from harness.measurements.throughput import time_call  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
COLUMNS = ["dtype", "B", "H", "T", "pass", "path", "triton_us_per_step", "cudnn_us_per_step", "triton_tokens_per_s",
           "cudnn_tokens_per_s", "speedup", "max_abs_diff", "status"]


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=_ints, default=[1, 16, 64, 256], help="batch sizes B (default 1,16,64,256)")
    p.add_argument("--hidden", type=_ints, default=[128, 256, 512, 1024], help="hidden sizes H = I (default 128..1024)")
    p.add_argument("--seq-len", type=int, default=256, help="time steps T (default 256)")
    p.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated: float32,bfloat16,float16")
    p.add_argument("--tf32", action="store_true", help="let both cells use TF32 for float32")
    p.add_argument("--warmup", type=int, default=5, help="untimed calls per pass (default 5)")
    p.add_argument("--repeats", type=int, default=20, help="timed calls per pass; the median is reported (default 20)")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="cuda (default); cpu = interpreter smoke test")
    p.add_argument("--out", type=Path, help="CSV file (default results/<time>-bench-triton-lstm.csv)")
    args = p.parse_args(argv)
    bad = [d for d in args.dtypes.split(",") if d not in DTYPES]
    if bad:
        p.error(f"unknown dtype {bad[0]!r}; choose from {', '.join(DTYPES)}")
    return args


def _pair(H: int, dtype: torch.dtype, device: torch.device) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    ref = nn.LSTM(H, H).to(device, dtype)
    cell = TritonLSTM(H, H).to(device, dtype)
    cell.load_state_dict(ref.state_dict())
    return ref, cell


def _passes(module: nn.Module, x: torch.Tensor):
    x_grad = x.clone().requires_grad_(True)

    def forward() -> None:
        with torch.no_grad():
            module(x)

    def forward_backward() -> None:
        module.zero_grad(set_to_none=True)
        x_grad.grad = None
        out, _ = module(x_grad)
        out.sum().backward()

    return {"forward": forward, "forward+backward": forward_backward}


def bench_shape(B: int, H: int, T: int, dtype: torch.dtype, device: torch.device, warmup: int, repeats: int) -> list[dict]:
    """Two rows (forward, forward+backward) comparing the cells at one shape."""
    base = {"dtype": str(dtype).removeprefix("torch."), "B": B, "H": H, "T": T}
    try:
        ref, cell = _pair(H, dtype, device)
        x = torch.randn(T, B, H, device=device, dtype=dtype)
        with torch.no_grad():
            diff = (cell(x)[0].float() - ref(x)[0].float()).abs().max().item()
        path = "triton" if cell.uses_triton else "fallback"
        rows = []
        mine, theirs = _passes(cell, x), _passes(ref, x)
        for name in mine:
            t_mine = time_call(mine[name], device, warmup=warmup, repeats=repeats).median
            t_theirs = time_call(theirs[name], device, warmup=warmup, repeats=repeats).median
            rows.append({**base, "pass": name, "path": path, "triton_us_per_step": t_mine / T * 1e6,
                         "cudnn_us_per_step": t_theirs / T * 1e6, "triton_tokens_per_s": B * T / t_mine,
                         "cudnn_tokens_per_s": B * T / t_theirs, "speedup": t_theirs / t_mine,
                         "max_abs_diff": diff, "status": "ok"})
        return rows
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        return [{**base, "pass": p, "status": "out of memory"} for p in ("forward", "forward+backward")]


def targets(table: pd.DataFrame) -> list[str]:
    """The issue's targets, per dtype: met or missed, naming the shapes that miss."""
    lines = []
    ok = table[table["status"] == "ok"]
    for dtype, rows in ok.groupby("dtype", sort=False):
        fwd = rows[(rows["pass"] == "forward") & (rows["H"] <= 128) & (rows["B"] <= 64)]
        both = rows[rows["pass"] == "forward+backward"]
        for label, subset, goal in (("forward >= 1.0x cuDNN for H <= 128, B <= 64", fwd, 1.0),
                                    ("forward+backward >= 0.5x cuDNN across the grid", both, 0.5)):
            missed = subset[subset["speedup"] < goal]
            where = ", ".join(f"B={r.B} H={r.H} ({r.speedup:.2f}x)" for r in missed.itertuples())
            lines.append(f"{dtype}: {label}: " + (f"missed at {where}" if where else f"met ({len(subset)} shapes)"))
    return lines


def markdown(table: pd.DataFrame) -> str:
    """The table for docs/benchmarks.md."""
    head = ("| dtype | B | H | pass | path | triton µs/step | cuDNN µs/step | triton tok/s | cuDNN tok/s | speed-up |\n"
            "|---|---:|---:|---|---|---:|---:|---:|---:|---:|")
    lines = [head]
    for r in table.rename(columns={"pass": "pass_"}).itertuples():
        if r.status != "ok":
            lines.append(f"| {r.dtype} | {r.B} | {r.H} | {r.pass_} | {r.status} | | | | | |")
            continue
        lines.append(f"| {r.dtype} | {r.B} | {r.H} | {r.pass_} | {r.path} | {r.triton_us_per_step:,.1f} | "
                     f"{r.cudnn_us_per_step:,.1f} | {r.triton_tokens_per_s:,.0f} | {r.cudnn_tokens_per_s:,.0f} | "
                     f"{r.speedup:.2f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench_triton_lstm: no CUDA GPU is visible to torch; this benchmark needs one "
              "(--device cpu is an interpreter smoke test only)", file=sys.stderr)
        return 2
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = args.tf32
    out = args.out or ROOT / "results" / f"{time.strftime('%Y%m%d-%H%M%S')}-bench-triton-lstm.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    fp32_products = function._precision(torch.float32, interpret=device.type == "cpu")
    try:
        for dtype in (DTYPES[d] for d in args.dtypes.split(",")):
            for H in args.hidden:
                for B in args.batch:
                    print(f"timing {str(dtype).removeprefix('torch.')} B={B} H={H} T={args.seq_len} ...",
                          file=sys.stderr)
                    rows.extend(bench_shape(B, H, args.seq_len, dtype, device, args.warmup, args.repeats))
                    pd.DataFrame(rows, columns=COLUMNS).to_csv(out, index=False)
    except KeyboardInterrupt:
        print(f"interrupted: the finished timings are in {out}", file=sys.stderr)
        return 130
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
    table = pd.DataFrame(rows, columns=COLUMNS)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (interpreter)"
    print(f"\n{device_name}, torch {torch.__version__}, T={args.seq_len}, I=H, 1 layer, "
          f"TF32 {'on' if args.tf32 else 'off'} (triton-lstm's fp32 products: {fp32_products}); "
          f"medians of {args.repeats}\n")
    print(markdown(table))
    print()
    for line in targets(table):
        print(line)
    print(f"\ntable: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

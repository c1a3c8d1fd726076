"""The scans behind ``mingru`` and ``minlstm``, alone: the log-space formula against the linear-space scan
stepping through time and in chunks, forward and forward+backward, on the CPU.

    python benchmarks/bench_min_rnn_scan.py                      # the default grid, about 2 minutes on 2 cores
    python benchmarks/bench_min_rnn_scan.py --shapes 44x64x128,4000x1x32 --threads 2

Each shape is ``T x B x H``: ``a = sigmoid(N(0, 1))``, ``b = U(0, 1)``, ``h0 = N(0, 1)``, float32. Variants:

* ``log64``: ``linear_scan_log(log a, log b, h0)``, the cells' scan before the linear one (64-step chunks);
* ``step``: ``linear_scan(a, b, h0, chunk=1)``, one ``addcmul`` per step;
* ``chunk8``, ``chunk16``, ``chunk32``: ``linear_scan`` with chunks of that many steps at every level;
* ``auto``: ``linear_scan(a, b, h0)``, what the cells run (``linear_chunk`` picks stepping or a chunk length).

Forward runs under ``no_grad``; forward+backward differentiates ``(h * w).sum()`` (``w`` fixed, so the gradient
is a full tensor, as in training) w.r.t. ``a``, ``b`` and ``h0`` (``log a``, ``log b``, ``h0`` for ``log64``).
The variants of one shape are timed round-robin, in a new random order each round, so a busy machine slows them
alike: quote the ratios. With one thread (the default) the clock is the calling thread's CPU time
(``time.thread_time``), which leaves out the time the thread waits for a core on a shared machine; ``--clock
wall`` (needed with more than one thread) uses wall time. The table gives milliseconds (median of
``--repeats``) and, per shape, which chunk length was fastest and what ``auto`` chose, so the rule in
``cells/_log_scan.py`` can be checked on another machine. ``(step)``: the chunks do not fit twice into ``T``,
so that variant steps through time like ``step``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cells._log_scan import linear_chunk, linear_scan, linear_scan_log  # noqa: E402

DEFAULT_SHAPES = ("32x64x128,44x64x128,50x64x64,100x64x128,128x8x128,300x8x64,300x16x64,300x32x64,"
                  "1000x1x64,1000x4x64,1000x8x64,1000x16x64,1000x32x64,4000x1x32,4000x8x64")
VARIANTS = ("log64", "step", "chunk8", "chunk16", "chunk32", "auto")


def _calls(variant: str, a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor, w: torch.Tensor
           ) -> tuple[Callable[[], object], Callable[[], object]]:
    """(forward, forward+backward) closures for one variant."""
    if variant == "log64":
        inputs = (a.log(), b.log(), h0)

        def scan(la, lb, h):
            return linear_scan_log(la, lb, h)
    else:
        inputs = (a, b, h0)
        chunk = {"step": 1, "chunk8": 8, "chunk16": 16, "chunk32": 32, "auto": None}[variant]

        def scan(a_, b_, h):
            return linear_scan(a_, b_, h, chunk)
    leaves = [t.clone().requires_grad_(True) for t in inputs]

    def forward():
        with torch.no_grad():
            scan(*inputs)

    def forward_backward():
        torch.autograd.grad((scan(*leaves) * w).sum(), leaves)
    return forward, forward_backward


def bench_shape(T: int, B: int, H: int, repeats: int, warmup: int, clock: Callable[[], float]
                ) -> dict[str, tuple[float, float]]:
    """variant -> (forward ms, forward+backward ms), medians, timed round-robin."""
    gen = torch.Generator().manual_seed(0)
    a = torch.sigmoid(torch.randn(T, B, H, generator=gen))
    b = torch.rand(T, B, H, generator=gen)
    h0 = torch.randn(B, H, generator=gen)
    w = torch.randn(T, B, H, generator=gen)
    calls = {v: _calls(v, a, b, h0, w) for v in VARIANTS}
    samples: dict[tuple[str, int], list[float]] = {(v, p): [] for v in VARIANTS for p in (0, 1)}
    order = [(v, p) for v in VARIANTS for p in (0, 1)]
    shuffle = random.Random(0).shuffle
    for rep in range(warmup + repeats):
        shuffle(order)                      # no variant always runs right after the one that fills the cache
        for v, p in order:
            start = clock()
            calls[v][p]()
            if rep >= warmup:
                samples[v, p].append(clock() - start)
    return {v: (statistics.median(samples[v, 0]) * 1e3, statistics.median(samples[v, 1]) * 1e3) for v in VARIANTS}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default=DEFAULT_SHAPES, help="T x B x H list (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--repeats", type=int, default=15, help="timed calls per variant (default 15)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls first (default 2)")
    parser.add_argument("--clock", choices=("thread", "wall"), default="thread",
                        help="thread: the calling thread's CPU time (one thread only); wall (default thread)")
    args = parser.parse_args(argv)
    if args.clock == "thread" and args.threads != 1:
        parser.error("--clock thread counts one thread's CPU time: use it with --threads 1, or --clock wall")
    clock = time.thread_time if args.clock == "thread" else time.perf_counter
    torch.set_flush_denormal(True)          # as the harness does (harness.run.prepare_cpu)
    torch.set_num_threads(args.threads)
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    print(f"torch {torch.__version__}, {args.threads} thread(s), float32, {args.clock} clock, median of "
          f"{args.repeats}; ms\n")
    print("| T × B × H | pass | " + " | ".join(VARIANTS) + " | log64 / auto | fastest | auto ran |")
    print("|---|---|" + "---:|" * len(VARIANTS) + "---:|---|---|")
    for T, B, H in shapes:
        result = bench_shape(T, B, H, args.repeats, args.warmup, clock)
        chunk = linear_chunk(T, B * H)
        fits = [v for v in ("step", "chunk8", "chunk16", "chunk32") if v == "step" or 2 * int(v[5:]) <= T]
        for p, name in enumerate(("fwd", "fwd+bwd")):
            ms = {v: result[v][p] for v in VARIANTS}
            fastest = min(fits, key=ms.get)
            cells = " | ".join(f"{ms[v]:.2f}" if v in fits or v in ("log64", "auto") else "(step)" for v in VARIANTS)
            print(f"| {T} × {B} × {H} | {name} | {cells} | {ms['log64'] / ms['auto']:.1f} | {fastest} | "
                  f"{'step' if chunk is None else f'chunk{chunk}'} |", flush=True)


if __name__ == "__main__":
    main()

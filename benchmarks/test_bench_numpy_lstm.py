"""numpy-lstm vs torch.nn.LSTM on the CPU: forward+backward tokens per second, side by side.

Not part of the default test run (pytest's testpaths is tests/)::

    OMP_NUM_THREADS=2 python -m pytest benchmarks/test_bench_numpy_lstm.py --benchmark-only \\
        --benchmark-group-by=param:shape -s

``OMP_NUM_THREADS`` gives both libraries the same number of threads: torch reads
it at start-up (and this file also calls ``torch.set_num_threads`` with it), and
NumPy's OpenBLAS reads it when NumPy loads. Unset, both use every core. The
thread counts actually in use are recorded in each benchmark's ``extra_info``, with
the number of batch slices numpy-lstm runs in parallel threads (``cells.numpy_lstm.threads``).

``test_numpy_lstm_vs_lstm[shape]`` times the two cells alternately, round
after round (nn.LSTM in pytest-benchmark's untimed ``setup``, timed by this
file; numpy-lstm by pytest-benchmark), so that a busy machine slows both alike.
It reports both medians and the ratio of tokens per second, numpy-lstm over
nn.LSTM, in ``extra_info`` and, with ``-s``, one line per shape. The target is
a ratio >= 0.8 at every shape; it is reported, not asserted, because timings on
a shared machine move. ``BENCH_ROUNDS`` sets the timed rounds (default 7).

Both cells get the same weights and the same input; the backward pass
differentiates ``out.sum()`` with respect to the input and every parameter, as
``python -m harness bench`` does.
"""

from __future__ import annotations

import ctypes
import glob
import os
import statistics
import time

import numpy as np
import pytest
import torch

from cells.lstm import TorchLSTM
from cells.numpy_lstm import NumpyLSTM, threads
from harness.measurements.bench import Shape

SHAPES = [Shape(100, 64, 32, 128), Shape(200, 128, 64, 256), Shape(100, 32, 256, 512)]
TARGET = 0.8
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
THREADS = int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
torch.set_num_threads(THREADS)


def blas_threads() -> int | None:
    """Threads of the OpenBLAS bundled with NumPy, read from the library itself (None if not found)."""
    folder = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in glob.glob(os.path.join(folder, "libscipy_openblas*")):
        lib = ctypes.CDLL(path)
        for name in ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads"):
            if hasattr(lib, name):
                return int(getattr(lib, name)())
    return None


def _pair(shape: Shape):
    torch.manual_seed(0)
    ref = TorchLSTM(shape.I, shape.H)
    cell = NumpyLSTM(shape.I, shape.H).load_from_torch(ref)
    x = torch.randn(shape.T, shape.B, shape.I, requires_grad=True)
    return ref, cell, x


def _forward_backward(cell, x):
    def run():
        cell.zero_grad(set_to_none=True)
        x.grad = None
        out, _ = cell(x)
        out.sum().backward()
        return out
    return run


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_numpy_lstm_vs_lstm(benchmark, shape):
    ref, cell, x = _pair(shape)
    run_ref, run_mine = _forward_backward(ref, x), _forward_backward(cell, x)
    ref_seconds: list[float] = []

    def time_ref_first():                                          # untimed by pytest-benchmark; timed here
        start = time.perf_counter()
        run_ref()
        ref_seconds.append(time.perf_counter() - start)

    out = benchmark.pedantic(run_mine, setup=time_ref_first, rounds=ROUNDS, warmup_rounds=1)
    assert out.shape == (shape.T, shape.B, shape.H)
    assert torch.allclose(out, ref(x)[0], atol=1e-5)               # timed the same computation
    tokens = shape.T * shape.B
    ref_median = statistics.median(ref_seconds[-ROUNDS:])          # the warm-up round's timing is dropped
    mine_median = benchmark.stats.stats.median
    ratio = ref_median / mine_median
    benchmark.extra_info.update({
        "numpy_lstm_tokens_per_s": tokens / mine_median, "lstm_tokens_per_s": tokens / ref_median,
        "lstm_median_s": ref_median, "ratio": ratio, "target": TARGET, "meets_target": ratio >= TARGET,
        "torch_threads": torch.get_num_threads(), "blas_threads": blas_threads(),
        "numpy_lstm_slices": threads.workers(shape.B, shape.H),
    })
    print(f"\n{shape}: numpy-lstm {tokens / mine_median:,.0f} tok/s, nn.LSTM {tokens / ref_median:,.0f} tok/s, "
          f"ratio {ratio:.2f} (target >= {TARGET}; torch threads {torch.get_num_threads()}, "
          f"BLAS threads {blas_threads()}, batch slices {threads.workers(shape.B, shape.H)})")


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("cell_name", ["numpy-lstm", "lstm"])
def test_forward_backward(benchmark, shape, cell_name):
    """Each cell on its own, for pytest-benchmark's tables (one after the other, not interleaved)."""
    ref, cell, x = _pair(shape)
    out = benchmark.pedantic(_forward_backward(cell if cell_name == "numpy-lstm" else ref, x),
                             rounds=ROUNDS, warmup_rounds=1)
    assert out.shape == (shape.T, shape.B, shape.H)
    benchmark.extra_info["tokens_per_s"] = shape.T * shape.B / benchmark.stats.stats.median
    benchmark.extra_info["torch_threads"] = torch.get_num_threads()
    benchmark.extra_info["blas_threads"] = blas_threads()

"""Peak memory of one pass of a cell: how many bytes it allocates on top of what was live when it started.

What counts (docs/measurements.md, "Peak memory"): everything the pass allocates and holds at its highest
point: activations kept for the backward pass, temporaries, outputs, and the gradients of the input and the
parameters (bench sets them to ``None`` before each forward+backward pass, so the pass allocates them). What
was live before the pass is not counted: the parameters, the input, and any buffers a cell keeps from one call
to the next. ``bench`` measures after the correctness gate has run the cell at the same shape, so such buffers
already exist then: numpy-lstm, which keeps its arrays in a pool for the next call, is measured for what it
allocates beyond them (its gradients and outputs), not for its activations.

How:

* CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus ``memory_allocated``
  before the pass (tensors only; the caching allocator's reserve does not count).
* CPU: two counters, each peak taken separately and added. Torch's CPU allocator, through the memory events
  of autograd's profiler (``torch.autograd.profiler.profile(profile_memory=True)``): every allocation and free
  during the pass, in time order, summed, and the highest running total taken; frees of blocks allocated
  before the pass are not in the events, so memory released at the start (old gradients) does not offset
  new allocations. And
  Python's ``tracemalloc`` peak, which sees NumPy's arrays (NumPy reports them to it) and Python objects:
  this is where numpy-lstm's memory is. The sum is exact when one of the two is near zero (every built-in
  cell but numpy-lstm has only a few kilobytes of Python objects), and an upper bound otherwise.

The measuring pass is run apart from the timed ones, as the profiler and tracemalloc slow it down. The
profiler's own log lines on file descriptor 2 are silenced during it; Python's warnings still show.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tracemalloc
from typing import Callable, Iterator

import torch


def peak_memory(fn: Callable[[], object], device: torch.device) -> int:
    """Bytes that ``fn()`` allocates on ``device`` beyond what was live before it, at its highest point."""
    if device.type == "cuda":
        return _cuda_peak(fn, device)
    return _cpu_peak(fn)


def _cuda_peak(fn: Callable[[], object], device: torch.device) -> int:
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return max(0, torch.cuda.max_memory_allocated(device) - before)


def _cpu_peak(fn: Callable[[], object]) -> int:
    # autograd's profiler, not torch.profiler.profile, whose start imports torch._inductor (seconds, once)
    from torch.autograd.profiler import profile

    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        with _quiet_stderr(), profile(use_cpu=True, profile_memory=True) as prof:
            tracemalloc.reset_peak()            # inside: the profiler's own start and stop are not the pass's
            python_start = tracemalloc.get_traced_memory()[0]
            fn()
            python_peak = tracemalloc.get_traced_memory()[1] - python_start
    finally:
        if not tracing:
            tracemalloc.stop()
    return max(0, python_peak) + allocator_peak(prof)


def allocator_peak(prof) -> int:
    """The highest running total of the ``[memory]`` events (bytes: + allocated, - freed) of a finished
    ``torch.autograd.profiler.profile``, in time order."""
    events = []
    for event in prof.kineto_results.events():
        if event.name() == "[memory]":
            start = event.start_ns() if hasattr(event, "start_ns") else event.start_us() * 1000
            events.append((start, event.nbytes()))
    events.sort(key=lambda e: e[0])
    total = peak = 0
    for _, nbytes in events:
        total += nbytes
        peak = max(peak, total)
    return peak


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null while keeping Python's ``sys.stderr`` (and so Python's warnings)
    where it was: the profiler's C++ side logs every start and stop there ("profiler_start", "Memory block of
    unknown size ...")."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:                    # no file descriptor 2 (an embedding host): nothing to silence
        yield
        return
    python_stderr = sys.stderr
    try:
        on_fd2 = python_stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):   # replaced by an object without a descriptor (a capture)
        on_fd2 = False
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            if on_fd2:
                sys.stderr = open(saved, "w", closefd=False, encoding=python_stderr.encoding,
                                  errors=python_stderr.errors)
            yield
    finally:
        if sys.stderr is not python_stderr:
            sys.stderr.flush()
            sys.stderr = python_stderr
        os.dup2(saved, 2)
        os.close(saved)

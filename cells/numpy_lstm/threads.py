"""The batch split into slices, one thread per slice (speed only).

No batch column ever mixes with another in an LSTM: each slice of the columns
goes through the whole stack, forward and backward, on its own, and only the
weight gradients are summed over the slices at the end. NumPy's ufuncs and
BLAS release the GIL, so the threads truly run side by side, each with its own
contiguous arrays (the per-step elementwise work, on one thread otherwise, is
what this parallelises). The number of slices follows the thread count NumPy's
BLAS is set to (``python -m harness bench --threads N`` sets it); while the
slices run, BLAS is held to one thread per call, since the slices already fill
the cores. The split depends only on the batch size and the thread count, so
the same seed gives the same numbers for a given thread count.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from cells.numpy_lstm import kernel

# Below these sizes a slice's per-step work is too small for two threads to win back what they cost
# (the GIL at every NumPy call; BLAS repacks all of W_hh at every per-step matmul, which narrow slices
# then pay for twice). Measured on 2 cores, float32.
MIN_COLUMNS = 16
"""Fewest batch columns per slice."""
HIDDEN_PER_COLUMN = 16
"""A slice needs at least ``H / HIDDEN_PER_COLUMN`` columns too."""
MIN_SLICE_SIZE = 4096
"""Fewest hidden values (``H`` times columns) per slice and step."""

_lock = threading.Lock()                                           # one split at a time: the BLAS limit is global
_pool: dict[str, object] = {"executor": None, "size": 0, "blas": None}
_forced: list[int] = []


@contextmanager
def forced_workers(n: int):
    """Within the block, split into ``n`` slices (at most one per column) whatever the sizes and BLAS; for tests."""
    if n < 1:
        raise ValueError(f"numpy-lstm: the number of workers must be >= 1, got {n}")
    _forced.append(n)
    try:
        yield
    finally:
        _forced.pop()


def _blas():
    """threadpoolctl's handle on NumPy's BLAS, made once (finding the libraries takes milliseconds)."""
    if _pool["blas"] is None:
        from threadpoolctl import ThreadpoolController

        _pool["blas"] = ThreadpoolController().select(user_api="blas")
    return _pool["blas"]


def workers(batch: int, hidden: int) -> int:
    """How many slices a batch of ``batch`` columns of ``hidden`` units is split into: BLAS's thread count,
    unless that leaves slices under the sizes above; at least 1."""
    if _forced:
        return min(_forced[-1], batch)
    wanted = max([lib.num_threads for lib in _blas().lib_controllers] or [1])
    columns = max(MIN_COLUMNS, hidden // HIDDEN_PER_COLUMN)
    return max(1, min(wanted, batch // columns, batch * hidden // MIN_SLICE_SIZE))


def column_slices(batch: int, n: int) -> list[slice]:
    """``n`` contiguous slices of ``range(batch)``, sizes differing by at most one."""
    bounds = [batch * k // n for k in range(n + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def run_parallel(calls: list[Callable[[], Any]]) -> list[Any]:
    """Each call's result, in order; the calls run in parallel threads (this one included), BLAS held to one
    thread per call meanwhile. The calls must not write to the same arrays."""
    if len(calls) == 1:
        return [calls[0]()]
    first, *rest = calls
    with _lock, _blas().limit(limits=1):
        executor = _executor(len(rest))
        futures = [executor.submit(call) for call in rest]
        try:
            results = [first()]                                    # this thread takes a share too
        finally:
            for future in futures:                                 # wait for all before BLAS gets its threads back
                future.exception()
        return results + [future.result() for future in futures]  # re-raises a worker's error here


# ------------------------------------------------------------------ the stack, split by batch columns


@dataclass
class SplitCache:
    """The kernel's cache for each slice of the batch columns."""

    slices: list[slice]
    parts: list[kernel.StackCache]


def stack_forward(x, h0, c0, weights, masks=None, empty=np.empty):
    """:func:`kernel.stack_forward` on :func:`workers` slices of the batch at once, joined along ``B``.

    ``x (T, B, I)``, ``h0``, ``c0`` ``(L, B, H)``, ``masks`` per gap ``(H, T, B)`` -> ``out (T, B, H)``,
    ``hT``, ``cT`` ``(L, B, H)``, and a :class:`SplitCache`.
    """
    batch, hidden = x.shape[1], weights[0][1].shape[1]
    slices = column_slices(batch, workers(batch, hidden))
    parts = run_parallel([partial(kernel.stack_forward, x[:, s], h0[:, s], c0[:, s], weights,
                                  None if masks is None else [None if m is None else m[..., s] for m in masks],
                                  empty) for s in slices])
    out, hT, cT = (_join([part[k] for part in parts]) for k in range(3))
    return out, hT, cT, SplitCache(slices, [part[3] for part in parts])


def stack_backward(d_out, d_hT, d_cT, cache: SplitCache, need_dx: bool = True, empty=np.empty):
    """:func:`kernel.stack_backward` for each slice at once: ``dx``, ``dh0``, ``dc0`` joined along ``B``,
    the weight gradients summed over the slices."""
    parts = run_parallel([partial(kernel.stack_backward, d_out[:, s], d_hT[:, s], d_cT[:, s], part, need_dx, empty)
                          for s, part in zip(cache.slices, cache.parts)])
    if len(parts) == 1:
        return parts[0]
    dx = _join([part[0] for part in parts]) if need_dx else None
    dh0, dc0 = _join([part[1] for part in parts]), _join([part[2] for part in parts])
    grads = [[sum(layer[k] for layer in layers) for k in range(3)]  # summed in slice order: the same every time
             for layers in zip(*(part[3] for part in parts))]
    return dx, dh0, dc0, [(dw_ih, dw_hh, db, db.copy()) for dw_ih, dw_hh, db in grads]


def _join(arrays: list[np.ndarray]) -> np.ndarray:
    """Slices' results back along the batch axis (axis 1 of ``(T, B, *)`` and ``(L, B, H)``)."""
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=1)


def _executor(size: int) -> ThreadPoolExecutor:
    """The persistent pool of helper threads (starting threads at every call would cost more than it saves)."""
    if _pool["size"] < size:
        if _pool["executor"] is not None:
            _pool["executor"].shutdown(wait=True)
        _pool["executor"] = ThreadPoolExecutor(max_workers=size, thread_name_prefix="numpy-lstm")
        _pool["size"] = size
    return _pool["executor"]

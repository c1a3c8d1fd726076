"""Reuse of large NumPy arrays from one call to the next.

A training loop asks for arrays of the same shapes at every step. Memory that
comes fresh from the operating system costs a page fault per page on first
touch, which for an LSTM step can cost as much as the arithmetic; handing
out the arrays of the previous step instead avoids it. The arrays are plain
uninitialised ``np.empty`` ones: nothing here changes a result.

Use: ``lease = POOL.lease()`` is an ``np.empty``-like callable that remembers
what it handed out; ``lease.release()`` gives all of it back. An array must
not be used after its lease is released.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

Key = tuple[tuple[int, ...], str]


class ArrayPool:
    """Free arrays by ``(shape, dtype)``, at most ``per_key`` of each and ``max_bytes`` in all
    (the least recently returned shapes are dropped first)."""

    def __init__(self, max_bytes: int = 512 << 20, per_key: int = 8):
        self.max_bytes = max_bytes
        self.per_key = per_key
        self._free: OrderedDict[Key, list[np.ndarray]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def take(self, shape, dtype) -> np.ndarray:
        """An uninitialised array: a returned one if the pool has it, else a new one."""
        key = (tuple(int(n) for n in shape), np.dtype(dtype).str)
        with self._lock:
            free = self._free.get(key)
            if free:
                array = free.pop()
                self._bytes -= array.nbytes
                return array
        return np.empty(key[0], dtype)

    def give(self, arrays) -> None:
        """Take arrays back for later calls (those over the limits are left to the garbage collector)."""
        with self._lock:
            for array in arrays:
                key = (array.shape, array.dtype.str)
                if array.nbytes > self.max_bytes or len(self._free.get(key, ())) >= self.per_key:
                    continue
                self._evict(self.max_bytes - array.nbytes)
                self._free.setdefault(key, []).append(array)
                self._free.move_to_end(key)
                self._bytes += array.nbytes

    def _evict(self, budget: int) -> None:
        """Drop the least recently returned arrays until at most ``budget`` bytes are held."""
        while self._bytes > budget:
            key, free = next(iter(self._free.items()))
            if free:
                self._bytes -= free.pop().nbytes
            if not free:
                del self._free[key]

    def lease(self) -> "Lease":
        return Lease(self)

    @property
    def bytes_held(self) -> int:
        return self._bytes


class Lease:
    """``lease(shape, dtype)`` works like ``np.empty`` and remembers the array; ``release()`` returns them all."""

    def __init__(self, pool: ArrayPool):
        self.pool = pool
        self.arrays: list[np.ndarray] = []

    def __call__(self, shape, dtype) -> np.ndarray:
        array = self.pool.take(shape, dtype)
        self.arrays.append(array)
        return array

    def release(self) -> None:
        arrays, self.arrays = self.arrays, []
        self.pool.give(arrays)


POOL = ArrayPool()
"""The pool shared by every ``numpy-lstm`` cell in the process."""

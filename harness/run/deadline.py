"""A time limit on a block of Python code, for ``harness run --cell-timeout`` and each unit of ``harness sweep``.

A cell runs in the run's own process, so it cannot be killed mid-operation
without losing the run. Instead :func:`deadline` raises :class:`CellTimeout`
inside the block once the time is up, and the runner marks the cell
``timeout``, writes its tables and goes on with the next cell.

How, and its limits:

* in the main thread (``harness run``, every sweep unit's own process), with
  ``signal.setitimer``: SIGALRM's handler raises between two Python bytecodes.
  That interrupts Python loops and ``time.sleep``, but not one long call into
  C or CUDA (a huge matmul, a stuck kernel, a blocking read in an extension),
  which finishes first. A sweep's executor kills such a unit from outside
  (``harness/executors/``); ``harness run`` has no one above it to do that.
* in any other thread, with ``PyThreadState_SetAsyncExc``: the exception is
  raised at the next bytecode that thread runs, so even a ``time.sleep``
  finishes first.

Either way the exception is raised again every :data:`REPEAT_S` until the
block is left: one raised inside a finaliser (a ``__del__``, a weakref
callback, which the garbage collector may run at any moment) is printed as
"Exception ignored" and lost, and a one-shot timer would then never stop the
cell.

:class:`CellTimeout` derives from ``BaseException``, as ``KeyboardInterrupt``
does, so that a plugin's ``except Exception`` cannot swallow it.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import signal
import threading
import time
from typing import Iterator


REPEAT_S = 0.5
"""After the time is up, how often :class:`CellTimeout` is raised again until the block is left."""


class CellTimeout(BaseException):
    """Raised inside a :func:`deadline` block when its time is up."""


@contextlib.contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Raise :class:`CellTimeout` inside the block after ``seconds``; ``None`` or infinity: no limit."""
    if seconds is None or not math.isfinite(seconds):
        yield
        return
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        with _alarm(max(float(seconds), 1e-3)):
            yield
    else:
        with _async_exception(max(float(seconds), 1e-3)):
            yield


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    armed = True

    def fire(signum, frame):
        if armed:  # not once the block is left: the alarm may land between its end and the cancel below
            raise CellTimeout(seconds)

    start = time.monotonic()
    previous = signal.signal(signal.SIGALRM, fire)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds, REPEAT_S)
    try:
        yield
    finally:
        armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:  # someone else's alarm was running (pytest-timeout, a notebook's): give it its remaining time
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - start), 1e-3))


@contextlib.contextmanager
def _async_exception(seconds: float) -> Iterator[None]:
    thread = ctypes.c_ulong(threading.get_ident())
    lock = threading.Lock()
    state = {"armed": True, "fired": False}

    left = threading.Event()

    def fire():
        wait = seconds
        while not left.wait(wait):
            with lock:
                if not state["armed"]:
                    return
                ctypes.pythonapi.PyThreadState_SetAsyncExc(thread, ctypes.py_object(CellTimeout))
                state["fired"] = True
            wait = REPEAT_S

    watchdog = threading.Thread(target=fire, name="harness-deadline", daemon=True)
    watchdog.start()
    try:
        yield
    finally:
        with lock:
            state["armed"] = False
            left.set()
            if state["fired"]:  # raised already, or still pending: clear it so that it cannot land after the block
                ctypes.pythonapi.PyThreadState_SetAsyncExc(thread, None)

"""``local``: the default executor, a pool of ``--jobs`` workers on this machine.

Scheduling is ``concurrent.futures.ThreadPoolExecutor``'s; each unit runs in
a process of its own, forked from a ``multiprocessing`` forkserver that has
already imported torch and the harness (a unit starts in well under a second,
not the seconds a fresh interpreter needs).

Why a process per unit rather than a ``ProcessPoolExecutor``: when one of its
workers dies (a segfault in a cell, the kernel's out-of-memory killer), the
process pool breaks and fails *every* pending unit, and cannot say which unit
killed it. Here a dead process is exactly its own unit: that unit is marked
``failed`` with the signal that killed it, and the other units go on. A fresh
process per unit also means no state leaks from one unit to the next, so a
unit gives the same numbers as ``harness run`` alone with the same settings
and thread count.

Ctrl-C: the units' processes are in their own process groups, so the
terminal's SIGINT reaches only the sweep; it forwards one SIGINT to every
running unit (each writes its tables and exits), waits for them, and stops.

Time limit (``ExecutorSettings.unit_timeout``): the unit stops its own run at
the limit (``timeout``, tables written). A unit still running
:data:`KILL_AFTER_S` later is stuck where its own timer cannot reach (one long
call into C or CUDA): its whole process group is killed (SIGKILL, so child
processes it started go too), and it comes back as ``timeout``.
"""

from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Callable, Sequence

from harness.contract.executors import ExecutorSettings, ExecutorSpec, Unit, UnitResult
from harness.contract.hookspecs import hookimpl

INTERRUPTED_EXIT = 130
"""A unit's process exits with this status when it was interrupted (its tables are kept, its result is not)."""
GRACE_S = 60.0
"""How long a unit gets to write its tables after Ctrl-C before it is killed."""
KILL_AFTER_S = 60.0
"""How long past its time limit a unit that has not stopped itself is killed."""
PRELOAD_ALSO = ["torch._dynamo"]
"""Imported once by the forkserver besides ``work``'s module (and so torch and the harness), so that no unit pays
for them: ``torch._dynamo`` is what torch's optimisers import on first use, and costs about as much as torch."""


def _child(work: Callable[[Unit], UnitResult], unit: Unit, conn) -> None:
    """The unit's process: its own process group (the terminal's Ctrl-C goes to the sweep, which forwards it)."""
    os.setpgid(0, 0)
    # The sweep stops a unit with SIGINT. A sweep started in the background ('... &') has SIGINT ignored, and
    # the unit would inherit that and run on; so the unit always takes SIGINT as Ctrl-C.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    result = work(unit)
    conn.send(result)
    conn.close()
    sys.exit(INTERRUPTED_EXIT if result.status == "interrupted" else 0)


def death_reason(exitcode: int | None) -> str:
    """One line for a unit whose process ended without a result."""
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name if -exitcode in signal.valid_signals() else f"signal {-exitcode}"
        hint = " (the out-of-memory killer sends it; check the machine's memory)" if -exitcode == signal.SIGKILL else ""
        return f"the unit's process died: killed by {name}{hint}"
    return f"the unit's process exited with status {exitcode} without a result"


def _kill_group(process) -> None:
    """SIGKILL the unit's process group (its own, from ``_child``), so that what it started goes too."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, TypeError):
        pass
    process.kill()  # in case it died before it made its group


class LocalExecutor:
    """See the module docstring. ``settings.jobs`` units run at once."""

    def __init__(self, settings: ExecutorSettings):
        self.jobs = max(1, settings.jobs)
        self.preload = list(settings.preload)
        self.timeout = settings.unit_timeout
        self.context = multiprocessing.get_context("forkserver")
        self._live: dict[str, multiprocessing.process.BaseProcess] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def _one(self, work: Callable[[Unit], UnitResult], unit: Unit) -> UnitResult:
        if self._stopping.is_set():
            return UnitResult(unit.id, "interrupted", "not started")
        receive, send = self.context.Pipe(duplex=False)
        process = self.context.Process(target=_child, args=(work, unit, send), name=f"harness-unit-{unit.id}")
        process.start()
        send.close()  # the child holds the only writer now: a dead child reads as end-of-file, not a hang
        with self._lock:
            self._live[unit.id] = process
        limit = None if self.timeout is None else self.timeout + KILL_AFTER_S
        result, stuck = None, False
        try:
            if receive.poll(limit):  # a result, or end-of-file when the process died
                result = receive.recv()
            else:
                stuck = True
                _kill_group(process)
        except (EOFError, OSError):
            result = None
        receive.close()
        process.join()
        with self._lock:
            self._live.pop(unit.id, None)
        if stuck:
            return UnitResult(unit.id, "timeout", f"still running {KILL_AFTER_S:g} s past its time limit of "
                              f"{self.timeout:g} s (stuck in a call its own timer cannot interrupt): its processes "
                              "were killed", pid=process.pid or 0)
        if process.exitcode == INTERRUPTED_EXIT or (self._stopping.is_set() and process.exitcode != 0):
            return UnitResult(unit.id, "interrupted", "interrupted by the user (Ctrl-C)")
        if result is None:
            return UnitResult(unit.id, "failed", death_reason(process.exitcode), pid=process.pid or 0)
        # A result came back, so the unit finished and reported: it stands whatever the exit status says. (The
        # forkserver reports 255 when it cannot read a child's status; a busy CI machine saw that once for a unit
        # that had finished and sent its result.)
        return result

    def start(self, work: Callable[[Unit], UnitResult]) -> None:
        """Start the forkserver now: it imports torch, the harness and the plugins while the sweep expands its grid,
        rather than before the first unit."""
        self.context.set_forkserver_preload([work.__module__, *PRELOAD_ALSO, *self.preload])
        multiprocessing.forkserver.ensure_running()
        atexit.unregister(_stop_forkserver)  # registered once, however many sweeps this process runs
        atexit.register(_stop_forkserver)

    def run(self, units: Sequence[Unit], work: Callable[[Unit], UnitResult],
            done: Callable[[UnitResult], None]) -> None:
        self.start(work)  # a no-op when the sweep started it already
        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="harness-unit")
        try:
            futures = [pool.submit(self._one, work, unit) for unit in units]
            for future in as_completed(futures):
                done(future.result())
        except KeyboardInterrupt:
            self._stop(pool)
            raise
        pool.shutdown(wait=True)

    def _stop(self, pool: ThreadPoolExecutor) -> None:
        """Cancel what has not started; ask every running unit to stop (one SIGINT), then wait for it."""
        self._stopping.set()
        pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            running = list(self._live.values())
        for process in running:
            try:
                os.kill(process.pid, signal.SIGINT)
            except (ProcessLookupError, TypeError):
                pass
        for process in running:
            process.join(GRACE_S)
            if process.is_alive():
                process.kill()
                process.join()
        pool.shutdown(wait=True)


def _stop_forkserver() -> None:
    """End the forkserver as this process exits (``atexit``; every unit has ended by then). Left to itself it
    exits after this process, through a full interpreter shutdown with torch loaded (most of a second), holding
    the sweep's stdout and stderr open all the while: whoever reads them (a pipe, ``| tee``, a CI log, a script's
    ``subprocess.run``) would wait that long after the sweep. It holds nothing worth a clean exit, so SIGKILL.
    Until then it stays up, so that further sweeps in the same process (a notebook, the tests) start at once."""
    server = multiprocessing.forkserver._forkserver  # type: ignore[attr-defined]
    pid = getattr(server, "_forkserver_pid", None)  # CPython's own (3.4 to 3.14); absent: let it exit by itself
    if pid is None or not callable(getattr(server, "_stop", None)):
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    server._stop()  # reaps it and removes its socket


@hookimpl
def register_executors(register):
    register(ExecutorSpec(
        name="local",
        description="a pool of --jobs worker processes on this machine (the default)",
        factory=LocalExecutor,
    ))

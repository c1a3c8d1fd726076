"""``ray``: one Ray task per unit, on a running Ray cluster (``--ray-address``) or a local one Ray starts.

Each task asks for ``threads_per_unit`` CPUs and ``--gpus-per-unit`` GPUs
(``0.25`` lets four small runs share a GPU), so Ray's own scheduler decides
where and how many run at once; results are collected with ``ray.wait`` as
they finish. A worker that dies comes back as Ray's error, and its unit is
marked ``failed`` with it. Tasks are never retried by Ray (``max_retries=0``):
``--retry-failed`` is the one, visible way to run a failed unit again.

Every node must have the harness and the plugins installed, and see the sweep
folder at the same path (a shared filesystem), since each unit writes its run
folder there.

Time limit (``ExecutorSettings.unit_timeout``): each unit stops its own run at
the limit (``timeout``, tables written). As a backstop, each task reports to a
small actor when it starts; a task still running :data:`KILL_AFTER_S` past the
limit (stuck in one long C or CUDA call) is cancelled with
``ray.cancel(force=True)``, which kills its worker process, and comes back as
``timeout``. The time counts from the task's start, not from its submission, so
units waiting for a free CPU are never cut short. Processes the unit started
itself are not Ray's to kill.

Needs the ``ray`` extra: ``pip install 'rnn-harness[ray]'``.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

from harness.contract.errors import one_line
from harness.contract.executors import ExecutorSettings, ExecutorSpec, Unit, UnitResult
from harness.contract.hookspecs import hookimpl

INSTALL = "pip install 'rnn-harness[ray]'"
CANCEL_WAIT_S = 60.0
KILL_AFTER_S = 60.0
"""How long past its time limit a task that has not stopped itself is force-cancelled."""


class StartBoard:
    """A Ray actor (no CPU) that notes when each unit's task starts, on its own clock, so that a time limit counts
    from the start of a task, not from its submission."""

    def __init__(self):
        self.starts: dict[str, float] = {}

    def started(self, unit_id: str) -> None:
        self.starts[unit_id] = time.monotonic()

    def overdue(self, seconds: float) -> list[str]:
        now = time.monotonic()
        return [uid for uid, start in self.starts.items() if now - start > seconds]


def _timed(work: Callable[[Unit], UnitResult], unit: Unit, board: Any) -> UnitResult:
    """The task of a unit with a time limit: say it started, then run it."""
    board.started.remote(unit.id)
    return work(unit)


class RayExecutor:
    def __init__(self, settings: ExecutorSettings):
        self.settings = settings

    def _connect(self) -> bool:
        """Join the cluster at ``--ray-address``, or start a local one sized for ``--jobs`` units at a time.
        -> whether this call started Ray (and must shut it down)."""
        import ray

        if ray.is_initialized():
            return False
        quiet = {"log_to_driver": False, "configure_logging": False}
        if self.settings.ray_address:
            ray.init(address=self.settings.ray_address, **quiet)
        else:
            cpus = self.settings.jobs * self.settings.threads_per_unit
            ray.init(num_cpus=cpus, include_dashboard=False, **quiet)
        return True

    def run(self, units: Sequence[Unit], work: Callable[[Unit], UnitResult],
            done: Callable[[UnitResult], None]) -> None:
        import ray

        started = self._connect()
        try:
            resources = {"num_cpus": self.settings.threads_per_unit, "num_gpus": self.settings.gpus_per_unit,
                         "max_retries": 0}
            limit = None if self.settings.unit_timeout is None else self.settings.unit_timeout + KILL_AFTER_S
            if limit is None:
                task, board = ray.remote(work).options(**resources), None
                refs = {task.remote(unit): unit for unit in units}
            else:
                task, board = ray.remote(_timed).options(**resources), ray.remote(num_cpus=0)(StartBoard).remote()
                refs = {task.remote(work, unit, board): unit for unit in units}
            pending = list(refs)
            poll = None if limit is None else min(30.0, max(0.5, limit / 10))
            try:
                while pending:
                    ready, pending = ray.wait(pending, num_returns=1, timeout=poll)
                    for ref in ready:
                        done(self._result(ref, refs[ref]))
                    if board is not None and pending:
                        pending = self._stop_overdue(board, limit, pending, refs, done)
            except KeyboardInterrupt:
                for ref in pending:
                    ray.cancel(ref)  # raises KeyboardInterrupt in a running unit: it writes its tables
                ray.wait(pending, num_returns=len(pending), timeout=CANCEL_WAIT_S)
                raise
        finally:
            if started:
                ray.shutdown()

    def _stop_overdue(self, board, limit: float, pending: list, refs: dict, done) -> list:
        """Force-cancel the tasks that started more than ``limit`` seconds ago; -> the tasks still pending."""
        import ray

        overdue = set(ray.get(board.overdue.remote(limit)))
        still = []
        for ref in pending:
            unit = refs[ref]
            if unit.id not in overdue:
                still.append(ref)
                continue
            ray.cancel(ref, force=True)  # kills the worker process: a call stuck in C cannot stop otherwise
            done(UnitResult(unit.id, "timeout", f"still running {KILL_AFTER_S:g} s past its time limit of "
                            f"{self.settings.unit_timeout:g} s (stuck in a call its own timer cannot interrupt): its "
                            "Ray task was force-cancelled"))
        return still

    @staticmethod
    def _result(ref, unit: Unit) -> UnitResult:
        import ray

        try:
            return ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            return UnitResult(unit.id, "interrupted", "cancelled")
        except ray.exceptions.RayError as exc:  # the worker died, or the node was lost
            return UnitResult(unit.id, "failed", f"the Ray worker died: {one_line(exc)}")


@hookimpl
def register_executors(register):
    register(ExecutorSpec(
        name="ray",
        description="one Ray task per unit, on --ray-address or a local Ray cluster (extra: ray)",
        factory=RayExecutor,
        requires="ray",
        install=INSTALL,
    ))

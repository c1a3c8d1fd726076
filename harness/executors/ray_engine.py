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

Needs the ``ray`` extra: ``pip install 'rnn-harness[ray]'``.
"""

from __future__ import annotations

from typing import Callable, Sequence

from harness.contract.errors import one_line
from harness.contract.executors import ExecutorSettings, ExecutorSpec, Unit, UnitResult
from harness.contract.hookspecs import hookimpl

INSTALL = "pip install 'rnn-harness[ray]'"
CANCEL_WAIT_S = 60.0


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
            task = ray.remote(work).options(num_cpus=self.settings.threads_per_unit,
                                                num_gpus=self.settings.gpus_per_unit, max_retries=0)
            refs = {task.remote(unit): unit for unit in units}
            pending = list(refs)
            try:
                while pending:
                    ready, pending = ray.wait(pending, num_returns=1)
                    for ref in ready:
                        done(self._result(ref, refs[ref]))
            except KeyboardInterrupt:
                for ref in pending:
                    ray.cancel(ref)  # raises KeyboardInterrupt in a running unit: it writes its tables
                ray.wait(pending, num_returns=len(pending), timeout=CANCEL_WAIT_S)
                raise
        finally:
            if started:
                ray.shutdown()

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

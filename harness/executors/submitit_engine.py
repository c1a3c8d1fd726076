"""``submitit``: the units as a Slurm job array, through ``submitit.AutoExecutor``.

On a Slurm cluster the units become one job array (``map_array``), at most
``--jobs`` running at once (Slurm's array parallelism), each job with
``threads_per_unit`` CPUs and ``--gpus-per-unit`` GPUs, in ``--slurm-partition``
for up to ``--slurm-time`` minutes, with any ``--slurm-param KEY=VALUE``
passed to sbatch. submitit's logs and pickles go to ``SWEEP/submitit/``.

Where there is no Slurm, submitit's local executor runs the same code path
(the same ``map_array``, the same pickled unit function) on this machine. It
has no array parallelism of its own, so the units are submitted in arrays of
``--jobs`` at a time. ``--executor local`` is the better engine on a single
machine; this path exists so that a sweep can be tried here exactly as it
will run on the cluster.

Time limit (``ExecutorSettings.unit_timeout``): each unit stops its own run at
the limit (``timeout``, tables written). As a backstop, without
``--slurm-time`` the job's time limit (submitit's ``timeout_min``) is the unit's
limit plus :data:`KILL_AFTER_S`, rounded up to whole minutes, so Slurm (or
submitit's local executor) ends a job stuck in one long C or CUDA call; such a
job, and any job Slurm reports as ``TIMEOUT``, comes back as ``timeout``.
``--slurm-time`` given explicitly wins.

The sweep folder must be on a filesystem the compute nodes see at the same
path. Needs the ``submitit`` extra: ``pip install 'rnn-harness[submitit]'``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from harness.contract.errors import one_line
from harness.contract.executors import ExecutorSettings, ExecutorSpec, Unit, UnitResult
from harness.contract.hookspecs import hookimpl

INSTALL = "pip install 'rnn-harness[submitit]'"
POLL_S = 0.5
DEFAULT_TIME_MIN = 24 * 60
"""The job time limit when neither --slurm-time nor a unit time limit says otherwise."""
KILL_AFTER_S = 60.0
"""How long past the unit's time limit its job's own limit comes (the unit's timer stops it first)."""


def time_limit_min(slurm_time: int | None, unit_timeout: float | None) -> int:
    """The job's time limit in whole minutes: ``--slurm-time`` if given, else the unit's limit plus
    :data:`KILL_AFTER_S`, else :data:`DEFAULT_TIME_MIN`."""
    if slurm_time:
        return int(slurm_time)
    if unit_timeout is not None:
        return max(1, math.ceil((unit_timeout + KILL_AFTER_S) / 60))
    return DEFAULT_TIME_MIN


class SubmititExecutor:
    def __init__(self, settings: ExecutorSettings):
        self.settings = settings

    def executor(self):
        """A configured ``submitit.AutoExecutor`` (Slurm where there is one, else submitit's local executor)."""
        import submitit

        slurm = dict(self.settings.slurm)
        folder = Path(self.settings.folder) / "submitit" / "%j"
        executor = submitit.AutoExecutor(folder=folder, cluster=slurm.get("cluster") or None)
        parameters: dict[str, Any] = {
            "name": "harness-sweep",
            "timeout_min": time_limit_min(slurm.get("time_min"), self.settings.unit_timeout),
            "cpus_per_task": self.settings.threads_per_unit,
            "slurm_array_parallelism": self.settings.jobs,
        }
        if self.settings.gpus_per_unit:
            parameters["gpus_per_node"] = math.ceil(self.settings.gpus_per_unit)
        if slurm.get("partition"):
            parameters["slurm_partition"] = slurm["partition"]
        if slurm.get("additional"):
            parameters["slurm_additional_parameters"] = dict(slurm["additional"])
        executor.update_parameters(**parameters)
        return executor

    def run(self, units: Sequence[Unit], work: Callable[[Unit], UnitResult],
            done: Callable[[UnitResult], None]) -> None:
        executor = self.executor()
        local = executor.cluster != "slurm"
        batch = self.settings.jobs if local else len(units)
        pending: list[tuple[Any, Unit]] = []
        try:
            for start in range(0, len(units), batch):
                chunk = list(units[start:start + batch])
                pending = list(zip(executor.map_array(work, chunk), chunk))
                while pending:
                    still = []
                    for job, unit in pending:
                        if job.done():
                            done(self._result(job, unit))
                        else:
                            still.append((job, unit))
                    pending = still
                    if pending:
                        time.sleep(POLL_S)
        except KeyboardInterrupt:
            for job, _ in pending:
                job.cancel(check=False)  # scancel on Slurm; the local executor interrupts the job's process
            raise

    @staticmethod
    def _result(job, unit: Unit) -> UnitResult:
        try:
            return job.result()
        except Exception as exc:  # the job died, timed out or was cancelled: submitit says which
            try:
                state = str(job.state)
            except Exception:  # the scheduler could not be asked
                state = ""
            if "TIMEOUT" in state.upper():
                return UnitResult(unit.id, "timeout", f"the submitit job {job.job_id} reached its time limit "
                                  f"(state {state}): {one_line(exc)}")
            return UnitResult(unit.id, "failed", f"the submitit job {job.job_id} failed: {one_line(exc)}")


@hookimpl
def register_executors(register):
    register(ExecutorSpec(
        name="submitit",
        description="a Slurm job array through submitit (its local executor where there is no Slurm; extra: submitit)",
        factory=SubmititExecutor,
        requires="submitit",
        install=INSTALL,
    ))

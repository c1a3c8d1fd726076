"""What an executor is: the engine that runs a sweep's units (a local process pool, Ray, Slurm...).

Executors are plugins, registered through the ``register_executors`` hook like
cells and tasks. An executor never decides *what* runs, and knows nothing of
the sweep: it receives units (picklable objects with an ``id``, one run each)
and ``work``, a picklable function that runs one unit in whatever process it
is called and returns its :class:`UnitResult`. The executor calls ``work(unit)``
somewhere and hands every result back as soon as it has it. The distribution
itself (queues, workers, retries of lost machines) is the engine's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence


class Unit(Protocol):
    """What an executor may read of a unit: its id (for names and results). The rest is ``work``'s business."""

    id: str


@dataclass
class UnitResult:
    """What one unit gave: the cell's status and its summary row (``harness.reports.columns.SUMMARY``)."""

    id: str
    status: str
    """The run's status for the cell (ok, diverged, failed, skipped, interrupted, timeout), or failed when the unit's
    process died or the run could not start, or timeout when the executor stopped a unit that ran past
    :attr:`ExecutorSettings.unit_timeout`."""
    reason: str = ""
    row: dict[str, Any] = field(default_factory=dict)
    host: str = ""
    pid: int = 0
    wall_s: float = 0.0


@dataclass(frozen=True)
class ExecutorSettings:
    """What ``harness sweep`` tells an executor, from its command-line options."""

    folder: str
    """The sweep folder (executors may put logs in it)."""
    jobs: int
    """Units that run at once (local) or the array parallelism (Slurm); at least 1."""
    threads_per_unit: int
    """torch and BLAS threads each unit uses, so that units never oversubscribe the cores."""
    gpus_per_unit: float = 0.0
    ray_address: str | None = None
    slurm: Mapping[str, Any] = field(default_factory=dict)
    """``partition``, ``time_min``, ``array_parallelism``, ``cluster`` and ``additional`` (extra Slurm parameters)."""
    options: Mapping[str, str] = field(default_factory=dict)
    """``--executor-opt KEY=VALUE`` pairs, for third-party executors."""
    preload: tuple[str, ...] = ()
    """Modules a worker process may import before its first unit (the plugins' own), so that no unit pays for
    them; an executor that starts its workers ahead of the units (the local forkserver) uses it, others ignore it."""
    unit_timeout: float | None = None
    """Seconds a unit may run (``--unit-timeout``); ``None``: no limit. ``work`` stops its own run at this time (the
    run is marked ``timeout`` and comes back as a normal result), but only between Python operations; an executor
    should stop from outside a unit still running a little after it (one long call into C or CUDA), and hand back
    a ``timeout`` result for it. The built-ins: ``local`` kills the unit's process group, ``ray`` force-cancels the
    task, ``submitit`` sets the Slurm time limit (docs/sweeps.md)."""


class Executor(Protocol):
    """What an executor's factory returns. It may also define ``start(work)``, which the sweep calls as early as it
    can, before it expands the grid, so that the workers start while it does (the local executor starts its
    forkserver there)."""

    def run(self, units: Sequence[Unit], work: Callable[[Any], UnitResult],
            done: Callable[[UnitResult], None]) -> None:
        """Run ``work(unit)`` for every unit; call ``done(result)`` in this process as each one finishes, failed ones
        included. ``work`` is a module-level function (picklable by reference); it never raises for a problem of
        the run itself, which it returns as the result's status.

        A worker that dies must come back as a result with status ``failed`` and the reason. On Ctrl-C,
        stop starting units, let the engine stop the running ones, and re-raise ``KeyboardInterrupt``.
        """


@dataclass(frozen=True)
class ExecutorSpec:
    """Everything the harness needs to know about an executor before building it."""

    name: str
    """``--executor NAME``."""
    description: str
    factory: Callable[[ExecutorSettings], Executor]
    requires: str | None = None
    """The import the executor needs (``"ray"``); when it is missing the sweep stops with :attr:`install`."""
    install: str = ""
    """The one command that installs what is missing, e.g. ``pip install 'rnn-harness[ray]'``."""

    def unavailable_reason(self) -> str | None:
        """One line naming the install command when :attr:`requires` cannot be imported; ``None`` otherwise."""
        if self.requires is None:
            return None
        import importlib.util
        if importlib.util.find_spec(self.requires) is None:
            return f"--executor {self.name} needs the {self.requires} package; install it with: {self.install}"
        return None

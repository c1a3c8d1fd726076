"""The hooks a plugin implements to add cells, tasks and sweep executors to the harness.

A plugin is any importable module (or object) with functions decorated by
:data:`hookimpl`. Third-party packages expose it through the ``harness``
entry-point group::

    [project.entry-points.harness]
    my-cell = "my_package.my_module"

The built-in cells (``cells/``) and tasks (``tasks/``) are registered through
this very group, from this project's own ``pyproject.toml``, and are called
like any plugin's; the one difference is that their names win a clash
(precedence: :mod:`harness.plugins.registry`).

Every hook receives a ``register`` callback and calls it once per thing it
adds. A hook may register nothing (for example when an optional dependency
is missing); it should not raise. If it does, the harness reports the
plugin in one line and carries on without it.

See ``docs/cell-contract.md`` for what a cell module must do.
"""

from __future__ import annotations

from typing import Callable

import pluggy

from harness.contract.cells import CellSpec
from harness.contract.executors import ExecutorSpec
from harness.contract.tasks import TaskSpec

PROJECT_NAME = "harness"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_cells(register: Callable[[CellSpec], None]) -> None:
    """Add recurrent cells.

    Call ``register(CellSpec(...))`` once per cell. The spec names the cell,
    describes it in one line, says which devices, dtypes and layer counts it
    supports, and gives the factory that builds it::

        @hookimpl
        def register_cells(register):
            register(CellSpec(name="my-lstm", description="...", factory=MyLSTM,
                              state_names=("h", "c")))

    :param register: callback taking one :class:`~harness.contract.cells.CellSpec`.
        A name already taken by a plugin earlier in the precedence order (built-ins
        first) is refused with a warning.
    """


@hookspec
def register_tasks(register: Callable[[TaskSpec], None]) -> None:
    """Add tasks (data, loss, metrics and the task-owned input/readout layers).

    Call ``register(TaskSpec(...))`` once per task. The factory receives a
    :class:`~harness.contract.tasks.TaskConfig` and returns a
    :class:`~harness.contract.tasks.Task`.

    :param register: callback taking one :class:`~harness.contract.tasks.TaskSpec`.
    """


@hookspec
def register_executors(register: Callable[[ExecutorSpec], None]) -> None:
    """Add executors: engines that run the units of ``harness sweep`` (``--executor NAME``).

    Call ``register(ExecutorSpec(...))`` once per executor. The factory
    receives the sweep's :class:`~harness.contract.executors.ExecutorSettings` and
    returns an object with ``run(units, work, done)`` (see
    :class:`~harness.contract.executors.Executor`). The built-in ``local``, ``ray``
    and ``submitit`` executors register through this hook too::

        @hookimpl
        def register_executors(register):
            register(ExecutorSpec(name="my-cluster", description="...", factory=MyExecutor,
                                  requires="my_cluster_lib", install="pip install my-cluster-lib"))

    :param register: callback taking one :class:`~harness.contract.executors.ExecutorSpec`.
    """

"""The contract: what a plugin implements (cells, tasks, executors, the hooks) and the vocabulary it may use.

The bottom layer of the harness: nothing here imports the rest of it. Plugin
authors read :mod:`~harness.contract.hookspecs` first, then ``cells``,
``tasks`` or ``executors``; ``errors``, ``seeding`` and ``gates`` are shared
vocabulary. The names below are re-exported for plugins that import them from
``harness.contract``.
"""

from harness.contract.cells import CellSpec, RecurrentCell, State, StateShapes
from harness.contract.tasks import (Batch, Task, TaskConfig, TaskHead, TaskOption, TaskSpec, parse_value,
                                    resolve_task_options)

__all__ = ["Batch", "CellSpec", "RecurrentCell", "State", "StateShapes", "Task", "TaskConfig", "TaskHead", "TaskOption", "TaskSpec",
           "parse_value", "resolve_task_options"]

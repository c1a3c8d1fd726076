"""A benchmarking harness for recurrent cells.

Read top-down: ``hookspecs`` (what plugins implement) -> ``registry`` (finding
them) -> ``runner`` (training every cell on the same data) -> ``gradflow`` and
``throughput`` (measurements) -> ``results`` (tables on disk) -> ``summary``.
"""

from harness.contract import Batch, CellSpec, RecurrentCell, Task, TaskConfig, TaskHead, TaskOption, TaskSpec
from harness import seeding
from harness.errors import HarnessError
from harness.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = [
    "Batch",
    "CellSpec",
    "HarnessError",
    "RecurrentCell",
    "Task",
    "TaskConfig",
    "TaskHead",
    "TaskOption",
    "TaskSpec",
    "hookimpl",
    "seeding",
]

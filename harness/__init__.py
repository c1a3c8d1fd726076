"""A benchmarking harness for recurrent cells.

The package is built in layers, each importing only those below it:

1. ``contract/``: what a plugin implements (cells, tasks, executors, the hooks) and its vocabulary;
2. ``plugins/``: finding, checking and building plugins, and the conformance kit;
3. ``measurements/``: gradient flow, throughput, correctness, the machine;
4. ``reports/``: tables on disk, the summary, figures, comparisons and the regression gate;
5. ``run/``: one run, defined once (settings, training, the run folder);
6. ``sweep/``: many runs over seeds and settings, with confidence intervals;
7. ``executors/``: the engines that run a sweep's units (plugins, like cells);
8. ``commands/`` and ``cli``: the command line.

This module hands plugins the contract's names (``from harness import CellSpec, hookimpl``) and imports
nothing above the contract. ``tests/test_import_layers.py`` holds the package to this order.
"""

from harness.contract import seeding
from harness.contract.cells import CellSpec, RecurrentCell
from harness.contract.errors import HarnessError
from harness.contract.hookspecs import hookimpl
from harness.contract.tasks import Batch, Task, TaskConfig, TaskHead, TaskOption, TaskSpec

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

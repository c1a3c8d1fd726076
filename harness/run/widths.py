"""``--match-params N``: the hidden width at which each cell's model has about N trainable parameters.

A fair comparison of cells gives each the same parameter budget rather than the same width: an LSTM has about four
times an RNN's parameters at one H. The count is the whole model's, the task's head (input encoding, readout) and
the cell, since the head grows with H too. It is computed by building the model on PyTorch's ``meta`` device (no
memory, no arithmetic), falling back to the CPU for a cell that cannot be built there.

The count grows with H, so a binary search over widths (multiples of the cell's ``hidden_multiple``) finds the
nearest one: within :data:`TOLERANCE` of N when some width is, else the nearest reachable, which the caller reports.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.contract.cells import CellSpec
from harness.contract.errors import HarnessError
from harness.contract.tasks import Task
from harness.plugins.model import TaskModel, build_cell

TOLERANCE = 0.02
"""A matched width's count is within 2 % of the target, or the nearest reachable one is reported as such."""
MAX_HIDDEN = 16_384
"""The widest hidden size searched (``--hidden-size``'s own limit)."""


@dataclass(frozen=True)
class Width:
    """The width chosen for one cell, its model's parameter count, and how far that is from the target."""

    cell: str
    hidden_size: int
    params: int
    target: int

    @property
    def off(self) -> float:
        """(params - target) / target."""
        return (self.params - self.target) / self.target

    @property
    def within(self) -> bool:
        return abs(self.off) <= TOLERANCE

    def describe(self) -> str:
        """``lstm H=57: 49,994 parameters (-0.0 %)``, with a note when the target is out of reach."""
        note = "" if self.within else f"; the nearest reachable, beyond the {TOLERANCE:.0%} tolerance"
        return f"{self.cell} H={self.hidden_size}: {self.params:,} parameters ({100 * self.off:+.1f} %){note}"


def param_count(spec: CellSpec, task: Task, hidden_size: int, layers: int = 1, dropout: float = 0.0) -> int:
    """Trainable parameters of ``task``'s head and ``spec``'s cell at ``hidden_size``."""
    def count(device: str) -> int:
        with torch.device(device):
            head = task.make_head(hidden_size)
            model = TaskModel(head, build_cell(spec, head.input_size, hidden_size, layers, dropout))
        return sum(p.numel() for p in model.parameters() if p.requires_grad)
    try:
        return count("meta")
    except Exception:  # a cell that computes its initial weights (NumPy, a kernel) cannot be built on meta
        return count("cpu")


def match_width(spec: CellSpec, task: Task, target: int, layers: int = 1, dropout: float = 0.0) -> Width:
    """The width whose parameter count is nearest ``target`` (ties go to the smaller model).

    :raises HarnessError: the narrowest width already has more than ``target`` parameters (beyond the tolerance).
    """
    step = max(1, getattr(spec, "hidden_multiple", 1))
    counts: dict[int, int] = {}

    def at(k: int) -> int:  # the count at width k * step
        if k not in counts:
            counts[k] = param_count(spec, task, k * step, layers, dropout)
        return counts[k]

    smallest = at(1)
    if smallest > target * (1 + TOLERANCE):
        raise HarnessError(f"--match-params {target}: {spec.name} has {smallest:,} parameters at its narrowest "
                           f"width (H = {step}); give at least {smallest:,}")
    widest = MAX_HIDDEN // step
    lo, hi = 1, 2                   # gallop up from the narrowest width (never build one far wider than needed) ...
    while hi <= widest and at(hi) <= target:
        lo, hi = hi, 2 * hi
    hi = min(hi, widest + 1)        # ... then halve: the last k with at(k) <= target (hi: past it, or past widest)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if at(mid) <= target:
            lo = mid
        else:
            hi = mid
    best = min((k for k in (lo, lo + 1) if k <= widest), key=lambda k: (abs(at(k) - target), k))
    return Width(spec.name, best * step, at(best), target)


def match_widths(specs: list[CellSpec], task: Task, target: int, layers: int = 1,
                 dropout: float = 0.0) -> dict[str, Width]:
    """:func:`match_width` for every cell, by name."""
    return {spec.name: match_width(spec, task, target, layers, dropout) for spec in specs}

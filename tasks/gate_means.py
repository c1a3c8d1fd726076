"""Shared by the tasks' gate tables: a trained model read without training, its gates averaged over hidden units.

Cells report their gates as name -> ``(L, T, B, H)`` (``RecurrentCell.gate_activations``). The tables keep the
top layer, the one the readout sees, averaged over its ``H`` units, under the column names of
:mod:`harness.contract.gates`.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

import torch
from torch import Tensor, nn

from harness.contract import gates as vocabulary


@contextmanager
def inspecting(model: nn.Module) -> Iterator[None]:
    """Evaluation mode (no dropout) and no autograd inside the block; the model's training mode is restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def top_layer_means(cell: nn.Module, x: Tensor, reserved: Iterable[str]) -> dict[str, Tensor]:
    """Each gate's mean over the ``H`` units of the top layer, on the CPU: column -> ``(T, B)``, in vocabulary order.

    :param cell: a cell that implements ``gate_activations`` (name -> ``(L, T, B, H)``).
    :param x: the cell's input ``(T, B, I)``.
    :param reserved: the table's own columns; a gate named like one gets a ``_gate`` suffix
        (:func:`harness.contract.gates.column`).
    """
    means = {vocabulary.column(name, reserved): g[-1].mean(-1).cpu() for name, g in cell.gate_activations(x).items()}
    return {name: means[name] for name in vocabulary.ordered(means)}

"""``numpy-lstm``: an LSTM whose forward and backward through time are written in NumPy.

* :mod:`cells.numpy_lstm.kernel`: the equations, forward and backward side by
  side, NumPy only, plus a finite-difference gradient check
  (``python -m cells.numpy_lstm``).
* :mod:`cells.numpy_lstm.cell`: the torch module (``nn.LSTM``'s parameter
  names and layout), its input checks, and the ``torch.autograd.Function``
  that lets it train like any other cell.
* :mod:`cells.numpy_lstm.threads`: with more than one BLAS thread, the batch
  split into slices that go through the kernel in parallel threads (speed only).
* :mod:`cells.numpy_lstm.pool`: reuse of the large arrays from one call to the
  next (speed only; no result depends on it).

Read ``docs/numpy-lstm.md`` for the equations in both naming schemes, how to
copy weights from ``nn.LSTM``, and the measured speed.
"""

from __future__ import annotations

import torch

from cells.numpy_lstm.cell import NumpyLSTM, NumpyLSTMFunction
from harness import CellSpec, hookimpl

__all__ = ["NumpyLSTM", "NumpyLSTMFunction", "register_cells"]


@hookimpl
def register_cells(register):
    register(CellSpec(
        name="numpy-lstm",
        description="LSTM in NumPy: forward and backward through time by hand, nn.LSTM's weight layout (CPU)",
        factory=NumpyLSTM,
        state_names=("h", "c"),
        devices=("cpu",),
        dtypes=(torch.float32, torch.float64),
        exposes_gates=True,
        whole_sequence=True,
        color="#ff7f0e",  # matplotlib tab10
        reference="lstm",
    ))

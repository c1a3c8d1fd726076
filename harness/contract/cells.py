"""What a cell must provide. Read with ``docs/cell-contract.md``.

Shapes, everywhere in the harness, are time-major:

* ``T`` time steps, ``B`` batch, ``I`` input features, ``H`` hidden units,
  ``L`` stacked layers.
* A cell maps ``x: (T, B, I)`` and an optional state to ``out: (T, B, H)``
  (the top layer's hidden output at every step) and the final state.
* A state is a tuple of tensors, each ``(L, B, H)``, named by
  :attr:`CellSpec.state_names`; ``h`` always comes first. This is exactly
  ``torch.nn.LSTM``'s ``(h, c)`` layout, and ``(h,)`` for an RNN or GRU.
* ``out[t]`` equals the top layer of ``h`` after step ``t``. The harness relies
  on this to measure gradients through the carried state.

A cell may compute step by step or consume the whole sequence in one call
(a fused kernel); the contract is the same. A cell must accept any ``T >= 1``,
so that the harness can unroll it one step per call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

State = tuple[Tensor, ...]
"""A recurrent state: one ``(L, B, H)`` tensor per name in ``CellSpec.state_names``."""

NAME = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")
"""What a cell or task name may be: lower-case letters, digits, '-', '_' and '.'."""
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


class RecurrentCell(nn.Module):
    """Base class for cells. Subclasses implement :meth:`forward`.

    Constructor signature used by the harness (via ``CellSpec.factory``)::

        factory(input_size: int, hidden_size: int, num_layers: int = 1,
                dropout: float = 0.0) -> RecurrentCell

    ``dropout`` is applied between stacked layers (never after the top one),
    as ``torch.nn.LSTM`` does.
    """

    state_names: tuple[str, ...] = ("h",)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = dropout

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Run the sequence.

        :param x: ``(T, B, I)`` inputs.
        :param state: ``None`` (zeros) or a tuple of ``(L, B, H)`` tensors.
        :returns: ``out (T, B, H)`` and the final state, same layout as ``state``.
        """
        raise NotImplementedError

    def initial_state(self, batch_size: int, like: Tensor) -> State:
        """Zeros of shape ``(L, B, H)`` for every state name, on ``like``'s device and dtype."""
        shape = (self.num_layers, batch_size, self.hidden_size)
        return tuple(like.new_zeros(shape) for _ in self.state_names)

    def gate_activations(self, x: Tensor, state: State | None = None) -> dict[str, Tensor]:
        """Per-step gate activations, for cells whose spec sets ``exposes_gates``.

        :returns: name -> ``(L, T, B, H)``. Names come from the vocabulary in
            :mod:`harness.contract.gates` (textbook LSTM: ``input``, ``forget``, ``cell``,
            ``output``; the seeds': ``learn``, ``forget``, ``remember``, ``use``;
            GRU: ``reset``, ``update``, ``candidate``); other names are kept too.
        """
        raise NotImplementedError(f"{type(self).__name__} does not expose gate activations")


@dataclass(frozen=True)
class CellSpec:
    """Everything the harness needs to know about a cell before building it."""

    name: str
    """Unique, lower-case name used on the command line (``--cells NAME``)."""
    description: str
    """One line, shown by ``python -m harness list``."""
    factory: Callable[..., nn.Module]
    """``factory(input_size, hidden_size, num_layers=1, dropout=0.0)`` -> a module following the contract."""
    state_names: tuple[str, ...] = ("h",)
    """Names of the carried state tensors; ``("h", "c")`` for LSTM-like cells."""
    devices: tuple[str, ...] = ("cpu", "cuda")
    """Device types the cell runs on."""
    dtypes: tuple[torch.dtype, ...] = (torch.float32, torch.float64)
    """Parameter/input dtypes the cell supports."""
    max_layers: int | None = None
    """How many layers the factory can stack itself; ``None`` for any. With
    ``1`` the harness stacks single-layer cells (with dropout between them)."""
    exposes_gates: bool = False
    """Whether the module implements :meth:`RecurrentCell.gate_activations`."""
    whole_sequence: bool = False
    """Informational: the cell consumes the whole sequence in one call (a fused kernel)."""
    availability: Callable[[str], str | None] | None = None
    """Optional check ``availability(device_type) -> reason or None``, for needs
    the static fields cannot express (a compiler, an environment switch)."""
    color: str | None = None
    """Optional ``"#rrggbb"`` colour for this cell in every figure; without one, a colour is derived from the name."""
    reference: str | None = None
    """Optional name of a cell that computes the same function from the same parameters (``"lstm"`` for a cell with
    ``nn.LSTM``'s parameter layout). ``harness bench`` checks the cell against it numerically before timing it."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME.match(self.name):
            raise ValueError(f"cell name {self.name!r} must be lower-case letters, digits, '-', '_' or '.'")
        if self.color is not None and not _COLOR.match(str(self.color)):
            raise ValueError(f"cell {self.name!r}: color must be '#rrggbb', got {self.color!r}")
        if not callable(self.factory):
            raise ValueError(f"cell {self.name!r}: factory must be callable")
        if not self.state_names or self.state_names[0] != "h":
            raise ValueError(f"cell {self.name!r}: state_names must start with 'h'")
        if self.max_layers is not None and self.max_layers < 1:
            raise ValueError(f"cell {self.name!r}: max_layers must be >= 1 or None")

    def unavailable_reason(self, device: torch.device, dtype: torch.dtype) -> str | None:
        """Why this cell cannot run on ``device`` with ``dtype``; ``None`` when it can."""
        if device.type not in self.devices:
            return f"{self.name} runs on {', '.join(self.devices)} only, not {device.type}"
        if dtype not in self.dtypes:
            names = ", ".join(str(d).removeprefix("torch.") for d in self.dtypes)
            return f"{self.name} supports {names} only, not {str(dtype).removeprefix('torch.')}"
        if self.availability is not None:
            return self.availability(device.type)
        return None

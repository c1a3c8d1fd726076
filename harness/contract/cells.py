"""What a cell must provide. Read with ``docs/cell-contract.md``.

Shapes, everywhere in the harness, are time-major:

* ``T`` time steps, ``B`` batch, ``I`` input features, ``H`` hidden units,
  ``L`` stacked layers.
* A cell maps ``x: (T, B, I)`` and an optional state to ``out: (T, B, H)``
  (the top layer's hidden output at every step) and the final state.
* A state is a tuple of tensors named by :attr:`CellSpec.state_names`, each
  ``(L, B, ...)``: layers, batch, then the trailing shape the cell declares
  (:meth:`RecurrentCell.state_shapes`; ``(H,)`` unless it says otherwise, which
  is ``torch.nn.LSTM``'s ``(h, c)`` layout, and ``(h,)`` for an RNN or GRU). A
  matrix memory is ``(L, B, heads, d_k, d_v)``, an SSM state ``(L, B, D, N)``.
* ``h`` always comes first and is always ``(L, B, H)``: ``out[t]`` equals the
  top layer of ``h`` after step ``t``. The harness relies on this to measure
  gradients through the carried state.

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
"""A recurrent state: one ``(L, B, *trailing)`` tensor per name in ``CellSpec.state_names``; ``h`` is ``(L, B, H)``."""

StateShapes = dict[str, tuple[int, ...]]
"""State name -> the trailing shape of that state after ``(L, B)``: ``{"h": (H,), "ssm": (D, N)}``."""

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
        :param state: ``None`` (zeros) or a tuple with one ``(L, B, *state_shapes()[name])`` tensor per name.
        :returns: ``out (T, B, H)`` and the final state, same layout as ``state``.
        """
        raise NotImplementedError

    def state_shapes(self) -> StateShapes:
        """The trailing shape of each state after ``(L, B)``, by name: ``(H,)`` for every name unless a
        subclass says otherwise (an SSM state ``(D, N)``, a matrix memory ``(heads, d_k, d_v)``).

        ``h`` must stay ``(H,)``: ``out[t]`` is its top layer. The harness builds zero and random states from
        this declaration and checks every state the cell returns against it.
        """
        return {name: (self.hidden_size,) for name in self.state_names}

    def initial_state(self, batch_size: int, like: Tensor) -> State:
        """Zeros of shape ``(L, B, *state_shapes()[name])`` for every state name, on ``like``'s device and dtype."""
        shapes = self.state_shapes()
        return tuple(like.new_zeros((self.num_layers, batch_size, *shapes[name])) for name in self.state_names)

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
    """Names of the carried state tensors; ``("h", "c")`` for LSTM-like cells. Their shapes come from the
    module's ``state_shapes()`` (``(L, B, H)`` each for a module that has none)."""
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
    h_is_readout: bool = False
    """``True`` when the cell does not read the ``h`` it is given: its output is a readout of its other states
    (Mamba, mLSTM), and ``h`` carries the last output only because the contract asks for it. ``harness bench``
    then does not ask the initial ``h`` for a gradient, and ``||dL/dh_t||`` is the readout's own term alone."""
    hidden_multiple: int = 1
    """``hidden_size`` must be a multiple of this (a cell that splits ``H`` into heads); the conformance kit
    picks sizes that are, and the harness refuses other sizes in one line."""
    requires: tuple[str, ...] = ()
    """Distributions (PyPI names) the cell computes with, e.g. ``("mambapy",)``: ``harness list`` shows each
    with its installed version; a missing one makes the cell unavailable, naming :attr:`install`."""
    install: str = ""
    """The command that installs :attr:`requires`, e.g. ``pip install 'rnn-harness[mamba]'``."""

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
        if isinstance(self.hidden_multiple, bool) or not isinstance(self.hidden_multiple, int) or self.hidden_multiple < 1:
            raise ValueError(f"cell {self.name!r}: hidden_multiple must be a positive integer")
        if isinstance(self.requires, str):
            raise ValueError(f"cell {self.name!r}: requires must be a tuple of distribution names, not a string")

    @property
    def memory_state(self) -> str:
        """The state whose gradient through time the run's summary reports: ``h``, or, for a cell whose ``h`` is a
        readout (:attr:`h_is_readout`), its first other state, where its memory is (mamba: ``ssm``; mlstm: ``C``)."""
        return self.state_names[1] if self.h_is_readout and len(self.state_names) > 1 else "h"

    def missing_requirements(self) -> list[str]:
        """The distributions in :attr:`requires` that are not installed."""
        from importlib import metadata
        missing = []
        for dist in self.requires:
            try:
                metadata.version(dist)
            except metadata.PackageNotFoundError:
                missing.append(dist)
        return missing

    def unavailable_reason(self, device: torch.device, dtype: torch.dtype) -> str | None:
        """Why this cell cannot run on ``device`` with ``dtype``; ``None`` when it can."""
        missing = self.missing_requirements()
        if missing:
            how = f"; install it with: {self.install}" if self.install else ""
            return f"{self.name} needs the package {', '.join(missing)}, which is not installed{how}"
        if device.type not in self.devices:
            return f"{self.name} runs on {', '.join(self.devices)} only, not {device.type}"
        if dtype not in self.dtypes:
            names = ", ".join(str(d).removeprefix("torch.") for d in self.dtypes)
            return f"{self.name} supports {names} only, not {str(dtype).removeprefix('torch.')}"
        if self.availability is not None:
            return self.availability(device.type)
        return None

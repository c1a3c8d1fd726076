"""Base class for hand-written cells that build one layer and let the harness stack them.

``lfru-lstm``, ``mingru`` and ``minlstm`` declare ``max_layers=1`` in their
spec: ``harness.plugins.model.build_cell`` then stacks single layers itself, with
dropout between them in training mode, as the contract asks. What is left to
share is checking what the caller hands in, so that a wrong size or shape
fails in one line that names the fix instead of deep inside a matmul.
"""

from __future__ import annotations

from torch import Tensor

from harness.contract import RecurrentCell, State


class SingleLayerCell(RecurrentCell):
    """One recurrent layer: ``forward(x (T, B, I), state=None | tuple of (1, B, H)) -> out (T, B, H), state``.

    Subclasses set ``cell_name`` (for messages) and ``state_names``, create
    their parameters after ``super().__init__`` and call :meth:`_initial`
    at the top of ``forward``.
    """

    cell_name = "cell"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0):
        name = self.cell_name
        for what, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: {what} must be a positive integer, got {value!r}")
        if num_layers != 1:
            raise ValueError(f"{name} builds one layer, got num_layers={num_layers!r}; stack layers with "
                             f"harness.plugins.model.build_cell(spec, {input_size}, {hidden_size}, "
                             f"layers={num_layers}) "
                             f"(or --layers {num_layers}), which adds the dropout between them")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"{name}: dropout must be a number in [0, 1), got {dropout!r}")
        # One layer has no gap between layers, so dropout has nowhere to go (as in nn.LSTM).
        super().__init__(input_size, hidden_size, 1, float(dropout))

    def _initial(self, x: Tensor, state: State | None) -> tuple[Tensor, ...]:
        """Check ``x`` and ``state``; return the initial state as one ``(B, H)`` tensor per state name."""
        name = self.cell_name
        if not isinstance(x, Tensor) or x.dim() != 3:
            got = f"shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{name}: x must be a (T, B, I) tensor (time-major), got {got}")
        T, B, I = x.shape
        if I != self.input_size:
            raise ValueError(f"{name}: x has {I} features per step (shape {tuple(x.shape)}), but the cell was "
                             f"built with input_size={self.input_size}")
        if T < 1 or B < 1:
            raise ValueError(f"{name}: x needs at least one step and one sequence, got shape {tuple(x.shape)}")
        param = next(self.parameters())
        if x.dtype != param.dtype or x.device != param.device:
            raise TypeError(f"{name}: x is {x.dtype} on {x.device} but the parameters are {param.dtype} on "
                            f"{param.device}; move one of them (cell.to(x.device, x.dtype))")
        expected = (1, B, self.hidden_size)
        if state is None:
            return tuple(x.new_zeros(B, self.hidden_size) for _ in self.state_names)
        n = len(self.state_names)
        if not isinstance(state, (tuple, list)) or len(state) != n:
            raise TypeError(f"{name}: state must be a tuple of {n} tensor(s) {self.state_names}, each (1, B, H) "
                            f"= {expected}, or None; got {type(state).__name__}")
        for what, s in zip(self.state_names, state):
            if not isinstance(s, Tensor) or tuple(s.shape) != expected:
                got = tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__
                raise ValueError(f"{name}: state {what!r} must have shape (1, B, H) = {expected}, got {got}")
            if s.dtype != x.dtype or s.device != x.device:
                raise TypeError(f"{name}: state {what!r} is {s.dtype} on {s.device} but x is {x.dtype} on "
                                f"{x.device}; pass the state in x's dtype and device")
        return tuple(s[0] for s in state)

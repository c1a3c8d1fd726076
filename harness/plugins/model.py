"""Building a cell from its spec, stacking single-layer cells, checking the
contract, and joining a cell to a task's head."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from harness.contract.cells import CellSpec, State
from harness.contract.tasks import TaskHead


class CellContractError(RuntimeError):
    """A cell broke the contract of ``harness.contract``; the message says how."""


class Stacked(nn.Module):
    """Stacks single-layer cells, with dropout between layers (not after the top one).

    State layout is the contract's: each state tensor is ``(L, B, H)``.
    """

    def __init__(self, layers: list[nn.Module], state_names: tuple[str, ...], dropout: float):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.state_names = state_names
        self.num_layers = len(layers)
        self.hidden_size = layers[0].hidden_size
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """x: (T, B, I) -> out (T, B, H), state tuple of (L, B, H)."""
        finals = []
        for i, layer in enumerate(self.layers):
            layer_state = None if state is None else tuple(s[i:i + 1] for s in state)
            x, final = layer(x if i == 0 else self.drop(x), layer_state)
            finals.append(final)
        return x, tuple(torch.cat([f[k] for f in finals]) for k in range(len(self.state_names)))

    def gate_activations(self, x: Tensor, state: State | None = None) -> dict[str, Tensor]:
        gates: dict[str, list[Tensor]] = {}
        for i, layer in enumerate(self.layers):
            layer_state = None if state is None else tuple(s[i:i + 1] for s in state)
            for name, value in layer.gate_activations(x, layer_state).items():
                gates.setdefault(name, []).append(value)
            with torch.no_grad():
                x, _ = layer(x, layer_state)
        return {name: torch.cat(values) for name, values in gates.items()}


def build_cell(spec: CellSpec, input_size: int, hidden_size: int, layers: int = 1, dropout: float = 0.0) -> nn.Module:
    """Call the spec's factory; stack single-layer instances when the cell cannot stack itself."""
    if spec.max_layers is not None and layers > spec.max_layers:
        if spec.max_layers != 1:
            raise CellContractError(f"{spec.name} supports at most {spec.max_layers} layers, {layers} requested")
        parts = [spec.factory(input_size if i == 0 else hidden_size, hidden_size, 1, 0.0) for i in range(layers)]
        cell = Stacked(parts, spec.state_names, dropout)
    else:
        cell = spec.factory(input_size, hidden_size, layers, dropout)
    if not isinstance(cell, nn.Module):
        raise CellContractError(f"{spec.name}: factory returned {type(cell).__name__}, not a torch.nn.Module")
    return cell


def zero_state(spec: CellSpec, layers: int, batch_size: int, hidden_size: int, like: Tensor) -> State:
    """Zeros for every carried state tensor: each ``(L, B, H)``."""
    return tuple(like.new_zeros(layers, batch_size, hidden_size) for _ in spec.state_names)


def check_step_output(spec: CellSpec, out, state, T: int, B: int, H: int, L: int) -> None:
    """Raise :class:`CellContractError` unless ``out`` is ``(T, B, H)`` and ``state`` a tuple of ``(L, B, H)``."""
    if not isinstance(out, Tensor) or tuple(out.shape) != (T, B, H):
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise CellContractError(f"{spec.name} returned output of shape {shape}, expected (T, B, H) = {(T, B, H)}")
    if not isinstance(state, (tuple, list)) or len(state) != len(spec.state_names):
        raise CellContractError(
            f"{spec.name} returned a state of {type(state).__name__} (len {len(state) if isinstance(state, (tuple, list)) else '?'}); "
            f"expected a tuple of {len(spec.state_names)} tensors named {spec.state_names}")
    for name, s in zip(spec.state_names, state):
        if not isinstance(s, Tensor) or tuple(s.shape) != (L, B, H):
            shape = tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__
            raise CellContractError(f"{spec.name} returned state {name!r} of shape {shape}, expected (L, B, H) = {(L, B, H)}")


def _kind(value: Tensor) -> str:
    return "NaN" if torch.isnan(value).any() else "Inf"


def _span(steps: list[int]) -> str:
    """``[2, 3, 4]`` -> ``"t = 2..4"``; ``[3]`` -> ``"t = 3"``; ``[1, 4]`` -> ``"t = 1 ... 4 (2 steps)"``."""
    if len(steps) == 1:
        return f"t = {steps[0]}"
    if steps == list(range(steps[0], steps[-1] + 1)):
        return f"t = {steps[0]}..{steps[-1]}"
    return f"t = {steps[0]} ... {steps[-1]} ({len(steps)} steps)"


def nonfinite_steps(value: Tensor) -> list[int]:
    """The time steps ``t`` of a time-major ``(T, ...)`` tensor that hold a NaN or an Inf."""
    bad = ~torch.isfinite(value.detach().reshape(value.shape[0], -1)).all(dim=1)
    return bad.nonzero().flatten().tolist()


def nonfinite_output(out: Tensor) -> str | None:
    """``None`` when the ``(T, B, H)`` output is finite; else what it holds and where it first appears, e.g.
    ``"the output is NaN from time step t = 2 on (of t = 0..4)"``: a cell computing NaN, named as such, rather
    than a comparison that fails further down and blames something else."""
    steps = nonfinite_steps(out)
    if not steps:
        return None
    first, T = steps[0], out.shape[0]
    where = f"from time step t = {first} on" if steps == list(range(first, T)) else f"first at time step t = {first}"
    return f"the output is {_kind(out[first])} {where} (of t = 0..{T - 1})"


def nonfinite_state(names: tuple[str, ...], state) -> str | None:
    """``None`` when every ``(L, B, H)`` state tensor is finite; else the first that is not, and its layer."""
    for name, s in zip(names, state):
        bad = ~torch.isfinite(s.detach().reshape(s.shape[0], -1)).all(dim=1)
        if bad.any():
            layer = int(bad.nonzero()[0])
            return f"the final state {name!r} is {_kind(s[layer])} (layer {layer})"
    return None


def nonfinite_gradient(label: str, grad: Tensor, time_major: bool) -> str | None:
    """``None`` when ``grad`` is finite; else e.g. ``"the gradient of input is NaN at time steps t = 0..5 (of
    t = 0..5)"`` for a time-major ``(T, ...)`` gradient, or ``"the gradient of parameter 'u.weight' is Inf"``."""
    if torch.isfinite(grad).all():
        return None
    if not time_major:
        return f"the {label} is {_kind(grad)}"
    steps = nonfinite_steps(grad)
    return (f"the {label} is {_kind(grad)} at time step{'s' if len(steps) > 1 else ''} {_span(steps)} "
            f"(of t = 0..{grad.shape[0] - 1})")


def verify_cell(spec: CellSpec, cell: nn.Module, input_size: int, hidden_size: int, layers: int,
                device: torch.device, dtype: torch.dtype) -> None:
    """A quick contract check on a tiny batch before training (shapes, finite values, state passing, top-layer
    output)."""
    T, B = 3, 2
    x = torch.randn(T, B, input_size, device=device, dtype=dtype)
    was_training = cell.training
    cell.eval()  # dropout between layers would make the two-call comparison random
    try:
        _verify(spec, cell, x, hidden_size, layers)
    finally:
        cell.train(was_training)


def _verify(spec: CellSpec, cell: nn.Module, x: Tensor, hidden_size: int, layers: int) -> None:
    T, B = x.shape[:2]
    with torch.no_grad():
        out, state = cell(x, None)
        check_step_output(spec, out, state, T, B, hidden_size, layers)
        problem = nonfinite_output(out) or nonfinite_state(spec.state_names, state)
        if problem:  # named here: the comparisons below would fail too, and blame the layout
            finite = "" if problem.startswith("the output") else " while the output is finite"
            raise CellContractError(f"{spec.name}: {problem}{finite}, on a finite random input at initialisation")
        if not torch.allclose(out[-1], state[0][-1], atol=1e-5, rtol=1e-4):
            raise CellContractError(f"{spec.name}: out[-1] differs from the top layer of the final h state")
        out2, _ = cell(x[:1], None)
        out3, _ = cell(x[1:], tuple(s for s in cell(x[:1], None)[1]))
        if not torch.allclose(torch.cat([out2, out3]), out, atol=1e-4, rtol=1e-3):
            raise CellContractError(f"{spec.name}: running the sequence in two calls, passing the state, "
                                    "gives different outputs than one call")


class TaskModel(nn.Module):
    """``head.embed -> cell -> head.readout``. The task owns the head; the plugin owns the cell."""

    def __init__(self, head: TaskHead, cell: nn.Module):
        super().__init__()
        self.head = head
        self.cell = cell

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.cell(self.head.embed(x))
        return self.head.readout(out)

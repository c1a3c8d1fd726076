"""Building a cell from its spec, stacking single-layer cells, checking the
contract, and joining a cell to a task's head."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from harness.contract.cells import CellSpec, RecurrentCell, State, StateShapes
from harness.contract.tasks import TaskHead


class CellContractError(RuntimeError):
    """A cell broke the contract of ``harness.contract``; the message says how."""


def declared_state_shapes(module: nn.Module, state_names: tuple[str, ...], hidden_size: int,
                          cell_name: str = "cell") -> StateShapes:
    """What ``module.state_shapes()`` declares (name -> trailing shape after ``(L, B)``), or ``(H,)`` for every
    name when the module has no such method (a plain ``nn.Module`` plugin), checked against the contract.

    :raises CellContractError: names other than ``state_names``, a shape that is not a tuple of positive
        integers, or an ``h`` that is not ``(H,)``; one line naming the state.
    """
    method = getattr(module, "state_shapes", None)
    if not callable(method) or getattr(type(module), "state_shapes", None) is RecurrentCell.state_shapes:
        # nothing declared (RecurrentCell's default reads the class's state_names, which a spec may extend)
        return {name: (hidden_size,) for name in state_names}
    declared = method()
    if not isinstance(declared, dict) or set(declared) != set(state_names):
        got = sorted(declared) if isinstance(declared, dict) else type(declared).__name__
        raise CellContractError(f"{cell_name}: state_shapes() must name exactly the states {state_names}, got {got}")
    shapes = {}
    for name in state_names:
        shape = declared[name]
        if (not isinstance(shape, (tuple, list)) or not shape
                or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)):
            raise CellContractError(f"{cell_name}: state_shapes() gives state {name!r} the shape {shape!r}; "
                                    "write a tuple of positive integers (the trailing shape after (L, B))")
        shapes[name] = tuple(shape)
    if shapes["h"] != (hidden_size,):
        raise CellContractError(f"{cell_name}: state_shapes() declares h as {shapes['h']}, but h must be (H,) = "
                                f"{(hidden_size,)}: out[t] is the top layer of h")
    return shapes


def state_shapes(spec: CellSpec, cell: nn.Module, hidden_size: int) -> StateShapes:
    """The trailing shape of each of ``spec``'s states for the built ``cell``; see :func:`declared_state_shapes`."""
    return declared_state_shapes(cell, spec.state_names, hidden_size, spec.name)


class Stacked(nn.Module):
    """Stacks single-layer cells, with dropout between layers (not after the top one).

    State layout is the contract's: each state tensor is ``(L, B, ...)``, the layers' own states joined along L,
    so every layer must declare the same state shapes.
    """

    def __init__(self, layers: list[nn.Module], state_names: tuple[str, ...], dropout: float):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.state_names = state_names
        self.num_layers = len(layers)
        self.hidden_size = layers[0].hidden_size
        self.drop = nn.Dropout(dropout)

    def state_shapes(self) -> StateShapes:
        """The layers' declared state shapes (``(H,)`` each for layers that declare none), the same for all."""
        shapes = [declared_state_shapes(layer, self.state_names, self.hidden_size) for layer in self.layers]
        for i, other in enumerate(shapes[1:], start=1):
            if other != shapes[0]:
                raise CellContractError(f"stacked layers declare different state shapes: layer 0 {shapes[0]}, "
                                        f"layer {i} {other}; a layer's state shapes must not depend on its input size")
        return shapes[0]

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """x: (T, B, I) -> out (T, B, H), state tuple of (L, B, ...)."""
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
    if hidden_size % spec.hidden_multiple:
        raise CellContractError(f"{spec.name} needs a hidden size that is a multiple of {spec.hidden_multiple}, "
                                f"got {hidden_size}; use e.g. --hidden-size "
                                f"{max(spec.hidden_multiple, hidden_size - hidden_size % spec.hidden_multiple)}")
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


def zero_state(spec: CellSpec, layers: int, batch_size: int, hidden_size: int, like: Tensor,
               shapes: StateShapes | None = None) -> State:
    """Zeros for every carried state tensor: each ``(L, B, *shapes[name])`` (``(L, B, H)`` without ``shapes``)."""
    return tuple(like.new_zeros((layers, batch_size, *(shapes[n] if shapes else (hidden_size,))))
                 for n in spec.state_names)


def check_step_output(spec: CellSpec, out, state, T: int, B: int, H: int, L: int,
                      shapes: StateShapes | None = None) -> None:
    """Raise :class:`CellContractError` unless ``out`` is ``(T, B, H)`` and ``state`` a tuple with one
    ``(L, B, *shapes[name])`` tensor per name (``(L, B, H)`` each without ``shapes``)."""
    if not isinstance(out, Tensor) or tuple(out.shape) != (T, B, H):
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise CellContractError(f"{spec.name} returned output of shape {shape}, expected (T, B, H) = {(T, B, H)}")
    if not isinstance(state, (tuple, list)) or len(state) != len(spec.state_names):
        raise CellContractError(
            f"{spec.name} returned a state of {type(state).__name__} (len {len(state) if isinstance(state, (tuple, list)) else '?'}); "
            f"expected a tuple of {len(spec.state_names)} tensors named {spec.state_names}")
    for name, s in zip(spec.state_names, state):
        trailing = shapes[name] if shapes else (H,)
        expected = (L, B, *trailing)
        if not isinstance(s, Tensor) or tuple(s.shape) != expected:
            shape = tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__
            if trailing == (H,):
                raise CellContractError(f"{spec.name} returned state {name!r} of shape {shape}, "
                                        f"expected (L, B, H) = {expected}")
            raise CellContractError(f"{spec.name} returned state {name!r} of shape {shape}, but its state_shapes() "
                                    f"declares (L, B, {', '.join(map(str, trailing))}) = {expected}")


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
    """``None`` when every ``(L, B, ...)`` state tensor is finite; else the first that is not, and its layer."""
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
    shapes = state_shapes(spec, cell, hidden_size)
    with torch.no_grad():
        out, state = cell(x, None)
        check_step_output(spec, out, state, T, B, hidden_size, layers, shapes)
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

    def forward_with_state(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """``forward`` from ``state`` (``None``: zeros), also returning the cell's final state (each ``(L, B, H)``),
        for tasks that carry the state from batch to batch (``Task.carries_state``)."""
        out, final = self.cell(self.head.embed(x), state)
        return self.head.readout(out), tuple(final)

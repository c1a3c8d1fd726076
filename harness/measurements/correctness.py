"""The correctness gate of ``harness bench``: a cell is checked at the very shape it is about to be timed at.

A fast kernel that computes the wrong thing must not get a good number. Before
timing, :func:`check` runs the cell once forward and backward on a random input
and a random non-zero initial state, and verifies:

1. the contract: ``out`` is ``(T, B, H)`` and the state a tuple of ``(L, B, ...)``
   tensors of the shapes the cell declares (``(L, B, H)`` unless its ``state_shapes()``
   says otherwise), all of the input's dtype; ``out[-1]`` equals the top layer of ``h``;
   every output and every gradient is finite (else the message says NaN or Inf,
   and at which time steps t); the input, the initial state and
   every trainable parameter receive a gradient (except the initial ``h`` of a
   cell whose spec sets ``h_is_readout``: such a cell does not read it);
2. when the spec names a ``reference`` cell (``CellSpec.reference``): the same
   computation by the reference, with the cell's weights copied into it and
   on the inputs as rounded to the cell's dtype, in float64 on the cell's
   device where the reference supports them (else float32, else the CPU). The error of each compared
   tensor (output, final states, gradients of input, initial state and every
   parameter) is ``max |cell - reference| / max(1, max |reference|)``; the
   largest must not exceed :data:`TOLERANCE` for the cell's dtype.

Weights are copied by parameter name, allowing one side a leading module
prefix (``lstm`` keeps ``nn.LSTM``'s parameters under ``rnn.``, so its
``rnn.weight_ih_l0`` takes ``numpy-lstm``'s ``weight_ih_l0``); failing that,
in order, when both have as many parameters of the same shapes (a stack of
single-layer cells built by the harness). Otherwise the cell is incorrect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from harness.contract.cells import CellSpec
from harness.plugins.model import (CellContractError, build_cell, check_step_output, nonfinite_gradient,
                                   nonfinite_output, nonfinite_state, state_shapes)

TOLERANCE: dict[torch.dtype, float] = {
    torch.float64: 1e-9,
    torch.float32: 1e-3,   # loose enough for TF32 matmuls at bench sizes; a wrong gate errs by ~0.1 or more
    torch.float16: 5e-2,
    torch.bfloat16: 1e-1,
}
"""Largest allowed error against the reference, per dtype of the cell (see the module docstring)."""

PASSED, INCORRECT = "passed", "incorrect"


class Incorrect(Exception):
    """The cell breaks its contract or disagrees with its reference; the message says where and by how much."""

    def __init__(self, message: str, error: float = math.nan):
        super().__init__(message)
        self.error = error


@dataclass(frozen=True)
class Verdict:
    """The gate's result at one shape: what ``bench.csv`` records in its ``gate*`` columns."""

    gate: str
    """``passed`` or ``incorrect``."""
    reference: str = ""
    """The cell compared against; empty when the spec names none (contract checks only)."""
    error: float = math.nan
    """The largest error found against the reference; NaN without one."""
    tolerance: float = math.nan
    reason: str = ""


def tolerance(dtype: torch.dtype) -> float:
    return TOLERANCE.get(dtype, TOLERANCE[torch.float32])


def check(spec: CellSpec, T: int, B: int, I: int, H: int, layers: int, device: torch.device, dtype: torch.dtype,
          reference: CellSpec | None = None, seed: int = 0) -> Verdict:
    """Check ``spec`` at one shape; see the module docstring.

    :param reference: the spec named by ``spec.reference`` (``None``: contract checks only).
    :returns: the verdict. An exception raised inside the cell propagates: that is a failure, not a wrong result.
    """
    tol = tolerance(dtype)
    ref_name = reference.name if reference is not None else ""
    torch.manual_seed(seed)
    cell = build_cell(spec, I, H, layers).to(device=device, dtype=dtype)
    try:
        try:
            shapes = state_shapes(spec, cell, H)
        except CellContractError as exc:
            raise Incorrect(str(exc)) from None
        inputs = _inputs(spec, T, B, I, H, layers, seed, shapes)
        mine = _checked_results(spec, cell, inputs, device, dtype, (T, B, H, layers), tol, shapes)
        if reference is None:
            return Verdict(PASSED, tolerance=tol)
        theirs = _reference_results(spec, cell, reference, inputs, dtype, (I, H, layers), device)
        error, where = _largest_error(spec, reference, mine, theirs)
    except Incorrect as exc:
        return Verdict(INCORRECT, ref_name, exc.error, tol, str(exc))
    if not error <= tol:  # NaN fails too
        return Verdict(INCORRECT, ref_name, error, tol, f"{spec.name}: the {where} differs from {ref_name}'s by "
                       f"{error:.3g} (largest scaled error; the tolerance for {_name(dtype)} is {tol:g})")
    return Verdict(PASSED, ref_name, error, tol)


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _inputs(spec: CellSpec, T: int, B: int, I: int, H: int, layers: int, seed: int,
            shapes: dict[str, tuple[int, ...]]) -> dict[str, Tensor]:
    """Float64 input, non-zero initial state (each ``(L, B, *shapes[name])``) and the objective's random weights,
    from their own generator."""
    gen = torch.Generator().manual_seed(seed + 1)
    names = spec.state_names
    return {"x": torch.randn(T, B, I, generator=gen, dtype=torch.float64),
            **{f"state {n}": torch.randn(layers, B, *shapes[n], generator=gen, dtype=torch.float64) * 0.5
               for n in names},
            "w out": torch.randn(T, B, H, generator=gen, dtype=torch.float64),
            **{f"w {n}": torch.randn(layers, B, *shapes[n], generator=gen, dtype=torch.float64) for n in names}}


def _forward(spec: CellSpec, module: nn.Module, inputs: dict[str, Tensor], device: torch.device, dtype: torch.dtype):
    """-> ``out``, the final state as returned, the leaves to differentiate by name, and the inputs on the device."""
    on = {k: v.to(device=device, dtype=dtype) for k, v in inputs.items()}
    x = on["x"].requires_grad_(True)
    state = tuple(on[f"state {n}"].requires_grad_(True) for n in spec.state_names)
    out, final = module(x, state)
    leaves = [("input", x), *((f"initial {n}", s) for n, s in zip(spec.state_names, state)),
              *((f"parameter {n}", p) for n, p in module.named_parameters() if p.requires_grad)]
    return out, final, leaves, on


def _gradients(spec: CellSpec, outputs: dict[str, Tensor], leaves, on: dict[str, Tensor]) -> dict[str, Tensor | None]:
    """Gradients of ``sum(out * w) + sum(state_T * w')`` (fixed random ``w``), by leaf name."""
    objective = (outputs["output"] * on["w out"]).sum() + sum(
        (outputs[f"final {n}"] * on[f"w {n}"]).sum() for n in spec.state_names)
    grads = torch.autograd.grad(objective, [t for _, t in leaves], allow_unused=True)
    return {f"gradient of {name}": grad for (name, _), grad in zip(leaves, grads)}


def _checked_results(spec: CellSpec, cell: nn.Module, inputs: dict[str, Tensor], device: torch.device,
                     dtype: torch.dtype, shape: tuple[int, int, int, int], tol: float,
                     shapes: dict[str, tuple[int, ...]]) -> dict[str, Tensor]:
    """The cell's outputs and gradients by name, after the contract checks (:class:`Incorrect` when one fails)."""
    T, B, H, layers = shape
    out, final, leaves, on = _forward(spec, cell, inputs, device, dtype)
    try:
        check_step_output(spec, out, final, T, B, H, layers, shapes)
    except CellContractError as exc:
        raise Incorrect(str(exc)) from None
    outputs = {"output": out, **{f"final {n}": s for n, s in zip(spec.state_names, final)}}
    for name, value in outputs.items():
        if value.dtype != dtype:
            raise Incorrect(f"{spec.name}: the {name} is {_name(value.dtype)}, but the input was {_name(dtype)}")
    problem = nonfinite_output(out) or nonfinite_state(spec.state_names, final)
    if problem:
        raise Incorrect(f"{spec.name}: {problem}")
    top_h = outputs["final h"][-1].detach().double()
    gap = (out[-1].detach().double() - top_h).abs().max().item()
    if not gap <= tol * max(1.0, top_h.abs().max().item()):
        raise Incorrect(f"{spec.name}: out[-1] differs from the top layer of the final h by {gap:.3g}", gap)
    grads = _gradients(spec, outputs, leaves, on)
    if spec.h_is_readout and grads.get("gradient of initial h", 0) is None:
        grads["gradient of initial h"] = torch.zeros_like(on["state h"])  # not read by design: its gradient is 0
    for name, grad in grads.items():
        if grad is None:
            raise Incorrect(f"{spec.name}: the {name.removeprefix('gradient of ')} got no gradient")
        problem = nonfinite_gradient(name, grad, time_major=name == "gradient of input")
        if problem:
            raise Incorrect(f"{spec.name}: {problem}")
    return {**{k: v.detach() for k, v in outputs.items()}, **grads}


def _reference_results(spec: CellSpec, cell: nn.Module, reference: CellSpec, inputs: dict[str, Tensor],
                       dtype: torch.dtype, sizes: tuple[int, int, int], device: torch.device) -> dict[str, Tensor]:
    """The reference's outputs and gradients on the cell's weights and on the inputs as the cell's dtype rounded
    them, named as the cell's are; in float64 (on the cell's device) where the reference supports it."""
    I, H, layers = sizes
    setting = reference_setting(reference, device)
    if setting is None:
        raise Incorrect(f"{spec.name}: its reference {reference.name} cannot run here")
    ref_device, ref_dtype = setting
    ref = build_cell(reference, I, H, layers).to(device=ref_device, dtype=ref_dtype)
    mapping = copy_parameters(cell, ref, spec.name, reference.name)
    rounded = {k: v.to(dtype).to(torch.float64) for k, v in inputs.items()}
    out, final, leaves, on = _forward(reference, ref, rounded, ref_device, ref_dtype)
    outputs = {"output": out, **{f"final {n}": s for n, s in zip(reference.state_names, final)}}
    grads = _gradients(reference, outputs, leaves, on)
    renamed = {}
    for name, grad in grads.items():
        prefix = "gradient of parameter "
        if name.startswith(prefix):
            name = prefix + mapping[name.removeprefix(prefix)]
        renamed[name] = grad
    return {**{k: v.detach() for k, v in outputs.items()}, **renamed}


def reference_setting(reference: CellSpec, device: torch.device) -> tuple[torch.device, torch.dtype] | None:
    """Where the reference runs: the cell's device, else the CPU; in float64, else float32. ``None``: nowhere."""
    for where in dict.fromkeys([device, torch.device("cpu")]):
        for dtype in (torch.float64, torch.float32):
            if reference.unavailable_reason(where, dtype) is None:
                return where, dtype
    return None


def _largest_error(spec: CellSpec, reference: CellSpec, mine: dict[str, Tensor], theirs: dict[str, Tensor]
                   ) -> tuple[float, str]:
    """``max |mine - theirs| / max(1, max |theirs|)`` over every tensor, and which tensor it was."""
    worst, where = 0.0, "output"
    for label, value in mine.items():
        other = theirs.get(label)
        if other is None:
            raise Incorrect(f"{spec.name}: {reference.name} has no counterpart for the {label}")
        other = other.to("cpu", torch.float64)
        if tuple(other.shape) != tuple(value.shape):
            raise Incorrect(f"{spec.name}: the {label} has shape {tuple(value.shape)}, {reference.name}'s "
                            f"{tuple(other.shape)}")
        err = (value.to("cpu", torch.float64) - other).abs().max().item() / max(1.0, other.abs().max().item())
        if not err <= worst:  # NaN counts as the worst
            worst, where = err, label
    return worst, where


def _name_map(cell: nn.Module, ref: nn.Module) -> dict[str, str]:
    """Reference parameter name -> the cell's: by name up to a leading module prefix on either side; failing
    that, in order, when both have as many parameters with the same shapes (a stack of single-layer cells,
    ``layers.1.weight_ih_l0``, against ``nn.LSTM``'s ``weight_ih_l1``)."""
    mine = {n: tuple(p.shape) for n, p in cell.named_parameters() if p.requires_grad}
    theirs = {n: tuple(p.shape) for n, p in ref.named_parameters() if p.requires_grad}
    mapping, problem = {}, ""
    for t in theirs:
        matches = [m for m in mine if m == t or t.endswith("." + m) or m.endswith("." + t)]
        if len(matches) != 1:
            problem = (f"{'no' if not matches else 'more than one'} parameter of the cell matches the "
                       f"reference's {t!r} (the cell's: {', '.join(mine) or 'none'})")
            break
        mapping[t] = matches[0]
    unmatched = sorted(set(mine) - set(mapping.values()))
    if not problem and unmatched:
        problem = f"the reference has no parameter for the cell's {', '.join(unmatched)}"
    if not problem:
        return mapping
    if list(mine.values()) == list(theirs.values()):
        return dict(zip(theirs, mine))
    raise Incorrect(problem)


def copy_parameters(cell: nn.Module, ref: nn.Module, cell_name: str = "cell", ref_name: str = "reference"
                    ) -> dict[str, str]:
    """Copy ``cell``'s trainable parameters into ``ref``; -> reference name -> cell name.

    :raises Incorrect: the names (up to a leading module prefix) or shapes do not correspond one to one.
    """
    mine = dict(cell.named_parameters())
    try:
        mapping = _name_map(cell, ref)
    except Incorrect as exc:
        raise Incorrect(f"{cell_name}: cannot copy its weights into {ref_name}, its declared reference: {exc}") from None
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name not in mapping:
                continue
            source = mine[mapping[name]]
            if tuple(source.shape) != tuple(p.shape):
                raise Incorrect(f"{cell_name}: parameter {mapping[name]!r} has shape {tuple(source.shape)}, "
                                f"{ref_name}'s {name!r} {tuple(p.shape)}")
            p.copy_(source.detach().to(device=p.device, dtype=p.dtype))
    return mapping

"""Conformance kit: import it in your plugin's own pytest to check a cell against the contract.

    from harness.testing import check_cell

    def test_my_cell_conforms():
        check_cell(MY_SPEC)            # raises ConformanceError naming what is wrong

Each ``check_*`` function raises :class:`ConformanceError` with a readable
message, or returns ``None``. :func:`check_cell` runs them all on the CPU at
tiny sizes, in float64 where the cell supports it (finite differences need it),
and on CUDA too when the cell declares it and a GPU is visible. An exception
raised inside the cell during a check is reported the same way, naming the check.
"""

from __future__ import annotations

import functools
from typing import Callable

import torch
from torch import Tensor, nn

from harness.contract.cells import CellSpec, RecurrentCell, StateShapes
from harness.plugins.model import (CellContractError, build_cell, check_step_output, nonfinite_gradient,
                                   nonfinite_output, nonfinite_state, state_shapes)


class ConformanceError(AssertionError):
    """A cell does not follow the contract; the message says which rule and how it failed."""


def _explained(what: str):
    """Turn anything a check did not anticipate (a cell raising mid-check) into a ConformanceError saying
    which check and which call failed, instead of a bare traceback from inside the plugin."""
    def wrap(check):
        @functools.wraps(check)
        def run(spec, *args, **kwargs):
            try:
                return check(spec, *args, **kwargs)
            except ConformanceError:
                raise
            except Exception as exc:
                name = getattr(spec, "name", spec)
                first = (str(exc).strip().splitlines() or [""])[0]
                raise ConformanceError(f"{name}: {what}: the cell raised {type(exc).__name__}: {first}") from exc
        return run
    return wrap


def _check_like(spec: CellSpec, what: str, x: Tensor, out: Tensor, state) -> None:
    """Outputs must keep the input's dtype and device."""
    for name, t in [("output", out), *((f"state {n!r}", s) for n, s in zip(spec.state_names, state))]:
        if t.dtype != x.dtype or t.device != x.device:
            raise ConformanceError(f"{spec.name}: {what}: {name} is {t.dtype} on {t.device}, but the input was "
                                   f"{x.dtype} on {x.device}; return tensors of the input's dtype and device")


def _build(spec: CellSpec, input_size: int, hidden_size: int, layers: int, dtype: torch.dtype, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    try:
        cell = build_cell(spec, input_size, hidden_size, layers, 0.0)
    except CellContractError as exc:
        raise ConformanceError(str(exc)) from None
    except Exception as exc:
        raise ConformanceError(f"{spec.name}: factory({input_size}, {hidden_size}, {layers}, 0.0) raised "
                               f"{type(exc).__name__}: {exc}") from exc
    return cell.to(dtype=dtype).eval()


def _dtype_for(spec: CellSpec) -> torch.dtype:
    return torch.float64 if torch.float64 in spec.dtypes else spec.dtypes[0]


def _hidden(spec: CellSpec, hidden_size: int) -> int:
    """``hidden_size`` rounded up to the spec's ``hidden_multiple`` (a cell with heads needs whole heads)."""
    m = spec.hidden_multiple
    return -(-hidden_size // m) * m


def _shapes(spec: CellSpec, cell: nn.Module, hidden_size: int) -> StateShapes:
    """The cell's declared state shapes; a bad declaration is a :class:`ConformanceError`."""
    try:
        return state_shapes(spec, cell, hidden_size)
    except CellContractError as exc:
        raise ConformanceError(str(exc)) from None


@_explained("checking shapes and state passing")
def check_shapes_and_state(spec: CellSpec, *, input_size: int = 3, hidden_size: int = 4, layers: int = 1,
                           T: int = 5, B: int = 2) -> None:
    """Output ``(T, B, H)``; state a tuple with one ``(L, B, *declared)`` tensor per name (``(L, B, H)`` unless the
    module's ``state_shapes()`` says otherwise); ``out[t]`` equals the top-layer ``h``; a sequence split in two
    calls (state passed along) equals one call; a given initial state is used."""
    dtype = _dtype_for(spec)
    hidden_size = _hidden(spec, hidden_size)
    cell = _build(spec, input_size, hidden_size, layers, dtype)
    shapes = _shapes(spec, cell, hidden_size)
    x = torch.randn(T, B, input_size, dtype=dtype, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        try:
            out, state = cell(x)
            check_step_output(spec, out, state, T, B, hidden_size, layers, shapes)
        except CellContractError as exc:
            raise ConformanceError(str(exc)) from None
        _check_like(spec, "forward", x, out, state)
        problem = nonfinite_output(out) or nonfinite_state(spec.state_names, state)
        if problem:  # named as such: every comparison below would fail too, and blame something else
            finite = "" if problem.startswith("the output") else " while the output is finite"
            raise ConformanceError(f"{spec.name}: {problem}{finite}, on a finite random input")
        if not torch.allclose(out[-1], state[0][-1], atol=1e-6, rtol=1e-5):
            raise ConformanceError(f"{spec.name}: out[-1] must equal the top layer of the final h state "
                                   f"(max difference {(out[-1] - state[0][-1]).abs().max().item():.3g})")
        k = T // 2
        first, mid_state = cell(x[:k])
        second, end_state = cell(x[k:], tuple(mid_state))
        joined = torch.cat([first, second])
        if not torch.allclose(joined, out, atol=1e-6, rtol=1e-5):
            raise ConformanceError(f"{spec.name}: running steps 0..{k - 1} then {k}..{T - 1} with the state passed "
                                   f"along differs from one call (max difference {(joined - out).abs().max().item():.3g}); "
                                   "is the initial state ignored?")
        for name, a, b in zip(spec.state_names, end_state, state):
            if not torch.allclose(a, b, atol=1e-6, rtol=1e-5):
                raise ConformanceError(f"{spec.name}: final state {name!r} differs when the sequence is split in two calls")
        shifted = tuple(s + 0.5 for s in state)
        out_shifted, _ = cell(x, shifted)
        if torch.allclose(out_shifted, out):
            raise ConformanceError(f"{spec.name}: a non-zero initial state does not change the output; "
                                   "the cell must use the state it is given")
        one_step, _ = cell(x[:1])
        if tuple(one_step.shape) != (1, B, hidden_size):
            raise ConformanceError(f"{spec.name}: a T=1 call returned shape {tuple(one_step.shape)}; "
                                   "the harness unrolls one step per call to measure gradients")


@_explained("checking gradients against finite differences")
def check_gradients(spec: CellSpec, *, input_size: int = 2, hidden_size: int = 3, layers: int = 1, T: int = 3,
                    B: int = 2, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3) -> None:
    """The gradients the cell returns (inputs, initial state, parameters) equal central finite differences."""
    dtype = _dtype_for(spec)
    if dtype != torch.float64:
        atol, rtol, eps = 5e-2, 5e-2, 1e-2
    hidden_size = _hidden(spec, hidden_size)
    cell = _build(spec, input_size, hidden_size, layers, dtype)
    shapes = _shapes(spec, cell, hidden_size)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(T, B, input_size, dtype=dtype, generator=gen, requires_grad=True)
    state = tuple(torch.randn(layers, B, *shapes[n], dtype=dtype, generator=gen).mul_(0.5).requires_grad_(True)
                  for n in spec.state_names)
    weights_out = torch.randn(T, B, hidden_size, dtype=dtype, generator=gen)
    weights_state = [torch.randn(layers, B, *shapes[n], dtype=dtype, generator=gen) for n in spec.state_names]

    def objective() -> Tensor:
        out, final = cell(x, state)
        return (out * weights_out).sum() + sum((f * w).sum() for f, w in zip(final, weights_state))

    leaves: list[tuple[str, Tensor]] = [("input x", x)]
    leaves += [(f"initial state {n!r}", s) for n, s in zip(spec.state_names, state)]
    leaves += [(f"parameter {n!r}", p) for n, p in cell.named_parameters() if p.requires_grad]
    if len(leaves) == 1 + len(spec.state_names):
        raise ConformanceError(f"{spec.name}: the cell has no trainable parameters")
    try:
        grads = torch.autograd.grad(objective(), [t for _, t in leaves], allow_unused=True)
    except RuntimeError as exc:
        raise ConformanceError(f"{spec.name}: backward failed: {exc}") from None
    for (name, leaf), grad in zip(leaves, grads):
        problem = None if grad is None else nonfinite_gradient(f"gradient of {name}", grad, leaf is x)
        if problem:
            raise ConformanceError(f"{spec.name}: {problem}, on a finite random input and state")
        numeric = torch.zeros_like(leaf)
        flat, nflat = leaf.data.view(-1), numeric.view(-1)
        for i in range(flat.numel()):
            keep = flat[i].item()
            with torch.no_grad():
                flat[i] = keep + eps
                up = objective().item()
                flat[i] = keep - eps
                down = objective().item()
                flat[i] = keep
            nflat[i] = (up - down) / (2 * eps)
        analytic = torch.zeros_like(leaf) if grad is None else grad
        if not torch.allclose(analytic, numeric, atol=atol, rtol=rtol):
            err = (analytic - numeric).abs().max().item()
            raise ConformanceError(f"{spec.name}: gradient of {name} disagrees with finite differences "
                                   f"(max abs error {err:.3g}; analytic {'missing' if grad is None else 'present'})")


@_explained("checking determinism")
def check_determinism(spec: CellSpec, *, input_size: int = 3, hidden_size: int = 4, layers: int = 1) -> None:
    """Same seed -> same weights, same outputs and same gradients, twice over."""
    dtype = _dtype_for(spec)
    hidden_size = _hidden(spec, hidden_size)
    results = []
    for _ in range(2):
        cell = _build(spec, input_size, hidden_size, layers, dtype, seed=123)
        x = torch.randn(6, 2, input_size, dtype=dtype, generator=torch.Generator().manual_seed(3), requires_grad=True)
        out, _ = cell(x)
        out.square().sum().backward()
        results.append((out.detach(), x.grad.clone(), [p.detach().clone() for p in cell.parameters()]))
    (o1, g1, p1), (o2, g2, p2) = results
    if len(p1) != len(p2) or any(not torch.equal(a, b) for a, b in zip(p1, p2)):
        raise ConformanceError(f"{spec.name}: two cells built after torch.manual_seed(123) have different weights; "
                               "initialise from torch's global generator")
    if not torch.equal(o1, o2) or not torch.equal(g1, g2):
        raise ConformanceError(f"{spec.name}: the same weights and input gave different outputs or gradients")


@_explained("checking the declared devices and dtypes")
def check_declared_support(spec: CellSpec, *, input_size: int = 3, hidden_size: int = 4) -> None:
    """Every declared CPU dtype works and keeps its dtype; multi-layer works if declared."""
    if "cpu" not in spec.devices:
        return  # GPU-only cells are checked by their own GPU tests
    reason = spec.unavailable_reason(torch.device("cpu"), spec.dtypes[0])
    if reason:
        return  # e.g. needs an interpreter switch on CPU: the cell says why it cannot run
    hidden_size = _hidden(spec, hidden_size)
    for dtype in spec.dtypes:
        if dtype in (torch.float16, torch.bfloat16):
            continue  # half precision on CPU is not required
        cell = _build(spec, input_size, hidden_size, 1, dtype)
        x = torch.randn(4, 2, input_size, dtype=dtype)
        try:
            with torch.no_grad():
                out, state = cell(x)
        except Exception as exc:
            raise ConformanceError(f"{spec.name}: declares {dtype} but a forward pass raised "
                                   f"{type(exc).__name__}: {exc}") from None
        if out.dtype != dtype or any(s.dtype != dtype for s in state):
            raise ConformanceError(f"{spec.name}: declares {dtype} but returned {out.dtype}")
    if spec.max_layers is None or spec.max_layers >= 2:
        check_shapes_and_state(spec, layers=2)
    if spec.exposes_gates:
        cell = _build(spec, input_size, hidden_size, 1, _dtype_for(spec))
        gates = cell.gate_activations(torch.randn(4, 2, input_size, dtype=_dtype_for(spec)))
        for name, g in gates.items():
            if tuple(g.shape) != (1, 4, 2, hidden_size):
                raise ConformanceError(f"{spec.name}: gate {name!r} has shape {tuple(g.shape)}, expected (L, T, B, H) "
                                       f"= {(1, 4, 2, hidden_size)}")


@_explained("checking the declared CUDA support")
def check_cuda(spec: CellSpec, *, input_size: int = 3, hidden_size: int = 4, T: int = 5, B: int = 2) -> None:
    """If the cell declares ``cuda`` and a GPU is visible: it runs there, forward and backward, returns CUDA
    tensors of the input's dtype, and agrees with its own CPU result. Does nothing without a GPU."""
    device = torch.device("cuda")
    if "cuda" not in spec.devices or not torch.cuda.is_available():
        return
    dtype = _dtype_for(spec)
    hidden_size = _hidden(spec, hidden_size)
    if spec.unavailable_reason(device, dtype):
        return  # the cell says why it cannot run here (a missing compiler, ...)
    cpu_cell = _build(spec, input_size, hidden_size, 1, dtype)
    gpu_cell = _build(spec, input_size, hidden_size, 1, dtype).to(device)
    gpu_cell.load_state_dict(cpu_cell.state_dict())
    x = torch.randn(T, B, input_size, dtype=dtype, generator=torch.Generator().manual_seed(4))
    results = {}
    for where, cell, inp in (("cpu", cpu_cell, x), ("cuda", gpu_cell, x.to(device))):
        if where == "cpu" and (spec.unavailable_reason(torch.device("cpu"), dtype) or "cpu" not in spec.devices):
            continue
        inp = inp.clone().requires_grad_(True)
        out, state = cell(inp)
        if where == "cuda":
            _check_like(spec, "forward on cuda", inp, out, state)
        out.square().sum().backward()
        results[where] = (out.detach().cpu(), inp.grad.detach().cpu())
    if "cpu" in results:
        tol = 1e-6 if dtype == torch.float64 else 5e-3  # float32 on GPU may use TF32 inside cuDNN
        for what, a, b in zip(("outputs", "input gradients"), results["cpu"], results["cuda"]):
            if not torch.allclose(a, b, atol=tol, rtol=tol):
                raise ConformanceError(f"{spec.name}: {what} on cuda differ from cpu with the same weights "
                                       f"(max difference {(a - b).abs().max().item():.3g}, tolerance {tol:g})")


CHECKS: tuple[Callable[[CellSpec], None], ...] = (
    check_shapes_and_state, check_gradients, check_determinism, check_declared_support, check_cuda,
)


def check_cell(spec: CellSpec) -> None:
    """Run every check; raise :class:`ConformanceError` at the first failure."""
    if not isinstance(spec, CellSpec):
        raise ConformanceError(f"expected a CellSpec, got {type(spec).__name__}")
    for check in CHECKS:
        check(spec)


__all__ = ["ConformanceError", "check_cell", "check_shapes_and_state", "check_gradients", "check_determinism",
           "check_declared_support", "check_cuda", "RecurrentCell"]

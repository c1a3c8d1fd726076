"""The conformance kit fails broken cells with messages that name the problem."""

from __future__ import annotations

import os

import pytest
import torch

from harness import CellSpec
from harness.plugins import testing as kit

from fake_cells import HandRNN  # a correct tanh RNN; each broken cell below changes one thing


class WrongShape(HandRNN):
    def forward(self, x, state=None):
        out, st = super().forward(x, state)
        return torch.cat([out, out], dim=-1), st      # (T, B, 2H)


class _WrongTanh(torch.autograd.Function):
    """tanh with a wrong derivative: 1 - y instead of 1 - y^2."""

    @staticmethod
    def forward(ctx, z):
        y = torch.tanh(z)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (1 - y)


class WrongGradient(HandRNN):
    def act(self, z):
        return _WrongTanh.apply(z)


class IgnoresState(HandRNN):
    def forward(self, x, state=None):
        return super().forward(x, None)


class WrongStateCount(HandRNN):
    state_names = ("h", "c")                          # declares (h, c) but returns (h,)


class LastOutputIsNotH(HandRNN):
    def forward(self, x, state=None):
        out, (h,) = super().forward(x, state)
        return out, (h * 0.5,)


class ReturnsFloat32(HandRNN):
    def forward(self, x, state=None):
        out, st = super().forward(x, state)
        return out.float(), tuple(s.float() for s in st)


class UnseededInit(HandRNN):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        gen = torch.Generator().manual_seed(int.from_bytes(os.urandom(4), "little"))
        with torch.no_grad():
            self.u.weight.copy_(torch.randn(self.u.weight.shape, generator=gen) * 0.3)


class RaisesInside(HandRNN):
    def forward(self, x, state=None):
        if x.shape[0] == 1:
            raise IndexError("step buffer exhausted\nmore detail")
        return super().forward(x, state)


class BadGates(HandRNN):
    def gate_activations(self, x, state=None):
        return {"forget": torch.zeros(x.shape[0], x.shape[1], self.hidden_size)}  # (T, B, H): missing L


def spec(cls, **fields):
    return CellSpec(name=cls.__name__.lower(), description="broken on purpose", factory=cls, max_layers=1, **fields)


def test_a_correct_hand_written_cell_passes():
    kit.check_cell(spec(HandRNN))


@pytest.mark.parametrize("cls, fields, message", [
    (WrongShape, {}, "wrongshape returned output of shape (5, 2, 8), expected (T, B, H) = (5, 2, 4)"),
    (WrongGradient, {}, "wronggradient: gradient of input x disagrees with finite differences"),
    (IgnoresState, {}, "is the initial state ignored?"),
    (WrongStateCount, {"state_names": ("h", "c")}, "expected a tuple of 2 tensors named ('h', 'c')"),
    (LastOutputIsNotH, {}, "out[-1] must equal the top layer of the final h state"),
    (ReturnsFloat32, {}, "output is torch.float32 on cpu, but the input was torch.float64 on cpu"),
    (UnseededInit, {}, "have different weights; initialise from torch's global generator"),
    (RaisesInside, {}, "checking shapes and state passing: the cell raised IndexError: step buffer exhausted"),
    (BadGates, {"exposes_gates": True}, "gate 'forget' has shape (4, 2, 4), expected (L, T, B, H) = (1, 4, 2, 4)"),
])
def test_a_broken_cell_fails_the_kit_with_a_message_naming_the_problem(cls, fields, message):
    with pytest.raises(kit.ConformanceError) as failure:
        kit.check_cell(spec(cls, **fields))
    text = str(failure.value)
    assert message in text
    assert "\n" not in text  # one readable line, no traceback text from inside the cell
    assert isinstance(failure.value, AssertionError)  # pytest reports it as a failed assertion


def test_the_gradient_check_names_the_wrong_parameter():
    """A hook that doubles u.weight's gradient leaves the input and state gradients right."""
    def factory(*args, **kwargs):
        cell = HandRNN(*args, **kwargs)
        cell.u.weight.register_hook(lambda g: 2 * g)
        return cell

    broken = CellSpec(name="doubled-u", description="wrong parameter gradient", factory=factory, max_layers=1)
    with pytest.raises(kit.ConformanceError, match=r"doubled-u: gradient of parameter 'u.weight' disagrees"):
        kit.check_gradients(broken)
    kit.check_shapes_and_state(broken)  # the forward pass itself is fine


def test_check_cell_refuses_what_is_not_a_spec():
    with pytest.raises(kit.ConformanceError, match="expected a CellSpec, got HandRNN"):
        kit.check_cell(HandRNN(2, 3))


class ReturnsOnCPU(HandRNN):
    def forward(self, x, state=None):
        out, st = super().forward(x, state)
        return out.cpu(), tuple(s.cpu() for s in st)


@pytest.mark.gpu
def test_declared_cuda_is_checked_on_a_gpu():
    kit.check_cuda(spec(HandRNN))
    with pytest.raises(kit.ConformanceError, match="forward on cuda: output is torch.float64 on cpu, but the input "
                                                   "was torch.float64 on cuda:0"):
        kit.check_cuda(spec(ReturnsOnCPU))

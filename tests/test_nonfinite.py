"""A cell that computes NaN or Inf is told so, with the time step where it first appears: the contract check before
training, the conformance kit and the bench's correctness gate never blame the state layout for it."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from harness import CellSpec, hookimpl
from harness.measurements.correctness import INCORRECT, check
from harness.plugins import testing as kit
from harness.plugins.model import CellContractError, verify_cell

from fake_cells import HandRNN

CPU = torch.device("cpu")


class NaNFromStep2(HandRNN):
    """Finite up to t = 1, NaN from t = 2 on (as a division by a vanishing norm would give)."""

    def forward(self, x, state=None):
        out, _ = super().forward(x, state)
        out = torch.cat([out[:2], out[2:] * float("nan")])
        return out, (out[-1:].clone(),)


class InfState(HandRNN):
    """A finite output, an infinite final state."""

    def forward(self, x, state=None):
        out, (h,) = super().forward(x, state)
        return out, (h * float("inf"),)


class _NaNBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z):
        return torch.tanh(z)

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


class NaNGradient(HandRNN):
    def act(self, z):
        return _NaNBackward.apply(z)


def spec(cls, name: str) -> CellSpec:
    return CellSpec(name=name, description="non-finite on purpose", factory=cls, max_layers=1,
                    dtypes=(torch.float64, torch.float32))


def _verify(cls, name):
    cell = spec(cls, name).factory(3, 4, 1, 0.0)
    with pytest.raises(CellContractError) as error:
        verify_cell(spec(cls, name), cell, 3, 4, 1, CPU, torch.float32)
    return str(error.value)


def test_the_check_before_training_names_nan_and_its_first_step():
    message = _verify(NaNFromStep2, "nan2")
    assert message == "nan2: the output is NaN from time step t = 2 on (of t = 0..2), on a finite random input " \
                      "at initialisation"
    assert "differs" not in message


def test_the_check_before_training_names_an_infinite_state():
    message = _verify(InfState, "infstate")
    assert message == "infstate: the final state 'h' is Inf (layer 0) while the output is finite, on a finite " \
                      "random input at initialisation"


class NaNPlugin:
    @hookimpl
    def register_cells(self, register):
        register(spec(NaNFromStep2, "nan2"))


def test_a_run_reports_the_nan_cell_as_failed_with_the_step(plugins, cli, tmp_path):
    plugins(NaNPlugin())
    code, _, err = cli("run", "--cells", "nan2,rnn", "--task", "adding", "--steps", "3", "--seq-len", "3",
                       "--hidden-size", "4", "--batch-size", "4", "--no-progress", "--no-plots",
                       "--out", tmp_path / "r")
    assert code == 1
    summary = pd.read_csv(tmp_path / "r" / "summary.csv").set_index("cell")
    assert summary.loc["nan2", "status"] == "failed" and summary.loc["rnn", "status"] == "ok"
    assert "the output is NaN from time step t = 2 on" in summary.loc["nan2", "reason"]
    assert "harness run: nan2 failed: CellContractError: nan2: the output is NaN from time step t = 2" in err


def test_the_conformance_kit_names_nan_and_its_first_step():
    with pytest.raises(kit.ConformanceError) as error:
        kit.check_shapes_and_state(spec(NaNFromStep2, "nan2"))                  # T = 5
    assert str(error.value) == "nan2: the output is NaN from time step t = 2 on (of t = 0..4), on a finite random input"


def test_the_conformance_kit_names_an_infinite_state():
    with pytest.raises(kit.ConformanceError) as error:
        kit.check_shapes_and_state(spec(InfState, "infstate"))
    assert str(error.value) == "infstate: the final state 'h' is Inf (layer 0) while the output is finite, on a " \
                               "finite random input"


def test_the_conformance_kit_names_a_nan_gradient_instead_of_a_disagreement():
    with pytest.raises(kit.ConformanceError) as error:
        kit.check_gradients(spec(NaNGradient, "nangrad"))
    assert str(error.value).startswith("nangrad: the gradient of input x is NaN at time steps t = 0..2 (of t = 0..2)")
    assert "finite differences" not in str(error.value)


@pytest.mark.parametrize("cls, name, message", [
    (NaNFromStep2, "nan2", "nan2: the output is NaN from time step t = 2 on (of t = 0..5)"),
    (InfState, "infstate", "infstate: the final state 'h' is Inf (layer 0)"),
    (NaNGradient, "nangrad", "nangrad: the gradient of input is NaN at time steps t = 0..5 (of t = 0..5)"),
])
def test_the_bench_gate_names_nan_or_inf_and_where(cls, name, message):
    verdict = check(spec(cls, name), 6, 3, 4, 5, 1, CPU, torch.float32)
    assert verdict.gate == INCORRECT and verdict.reason == message

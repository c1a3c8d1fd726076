"""``harness bench`` checks a cell at each shape before timing it: a wrong kernel is reported, never timed."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from torch import nn

from harness import CellSpec
from harness.measurements.correctness import INCORRECT, PASSED, check
from fake_cells import HandLSTM, HandRNN, LSTMReferencePlugin, SwappedGatesLSTM

CPU = torch.device("cpu")


@pytest.fixture
def lstm(registry):
    return registry.cell("lstm")


def test_bench_reports_a_wrong_lstm_as_incorrect_and_times_only_the_right_ones(plugins, cli, tmp_path):
    plugins(LSTMReferencePlugin())
    SwappedGatesLSTM.calls = 0
    code, out, err = cli("bench", "--cells", "hand-lstm,swapped-lstm,lstm", "--shapes", "6x3x4x5", "--layers", "2",
                         "--repeats", "2", "--warmup", "0", "--out", tmp_path / "b")
    assert code == 1
    assert SwappedGatesLSTM.calls == 1                                   # the check's one call; no timing
    lines = [line for line in err.splitlines() if line.startswith("harness bench: swapped-lstm")]
    assert len(lines) == 1
    assert lines[0].startswith("harness bench: swapped-lstm at 6x3x4x5 incorrect, not timed: swapped-lstm: the ")
    assert "differs from lstm's by" in lines[0] and "the tolerance for float32 is 0.001" in lines[0]
    table = pd.read_csv(tmp_path / "b" / "bench.csv", keep_default_na=False, na_values=[""])
    rows = {cell: group for cell, group in table.groupby("cell")}
    wrong = rows["swapped-lstm"]
    assert (wrong["status"] == "incorrect").all() and (wrong["gate"] == INCORRECT).all()
    assert (wrong["gate_reference"] == "lstm").all() and (wrong["gate_error"] > 0.01).all()
    assert wrong[["median_s", "tokens_per_s"]].isna().all().all()
    right = rows["hand-lstm"]
    assert (right["status"] == "ok").all() and (right["gate"] == PASSED).all() and (right["tokens_per_s"] > 0).all()
    assert (right["gate_error"] < 1e-5).all() and (right["gate_tolerance"] == 1e-3).all()
    builtin = rows["lstm"]
    assert (builtin["gate"] == PASSED).all() and builtin["gate_reference"].isna().all()
    assert builtin["gate_error"].isna().all()                            # no reference: the contract only
    assert all("incorrect" in line for line in out.splitlines() if "swapped-lstm" in line)  # no timing shown


@pytest.mark.parametrize("max_layers", [None, 1], ids=["stacks-itself", "stacked-by-the-harness"])
def test_the_right_lstm_agrees_with_lstm_in_float64(lstm, max_layers):
    spec = CellSpec(name="hand-lstm", description="", factory=HandLSTM, state_names=("h", "c"), reference="lstm",
                    max_layers=max_layers)
    verdict = check(spec, 7, 3, 4, 5, 2, CPU, torch.float64, lstm)
    assert verdict.gate == PASSED and verdict.error < 1e-12 and verdict.tolerance == 1e-9


def test_the_swapped_gates_are_caught_in_every_dtype_the_reference_runs(lstm):
    spec = CellSpec(name="swapped-lstm", description="", factory=SwappedGatesLSTM, state_names=("h", "c"),
                    reference="lstm")
    for dtype in (torch.float32, torch.float64):
        verdict = check(spec, 7, 3, 4, 5, 1, CPU, dtype, lstm)
        assert verdict.gate == INCORRECT and verdict.error > 0.01 and verdict.reference == "lstm"


class NaNOutput(HandRNN):
    def forward(self, x, state=None):
        out, st = super().forward(x, state)
        return out * float("nan"), st


class UnusedParameter(HandRNN):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.unused = nn.Parameter(torch.zeros(3))


class WrongShape(HandRNN):
    def forward(self, x, state=None):
        out, st = super().forward(x, state)
        return out[:, :, :-1], st


@pytest.mark.parametrize("factory, message", [
    (NaNOutput, "nan-out: the output is NaN from time step t = 0 on (of t = 0..5)"),
    (UnusedParameter, "unused-param: the parameter unused got no gradient"),
    (WrongShape, "wrong-shape returned output of shape (6, 3, 4), expected (T, B, H) = (6, 3, 5)"),
])
def test_contract_failures_are_incorrect_without_a_reference(factory, message):
    name = message.split(":")[0].split(" ")[0]
    verdict = check(CellSpec(name=name, description="", factory=factory, max_layers=1), 6, 3, 4, 5, 1, CPU,
                    torch.float32)
    assert verdict.gate == INCORRECT and verdict.reason == message
    assert math.isnan(verdict.error) or verdict.error > 0


def test_a_reference_whose_parameters_do_not_correspond_is_incorrect(lstm):
    spec = CellSpec(name="hand-rnn", description="", factory=HandRNN, reference="lstm")
    verdict = check(spec, 4, 2, 3, 5, 1, CPU, torch.float32, lstm)
    assert verdict.gate == INCORRECT
    assert verdict.reason.startswith("hand-rnn: cannot copy its weights into lstm, its declared reference: ")

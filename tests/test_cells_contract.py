"""Every built-in torch cell honours the contract (the conformance kit), and its gate views are exact."""

import pytest
import torch

from harness.plugins.model import Stacked, build_cell
from harness.plugins.testing import check_cell

BUILTIN_TORCH_CELLS = ["rnn", "lstm", "gru", "lfru-lstm", "mingru", "minlstm"]


@pytest.mark.parametrize("name", BUILTIN_TORCH_CELLS)
def test_builtin_cell_passes_the_conformance_kit(registry, name):
    check_cell(registry.cell(name))


@pytest.mark.parametrize("layers", [1, 2])
def test_lstm_gate_view_reproduces_nn_lstm(registry, layers):
    torch.manual_seed(0)
    cell = build_cell(registry.cell("lstm"), 3, 5, layers).double().eval()
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    state = tuple(torch.randn(layers, 2, 5, dtype=torch.float64) for _ in range(2))
    out, (h, c) = cell(x, state)
    gates = cell.gate_activations(x, state)
    assert gates["forget"].shape == (layers, 6, 2, 5)
    torch.testing.assert_close(gates["use"][-1], out)                    # use gate = o * tanh(c) = h
    torch.testing.assert_close(gates["remember"][:, -1], c)              # remember gate = new cell state
    torch.testing.assert_close(gates["learn"], gates["input"] * gates["cell"])
    assert ((gates["forget"] > 0) & (gates["forget"] < 1)).all()


def test_gru_gate_view_is_consistent(registry):
    torch.manual_seed(0)
    cell = build_cell(registry.cell("gru"), 3, 4, 1).double().eval()
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    out, _ = cell(x)
    g = cell.gate_activations(x)
    h, hs = torch.zeros(2, 4, dtype=torch.float64), []
    for t in range(5):  # h' = (1 - z) * n + z * h, from the returned gates alone
        h = (1 - g["update"][0, t]) * g["candidate"][0, t] + g["update"][0, t] * h
        hs.append(h)
    torch.testing.assert_close(torch.stack(hs), out)


def test_single_layer_cells_are_stacked_by_the_harness(registry):
    from fake_cells import HandRNN
    from harness import CellSpec
    spec = CellSpec(name="tiny", description="", factory=HandRNN, max_layers=1)
    cell = build_cell(spec, 3, 4, layers=3, dropout=0.2)
    assert isinstance(cell, Stacked) and len(cell.layers) == 3
    out, (h,) = cell(torch.randn(5, 2, 3))
    assert out.shape == (5, 2, 4) and h.shape == (3, 2, 4)
    check_cell(spec)

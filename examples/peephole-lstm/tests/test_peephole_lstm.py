"""The plugin's own tests: what a plugin author runs with ``pytest`` after ``pip install -e .``."""

import torch

from harness.plugins.testing import check_cell

import peephole_lstm


def test_conforms_to_the_harness_contract():
    check_cell(peephole_lstm.SPEC)


def test_peepholes_matter():
    """With the peephole weights zeroed the cell is a plain LSTM; with them it differs."""
    torch.manual_seed(0)
    cell = peephole_lstm.PeepholeLSTM(3, 4).double()
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    state = (torch.zeros(1, 2, 4, dtype=torch.float64), torch.ones(1, 2, 4, dtype=torch.float64))
    with_peep, _ = cell(x, state)
    with torch.no_grad():
        cell.peep.zero_()
    without, _ = cell(x, state)
    assert not torch.allclose(with_peep, without)

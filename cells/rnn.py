"""``rnn``: the vanilla tanh RNN, h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), via ``torch.nn.RNN``."""

from __future__ import annotations

from torch import nn

from cells._torch_recurrent import TorchRecurrent
from harness import CellSpec, hookimpl


class VanillaRNN(TorchRecurrent):
    state_names = ("h",)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0):
        super().__init__(nn.RNN, input_size, hidden_size, num_layers, dropout, nonlinearity="tanh")


@hookimpl
def register_cells(register):
    register(CellSpec(
        name="rnn",
        description="vanilla tanh RNN (torch.nn.RNN); the vanishing-gradient reference",
        factory=VanillaRNN,
        state_names=("h",),
        color="#d62728",  # matplotlib tab10
    ))

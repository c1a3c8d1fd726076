"""``torch.nn.LSTM``'s parameters, for cells that compute the LSTM themselves (numpy-lstm, triton-lstm).

Same names, shapes, creation order and initialisation as ``nn.LSTM``, so state
dicts load either way and the same seed gives the same weights:
``weight_ih_l{k} (4H, I_k)``, ``weight_hh_l{k} (4H, H)``, ``bias_ih_l{k} (4H,)``,
``bias_hh_l{k} (4H,)``, gate order i, f, g, o.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from harness.contract import RecurrentCell


class LSTMParameters(RecurrentCell):
    """Base class: validates the sizes and holds the parameters; subclasses implement ``forward``."""

    state_names = ("h", "c")
    cell_name = "lstm"  # used in error messages

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0):
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{self.cell_name}: {name} must be a positive integer, got {value!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"{self.cell_name}: dropout must be a number in [0, 1), got {dropout!r}")
        super().__init__(input_size, hidden_size, num_layers, float(dropout))
        G = 4 * hidden_size
        for k in range(num_layers):
            fan_in = input_size if k == 0 else hidden_size
            self.register_parameter(f"weight_ih_l{k}", nn.Parameter(torch.empty(G, fan_in)))
            self.register_parameter(f"weight_hh_l{k}", nn.Parameter(torch.empty(G, hidden_size)))
            self.register_parameter(f"bias_ih_l{k}", nn.Parameter(torch.empty(G)))
            self.register_parameter(f"bias_hh_l{k}", nn.Parameter(torch.empty(G)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """U(-1/sqrt(H), 1/sqrt(H)) for every parameter, in ``nn.LSTM``'s order."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def layer_weights(self, k: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(W_ih (4H, I_k), W_hh (4H, H), b_ih (4H,), b_hh (4H,))`` of layer ``k``."""
        return (getattr(self, f"weight_ih_l{k}"), getattr(self, f"weight_hh_l{k}"),
                getattr(self, f"bias_ih_l{k}"), getattr(self, f"bias_hh_l{k}"))

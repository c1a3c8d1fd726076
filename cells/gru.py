"""``gru``: ``torch.nn.GRU`` (Cho et al., 2014).

r = sigma(W_ir x + b_ir + W_hr h + b_hr)        reset gate
z = sigma(W_iz x + b_iz + W_hz h + b_hz)        update gate
n = tanh(W_in x + b_in + r * (W_hn h + b_hn))   candidate
h' = (1 - z) * n + z * h
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cells._torch_recurrent import TorchRecurrent
from harness import CellSpec, hookimpl
from harness.contract import State


class TorchGRU(TorchRecurrent):
    state_names = ("h",)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0):
        super().__init__(nn.GRU, input_size, hidden_size, num_layers, dropout)

    @torch.no_grad()
    def gate_activations(self, x: Tensor, state: State | None = None) -> dict[str, Tensor]:
        """x: (T, B, I) -> {reset, update, candidate}: each (L, T, B, H)."""
        T, B, _ = x.shape
        (h0,) = state if state is not None else self.initial_state(B, x)
        names = ("reset", "update", "candidate")
        per_layer = {n: [] for n in names}
        layer_in = x
        for layer in range(self.num_layers):
            w_ih, w_hh, b_ih, b_hh = self.layer_weights(layer)
            xw = layer_in @ w_ih.T + b_ih                      # (T, B, 3H)
            h = h0[layer]
            steps = {n: [] for n in names}
            hs = []
            for t in range(T):
                x_r, x_z, x_n = xw[t].chunk(3, dim=-1)
                h_r, h_z, h_n = (h @ w_hh.T + b_hh).chunk(3, dim=-1)
                r = torch.sigmoid(x_r + h_r)
                z = torch.sigmoid(x_z + h_z)
                n = torch.tanh(x_n + r * h_n)
                h = (1 - z) * n + z * h
                for name, value in zip(names, (r, z, n)):
                    steps[name].append(value)
                hs.append(h)
            for name in names:
                per_layer[name].append(torch.stack(steps[name]))
            layer_in = torch.stack(hs)
        return {name: torch.stack(per_layer[name]) for name in names}


@hookimpl
def register_cells(register):
    register(CellSpec(
        name="gru",
        description="torch.nn.GRU (cuDNN on GPU)",
        factory=TorchGRU,
        state_names=("h",),
        exposes_gates=True,
        whole_sequence=True,
        color="#2ca02c",  # matplotlib tab10
    ))

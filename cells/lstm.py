"""``lstm``: ``torch.nn.LSTM`` (cuDNN on GPU, oneDNN/ATen on CPU).

Gate activations are recomputed from the module's own weights, one step at a
time, in the two naming schemes of the seed documents:

=================  ==============================  ====================
torch name         equation                        seed name
=================  ==============================  ====================
input  ``i``       sigma(W_i [x, h] + b_i)
forget ``f``       sigma(W_f [x, h] + b_f)         forget gate
cell   ``g``       tanh(W_g [x, h] + b_g)
output ``o``       sigma(W_o [x, h] + b_o)
``i * g``                                          learn gate
``c' = f*c + i*g``                                 remember gate
``o * tanh(c')``                                   use gate (= h')
=================  ==============================  ====================
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cells._torch_recurrent import TorchRecurrent
from harness import CellSpec, hookimpl
from harness.contract import State


class TorchLSTM(TorchRecurrent):
    state_names = ("h", "c")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0):
        super().__init__(nn.LSTM, input_size, hidden_size, num_layers, dropout)

    @torch.no_grad()
    def gate_activations(self, x: Tensor, state: State | None = None) -> dict[str, Tensor]:
        """x: (T, B, I) -> {input, forget, cell, output, learn, remember, use}: each (L, T, B, H).

        Dropout between layers is not applied: this is an inspection, not training.
        """
        T, B, _ = x.shape
        h0, c0 = state if state is not None else self.initial_state(B, x)
        names = ("input", "forget", "cell", "output", "learn", "remember", "use")
        per_layer = {n: [] for n in names}
        layer_in = x
        for layer in range(self.num_layers):
            w_ih, w_hh, b_ih, b_hh = self.layer_weights(layer)
            xw = layer_in @ w_ih.T + b_ih                      # (T, B, 4H), hoisted out of the loop
            h, c = h0[layer], c0[layer]
            steps = {n: [] for n in names}
            for t in range(T):
                z = xw[t] + h @ w_hh.T + b_hh
                i, f, g, o = z.chunk(4, dim=-1)
                i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
                c = f * c + i * g
                h = o * torch.tanh(c)
                for name, value in zip(names, (i, f, g, o, i * g, c, h)):
                    steps[name].append(value)
            for name in names:
                per_layer[name].append(torch.stack(steps[name]))
            layer_in = torch.stack(steps["use"])
        return {name: torch.stack(per_layer[name]) for name in names}


@hookimpl
def register_cells(register):
    register(CellSpec(
        name="lstm",
        description="torch.nn.LSTM (cuDNN on GPU, oneDNN on CPU)",
        factory=TorchLSTM,
        state_names=("h", "c"),
        exposes_gates=True,
        whole_sequence=True,
        color="#1f77b4",  # matplotlib tab10
    ))

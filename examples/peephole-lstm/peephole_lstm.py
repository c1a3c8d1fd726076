"""``peephole-lstm``: an LSTM whose gates also see the cell state (Gers & Schmidhuber 2000).

F. A. Gers and J. Schmidhuber, "Recurrent nets that time and count", IJCNN 2000.
The input and forget gates look at the previous cell state, the output gate at
the new one, through diagonal ("peephole") weights ``p``::

    i_t = sigmoid(W_i x_t + U_i h_{t-1} + p_i * c_{t-1} + b_i)
    f_t = sigmoid(W_f x_t + U_f h_{t-1} + p_f * c_{t-1} + b_f)
    g_t = tanh(W_g x_t + U_g h_{t-1} + b_g)
    c_t = f_t * c_{t-1} + i_t * g_t
    o_t = sigmoid(W_o x_t + U_o h_{t-1} + p_o * c_t + b_o)
    h_t = o_t * tanh(c_t)

One layer per module: the spec says ``max_layers=1`` and the harness stacks
layers itself (with dropout between them). Backward is autograd's.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from harness import CellSpec, RecurrentCell, hookimpl
from harness.contract import State


class PeepholeLSTM(RecurrentCell):
    """One peephole-LSTM layer. ``x (T, B, I)``, state ``(h, c)`` each ``(1, B, H)`` -> ``out (T, B, H)``."""

    state_names = ("h", "c")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0):
        if num_layers != 1:
            raise ValueError("peephole-lstm builds one layer; the harness stacks more (its spec has max_layers=1)")
        super().__init__(input_size, hidden_size, num_layers, dropout)
        H = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * H, input_size))   # rows: i, f, g, o
        self.weight_hh = nn.Parameter(torch.empty(4 * H, H))
        self.bias = nn.Parameter(torch.empty(4 * H))
        self.peep = nn.Parameter(torch.empty(3, H))                     # rows: p_i, p_f, p_o
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)
        with torch.no_grad():  # a forget bias of 1 keeps the cell state by default early in training
            self.bias[self.hidden_size:2 * self.hidden_size].fill_(1.0)

    def _steps(self, x: Tensor, state: State | None):
        """Yield ``(i, f, g, o, c, h)`` for every step, each ``(B, H)``."""
        B = x.shape[1]
        h, c = (t[0] for t in state) if state is not None else (t[0] for t in self.initial_state(B, x))
        p_i, p_f, p_o = self.peep
        xw = x @ self.weight_ih.T + self.bias          # (T, B, 4H): the input projection, hoisted out of the loop
        for t in range(x.shape[0]):
            z_i, z_f, z_g, z_o = (xw[t] + h @ self.weight_hh.T).chunk(4, dim=-1)
            i = torch.sigmoid(z_i + p_i * c)
            f = torch.sigmoid(z_f + p_f * c)
            g = torch.tanh(z_g)
            c = f * c + i * g
            o = torch.sigmoid(z_o + p_o * c)
            h = o * torch.tanh(c)
            yield i, f, g, o, c, h

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """x: (T, B, I); state: (h, c) each (1, B, H) or None -> out (T, B, H), (h, c) each (1, B, H)."""
        outs, c = [], None
        for *_, c, h in self._steps(x, state):
            outs.append(h)
        out = torch.stack(outs)
        return out, (out[-1:], c.unsqueeze(0))

    @torch.no_grad()
    def gate_activations(self, x: Tensor, state: State | None = None) -> dict[str, Tensor]:
        """x: (T, B, I) -> {input, forget, cell, output}: each (1, T, B, H)."""
        names = ("input", "forget", "cell", "output")
        per_step = list(self._steps(x, state))
        return {name: torch.stack([s[k] for s in per_step]).unsqueeze(0) for k, name in enumerate(names)}


SPEC = CellSpec(
    name="peephole-lstm",
    description="peephole LSTM (Gers & Schmidhuber 2000), example external plugin",
    factory=PeepholeLSTM,
    state_names=("h", "c"),
    devices=("cpu", "cuda"),
    dtypes=(torch.float32, torch.float64),
    max_layers=1,
    exposes_gates=True,
)


@hookimpl
def register_cells(register):
    register(SPEC)

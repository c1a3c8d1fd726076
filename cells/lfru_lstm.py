"""``lfru-lstm``: the learn / forget / remember / use LSTM of the seed documents (Udacity's formulation).

``E_t`` is the input (the "event"), ``STM`` the short-term memory (the state
``h``), ``LTM`` the long-term memory (the state ``c``); ``[STM, E]`` is the
concatenation; sigma the logistic sigmoid::

    N_t   = tanh(W_n [STM_{t-1}, E_t] + b_n)       learn: candidate
    i_t   = sigma(W_i [STM_{t-1}, E_t] + b_i)      learn: ignore factor
    f_t   = sigma(W_f [STM_{t-1}, E_t] + b_f)      forget factor
    LTM_t = f_t * LTM_{t-1} + i_t * N_t            remember = forget gate output + learn gate output
    U_t   = tanh(W_u (f_t * LTM_{t-1}) + b_u)      use: its own layer on the memory that survived forgetting
    V_t   = sigma(W_v [STM_{t-1}, E_t] + b_v)      use: from the short-term memory and the event
    STM_t = U_t * V_t                              use gate output = new short-term memory = out[t]

Unlike the textbook LSTM (``cells/lstm.py``, ``h_t = o_t * tanh(c_t)``), the
output reads the *old* long-term memory after forgetting, through a learned
``H x H`` layer; ``docs/lfru-lstm.md`` compares the two line by line.

Layout: ``weight_ih (4H, I)`` and ``weight_hh (4H, H)`` hold the ``E`` and
``STM`` columns of ``W_n, W_i, W_f, W_v`` (row blocks in that order), so
``W_n = [weight_hh[:H], weight_ih[:H]]``; ``bias (4H,)`` holds ``b_n, b_i, b_f, b_v``;
``weight_u (H, H)`` and ``bias_u (H,)`` are the use gate's layer. Every
parameter starts U(-1/sqrt(H), 1/sqrt(H)), as ``nn.LSTM``'s do.

One layer per module (spec ``max_layers=1``): the harness stacks layers, with
dropout between them in training mode.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from cells._single_layer import SingleLayerCell
from harness import CellSpec, hookimpl
from harness.contract import State

# The seeds' four gates, then the textbook names of the three factors that have one (same equations as
# the LSTM's i, g and o); see docs/lfru-lstm.md.
GATE_NAMES = ("learn", "forget", "remember", "use", "input", "cell", "output")


class LFRULSTM(SingleLayerCell):
    """One learn/forget/remember/use LSTM layer. ``x (T, B, I)``, state ``(h, c)`` each ``(1, B, H)``
    -> ``out (T, B, H)``, ``(h_T, c_T)``."""

    cell_name = "lfru-lstm"
    state_names = ("h", "c")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0):
        super().__init__(input_size, hidden_size, num_layers, dropout)
        H = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * H, input_size))   # E_t columns; row blocks n, i, f, v
        self.weight_hh = nn.Parameter(torch.empty(4 * H, H))            # STM_{t-1} columns; same blocks
        self.bias = nn.Parameter(torch.empty(4 * H))                    # b_n, b_i, b_f, b_v
        self.weight_u = nn.Parameter(torch.empty(H, H))                 # W_u, applied to f_t * LTM_{t-1}
        self.bias_u = nn.Parameter(torch.empty(H))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """U(-1/sqrt(H), 1/sqrt(H)) for every parameter, as ``nn.LSTM``: same scale as the ``lstm`` cell it is
        compared with, and no forget-gate bias trick, so that differences in a run come from the equations."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def _steps(self, x: Tensor, state: State | None):
        """Yield ``(N, i, f, V, learn, LTM, STM)`` for every step, each ``(B, H)``."""
        stm, ltm = self._initial(x, state)
        xw = x @ self.weight_ih.T + self.bias                # (T, B, 4H): the event's share, hoisted out of the loop
        for t in range(x.shape[0]):
            z_n, z_i, z_f, z_v = (xw[t] + stm @ self.weight_hh.T).chunk(4, dim=-1)
            n = torch.tanh(z_n)
            i = torch.sigmoid(z_i)
            f = torch.sigmoid(z_f)
            v = torch.sigmoid(z_v)
            kept = f * ltm                                   # forget gate output
            learn = i * n                                    # learn gate output
            u = torch.tanh(kept @ self.weight_u.T + self.bias_u)
            ltm = kept + learn                               # remember gate
            stm = u * v                                      # use gate
            yield n, i, f, v, learn, ltm, stm

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """x: (T, B, I); state: None or (h, c) each (1, B, H) -> out (T, B, H), (h, c) each (1, B, H)."""
        outs, ltm = [], None
        for *_, ltm, stm in self._steps(x, state):
            outs.append(stm)
        out = torch.stack(outs)
        return out, (out[-1:], ltm.unsqueeze(0))

    @torch.no_grad()
    def gate_activations(self, x: Tensor, state: State | None = None) -> dict[str, Tensor]:
        """x: (T, B, I) -> each (1, T, B, H): learn = i*N, forget = f, remember = LTM_t, use = STM_t,
        and the textbook names input = i, cell = N (candidate), output = V."""
        steps = list(self._steps(x, state))
        n, i, f, v, learn, ltm, stm = (torch.stack(k).unsqueeze(0) for k in zip(*steps))
        values = {"learn": learn, "forget": f, "remember": ltm, "use": stm, "input": i, "cell": n, "output": v}
        return {name: values[name] for name in GATE_NAMES}


SPEC = CellSpec(
    name="lfru-lstm",
    description="the seeds' learn/forget/remember/use LSTM (Udacity): the use gate reads f*LTM through its own layer",
    factory=LFRULSTM,
    state_names=("h", "c"),
    max_layers=1,
    exposes_gates=True,
    color="#17becf",  # matplotlib tab10
)


@hookimpl
def register_cells(register):
    register(SPEC)

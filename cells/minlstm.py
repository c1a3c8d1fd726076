"""``minlstm``: the minimal LSTM of Feng, Tung, Ahmed, Bengio and Hajimirsadeghi (2024), "Were RNNs All We Needed?".

One layer, ``x_t`` of size I, ``h_t`` of size H::

    f_t = sigmoid(Linear_f(x_t))                  forget gate, from the input only
    i_t = sigmoid(Linear_i(x_t))                  input gate, from the input only
    f'_t = f_t / (f_t + i_t) = sigmoid(-d_t)      normalised, f'_t + i'_t = 1; d_t = log(i_t / f_t)
    i'_t = i_t / (f_t + i_t) = sigmoid(d_t)
    h~_t = g(Linear_h(x_t))                       candidate, g(v) = v + 1/2 (v >= 0), sigmoid(v) (v < 0)
    h_t = f'_t * h_{t-1} + i'_t * h~_t

There is no cell state and no output gate: ``h`` is the only state. A whole
sequence is one linear recurrence with ``a_t = f'_t`` and ``b_t = i'_t * h~_t``,
solved by a scan of :mod:`cells._log_scan`: in linear space on the CPU, in log
space elsewhere, where with ``d_t = softplus(-k_f) - softplus(-k_i) = log(i_t / f_t)``
``log f'_t = -softplus(d_t)``, ``log i'_t = -softplus(-d_t)``.

The spec says ``max_layers=1``: the harness stacks layers (dropout between
them). No output projection: the task's readout reads ``h`` directly.
Equations, tolerances, and why the scan pays at long T: ``docs/min-rnns.md``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cells._log_scan import LogScanCell, g, log_g
from harness import CellSpec, hookimpl
from harness.contract import State


class MinLSTM(LogScanCell):
    """One minLSTM layer. ``x (T, B, I)``, state ``(h,)`` with ``h (1, B, H)`` -> ``out (T, B, H)``.

    Parameters: ``linear_f``, ``linear_i`` and ``linear_h``, each ``nn.Linear(I, H)``
    with its default initialisation, U(-1/sqrt(I), 1/sqrt(I)), as in the paper's code.
    """

    cell_name = "minlstm"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0):
        super().__init__(input_size, hidden_size, num_layers, dropout)
        self.linear_f = nn.Linear(input_size, hidden_size)
        self.linear_i = nn.Linear(input_size, hidden_size)
        self.linear_h = nn.Linear(input_size, hidden_size)

    def _log_ratio(self, x: Tensor) -> Tensor:
        """x (..., I) -> d = log(i / f) (..., H), from log sigmoid(k) = -softplus(-k): f and i themselves may both
        underflow to 0 in float32 when their pre-activations are very negative, and f / (f + i) would be 0 / 0."""
        return F.softplus(-self.linear_f(x)) - F.softplus(-self.linear_i(x))

    def step(self, x_t: Tensor, h: Tensor) -> Tensor:
        """x_t (B, I), h (B, H) -> next h (B, H)."""
        d = self._log_ratio(x_t)
        f = torch.sigmoid(-d)                                 # f / (f + i)
        i = torch.sigmoid(d)                                  # i / (f + i)
        h_tilde = g(self.linear_h(x_t))
        return f * h + i * h_tilde

    def coefficients(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (T, B, I) -> f', i' * h~: each (T, B, H)."""
        d = self._log_ratio(x)
        return torch.sigmoid(-d), torch.sigmoid(d) * g(self.linear_h(x))

    def log_coefficients(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (T, B, I) -> log f', log(i' * h~): each (T, B, H)."""
        d = self._log_ratio(x)
        log_f = -F.softplus(d)                                # log f / (f + i)
        log_i = -F.softplus(-d)                               # log i / (f + i)
        return log_f, log_i + log_g(self.linear_h(x))

    @torch.no_grad()
    def gate_activations(self, x: Tensor, state: State | None = None) -> dict[str, Tensor]:
        """x: (T, B, I) -> {forget: f'_t, input: i'_t, candidate: h~_t}, each (1, T, B, H).

        The gates are the normalised ones, the factors that actually multiply
        ``h_{t-1}`` and ``h~_t``. None depends on the state.
        """
        self._initial(x, state)
        d = self._log_ratio(x)
        return {"forget": torch.sigmoid(-d).unsqueeze(0), "input": torch.sigmoid(d).unsqueeze(0),
                "candidate": g(self.linear_h(x)).unsqueeze(0)}


SPEC = CellSpec(
    name="minlstm",
    description="minLSTM (Feng et al. 2024): normalised input-only gates, trained with a parallel linear-recurrence scan",
    factory=MinLSTM,
    state_names=("h",),
    max_layers=1,
    exposes_gates=True,
    whole_sequence=True,
    color="#e377c2",  # matplotlib tab10
)


@hookimpl
def register_cells(register):
    register(SPEC)

"""``mingru``: the minimal GRU of Feng, Tung, Ahmed, Bengio and Hajimirsadeghi (2024), "Were RNNs All We Needed?".

One layer, ``x_t`` of size I, ``h_t`` of size H::

    z_t = sigmoid(Linear_z(x_t))                  update gate, from the input only
    h~_t = g(Linear_h(x_t))                       candidate, g(v) = v + 1/2 (v >= 0), sigmoid(v) (v < 0)
    h_t = (1 - z_t) * h_{t-1} + z_t * h~_t

Neither ``z_t`` nor ``h~_t`` sees ``h_{t-1}``, so a whole sequence is one
linear recurrence with ``a_t = 1 - z_t = sigmoid(-k_t)`` and ``b_t = z_t * h~_t``
(``k = Linear_z(x)``), solved by a scan of :mod:`cells._log_scan`: in linear space
on the CPU, in log space elsewhere, with ``log a_t = -softplus(k_t)`` and
``log b_t = -softplus(-k_t) + log g(Linear_h(x_t))``.

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


class MinGRU(LogScanCell):
    """One minGRU layer. ``x (T, B, I)``, state ``(h,)`` with ``h (1, B, H)`` -> ``out (T, B, H)``.

    Parameters: ``linear_z`` and ``linear_h``, each ``nn.Linear(I, H)`` with
    its default initialisation, U(-1/sqrt(I), 1/sqrt(I)), as in the paper's code.
    """

    cell_name = "mingru"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0):
        super().__init__(input_size, hidden_size, num_layers, dropout)
        self.linear_z = nn.Linear(input_size, hidden_size)
        self.linear_h = nn.Linear(input_size, hidden_size)

    def step(self, x_t: Tensor, h: Tensor) -> Tensor:
        """x_t (B, I), h (B, H) -> next h (B, H)."""
        z = torch.sigmoid(self.linear_z(x_t))
        h_tilde = g(self.linear_h(x_t))
        return (1 - z) * h + z * h_tilde

    def coefficients(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (T, B, I) -> 1 - z, z * h~: each (T, B, H)."""
        k = self.linear_z(x)
        return torch.sigmoid(-k), torch.sigmoid(k) * g(self.linear_h(x))    # sigmoid(-k): no 1 - z rounding

    def log_coefficients(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (T, B, I) -> log(1 - z), log(z * h~): each (T, B, H)."""
        k = self.linear_z(x)
        log_a = -F.softplus(k)                                # log(1 - sigmoid(k))
        log_b = -F.softplus(-k) + log_g(self.linear_h(x))     # log sigmoid(k) + log h~
        return log_a, log_b

    @torch.no_grad()
    def gate_activations(self, x: Tensor, state: State | None = None) -> dict[str, Tensor]:
        """x: (T, B, I) -> {update: z_t, candidate: h~_t}, each (1, T, B, H). Neither depends on the state."""
        self._initial(x, state)
        return {"update": torch.sigmoid(self.linear_z(x)).unsqueeze(0),
                "candidate": g(self.linear_h(x)).unsqueeze(0)}


SPEC = CellSpec(
    name="mingru",
    description="minGRU (Feng et al. 2024): gates from the input only, trained with a parallel linear-recurrence scan",
    factory=MinGRU,
    state_names=("h",),
    max_layers=1,
    exposes_gates=True,
    whole_sequence=True,
    color="#bcbd22",  # matplotlib tab10
)


@hookimpl
def register_cells(register):
    register(SPEC)

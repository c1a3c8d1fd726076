"""The log-space parallel scan shared by ``mingru`` and ``minlstm`` (Feng et al. 2024, "Were RNNs All We Needed?",
appendix), its activation ``g``, and :class:`LogScanCell`, the layer both cells build on.

Both cells reduce, element by element, to the same first-order linear recurrence

    h_t = a_t * h_{t-1} + b_t,        0 < a_t < 1,   b_t > 0,

whose coefficients depend on ``x_t`` only. Unrolled, with ``A_t = a_1 ... a_t``,

    h_t = A_t * h_0 + sum_{k <= t} (A_t / A_k) * b_k,

which prefix sums give for all ``t`` at once: ``log A_t`` is a cumulative sum
of ``log a``, and the sum is ``exp(log A_t + logcumsumexp_k(log b_k - log A_k))``.
Logarithms keep ``1 / A_k``, which overflows within a few hundred steps, out
of the arithmetic. Two departures from the paper's ``parallel_scan_log``:

* ``h_0`` enters linearly, not as ``log h_0``, so it may have any sign (the
  contract passes arbitrary states). ``b_t > 0`` still holds, so the sum stays
  in log space.
* The scan runs over chunks of ``chunk`` steps, each chunk starting from the
  previous chunk's last ``h`` exactly as the first starts from ``h_0``.
  ``log A_t`` and the ``logcumsumexp`` both grow in magnitude along the scan and
  cancel in their sum, so in float32 the rounding error grows with the scan's
  length: unchunked, gradients of the gate biases came out 1e-2 off at T = 512
  (float64 reference); 64-step chunks bring that to about 1e-4, at the cost of
  ``T / 64`` chunks run one after another. ``chunk=None`` is the paper's single scan.

``docs/min-rnns.md`` has the derivation, the measured tolerances and why the scan pays at long ``T``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from cells._single_layer import SingleLayerCell
from harness.contract import State

SCAN_CHUNK = 64
"""Steps per log-space scan; ``T / 64`` chunks run one after another. See ``docs/min-rnns.md`` for the choice."""


def g(x: Tensor) -> Tensor:
    """The paper's positive activation for the candidate: ``x + 0.5`` for ``x >= 0``, ``sigmoid(x)`` below."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x: Tensor) -> Tensor:
    """``log g(x)``, computed without ever taking the log of a small number.

    ``relu`` keeps the unused branch of ``where`` finite: below -0.5 it would be log of a negative number, nan,
    and autograd multiplies its gradient by 0, which leaves nan.
    """
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), -F.softplus(-x))


def linear_scan_log(log_a: Tensor, log_b: Tensor, h0: Tensor, chunk: int | None = SCAN_CHUNK) -> Tensor:
    """All of ``h_t = a_t * h_{t-1} + b_t`` at once.

    :param log_a: ``(T, B, H)``, ``log a_t`` (any finite values; the cells give ``a_t`` in (0, 1)).
    :param log_b: ``(T, B, H)``, ``log b_t`` (finite).
    :param h0: ``(B, H)``, the state before step 0, any sign.
    :param chunk: steps per scan (see the module docstring); ``None`` for one scan over all ``T``.
    :returns: ``h (T, B, H)``, ``h[t]`` the state after step ``t``.
    """
    T = log_a.shape[0]
    step = T if chunk is None else chunk
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise ValueError(f"linear_scan_log: chunk must be a positive integer or None, got {chunk!r}")
    h, outs = h0, []
    for la, lb in zip(log_a.split(step), log_b.split(step)):    # split, not slices: one gradient copy in backward
        log_A = torch.cumsum(la, dim=0)                                  # log A_t, within the chunk
        log_sum_b = log_A + torch.logcumsumexp(lb - log_A, dim=0)        # log sum_k (A_t / A_k) b_k
        h_chunk = torch.exp(log_A) * h + torch.exp(log_sum_b)            # h enters linearly: any sign
        outs.append(h_chunk)
        h = h_chunk[-1]
    return outs[0] if len(outs) == 1 else torch.cat(outs)


class LogScanCell(SingleLayerCell):
    """One layer of a cell whose recurrence is ``h_t = a_t * h_{t-1} + b_t`` with ``a_t, b_t`` from ``x_t`` alone.

    Subclasses give the same recurrence twice: :meth:`step` in the paper's
    plain equations (one step, linear space) and :meth:`log_coefficients` for
    the scan. A call with ``T = 1`` (the gradient-flow measurement steps the
    cell one step per call) runs :meth:`step`; longer calls run the scan.
    ``tests/test_min_rnns.py`` holds the two to the same outputs and gradients.
    """

    state_names = ("h",)
    scan_chunk: int | None = SCAN_CHUNK
    """Steps per log-space scan; ``None`` runs one scan over the whole sequence (the paper's form)."""

    def step(self, x_t: Tensor, h: Tensor) -> Tensor:
        """One step in linear space: ``x_t (B, I)``, ``h (B, H)`` -> the next ``h (B, H)``."""
        raise NotImplementedError

    def log_coefficients(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x (T, B, I)`` -> ``(log a, log b)``, each ``(T, B, H)``."""
        raise NotImplementedError

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """x: (T, B, I); state: None or (h0,) with h0 (1, B, H) -> out (T, B, H), (h_T (1, B, H),)."""
        (h0,) = self._initial(x, state)
        if x.shape[0] == 1:
            out = self.step(x[0], h0).unsqueeze(0)
        else:
            out = linear_scan_log(*self.log_coefficients(x), h0, self.scan_chunk)
        return out, (out[-1:],)

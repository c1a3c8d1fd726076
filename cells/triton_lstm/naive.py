"""A small, readable reference for one LSTM layer: the kernels' equations in plain torch, step by step.

:func:`naive_forward` is differentiable by autograd; :func:`naive_backward` is the
hand-written BPTT that ``lstm_backward_kernel`` implements, so the equations can
be checked against autograd without Triton (and read in one screen).
Shapes: ``x (T, B, I)``, ``h0, c0 (B, H)``, ``W_ih (4H, I)``, ``W_hh (4H, H)``,
biases ``(4H,)``, gate order ``i, f, g, o`` as in ``torch.nn.LSTM``.

``matmul`` is the recurrent product, ``h_{t-1} @ W_hh^T`` forward and
``dz_{t+1} @ W_hh`` backward: the products the kernels compute with ``tl.dot``.
:mod:`cells.triton_lstm.precision` passes an emulation of the kernels' fp32
tensor-core arithmetic there.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

Matmul = Callable[[Tensor, Tensor], Tensor]


def naive_forward(x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor,
                  matmul: Matmul = torch.matmul) -> tuple[Tensor, Tensor, Tensor]:
    """-> ``hs (T+1, B, H)``, ``cs (T+1, B, H)`` (index 0 holds the initial state) and ``gates (T, B, 4H)``."""
    xp = x @ w_ih.T + b_ih + b_hh                      # (T, B, 4H): the input projection, all steps at once
    h, c = h0, c0
    hs, cs, gates = [h0], [c0], []
    for t in range(x.shape[0]):
        z = xp[t] + matmul(h, w_hh.T)
        zi, zf, zg, zo = z.chunk(4, dim=-1)
        i, f, g, o = torch.sigmoid(zi), torch.sigmoid(zf), torch.tanh(zg), torch.sigmoid(zo)
        c = f * c + i * g
        h = o * torch.tanh(c)
        hs.append(h)
        cs.append(c)
        gates.append(torch.cat([i, f, g, o], dim=-1))
    return torch.stack(hs), torch.stack(cs), torch.stack(gates)


def naive_backward(d_out: Tensor, d_hT: Tensor, d_cT: Tensor, x: Tensor, w_ih: Tensor, w_hh: Tensor,
                   hs: Tensor, cs: Tensor, gates: Tensor, matmul: Matmul = torch.matmul) -> dict[str, Tensor]:
    """BPTT by hand. ``d_out (T, B, H)``: ``dL/d out``; ``d_hT, d_cT (B, H)``: gradients of the final state.

    -> ``dz (T, B, 4H)`` and the gradients ``x, h0, c0, w_ih, w_hh, b`` (``b`` for each of ``b_ih``, ``b_hh``).
    """
    T, B, H = d_out.shape
    dz = d_out.new_empty(T, B, 4 * H)
    dh_next = d_hT                                     # recurrent share of dL/dh_t
    dc = d_cT
    for t in reversed(range(T)):
        i, f, g, o = gates[t].chunk(4, dim=-1)
        tc = torch.tanh(cs[t + 1])
        dh = d_out[t] + dh_next
        dc = dc + dh * o * (1 - tc * tc)
        dz[t] = torch.cat([dc * g * i * (1 - i),       # dL/dz_i
                           dc * cs[t] * f * (1 - f),   # dL/dz_f
                           dc * i * (1 - g * g),       # dL/dz_g
                           dh * tc * o * (1 - o)], dim=-1)  # dL/dz_o
        dc = dc * f                                    # dL/dc_{t-1}, direct path
        dh_next = matmul(dz[t], w_hh)                  # dL/dh_{t-1}, recurrent path
    flat = dz.reshape(T * B, 4 * H)
    return {"dz": dz, "x": dz @ w_ih, "h0": dh_next, "c0": dc,
            "w_ih": flat.T @ x.reshape(T * B, -1), "w_hh": flat.T @ hs[:T].reshape(T * B, H), "b": flat.sum(0)}

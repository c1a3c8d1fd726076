"""``mlstm``: the mLSTM of xLSTM (Beck et al. 2024), with ``xlstm``'s ``mLSTMLayer`` parameters and a matrix memory
carried across calls.

One layer, ``x_t`` of size I, width H, inner width P = ``proj_factor`` * H split into ``heads`` heads of
d = P / heads (so d_k = d_v = d)::

    u_t = W_in x_t + b_in                              input projection I -> H
    (a_t, g_t) = proj_up(u_t)                          two branches of P
    a'_t = silu(conv_K(a_{t-K+1}, ..., a_t))            depthwise causal convolution
    q_t, k_t = W_q a'_t, W_k a'_t;  v_t = W_v a_t       block-diagonal (blocks of 4), split into heads
    i~_t, f~_t = w_i . [q; k; v]_t + b_i, w_f . [q; k; v]_t + b_f       one scalar per head
    m_t = max(log sigmoid(f~_t) + m_{t-1}, i~_t)                        stabiliser
    C_t = f_t C_{t-1} + i_t k_t v_t^T / sqrt(d)         matrix memory per head, f_t = exp(log sigmoid(f~_t) + m_{t-1} - m_t)
    n_t = f_t n_{t-1} + i_t k_t / sqrt(d)               normaliser,  i_t = exp(i~_t - m_t)
    h~_t = C_t^T q_t / (max(|n_t . q_t|, exp(-m_t)) + 1e-6)
    out_t = proj_down((GroupNorm_heads(h~_t) + skip * a'_t) * silu(g_t))

Every module after ``W_in`` is xlstm's ``mLSTMLayer`` (created and initialised by xlstm). The recurrence is
computed here, chunkwise (:func:`mlstm_scan`), because xlstm's own forward (``parallel_stabilized_simple``)
starts every sequence from an empty memory and fails on sequences longer than its ``context_length``, and its
``step`` does one step per call. Within a chunk the form is xlstm's parallel one with the carried state as an
extra term; chunks run one after another. Tests hold it to xlstm's forward and to its ``step`` loop.

The stabiliser m is a scale: C and n are kept divided by exp(m), and the output depends on m only through the
1e-6 added to the normaliser. An empty memory (C, n, m all zero: ``state=None`` and the harness's zero state) is
read with m = -inf, as xlstm's parallel forward reads it, so that the two agree to round-off; xlstm's ``step``
reads it with m = 0, which differs by that 1e-6 term (5e-7 on outputs up to 2.3 in float64: tests).

State: ``h (L, B, H)`` = the last output (the layer does not read it back: ``h_is_readout``),
``C (L, B, heads, d, d)``, ``n (L, B, heads, d)``, ``m (L, B, heads)``, ``conv (L, B, K-1, P)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cells.xlstm import INSTALL
from harness import CellSpec, RecurrentCell, hookimpl
from harness.contract import State, StateShapes

HEADS, PROJ_FACTOR, CONV_KERNEL, QKV_BLOCKSIZE = 4, 2, 4, 4
"""xlstm's mLSTMLayerConfig defaults: heads, up-projection factor, convolution width K, q/k/v block size."""
CHUNK = 64
"""Steps per parallel block of :func:`mlstm_scan`: memory grows with ``chunk**2``, the sequential loop with ``T / chunk``."""
EPS = 1e-6
"""xlstm's epsilon in the normaliser."""


def _chunk(q: Tensor, k: Tensor, v: Tensor, i_pre: Tensor, f_pre: Tensor, C: Tensor, n: Tensor, m: Tensor,
           empty: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One chunk of S steps in parallel form, from the state ``(C, n, m)``.

    :param q, k, v: ``(B, NH, S, d)``; ``i_pre, f_pre``: ``(B, NH, S)`` gate pre-activations.
    :param C: ``(B, NH, d, d)``, ``n``: ``(B, NH, d)``, ``m``: ``(B, NH)``, the state before the chunk.
    :param empty: ``(B, NH)`` bool: the state holds nothing (its stabiliser is -inf; ``C``, ``n``, ``m`` unused).
    :returns: ``h~ (B, NH, S, d)`` and the state after the last step.
    """
    S, d = q.shape[2], q.shape[3]
    log_f = F.logsigmoid(f_pre).cumsum(-1)                                   # F_t = sum_{j <= t} log f_j
    # log weight of step k's write in the memory read at step t (k <= t): F_t - F_k + i~_k
    log_w = log_f.unsqueeze(-1) - log_f.unsqueeze(-2) + i_pre.unsqueeze(-2)  # (B, NH, S, S)
    causal = torch.ones(S, S, dtype=torch.bool, device=q.device).tril()
    log_w = log_w.masked_fill(~causal, float("-inf"))
    log_w_max = log_w.amax(-1)                                               # (B, NH, S), finite: k = t is there
    log_w0 = m.unsqueeze(-1) + log_f                                         # weight of the carried state at t
    wipe = empty.unsqueeze(-1)
    m_t = torch.where(wipe, log_w_max, torch.maximum(log_w0, log_w_max))     # the recurrent form's m_t
    # where() on both sides: the unused branch must not overflow, or its zero gradient becomes 0 * inf = nan
    w0 = torch.where(wipe, 0.0, torch.exp(torch.where(wipe, m_t, log_w0) - m_t))
    w = torch.exp(log_w - m_t.unsqueeze(-1))                                 # (B, NH, S, S), 0 above the diagonal
    k = k / math.sqrt(d)
    scores = (q @ k.transpose(-1, -2)) * w
    numerator = scores @ v + w0.unsqueeze(-1) * (q @ C)
    denominator = scores.sum(-1) + w0 * (q @ n.unsqueeze(-1)).squeeze(-1)
    h = numerator / (torch.maximum(denominator.abs(), torch.exp(-m_t)) + EPS).unsqueeze(-1)
    writes = w[..., -1, :].unsqueeze(-1) * k                                 # (B, NH, S, d): each step's share at S-1
    C_last = w0[..., -1, None, None] * C + writes.transpose(-1, -2) @ v
    n_last = w0[..., -1, None] * n + writes.sum(-2)
    return h, C_last, n_last, m_t[..., -1]


def mlstm_scan(q: Tensor, k: Tensor, v: Tensor, i_pre: Tensor, f_pre: Tensor, C: Tensor, n: Tensor, m: Tensor,
               chunk: int = CHUNK) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor]]:
    """The mLSTM recurrence over ``T`` steps from ``(C, n, m)``, ``chunk`` steps at a time.

    :param q, k, v: ``(B, NH, T, d)``; ``i_pre, f_pre``: ``(B, NH, T)``.
    :param C: ``(B, NH, d, d)``; ``n``: ``(B, NH, d)``; ``m``: ``(B, NH)``. All zero for a head: an empty memory.
    :returns: ``h~ (B, NH, T, d)`` and ``(C, n, m)`` after the last step.
    """
    empty = (C == 0).flatten(-2).all(-1) & (n == 0).all(-1) & (m == 0)
    outs = []
    for parts in zip(*(t.split(chunk, dim=2) for t in (q, k, v)), *(t.split(chunk, dim=-1) for t in (i_pre, f_pre))):
        h, C, n, m = _chunk(*parts, C, n, m, empty)
        empty = torch.zeros_like(empty)  # after a step the memory holds something (m is finite)
        outs.append(h)
    return (outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)), (C, n, m)


class MLSTM(RecurrentCell):
    """One mLSTM layer. ``x (T, B, I)``, state ``(h, C, n, m, conv)`` -> ``out (T, B, H)``.

    :param heads: mLSTM heads; ``proj_factor * hidden_size`` must be a multiple of 4 and of ``heads``.
    :param chunk: steps per parallel block (:data:`CHUNK`).
    """

    state_names = ("h", "C", "n", "m", "conv")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0, *,
                 heads: int = HEADS, proj_factor: int = PROJ_FACTOR, conv_kernel: int = CONV_KERNEL,
                 chunk: int = CHUNK):
        super().__init__(input_size, hidden_size, num_layers, dropout)
        if num_layers != 1:
            raise ValueError(f"mlstm: one layer per module (the harness stacks them), got num_layers={num_layers}")
        inner = proj_factor * hidden_size
        multiple = math.lcm(QKV_BLOCKSIZE, heads)
        if inner % multiple:
            raise ValueError(f"mlstm: proj_factor * hidden_size = {inner} must be a multiple of {multiple} "
                             f"(q/k/v blocks of {QKV_BLOCKSIZE}, {heads} heads)")
        if conv_kernel < 2:
            raise ValueError(f"mlstm: conv_kernel must be at least 2, got {conv_kernel}")
        from xlstm import mLSTMLayer, mLSTMLayerConfig  # the optional package: imported when a cell is built

        self.proj = nn.Linear(input_size, hidden_size)
        # inner = proj_factor * H exactly (xlstm rounds up to a multiple of 64 by default): a smooth parameter
        # count. context_length only sizes xlstm's causal mask, which this module does not use.
        self.layer = mLSTMLayer(mLSTMLayerConfig(
            embedding_dim=hidden_size, num_heads=heads, proj_factor=proj_factor, conv1d_kernel_size=conv_kernel,
            qkv_proj_blocksize=QKV_BLOCKSIZE, round_proj_up_to_multiple_of=multiple, context_length=1))
        self.inner, self.heads, self.conv_kernel, self.chunk = inner, heads, conv_kernel, chunk

    def state_shapes(self) -> StateShapes:
        d = self.inner // self.heads
        return {"h": (self.hidden_size,), "C": (self.heads, d, d), "n": (self.heads, d), "m": (self.heads,),
                "conv": (self.conv_kernel - 1, self.inner)}

    def _initial(self, x: Tensor, state: State | None) -> tuple[Tensor, ...]:
        """The layer's ``(h, C, n, m, conv)`` without the layer dimension."""
        if x.dim() != 3 or x.shape[2] != self.input_size or x.shape[0] < 1:
            raise ValueError(f"mlstm: x must be (T, B, I) with T >= 1 and I = {self.input_size}, got {tuple(x.shape)}")
        B, shapes = x.shape[1], self.state_shapes()
        if state is None:
            return tuple(x.new_zeros((B, *shapes[n])) for n in self.state_names)
        if not isinstance(state, (tuple, list)) or len(state) != 5:
            raise ValueError("mlstm: state must be a tuple (h, C, n, m, conv)")
        for name, s in zip(self.state_names, state):
            if tuple(s.shape) != (1, B, *shapes[name]):
                raise ValueError(f"mlstm: state {name!r} has shape {tuple(s.shape)}, expected {(1, B, *shapes[name])}")
        return tuple(s[0] for s in state)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """x: (T, B, I); state: None or (h, C, n, m, conv) -> out (T, B, H), the state after the last step."""
        _, C0, n0, m0, conv0 = self._initial(x, state)
        T, B = x.shape[:2]
        layer, cell = self.layer, self.layer.mlstm_cell
        u = self.proj(x).transpose(0, 1)                                        # (B, T, H)
        a, g = layer.proj_up(u).split(self.inner, dim=-1)                       # (B, T, P) each
        a_conv, conv_last = layer.conv1d(a, conv0, return_last_state=True)
        a_conv = layer.conv_act_fn(a_conv)
        q, k, v = layer.q_proj(a_conv), layer.k_proj(a_conv), layer.v_proj(a)
        qkv = torch.cat([q, k, v], dim=-1)
        i_pre, f_pre = cell.igate(qkv).transpose(1, 2), cell.fgate(qkv).transpose(1, 2)    # (B, NH, T)

        def heads(t: Tensor) -> Tensor:
            return t.view(B, T, self.heads, -1).transpose(1, 2)                 # (B, NH, T, d)

        h, (C, n, m) = mlstm_scan(heads(q), heads(k), heads(v), i_pre, f_pre, C0, n0, m0, self.chunk)
        h = cell.outnorm(h).transpose(1, 2).reshape(B, T, self.inner)
        h = (h + layer.learnable_skip * a_conv) * layer.ogate_act_fn(g)
        out = layer.proj_down(h).transpose(0, 1)                                # (T, B, H)
        return out, (out[-1:], C.unsqueeze(0), n.unsqueeze(0), m.unsqueeze(0), conv_last.unsqueeze(0))


SPEC = CellSpec(
    name="mlstm",
    description=f"mLSTM (Beck et al. 2024), xlstm's layer with a chunkwise matrix-memory scan: any T (xlstm's own "
                f"forward stops at context_length); {HEADS} heads; xlstm pulls in mlstm_kernels (NXAI licence: "
                "commercial terms above a revenue threshold)",
    factory=MLSTM,
    state_names=MLSTM.state_names,
    max_layers=1,
    whole_sequence=True,
    h_is_readout=True,
    hidden_multiple=2,  # P = 2H a multiple of 4 (q/k/v blocks, heads): no rounding, a smooth parameter count
    requires=("xlstm",),
    install=INSTALL,
    color="#7570b3",  # ColorBrewer Dark2: no built-in or derived colour
)


@hookimpl
def register_cells(register):
    register(SPEC)

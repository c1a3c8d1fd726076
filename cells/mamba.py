"""``mamba``: one Mamba block (Gu and Dao 2023, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces")
from the ``mambapy`` package (PyPI ``mambapy``, MIT), on its pure-PyTorch parallel scan, with its true state.

One layer, ``x_t`` of size I, model width H (E = ``expand``, N = ``d_state``, K = ``d_conv``)::

    u_t = W_in x_t + b_in                                   input projection I -> H (the harness's I may differ)
    (a_t, z_t) = in_proj(u_t)                               two branches, each E*H
    c_t = silu(conv_K(a_{t-K+1}, ..., a_t))                  depthwise causal convolution over time
    (dt_t, B_t, C_t) = x_proj(c_t);  dt_t = softplus(dt_proj(dt_t))
    s_t = exp(dt_t A) * s_{t-1} + dt_t B_t c_t               SSM state s_t: (E*H, N), A = -exp(A_log)
    y_t = out_proj((s_t C_t + D c_t) * silu(z_t))            the block's output, size H

The parameters after ``W_in`` are mambapy's ``MambaBlock(MambaConfig(d_model=H))``, created and initialised by
mambapy. Its own ``forward`` starts every sequence from a zero state; this module computes the same block from a
given state, so a sequence can be carried across calls:

* the convolution prepends the cached last K-1 inputs ``a`` (zeros: mambapy's zero padding) instead of padding;
* the scan folds ``s_0`` into the first step (``dA_0 s_0 + dBx_0``) and then runs mambapy's ``pscan`` from zero.

State, as the contract carries it: ``h (L, B, H)`` = the last output ``y_t`` (``out[t]``; the block does not read
it back, hence ``h_is_readout``), ``ssm (L, B, E*H, N)`` and ``conv (L, B, E*H, K-1)``: the layouts of mambapy's
own ``step`` cache ``(h, inputs)``. Parameter count and defaults: ``docs/modern-cells.md``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness import CellSpec, RecurrentCell, hookimpl
from harness.contract import State, StateShapes

INSTALL = "pip install 'rnn-harness[mamba]'"
D_STATE, EXPAND, D_CONV = 16, 2, 4
"""mambapy's defaults (``MambaConfig``): SSM state size N, expansion E, convolution width K."""


class Mamba(RecurrentCell):
    """One Mamba layer. ``x (T, B, I)``, state ``(h, ssm, conv)`` each ``(1, B, ...)`` -> ``out (T, B, H)``.

    :param d_state: N, the SSM state size per channel.
    :param expand: E; the block works on E*H channels.
    :param d_conv: K >= 2, the convolution width; the cache holds the last K-1 inputs.
    """

    state_names = ("h", "ssm", "conv")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0, *,
                 d_state: int = D_STATE, expand: int = EXPAND, d_conv: int = D_CONV):
        super().__init__(input_size, hidden_size, num_layers, dropout)
        if num_layers != 1:
            raise ValueError(f"mamba: one layer per module (the harness stacks them), got num_layers={num_layers}")
        if d_conv < 2:
            raise ValueError(f"mamba: d_conv must be at least 2 (the cache holds d_conv - 1 inputs), got {d_conv}")
        from mambapy.mamba import MambaBlock, MambaConfig  # the optional package: imported when a cell is built

        self.proj = nn.Linear(input_size, hidden_size)
        self.block = MambaBlock(MambaConfig(d_model=hidden_size, n_layers=1, d_state=d_state, expand_factor=expand,
                                            d_conv=d_conv))
        self.inner, self.d_state, self.d_conv = self.block.config.d_inner, d_state, d_conv

    def state_shapes(self) -> StateShapes:
        return {"h": (self.hidden_size,), "ssm": (self.inner, self.d_state), "conv": (self.inner, self.d_conv - 1)}

    def _initial(self, x: Tensor, state: State | None) -> tuple[Tensor, Tensor, Tensor]:
        """The layer's ``(h, ssm, conv)`` without the layer dimension: ``(B, H), (B, E*H, N), (B, E*H, K-1)``."""
        if x.dim() != 3 or x.shape[2] != self.input_size or x.shape[0] < 1:
            raise ValueError(f"mamba: x must be (T, B, I) with T >= 1 and I = {self.input_size}, got {tuple(x.shape)}")
        shapes = self.state_shapes()
        if state is None:
            return tuple(x.new_zeros((x.shape[1], *shapes[n])) for n in self.state_names)
        if not isinstance(state, (tuple, list)) or len(state) != 3:
            raise ValueError("mamba: state must be a tuple (h, ssm, conv)")
        for name, s in zip(self.state_names, state):
            if tuple(s.shape) != (1, x.shape[1], *shapes[name]):
                raise ValueError(f"mamba: state {name!r} has shape {tuple(s.shape)}, expected "
                                 f"{(1, x.shape[1], *shapes[name])}")
        return tuple(s[0] for s in state)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """x: (T, B, I); state: None or (h, ssm, conv) -> out (T, B, H), (h, ssm, conv) after the last step."""
        _, ssm0, conv0 = self._initial(x, state)
        block = self.block
        a, z = block.in_proj(self.proj(x).transpose(0, 1)).chunk(2, dim=-1)    # (B, T, E*H) each
        window = torch.cat([conv0, a.transpose(1, 2)], dim=2)                   # (B, E*H, K-1+T)
        conv_last = window[:, :, -(self.d_conv - 1):]                           # the next call's cache
        c = F.conv1d(window, block.conv1d.weight, block.conv1d.bias, groups=self.inner)
        c = F.silu(c.transpose(1, 2))                                           # (B, T, E*H)
        y, ssm_last = self._scan(c, ssm0)
        out = block.out_proj(y * F.silu(z)).transpose(0, 1)                    # (T, B, H)
        return out, (out[-1:], ssm_last.unsqueeze(0), conv_last.unsqueeze(0))

    def _scan(self, c: Tensor, s0: Tensor) -> tuple[Tensor, Tensor]:
        """mambapy's ``ssm`` + ``selective_scan`` from the state ``s0 (B, E*H, N)``: c (B, T, E*H) ->
        y (B, T, E*H) and the last state (B, E*H, N). In the parameters' dtype (mambapy casts A and D to float32)."""
        from mambapy.pscan import pscan

        block, cfg = self.block, self.block.config
        A = -torch.exp(block.A_log)                                             # (E*H, N)
        delta, B, C = torch.split(block.x_proj(c), [cfg.dt_rank, cfg.d_state, cfg.d_state], dim=-1)
        delta = F.softplus(block.dt_proj(delta))                                # (B, T, E*H)
        dA = torch.exp(delta.unsqueeze(-1) * A)                                 # (B, T, E*H, N)
        dBx = delta.unsqueeze(-1) * B.unsqueeze(2) * c.unsqueeze(-1)            # (B, T, E*H, N)
        # s_1 = dA_1 s_0 + dBx_1: with s_0 folded into the first input, the scan starts from zero as pscan does.
        dBx = torch.cat([dA[:, :1] * s0.unsqueeze(1) + dBx[:, :1], dBx[:, 1:]], dim=1)
        states = pscan(dA, dBx)                                                 # (B, T, E*H, N)
        y = (states @ C.unsqueeze(-1)).squeeze(-1) + block.D * c
        return y, states[:, -1]


SPEC = CellSpec(
    name="mamba",
    description=f"Mamba block (Gu & Dao 2023) on mambapy's pure-PyTorch parallel scan (MIT); state ssm ({EXPAND}H, "
                f"{D_STATE}) and conv cache ({EXPAND}H, {D_CONV - 1})",
    factory=Mamba,
    state_names=Mamba.state_names,
    max_layers=1,
    whole_sequence=True,
    h_is_readout=True,
    requires=("mambapy",),
    install=INSTALL,
    color="#1b9e77",  # ColorBrewer Dark2: no built-in or derived colour
)


@hookimpl
def register_cells(register):
    register(SPEC)

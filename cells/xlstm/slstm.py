"""``slstm``: the sLSTM of xLSTM (Beck et al. 2024), from ``xlstm``'s ``sLSTMLayer`` on its "vanilla" backend.

One layer, ``x_t`` of size I, width H split into ``heads`` blocks of H/heads units::

    u_t = W_in x_t + b_in                               input projection I -> H
    v_t = silu(conv_K(u_{t-K+1}, ..., u_t))             depthwise causal convolution (feeds i and f only)
    i~, f~ = W_i v_t + R_i h_{t-1} + b_i, W_f v_t + R_f h_{t-1} + b_f     W, R block-diagonal per head
    z~, o~ = W_z u_t + R_z h_{t-1} + b_z, W_o u_t + R_o h_{t-1} + b_o
    m_t = max(log sigmoid(f~) + m_{t-1}, i~)             stabiliser (m_t = i~ when every n is 0: an empty state)
    i_t = exp(i~ - m_t),  f_t = exp(log sigmoid(f~) + m_{t-1} - m_t)
    c_t = f_t c_{t-1} + i_t tanh(z~),  n_t = f_t n_{t-1} + i_t,  h_t = sigmoid(o~) c_t / n_t

The layer after ``W_in`` is xlstm's ``sLSTMLayer`` (created, then initialised by its own ``reset_parameters`` as
xlstm's blocks do), run through its own modules in the order its ``forward`` uses them, with the vanilla cell
(``slstm_forward``, a Python loop over time). One difference: xlstm's layer passes ``h`` through a per-head
GroupNorm on its way out; here ``out`` is ``h`` itself, the state fed back through R, because the contract's
``out[t]`` is the carried ``h`` (the task's readout sees it). The GroupNorm's weight is therefore not a parameter.

State: ``h, c, n, m`` each ``(L, B, H)`` (xlstm keeps them as one ``(4, B, H)`` tensor, heads side by side) and
``conv (L, B, K-1, H)``, the last K-1 inputs of the convolution (xlstm's ``conv_state`` layout).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cells.xlstm import INSTALL
from harness import CellSpec, RecurrentCell, hookimpl
from harness.contract import State, StateShapes

HEADS, CONV_KERNEL = 4, 4
"""xlstm's sLSTMLayerConfig defaults: heads and convolution width K."""


class SLSTM(RecurrentCell):
    """One sLSTM layer. ``x (T, B, I)``, state ``(h, c, n, m, conv)`` -> ``out (T, B, H)``.

    :param heads: blocks of the recurrent and gate matrices; ``hidden_size`` must be a multiple of it, with at least
        two units per head (xlstm's forget-gate initialisation divides by units per head minus one).
    :param conv_kernel: K >= 2, width of the causal convolution in front of the input and forget gates.
    """

    state_names = ("h", "c", "n", "m", "conv")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0, *,
                 heads: int = HEADS, conv_kernel: int = CONV_KERNEL):
        super().__init__(input_size, hidden_size, num_layers, dropout)
        if num_layers != 1:
            raise ValueError(f"slstm: one layer per module (the harness stacks them), got num_layers={num_layers}")
        if hidden_size % heads or hidden_size < 2 * heads:
            # xlstm's forget-gate bias initialisation divides by (units per head - 1): one unit per head gives NaN
            raise ValueError(f"slstm: hidden_size {hidden_size} must be a multiple of its {heads} heads with at least "
                             "2 units per head")
        if conv_kernel < 2:
            raise ValueError(f"slstm: conv_kernel must be at least 2, got {conv_kernel}")
        from xlstm import sLSTMLayer, sLSTMLayerConfig  # the optional package: imported when a cell is built

        self.proj = nn.Linear(input_size, hidden_size)
        self.layer = sLSTMLayer(sLSTMLayerConfig(embedding_dim=hidden_size, num_heads=heads,
                                                 conv1d_kernel_size=conv_kernel, backend="vanilla"))
        self.layer.reset_parameters()  # what xlstm's xLSTMBlock does after building its layer
        del self.layer.group_norm      # not applied: out is the recurrent h (module docstring)
        self.conv_kernel = conv_kernel

    def state_shapes(self) -> StateShapes:
        H = self.hidden_size
        return {"h": (H,), "c": (H,), "n": (H,), "m": (H,), "conv": (self.conv_kernel - 1, H)}

    def _initial(self, x: Tensor, state: State | None) -> tuple[Tensor, Tensor]:
        """-> xlstm's ``(4, B, H)`` cell state (h, c, n, m) and ``(B, K-1, H)`` convolution state."""
        if x.dim() != 3 or x.shape[2] != self.input_size or x.shape[0] < 1:
            raise ValueError(f"slstm: x must be (T, B, I) with T >= 1 and I = {self.input_size}, got {tuple(x.shape)}")
        B, shapes = x.shape[1], self.state_shapes()
        if state is None:
            return x.new_zeros(4, B, self.hidden_size), x.new_zeros(B, *shapes["conv"])
        if not isinstance(state, (tuple, list)) or len(state) != 5:
            raise ValueError("slstm: state must be a tuple (h, c, n, m, conv)")
        for name, s in zip(self.state_names, state):
            if tuple(s.shape) != (1, B, *shapes[name]):
                raise ValueError(f"slstm: state {name!r} has shape {tuple(s.shape)}, expected {(1, B, *shapes[name])}")
        return torch.cat(state[:4]), state[4][0]

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """x: (T, B, I); state: None or (h, c, n, m, conv) -> out (T, B, H), the state after the last step."""
        cell_state, conv_state = self._initial(x, state)
        T, B, H = x.shape[0], x.shape[1], self.hidden_size
        layer = self.layer
        u = self.proj(x).transpose(0, 1)                                        # (B, T, H)
        v, conv_last = layer.conv1d(u, conv_state, return_last_state=True)
        v = layer.conv_act_fn(v)
        # sLSTMLayer.forward's wiring, kept as is: the cell's i and f slots are fed by the modules named fgate and
        # igate (in that order), both on the convolved input; z and o by zgate and ogate on the input itself.
        gates = torch.cat([layer.fgate(v), layer.igate(v), layer.zgate(u), layer.ogate(u)], dim=-1)
        hs, last = layer.slstm_cell(gates, state=cell_state)                    # (B, heads, T, H/heads), (4, B, H)
        out = hs.permute(2, 0, 1, 3).reshape(T, B, H)
        h, c, n, m = last.unsqueeze(1)
        return out, (h, c, n, m, conv_last.unsqueeze(0))


SPEC = CellSpec(
    name="slstm",
    description=f"sLSTM (Beck et al. 2024) on xlstm's vanilla backend: a Python loop over time, slow; {HEADS} heads; "
                "xlstm pulls in mlstm_kernels (NXAI licence: commercial terms above a revenue threshold)",
    factory=SLSTM,
    state_names=SLSTM.state_names,
    max_layers=1,
    hidden_multiple=2 * HEADS,  # whole heads of at least 2 units: xlstm's initialisation gives NaN for 1
    requires=("xlstm",),
    install=INSTALL,
    color="#e6ab02",  # ColorBrewer Dark2: no built-in or derived colour
)


@hookimpl
def register_cells(register):
    register(SPEC)

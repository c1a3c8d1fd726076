"""``triton-lstm``: an LSTM whose recurrence runs as persistent Triton kernels, one launch per sequence.

Layout of this package (in the style of flash-linear-attention's ``fla/ops/<op>/``):

* ``__init__.py``: the plugin hook and the module (:class:`TritonLSTM`, nn.LSTM's parameters);
* ``function.py``: host-side launchers, tile choice and the autograd Function;
* ``kernels.py``: the Triton kernels (forward and reverse-time backward);
* ``runtime.py``: the interpreter switch, availability, loading the kernels compiled or interpreted;
* ``naive.py``: the same equations in plain torch, for reading and testing.

Importing this package does not import triton; the kernels are loaded on the first call.
On the CPU the cell runs only through Triton's interpreter, and only when
``HARNESS_TRITON_INTERPRET=1`` (or ``TRITON_INTERPRET=1``) is set. See docs/triton-lstm.md.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import Tensor

from cells.triton_lstm import runtime
from cells.triton_lstm.function import MAX_HIDDEN, Tiles, forward_sequence, fused_supported, lstm_layer
from cells.triton_lstm.naive import naive_forward
from harness import CellSpec, hookimpl
from cells._lstm_parameters import LSTMParameters
from harness.contract import State

GATE_NAMES = ("input", "forget", "cell", "output", "learn", "remember", "use")


class TritonLSTM(LSTMParameters):
    """``torch.nn.LSTM`` semantics (time-major, gate order i, f, g, o), computed by Triton kernels.

    Parameters of layer ``k`` carry nn.LSTM's names and shapes, so state dicts load
    either way: ``weight_ih_l{k} (4H, I_k)``, ``weight_hh_l{k} (4H, H)``,
    ``bias_ih_l{k}``, ``bias_hh_l{k} (4H,)``; they are created and initialised in
    nn.LSTM's order with its U(-1/sqrt(H), 1/sqrt(H)), so the same seed gives the
    same weights as ``nn.LSTM``. Layers are stacked here, with dropout between them.

    :param tiles: launch configuration override (tests use it to force the multi-tile path).
    """

    cell_name = "triton-lstm"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0,
                 tiles: Tiles | None = None):
        super().__init__(input_size, hidden_size, num_layers, dropout)
        self.tiles = tiles

    @property
    def uses_triton(self) -> bool:
        """False when ``hidden_size`` is above :data:`MAX_HIDDEN` and every call falls back to ``torch.lstm``."""
        return fused_supported(self.hidden_size)

    def _inputs(self, x: Tensor, state: State | None) -> tuple[Tensor, Tensor]:
        """Check ``x (T, B, I)`` and ``state``; -> ``h0, c0`` each ``(L, B, H)``."""
        if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[2] != self.input_size or x.shape[0] < 1:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"triton-lstm: x must be (T, B, I) with T >= 1 and I = {self.input_size}, got {shape}")
        dtype = self.weight_hh_l0.dtype
        if x.dtype != dtype or x.device != self.weight_hh_l0.device:
            raise TypeError(f"triton-lstm: x is {x.dtype} on {x.device} but the weights are {dtype} on "
                            f"{self.weight_hh_l0.device}; move one with .to()")
        shape = (self.num_layers, x.shape[1], self.hidden_size)
        if state is None:
            zeros = x.new_zeros(shape)
            return zeros, zeros
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise ValueError("triton-lstm: state must be a tuple (h, c) of (L, B, H) tensors")
        for name, s in zip(self.state_names, state):
            if tuple(s.shape) != shape:
                raise ValueError(f"triton-lstm: state {name!r} has shape {tuple(s.shape)}, expected (L, B, H) = {shape}")
        return state[0].to(dtype), state[1].to(dtype)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """x: (T, B, I); state: (h, c), each (L, B, H) or None -> out (T, B, H), (h_T, c_T) each (L, B, H)."""
        h0, c0 = self._inputs(x, state)
        out, hs, cs = x, [], []
        for k in range(self.num_layers):
            if k > 0 and self.dropout > 0:
                out = F.dropout(out, self.dropout, self.training)
            out, h, c = lstm_layer(out, h0[k], c0[k], *self.layer_weights(k), tiles=self.tiles)
            hs.append(h)
            cs.append(c)
        return out, (torch.stack(hs), torch.stack(cs))

    @torch.no_grad()
    def gate_activations(self, x: Tensor, state: State | None = None) -> dict[str, Tensor]:
        """x: (T, B, I) -> {input, forget, cell, output, learn, remember, use}: each (L, T, B, H), as ``lstm``'s.

        The gates come from the forward kernel's own saved activations. No dropout (an inspection).
        """
        h0, c0 = self._inputs(x, state)
        per_layer: dict[str, list[Tensor]] = {n: [] for n in GATE_NAMES}
        layer_in = x
        for k in range(self.num_layers):
            if self.uses_triton:
                runtime.check_device(x.device)
                hs, cs, gates = forward_sequence(layer_in, h0[k], c0[k], *self.layer_weights(k), store_gates=True,
                                                 tiles=self.tiles)
            else:
                hs, cs, gates = naive_forward(layer_in, h0[k], c0[k], *self.layer_weights(k))
            i, f, g, o = gates.to(x.dtype).chunk(4, dim=-1)
            for name, value in zip(GATE_NAMES, (i, f, g, o, i * g, cs[1:].to(x.dtype), hs[1:])):
                per_layer[name].append(value)
            layer_in = hs[1:]
        return {name: torch.stack(values) for name, values in per_layer.items()}

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, dropout={self.dropout}"


SPEC = CellSpec(
    name="triton-lstm",
    description=f"LSTM as persistent Triton kernels, one launch per sequence (H <= {MAX_HIDDEN}); "
                "CPU only through Triton's interpreter",
    factory=TritonLSTM,
    state_names=("h", "c"),
    devices=("cpu", "cuda"),
    dtypes=(torch.float32, torch.float64, torch.float16, torch.bfloat16),
    exposes_gates=True,
    whole_sequence=True,
    availability=runtime.unavailable_reason,
    color="#9467bd",  # matplotlib tab10
    reference="lstm",
)


@hookimpl
def register_cells(register):
    register(SPEC)


__all__ = ["SPEC", "TritonLSTM", "Tiles", "register_cells"]

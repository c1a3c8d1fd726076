"""The torch side of ``numpy-lstm``: the module, its checks, and the autograd glue.

:class:`NumpyLSTM` holds its parameters as ``torch.nn.Parameter`` under
``torch.nn.LSTM``'s names (``weight_ih_l{k}``, ``weight_hh_l{k}``,
``bias_ih_l{k}``, ``bias_hh_l{k}``, gate order ``i, f, g, o``), so that its
``state_dict`` and an ``nn.LSTM``'s are interchangeable. The arithmetic is all
in :mod:`cells.numpy_lstm.kernel`; :class:`NumpyLSTMFunction` hands it NumPy
views of the tensors (no copies on the CPU), through :mod:`cells.numpy_lstm.threads`
(which runs slices of the batch in parallel when BLAS has several threads), and
gives torch the gradients back, so the cell trains like any other, with no torch
autograd inside it.
"""

from __future__ import annotations

import weakref

import numpy as np
import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from cells.numpy_lstm import kernel, threads
from cells.numpy_lstm.pool import POOL
from cells._lstm_parameters import LSTMParameters
from harness.contract import State

NAME = "numpy-lstm"
DTYPES = (torch.float32, torch.float64)
GATE_NAMES = ("input", "forget", "cell", "output", "learn", "remember", "use")


def _np(t: Tensor) -> np.ndarray:
    return t.detach().numpy()


class NumpyLSTMFunction(torch.autograd.Function):
    """``(x, h0, c0, masks, *params) -> (out, hT, cT)``, forward and backward in NumPy.

    ``x (T, B, I)``; ``h0``, ``c0``, ``hT``, ``cT``: ``(L, B, H)``; ``out (T, B, H)``;
    ``masks``: ``None`` or one NumPy dropout mask per gap between layers, in the
    kernel's column layout ``(H, T, B)``; ``params``: per layer ``w_ih, w_hh,
    b_ih, b_hh`` in ``nn.LSTM``'s layout.
    """

    @staticmethod
    def forward(ctx, x: Tensor, h0: Tensor, c0: Tensor, masks, *params: Tensor):
        weights = [tuple(_np(p) for p in params[k:k + 4]) for k in range(0, len(params), 4)]
        lease = POOL.lease()
        out, hT, cT, cache = threads.stack_forward(_np(x), _np(h0), _np(c0), weights, masks, empty=lease)
        weakref.finalize(cache, lease.release)                     # the cache's arrays serve again once it is gone
        ctx.cache = cache
        # The cache holds NumPy views of x and of the weights; saving them lets torch's version
        # counters refuse a backward pass after they were modified in place.
        ctx.save_for_backward(x, *params)
        return torch.from_numpy(out), torch.from_numpy(hT), torch.from_numpy(cT)

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out: Tensor, d_hT: Tensor, d_cT: Tensor):
        ctx.saved_tensors                                          # raises if any of them was modified in place
        needs = ctx.needs_input_grad
        lease = POOL.lease()
        try:
            dx, dh0, dc0, grads = threads.stack_backward(_np(d_out), _np(d_hT), _np(d_cT), ctx.cache,
                                                         need_dx=needs[0], empty=lease)
        finally:
            lease.release()                                        # scratch only: no result lives in it
        flat = [torch.from_numpy(g) for layer in grads for g in layer]
        return (torch.from_numpy(dx) if needs[0] else None,
                torch.from_numpy(dh0) if needs[1] else None,
                torch.from_numpy(dc0) if needs[2] else None,
                None, *flat)


class NumpyLSTM(LSTMParameters):
    """A stacked LSTM computed in NumPy (CPU only), with ``torch.nn.LSTM``'s parameters.

    ``forward(x (T, B, I), state=None | (h0, c0) each (L, B, H)) -> out (T, B, H), (hT, cT)``.
    Dropout (``dropout`` > 0, training mode, ``num_layers`` > 1) is applied to
    the outputs of every layer but the top one, as ``nn.LSTM`` does.
    """

    cell_name = NAME

    def _flat_weights(self) -> list[Tensor]:
        return [w for layer in range(self.num_layers) for w in self.layer_weights(layer)]

    # ------------------------------------------------------------ forward

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """x: (T, B, I); state: None or (h0, c0), each (L, B, H) -> out (T, B, H), (hT, cT)."""
        h0, c0 = self._checked(x, state)
        masks = self._dropout_masks(x) if self.training and self.dropout > 0 and self.num_layers > 1 else None
        out, hT, cT = NumpyLSTMFunction.apply(x, h0, c0, masks, *self._flat_weights())
        return out, (hT, cT)

    def _dropout_masks(self, x: Tensor) -> list[np.ndarray]:
        """One mask per gap between layers, in the kernel's column layout ``(H, T, B)``: 0 with
        probability p, else 1/(1-p). Drawn from torch's generator, so ``torch.manual_seed`` makes
        training repeatable."""
        T, B, _ = x.shape
        keep = 1.0 - self.dropout
        masks = []
        for _ in range(self.num_layers - 1):
            m = torch.empty(self.hidden_size, T, B, dtype=x.dtype).bernoulli_(keep)
            masks.append(_np(m.div_(keep) if keep > 0 else m))
        return masks

    @torch.no_grad()
    def gate_activations(self, x: Tensor, state: State | None = None) -> dict[str, Tensor]:
        """x: (T, B, I) -> {input, forget, cell, output, learn, remember, use}: each (L, T, B, H).

        ``learn = i * g``, ``remember`` = the cell state ``c_t``, ``use`` = ``h_t = o * tanh(c_t)``.
        Dropout between layers is not applied: this is an inspection, not training.
        """
        h0, c0 = self._checked(x, state)
        weights = [tuple(_np(w) for w in self.layer_weights(k)) for k in range(self.num_layers)]
        *_, cache = kernel.stack_forward(_np(x), _np(h0), _np(c0), weights)
        per_layer: dict[str, list[np.ndarray]] = {n: [] for n in GATE_NAMES}
        for layer in cache.layers:                                 # the kernel's column layout, (T, H, B)
            i, f, g, o = (layer.gates[:, k] for k in range(4))
            for name, value in zip(GATE_NAMES, (i, f, g, o, i * g, layer.cs[1:], layer.hs[:, 1:].transpose(1, 0, 2))):
                per_layer[name].append(value.transpose(0, 2, 1))  # -> (T, B, H)
        return {name: torch.from_numpy(np.stack(values)) for name, values in per_layer.items()}

    # ------------------------------------------------------------ checks

    def _checked(self, x: Tensor, state: State | None) -> tuple[Tensor, Tensor]:
        """Raise a one-line error naming the problem, or return ``(h0, c0)`` (zeros when ``state`` is None)."""
        if not isinstance(x, Tensor):
            raise TypeError(f"{NAME}: x must be a torch.Tensor of shape (T, B, I), got {type(x).__name__}")
        param = self.weight_ih_l0
        if param.device.type != "cpu":
            raise ValueError(f"{NAME} runs on the CPU only (NumPy), but its parameters are on {param.device}; "
                             "call .cpu() on the cell, or use the 'lstm' cell on a GPU")
        if x.device.type != "cpu":
            raise ValueError(f"{NAME} runs on the CPU only (NumPy), but x is on {x.device}; "
                             "pass x.cpu(), or use the 'lstm' cell on a GPU")
        if x.dtype not in DTYPES:
            raise TypeError(f"{NAME} supports float32 and float64 only, but x is {_dtype(x.dtype)}")
        if x.dtype != param.dtype:
            raise TypeError(f"{NAME}: x is {_dtype(x.dtype)} but the parameters are {_dtype(param.dtype)}; convert "
                            f"one of them (cell.to(torch.{_dtype(x.dtype)}) or x.to(torch.{_dtype(param.dtype)}))")
        if x.dim() != 3:
            raise ValueError(f"{NAME}: x must be 3-D (T, B, I) (time-major), got shape {tuple(x.shape)}")
        T, B, I = x.shape
        if I != self.input_size:
            raise ValueError(f"{NAME}: x has {I} features per step (shape {tuple(x.shape)}), "
                             f"but the cell was built with input_size={self.input_size}")
        if T < 1 or B < 1:
            raise ValueError(f"{NAME}: x needs at least one step and one sequence, got shape {tuple(x.shape)}")
        expected = (self.num_layers, B, self.hidden_size)
        if state is None:
            zeros = x.new_zeros(expected)
            return zeros, zeros
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            got = type(state).__name__
            if isinstance(state, (tuple, list)):
                got += f" of length {len(state)}"
            raise TypeError(f"{NAME}: state must be a tuple (h0, c0) of two (L, B, H) = {expected} tensors, got {got}")
        for name, s in zip(("h0", "c0"), state):
            if not isinstance(s, Tensor):
                raise TypeError(f"{NAME}: state {name} must be a torch.Tensor of shape {expected}, "
                                f"got {type(s).__name__}")
            if s.device.type != "cpu":
                raise ValueError(f"{NAME} runs on the CPU only (NumPy), but state {name} is on {s.device}")
            if s.dtype != x.dtype:
                raise TypeError(f"{NAME}: state {name} is {_dtype(s.dtype)} but x is {_dtype(x.dtype)}; use one dtype")
            if tuple(s.shape) != expected:
                raise ValueError(f"{NAME}: state {name} must have shape (L, B, H) = {expected}, got {tuple(s.shape)}")
        return state[0], state[1]

    # ------------------------------------------------------------ weights from torch

    @torch.no_grad()
    def load_from_torch(self, lstm: nn.Module) -> "NumpyLSTM":
        """Copy every weight from an ``nn.LSTM`` (or a cell holding one as ``.rnn``, like ``cells.lstm.TorchLSTM``).

        The layouts are the same, so this is a one-to-one copy; sizes must match.
        :returns: ``self``.
        """
        source = _torch_lstm(lstm)
        sizes = (source.input_size, source.hidden_size, source.num_layers)
        if sizes != (self.input_size, self.hidden_size, self.num_layers):
            raise ValueError(f"{NAME}: nn.LSTM has (input_size, hidden_size, num_layers) = {sizes}, "
                             f"this cell {(self.input_size, self.hidden_size, self.num_layers)}")
        for name, param in self.named_parameters():
            param.copy_(getattr(source, name))
        return self

    @classmethod
    def from_torch(cls, lstm: nn.Module) -> "NumpyLSTM":
        """A new cell with the sizes, dropout, weights and dtype of an ``nn.LSTM`` (or of a cell holding one
        as ``.rnn``)."""
        source = _torch_lstm(lstm)
        cell = cls(source.input_size, source.hidden_size, source.num_layers, source.dropout)
        return cell.to(source.weight_ih_l0.dtype).load_from_torch(source)


def _torch_lstm(module: nn.Module) -> nn.LSTM:
    """The ``nn.LSTM`` in ``module`` (itself, or ``module.rnn``), checked to have the same layout as this cell."""
    source = getattr(module, "rnn", module)
    if not isinstance(source, nn.LSTM):
        raise TypeError(f"{NAME}: expected a torch.nn.LSTM (or a cell with one as .rnn), got {type(module).__name__}")
    if source.bidirectional or source.proj_size or not source.bias:
        raise ValueError(f"{NAME}: only unidirectional nn.LSTM with biases and no projection can be copied (got "
                         f"bidirectional={source.bidirectional}, proj_size={source.proj_size}, bias={source.bias})")
    return source


def _dtype(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")

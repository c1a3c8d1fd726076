"""One LSTM layer over a whole sequence: host-side launchers and the autograd Function.

Forward, for ``x (T, B, I)``, ``h0, c0 (B, H)``, nn.LSTM weights (gate order i, f, g, o)::

    xp = x @ W_ih^T + b_ih + b_hh                    one matmul for all steps, (T, B, 4H)
    for t:                                            one persistent Triton launch
        z = xp[t] + h_{t-1} @ W_hh^T
        i, f, g, o = sigmoid(z_i), sigmoid(z_f), tanh(z_g), sigmoid(z_o)
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(c_t)

Backward (BPTT), side by side with the forward; ``dh_t`` collects ``dL/d out_t``
and the recurrent path ``dz_{t+1} @ W_hh``::

    for t = T-1 .. 0:                                 one persistent Triton launch
        dh  = dL/d out_t + dz_{t+1} @ W_hh            (+ dL/dh_T at t = T-1)
        dc  = dc_{t+1} * f_{t+1} + dh * o * (1 - tanh(c_t)^2)
        dz_i = dc * g * i * (1 - i)
        dz_f = dc * c_{t-1} * f * (1 - f)
        dz_g = dc * i * (1 - g^2)
        dz_o = dh * tanh(c_t) * o * (1 - o)
    dW_ih = sum_t dz_t^T x_t        dW_hh = sum_t dz_t^T h_{t-1}      large matmuls over all steps (torch)
    db_ih = db_hh = sum_t dz_t      dx_t = dz_t @ W_ih                dh_0 = dz_0 @ W_hh

Accumulation is in float32 (float64 for float64 inputs): cell states and ``dz``
are kept in that dtype; ``h``, the saved gates and the matmul operands stay in
the input (compute) dtype, so bf16/fp16 use tensor cores with fp32 accumulation.
``H`` is padded with zeros to a multiple of 16 before the launch (padded units
stay exactly zero and never feed the real ones), so that every row and gate
block of every buffer is 16-element aligned.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, NamedTuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from cells.triton_lstm import runtime

MIN_TILE = 16
"""Smallest tile edge: ``tl.dot`` needs M, N, K >= 16 on NVIDIA tensor cores. The batch block is padded to it
too, so a batch of 1 costs as much as a batch of 16. ``H`` is padded (with zeros) to a multiple of it."""
RESIDENT_BYTES = {2: 128 * 1024, 4: 64 * 1024, 8: 64 * 1024}
"""By element size: ``W_hh`` stays on chip for the whole sequence when its four padded ``H x H`` blocks take at
most this much: H <= 128 in fp16 and bf16 (128 KiB), H <= 64 in fp32 (64 KiB), H <= 32 in fp64. Shared memory
per configuration, compiled for sm_90, is in docs/triton-lstm.md (``python -m cells.triton_lstm.aot``) and is
checked against the 227 KiB an sm_90 block may use by tests/test_triton_lstm.py."""
MAX_HIDDEN = 512
"""Largest ``H`` run by the Triton kernels; larger layers fall back to ``torch.lstm`` (cuDNN on a GPU). One
program streams all of ``W_hh`` (4H x H) every step; at ``H = 512`` that is 2 MiB in bf16 (4 MiB fp32) per step and
program, served from L2, and beyond it the per-step weight traffic of a single program dominates (see
docs/triton-lstm.md)."""
POISON = False
"""Tests set this to fill every buffer the kernels write with NaN first, so an element they fail to write shows."""


@dataclass(frozen=True)
class Tiles:
    """Launch configuration. ``resident``: one tile covers all of ``H`` and ``W_hh`` stays on chip."""

    block_b: int
    block_h: int
    block_k: int
    resident: bool
    num_warps: int = 4

    def counts(self, hidden: int) -> tuple[int, int]:
        """Hidden and reduction tiles per step for a padded hidden size (compile-time loop counts)."""
        return -(-hidden // self.block_h), -(-hidden // self.block_k)


class Launch(NamedTuple):
    """One kernel launch, as :func:`record_launches` captures it: ``kernel[grid](*args, **meta)``."""

    kernel: str
    grid: tuple[int]
    args: tuple
    meta: dict


_recorded: list[Launch] | None = None


def padded_hidden(hidden_size: int) -> int:
    """``H`` rounded up to a multiple of :data:`MIN_TILE`, the width the kernels see."""
    return -(-hidden_size // MIN_TILE) * MIN_TILE


def _next_power_of_2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def choose_tiles(hidden_size: int, dtype: torch.dtype) -> Tiles:
    """The default tiles for ``H = hidden_size`` (see :data:`RESIDENT_BYTES`)."""
    edge = max(MIN_TILE, _next_power_of_2(padded_hidden(hidden_size)))
    if 4 * edge * edge * dtype.itemsize <= RESIDENT_BYTES[dtype.itemsize]:
        return Tiles(MIN_TILE, edge, edge, True, num_warps=4 if edge <= MIN_TILE else 8)
    return Tiles(MIN_TILE, 64 if dtype.itemsize <= 4 else 32, 64 if dtype.itemsize <= 2 else 32, False, num_warps=8)


def _check_tiles(tiles: Tiles, hidden: int) -> None:
    for edge in (tiles.block_b, tiles.block_h, tiles.block_k):
        if edge < MIN_TILE or edge & (edge - 1):
            raise ValueError(f"tile edges must be powers of two >= {MIN_TILE}, got {tiles}")
    if tiles.resident and (tiles.block_h < hidden or tiles.block_k < hidden):
        raise ValueError(f"resident tiles must cover H={hidden}, got {tiles}")


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _precision(dtype: torch.dtype, interpret: bool) -> str | None:
    """fp32 products use tensor cores: three TF32 products per product ("tf32x3", close to fp32; see
    docs/triton-lstm.md), or one ("tf32") when torch's own switch for fp32 matmuls allows TF32
    (``torch.backends.cuda.matmul.allow_tf32``, set by ``torch.set_float32_matmul_precision("high")``); fp64 is
    exact; 16-bit operands use tensor cores with fp32 accumulation (Triton's default). The interpreter multiplies
    exactly whatever it is told."""
    if dtype == torch.float32:
        return "tf32" if torch.backends.cuda.matmul.allow_tf32 else "tf32x3"
    return "ieee" if dtype == torch.float64 or _upcast(dtype, interpret) else None


def _upcast(dtype: torch.dtype, interpret: bool) -> bool:
    # the interpreter cannot multiply bf16 (see kernels._load4); compiled kernels use bf16 tensor cores
    return dtype == torch.bfloat16 and interpret


def _on(device: torch.device):
    """Triton launches on torch's *current* CUDA device; make it the tensors' one."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def _empty(*shape: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A buffer the kernels write (NaN-filled under :data:`POISON`)."""
    if POISON:
        return torch.full(shape, float("nan"), dtype=dtype, device=device)
    return torch.empty(shape, dtype=dtype, device=device)


def _pad(t: Tensor, dim: int, hidden: int, padded: int, blocks: int = 1) -> Tensor:
    """Zero-pad each of ``blocks`` consecutive blocks of ``hidden`` along ``dim`` to ``padded``."""
    if padded == hidden:
        return t
    dim %= t.dim()
    out = t.new_zeros(*t.shape[:dim], blocks, padded, *t.shape[dim + 1:])
    out.narrow(dim + 1, 0, hidden).copy_(t.unflatten(dim, (blocks, hidden)))
    return out.flatten(dim, dim + 1)


def unpad(t: Tensor, hidden: int, blocks: int = 1) -> Tensor:
    """Inverse of :func:`_pad` along the last dimension: ``(..., blocks * padded) -> (..., blocks * hidden)``."""
    padded = t.shape[-1] // blocks
    if padded == hidden:
        return t
    return t.unflatten(-1, (blocks, padded))[..., :hidden].flatten(-2)


def _padded_w_hh(w_hh: Tensor, padded: int) -> Tensor:
    """``W_hh (4H, H) -> (4Hp, Hp)``, zero rows and columns added: padded units never feed the real ones."""
    hidden = w_hh.shape[1]
    return _pad(_pad(w_hh, 0, hidden, padded, 4), 1, hidden, padded).contiguous()


@contextlib.contextmanager
def record_launches() -> Iterator[list[Launch]]:
    """Record the kernel launches instead of running them (with ``device="meta"`` tensors no data is touched):
    :mod:`cells.triton_lstm.aot` compiles exactly what a real launch would, without a GPU."""
    global _recorded
    saved, _recorded = _recorded, []
    try:
        yield _recorded
    finally:
        _recorded = saved


def _launch(kernel: str, device: torch.device, dtype: torch.dtype, tiles: Tiles, batch: int, hidden: int,
            *args, **constexprs) -> None:
    """``kernel[grid](*args, ...)`` with the tile constants for padded width ``hidden``, on ``device``."""
    interpret = runtime.use_interpreter(device)
    n_tiles, k_tiles = tiles.counts(hidden)
    meta = dict(BLOCK_B=tiles.block_b, BLOCK_H=tiles.block_h, BLOCK_K=tiles.block_k, N_TILES=n_tiles,
                K_TILES=k_tiles, RESIDENT=tiles.resident, PRECISION=_precision(dtype, interpret),
                UPCAST=_upcast(dtype, interpret), num_warps=tiles.num_warps, **constexprs)
    grid = (-(-batch // tiles.block_b),)
    if _recorded is not None:
        _recorded.append(Launch(kernel, grid, args, meta))
        return
    with _on(device):
        getattr(runtime.load_kernels(interpret), kernel)[grid](*args, **meta)


def _forward_padded(x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor,
                    store_gates: bool, tiles: Tiles | None) -> tuple[Tensor, Tensor, Tensor | None]:
    """:func:`forward_sequence` with ``H`` padded to ``Hp``: ``hs, cs (T+1, B, Hp)``, ``gates (T, B, 4Hp)``."""
    T, B, I = x.shape
    H = w_hh.shape[1]
    Hp = padded_hidden(H)
    tiles = tiles or choose_tiles(H, x.dtype)
    _check_tiles(tiles, Hp)
    acc = accumulation_dtype(x.dtype)
    xp = torch.addmm(_pad(b_ih + b_hh, 0, H, Hp, 4), x.reshape(T * B, I), _pad(w_ih, 0, H, Hp, 4).t())
    hs = _empty(T + 1, B, Hp, dtype=x.dtype, device=x.device)
    hs[0] = _pad(h0, 1, H, Hp)
    cs = _empty(T + 1, B, Hp, dtype=acc, device=x.device)
    cs[0] = _pad(c0, 1, H, Hp)
    gates = _empty(T if store_gates else 1, B, 4 * Hp, dtype=x.dtype, device=x.device)
    _launch("lstm_forward_kernel", x.device, x.dtype, tiles, B, Hp, xp.view(T, B, 4 * Hp), _padded_w_hh(w_hh, Hp),
            hs, cs, gates, T, B, Hp, STORE_GATES=store_gates)
    return hs, cs, (gates if store_gates else None)


def forward_sequence(x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor,
                     *, store_gates: bool, tiles: Tiles | None = None) -> tuple[Tensor, Tensor, Tensor | None]:
    """-> ``hs (T+1, B, H)`` (input dtype, ``hs[0] = h0``), ``cs (T+1, B, H)`` (accumulation dtype) and
    ``gates (T, B, 4H)`` (input dtype; ``None`` unless ``store_gates``)."""
    H = w_hh.shape[1]
    hs, cs, gates = _forward_padded(x, h0, c0, w_ih, w_hh, b_ih, b_hh, store_gates, tiles)
    return unpad(hs, H), unpad(cs, H), (None if gates is None else unpad(gates, H, 4))


def backward_sequence(d_out: Tensor | None, d_hT: Tensor | None, d_cT: Tensor | None, x: Tensor, w_hh: Tensor,
                      hs: Tensor, cs: Tensor, gates: Tensor, tiles: Tiles | None = None) -> tuple[Tensor, Tensor]:
    """BPTT through the saved (padded) forward pass -> ``dz (T, B, 4H)`` (pre-activation gradients) and
    ``dc0 (B, H)`` (both in the accumulation dtype)."""
    T, B, _ = x.shape
    H, Hp = w_hh.shape[1], hs.shape[-1]
    tiles = tiles or choose_tiles(H, x.dtype)
    acc = cs.dtype
    if d_out is None:
        dh = torch.zeros(T, B, Hp, dtype=acc, device=x.device)
    else:
        dh = _pad(d_out.to(dtype=acc, copy=True), 2, H, Hp).contiguous()
    if d_hT is not None:
        dh[-1, :, :H] += d_hT
    dz = _empty(T + 1, B, 4 * Hp, dtype=acc, device=x.device)
    dz[T] = 0
    dc = _empty(2, B, Hp, dtype=acc, device=x.device)
    dc[T % 2] = 0 if d_cT is None else _pad(d_cT, 1, H, Hp)
    _launch("lstm_backward_kernel", x.device, x.dtype, tiles, B, Hp, dh, _padded_w_hh(w_hh, Hp), cs, gates, dz, dc,
            T, B, Hp)
    return unpad(dz[:T], H, 4), unpad(dc[0], H)


class LSTMSequence(torch.autograd.Function):
    """``(x, h0, c0, W_ih, W_hh, b_ih, b_hh) -> (out (T, B, H), h_T (B, H), c_T (B, H))`` for one layer."""

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, tiles):
        hs, cs, gates = _forward_padded(x, h0, c0, w_ih, w_hh, b_ih, b_hh, True, tiles)  # padded: backward's input
        ctx.save_for_backward(x, w_ih, w_hh, hs, cs, gates)
        ctx.tiles = tiles
        H = w_hh.shape[1]
        return unpad(hs[1:], H), unpad(hs[-1], H).clone(), unpad(cs[-1], H).to(x.dtype, copy=True)

    @staticmethod
    @once_differentiable  # the backward kernel is not itself differentiable
    def backward(ctx, d_out, d_hT, d_cT):
        x, w_ih, w_hh, hs, cs, gates = ctx.saved_tensors
        T, B, I = x.shape
        H = w_hh.shape[1]
        dz, dc0 = backward_sequence(d_out, d_hT, d_cT, x, w_hh, hs, cs, gates, ctx.tiles)
        dzw = dz.to(x.dtype).reshape(T * B, 4 * H)
        need = ctx.needs_input_grad
        dx = (dzw @ w_ih).view(T, B, I) if need[0] else None                       # dx_t = dz_t @ W_ih
        dh0 = dzw[:B] @ w_hh if need[1] else None                                  # dh_0 = dz_0 @ W_hh
        dc0 = dc0.to(x.dtype) if need[2] else None
        dw_ih = dzw.t() @ x.reshape(T * B, I) if need[3] else None                  # sum_t dz_t^T x_t
        dw_hh = dzw.t() @ unpad(hs[:T], H).reshape(T * B, H) if need[4] else None  # sum_t dz_t^T h_{t-1}
        db = dz.sum(dim=(0, 1)).to(x.dtype) if (need[5] or need[6]) else None      # both biases enter the same sum
        return dx, dh0, dc0, dw_ih, dw_hh, db, (None if db is None else db.clone()), None  # two .grad tensors


def fused_supported(hidden_size: int) -> bool:
    """Whether a layer of this width runs on the Triton kernels (else it falls back to ``torch.lstm``)."""
    return 1 <= hidden_size <= MAX_HIDDEN


def lstm_layer(x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor,
               tiles: Tiles | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """One layer: ``x (T, B, I)``, ``h0, c0 (B, H)`` -> ``out (T, B, H)``, ``h_T``, ``c_T`` (each ``(B, H)``)."""
    H = w_hh.shape[1]
    tensors = (x, h0, c0, w_ih, w_hh, b_ih, b_hh)
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    if not fused_supported(H):
        runtime.warn_once(f"fallback-{H}", f"triton-lstm: H={H} is above {MAX_HIDDEN}; this layer falls back to "
                                           "torch.lstm (cuDNN on a GPU)")
        # train=True whenever a gradient is wanted: cuDNN refuses backward through an inference-mode call
        out, h, c = torch.lstm(x, (h0[None], c0[None]), [w_ih, w_hh, b_ih, b_hh], True, 1, 0.0, needs_grad,
                               False, False)
        return out, h[0], c[0]
    runtime.check_device(x.device)
    if needs_grad:
        return LSTMSequence.apply(*tensors, tiles)
    hs, cs, _ = forward_sequence(*tensors, store_gates=False, tiles=tiles)
    return hs[1:], hs[-1], cs[-1].to(x.dtype)

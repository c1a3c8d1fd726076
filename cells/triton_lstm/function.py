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

Accumulation is in float32 (float64 for float64 inputs): gates, cell states and
``dz`` are kept in that dtype; ``h`` and the matmul operands stay in the input
dtype, so bf16/fp16 use tensor cores with fp32 accumulation.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from cells.triton_lstm import runtime

MIN_TILE = 16
"""Smallest tile edge: ``tl.dot`` needs M, N, K >= 16 on NVIDIA tensor cores. The batch block is padded to it
too, so a batch of 1 costs as much as a batch of 16."""
RESIDENT_BYTES = 64 * 1024
"""``W_hh`` stays on chip for the whole sequence when its four padded ``H x H`` blocks take at most this much: H <= 64
in fp32, fp16 and bf16 (64 KiB and 32 KiB), H <= 32 in fp64. The compiler keeps them in shared memory (the tensor-core
operand) for the whole time loop; the backward kernel needs about 1.5x that, which still fits an SM's 164-228 KiB."""
MAX_HIDDEN = 512
"""Largest ``H`` run by the Triton kernels; larger layers fall back to ``torch.lstm`` (cuDNN on a GPU). One
program streams all of ``W_hh`` (4H x H) every step; at ``H = 512`` that is 2 MiB in bf16 (4 MiB fp32) per step and
program, served from L2, and beyond it the per-step weight traffic of a single program dominates (see
docs/triton-lstm.md)."""
MAX_ELEMENTS = 2**31 - 1
"""Kernels index with 32-bit offsets: ``(T + 1) * B * 4H`` must stay below this."""


@dataclass(frozen=True)
class Tiles:
    """Launch configuration. ``resident``: one tile covers all of ``H`` and ``W_hh`` stays on chip."""

    block_b: int
    block_h: int
    block_k: int
    resident: bool
    num_warps: int = 4


def _next_power_of_2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def choose_tiles(hidden_size: int, dtype: torch.dtype) -> Tiles:
    """The default tiles for ``H = hidden_size`` (see :data:`RESIDENT_BYTES`)."""
    padded = max(MIN_TILE, _next_power_of_2(hidden_size))
    if 4 * padded * padded * dtype.itemsize <= RESIDENT_BYTES:
        return Tiles(MIN_TILE, padded, padded, True, num_warps=4 if padded <= MIN_TILE else 8)
    # 8 warps: with 4, ptxas (sm_90) needs all 255 registers and spills for these tiles
    return Tiles(MIN_TILE, 64 if dtype.itemsize <= 4 else 32, 64 if dtype.itemsize <= 2 else 32, False, num_warps=8)


def _check_tiles(tiles: Tiles, hidden_size: int) -> None:
    for edge in (tiles.block_b, tiles.block_h, tiles.block_k):
        if edge < MIN_TILE or edge & (edge - 1):
            raise ValueError(f"tile edges must be powers of two >= {MIN_TILE}, got {tiles}")
    if tiles.resident and (tiles.block_h < hidden_size or tiles.block_k < hidden_size):
        raise ValueError(f"resident tiles must cover H={hidden_size}, got {tiles}")


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _precision(dtype: torch.dtype, device: torch.device) -> str | None:
    """fp32 products are exact ("ieee") unless torch's own switch for fp32 matmuls allows TF32
    (``torch.backends.cuda.matmul.allow_tf32``, set by ``torch.set_float32_matmul_precision("high")``); fp64 is always
    exact; 16-bit operands use tensor cores with fp32 accumulation (Triton's default)."""
    if dtype == torch.float32:
        return "tf32" if device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32 else "ieee"
    return "ieee" if dtype == torch.float64 or _upcast(device, dtype) else None


def _upcast(device: torch.device, dtype: torch.dtype) -> bool:
    # the interpreter cannot multiply bf16 (see kernels._load_gate_tiles); compiled kernels use bf16 tensor cores
    return dtype == torch.bfloat16 and runtime.use_interpreter(device)


def _on(device: torch.device):
    """Triton launches on torch's *current* CUDA device; make it the tensors' one."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def _grid(batch: int, tiles: Tiles) -> tuple[int]:
    return ((batch + tiles.block_b - 1) // tiles.block_b,)


def forward_sequence(x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor,
                     *, store_gates: bool, tiles: Tiles | None = None) -> tuple[Tensor, Tensor, Tensor | None]:
    """-> ``hs (T+1, B, H)`` (input dtype, ``hs[0] = h0``), ``cs (T+1, B, H)`` and ``gates (T, B, 4H)`` (accumulation
    dtype; ``None`` unless ``store_gates``)."""
    T, B, I = x.shape
    H = w_hh.shape[1]
    tiles = tiles or choose_tiles(H, x.dtype)
    _check_tiles(tiles, H)
    if (T + 1) * B * 4 * H > MAX_ELEMENTS:
        raise ValueError(f"triton-lstm: T*B*4H = {T * B * 4 * H} is too large for 32-bit offsets; split the sequence")
    acc = accumulation_dtype(x.dtype)
    xp = torch.addmm(b_ih + b_hh, x.reshape(T * B, I), w_ih.t()).view(T, B, 4 * H)
    hs = x.new_empty(T + 1, B, H)
    hs[0] = h0
    cs = torch.empty(T + 1, B, H, dtype=acc, device=x.device)
    cs[0] = c0
    gates = torch.empty(T if store_gates else 1, B, 4 * H, dtype=acc, device=x.device)
    kernels = runtime.load_kernels(runtime.use_interpreter(x.device))
    with _on(x.device):
        kernels.lstm_forward_kernel[_grid(B, tiles)](
            xp, w_hh.contiguous(), hs, cs, gates, T, B, H,
            BLOCK_B=tiles.block_b, BLOCK_H=tiles.block_h, BLOCK_K=tiles.block_k, RESIDENT=tiles.resident,
            STORE_GATES=store_gates, PRECISION=_precision(x.dtype, x.device),
            UPCAST=_upcast(x.device, x.dtype), num_warps=tiles.num_warps)
    return hs, cs, (gates if store_gates else None)


def backward_sequence(d_out: Tensor | None, d_hT: Tensor | None, d_cT: Tensor | None, x: Tensor, w_hh: Tensor,
                      hs: Tensor, cs: Tensor, gates: Tensor, tiles: Tiles | None = None) -> tuple[Tensor, Tensor]:
    """BPTT through the saved forward pass -> ``dz (T, B, 4H)`` (pre-activation gradients) and ``dc0 (B, H)``
    (both in the accumulation dtype)."""
    T, B, _ = x.shape
    H = w_hh.shape[1]
    tiles = tiles or choose_tiles(H, x.dtype)
    acc = cs.dtype
    if d_out is None:
        dh = torch.zeros(T, B, H, dtype=acc, device=x.device)
    else:
        dh = d_out.to(dtype=acc, copy=True).contiguous()
    if d_hT is not None:
        dh[-1] += d_hT
    dz = torch.empty(T + 1, B, 4 * H, dtype=acc, device=x.device)
    dz[T] = 0
    dc = torch.zeros(2, B, H, dtype=acc, device=x.device)
    if d_cT is not None:
        dc[T % 2] = d_cT
    kernels = runtime.load_kernels(runtime.use_interpreter(x.device))
    with _on(x.device):
        kernels.lstm_backward_kernel[_grid(B, tiles)](
            dh, w_hh.contiguous(), cs, gates, dz, dc, T, B, H,
            BLOCK_B=tiles.block_b, BLOCK_H=tiles.block_h, BLOCK_K=tiles.block_k, RESIDENT=tiles.resident,
            PRECISION=_precision(x.dtype, x.device), UPCAST=_upcast(x.device, x.dtype),
            num_warps=tiles.num_warps)
    return dz[:T], dc[0]


class LSTMSequence(torch.autograd.Function):
    """``(x, h0, c0, W_ih, W_hh, b_ih, b_hh) -> (out (T, B, H), h_T (B, H), c_T (B, H))`` for one layer."""

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, tiles):
        hs, cs, gates = forward_sequence(x, h0, c0, w_ih, w_hh, b_ih, b_hh, store_gates=True, tiles=tiles)
        ctx.save_for_backward(x, w_ih, w_hh, hs, cs, gates)
        ctx.tiles = tiles
        return hs[1:], hs[-1].clone(), cs[-1].to(x.dtype, copy=True)

    @staticmethod
    @once_differentiable  # the backward kernel is not itself differentiable
    def backward(ctx, d_out, d_hT, d_cT):
        x, w_ih, w_hh, hs, cs, gates = ctx.saved_tensors
        T, B, I = x.shape
        dz, dc0 = backward_sequence(d_out, d_hT, d_cT, x, w_hh, hs, cs, gates, ctx.tiles)
        dzw = dz.to(x.dtype).reshape(T * B, -1)                                   # (T*B, 4H)
        need = ctx.needs_input_grad
        dx = (dzw @ w_ih).view(T, B, I) if need[0] else None                       # dx_t = dz_t @ W_ih
        dh0 = dzw[:B] @ w_hh if need[1] else None                                  # dh_0 = dz_0 @ W_hh
        dc0 = dc0.to(x.dtype) if need[2] else None
        dw_ih = dzw.t() @ x.reshape(T * B, I) if need[3] else None                  # sum_t dz_t^T x_t
        dw_hh = dzw.t() @ hs[:T].reshape(T * B, -1) if need[4] else None           # sum_t dz_t^T h_{t-1}
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

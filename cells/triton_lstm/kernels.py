"""Triton kernels for one LSTM layer: a persistent forward and a persistent backward launch per sequence.

Never import this module directly: :func:`cells.triton_lstm.runtime.load_kernels`
executes it twice at most, once with Triton's interpreter switched on (CPU
tensors) and once off (CUDA tensors), so both can live in one process. For
that to work the kernels call only Triton *builtins* (``tl.load``, ``tl.dot``,
``tl.exp``, ``tl.where``, ...) and the helpers below, never the ``@triton.jit``
functions of ``triton.language``'s own library (``tl.sigmoid``, ``tl.sum``,
``tl.cdiv``): those are built once, at ``import triton``, in whichever mode
``TRITON_INTERPRET`` selected then, and a kernel of the other mode cannot call
them.

Layout (time-major, every buffer contiguous), gate order ``i, f, g, o`` as in
``torch.nn.LSTM``; ``T`` steps, ``B`` batch, ``H`` hidden units::

    xp     (T, B, 4H)     x_t @ W_ih^T + b_ih + b_hh, computed before the launch
    w      (4H, H)        W_hh
    hs     (T + 1, B, H)  hs[0] = h_0, hs[t + 1] = h_t          (input dtype)
    cs     (T + 1, B, H)  cs[0] = c_0, cs[t + 1] = c_t          (accumulation dtype)
    gates  (T, B, 4H)     activated i, f, g, o of every step   (accumulation dtype)

Work split: program ``p`` owns batch rows ``p*BLOCK_B .. p*BLOCK_B+BLOCK_B-1``
and the *whole* hidden dimension, which it walks in tiles of ``BLOCK_H``
columns (reduction in tiles of ``BLOCK_K``). No program ever reads another
program's rows, so no cross-program synchronisation is needed; within a
program, step ``t + 1`` reads all of ``h_t`` that step ``t`` wrote tile by
tile, through global memory, after a ``tl.debug_barrier()`` (``bar.sync``:
every thread of the block has stored its part, and the stores are visible to
the whole block).

With ``RESIDENT`` one tile covers all of ``H`` and the four ``H x H`` blocks of
``W_hh`` are loaded once, before the time loop, and stay on chip for the whole
sequence. Otherwise they are re-read every step (from L2, where a few MiB of
weights stay hot across steps).
"""

import triton
import triton.language as tl


@triton.jit
def _sigmoid(x):
    e = tl.exp(-tl.abs(x))  # in (0, 1]: cannot overflow, unlike exp(-x) for very negative x
    return tl.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@triton.jit
def _tanh(x):
    e = tl.exp(-2.0 * tl.abs(x))
    t = (1.0 - e) / (1.0 + e)
    return tl.where(x >= 0, t, -t)


@triton.jit
def _activate(z_i, z_f, z_g, z_o):
    """Gate pre-activations -> ``i, f, g, o`` (one call, not four: each nested call costs the interpreter ~2 ms)."""
    return _sigmoid(z_i), _sigmoid(z_f), _tanh(z_g), _sigmoid(z_o)


@triton.jit
def _load_gate_tiles(at, gate_stride, mask, UPCAST: tl.constexpr):
    """The same tile of ``W_hh``'s four gate blocks ``i, f, g, o``, ``gate_stride`` elements apart.

    ``UPCAST``: Triton's interpreter stores bf16 as uint16 and its ``tl.dot`` would multiply the bit patterns as
    integers; fp32 operands give the exact products instead (a product of two bf16 values fits in fp32's mantissa).
    """
    w_i = tl.load(at, mask=mask, other=0.0)
    w_f = tl.load(at + gate_stride, mask=mask, other=0.0)
    w_g = tl.load(at + 2 * gate_stride, mask=mask, other=0.0)
    w_o = tl.load(at + 3 * gate_stride, mask=mask, other=0.0)
    if UPCAST:
        w_i = w_i.to(tl.float32)
        w_f = w_f.to(tl.float32)
        w_g = w_g.to(tl.float32)
        w_o = w_o.to(tl.float32)
    return w_i, w_f, w_g, w_o


@triton.jit
def lstm_forward_kernel(
    xp_ptr, w_ptr, hs_ptr, cs_ptr, gates_ptr,
    T, B, H,
    BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr,
    RESIDENT: tl.constexpr, STORE_GATES: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr,
):
    """Run the recurrence over all ``T`` steps for ``BLOCK_B`` batch rows; write ``hs[1:]``, ``cs[1:]`` (and gates)."""
    acc_ty = cs_ptr.dtype.element_ty
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    row_ok = rows < B
    k_base = tl.arange(0, BLOCK_K)
    n_base = tl.arange(0, BLOCK_H)

    if RESIDENT:
        # tile[k, n] = W_hh[gate*H + n, k], so that h_{t-1} @ tile is the gate's recurrent pre-activation
        w_ok = (k_base[:, None] < H) & (n_base[None, :] < H)
        keep_i, keep_f, keep_g, keep_o = _load_gate_tiles(w_ptr + n_base[None, :] * H + k_base[:, None], H * H, w_ok,
                                                          UPCAST)

    for t in range(T):
        xp_t = xp_ptr + t * (4 * B * H)
        h_prev = hs_ptr + t * (B * H)
        c_prev = cs_ptr + t * (B * H)
        for n0 in range(0, H, BLOCK_H):
            cols = n0 + n_base
            col_ok = cols < H
            tile_ok = row_ok[:, None] & col_ok[None, :]
            x_at = xp_t + rows[:, None] * (4 * H) + cols[None, :]
            z_i = tl.load(x_at, mask=tile_ok, other=0.0).to(acc_ty)
            z_f = tl.load(x_at + H, mask=tile_ok, other=0.0).to(acc_ty)
            z_g = tl.load(x_at + 2 * H, mask=tile_ok, other=0.0).to(acc_ty)
            z_o = tl.load(x_at + 3 * H, mask=tile_ok, other=0.0).to(acc_ty)
            for k0 in range(0, H, BLOCK_K):
                ks = k0 + k_base
                k_ok = ks < H
                h = tl.load(h_prev + rows[:, None] * H + ks[None, :], mask=row_ok[:, None] & k_ok[None, :], other=0.0)
                if UPCAST:
                    h = h.to(tl.float32)
                if RESIDENT:
                    w_i, w_f, w_g, w_o = keep_i, keep_f, keep_g, keep_o
                else:
                    w_i, w_f, w_g, w_o = _load_gate_tiles(w_ptr + cols[None, :] * H + ks[:, None], H * H,
                                                          k_ok[:, None] & col_ok[None, :], UPCAST)
                z_i = tl.dot(h, w_i, z_i, input_precision=PRECISION)
                z_f = tl.dot(h, w_f, z_f, input_precision=PRECISION)
                z_g = tl.dot(h, w_g, z_g, input_precision=PRECISION)
                z_o = tl.dot(h, w_o, z_o, input_precision=PRECISION)
            i, f, g, o = _activate(z_i, z_f, z_g, z_o)
            at = rows[:, None] * H + cols[None, :]
            c = f * tl.load(c_prev + at, mask=tile_ok, other=0.0) + i * g          # c_t = f * c_{t-1} + i * g
            h_new = o * _tanh(c)                                                     # h_t = o * tanh(c_t)
            tl.store(c_prev + B * H + at, c, mask=tile_ok)
            tl.store(h_prev + B * H + at, h_new.to(hs_ptr.dtype.element_ty), mask=tile_ok)
            if STORE_GATES:
                g_at = gates_ptr + t * (4 * B * H) + rows[:, None] * (4 * H) + cols[None, :]
                tl.store(g_at, i, mask=tile_ok)
                tl.store(g_at + H, f, mask=tile_ok)
                tl.store(g_at + 2 * H, g, mask=tile_ok)
                tl.store(g_at + 3 * H, o, mask=tile_ok)
        tl.debug_barrier()  # all of h_t is stored before any tile of step t + 1 reads it


@triton.jit
def lstm_backward_kernel(
    dh_ptr, w_ptr, cs_ptr, gates_ptr, dz_ptr, dc_ptr,
    T, B, H,
    BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr,
    RESIDENT: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr,
):
    """Backpropagation through time, ``t = T-1 .. 0``, for ``BLOCK_B`` batch rows.

    ``dh (T, B, H)``: the gradient reaching ``h_t`` from outside the recurrence
    (``dL/d out_t``, plus ``dL/dh_T`` at ``T-1``). ``dz (T+1, B, 4H)``: ``dz[T]``
    is zero on entry; the kernel writes ``dz[t] = dL/d(pre-activation gates at t)``.
    ``dc (2, B, H)``: the ``dL/dc`` carry, ping-pong between steps (step ``t`` reads
    ``dc[(t+1) % 2]``, writes ``dc[t % 2]``; no thread overwrites a value another
    thread of the same step may still read); ``dc[T % 2] = dL/dc_T`` on entry,
    ``dc[0] = dL/dc_0`` on exit.
    """
    acc_ty = cs_ptr.dtype.element_ty
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    row_ok = rows < B
    k_base = tl.arange(0, BLOCK_K)
    n_base = tl.arange(0, BLOCK_H)

    if RESIDENT:
        # tile[k, n] = W_hh[gate*H + k, n], so that dz_gate @ tile is that gate's share of dL/dh_{t-1}
        w_ok = (k_base[:, None] < H) & (n_base[None, :] < H)
        keep_i, keep_f, keep_g, keep_o = _load_gate_tiles(w_ptr + k_base[:, None] * H + n_base[None, :], H * H, w_ok,
                                                          UPCAST)

    for s in range(T):
        t = T - 1 - s
        dz_next = dz_ptr + (t + 1) * (4 * B * H)
        dz_t = dz_ptr + t * (4 * B * H)
        for n0 in range(0, H, BLOCK_H):
            cols = n0 + n_base
            col_ok = cols < H
            tile_ok = row_ok[:, None] & col_ok[None, :]
            at = rows[:, None] * H + cols[None, :]
            dh = tl.load(dh_ptr + t * (B * H) + at, mask=tile_ok, other=0.0)
            for k0 in range(0, H, BLOCK_K):                                         # dh += dz_{t+1} @ W_hh
                ks = k0 + k_base
                k_ok = ks < H
                d_ok = row_ok[:, None] & k_ok[None, :]
                d_at = dz_next + rows[:, None] * (4 * H) + ks[None, :]
                if RESIDENT:
                    w_i, w_f, w_g, w_o = keep_i, keep_f, keep_g, keep_o
                else:
                    w_i, w_f, w_g, w_o = _load_gate_tiles(w_ptr + ks[:, None] * H + cols[None, :], H * H,
                                                          k_ok[:, None] & col_ok[None, :], UPCAST)
                d_i = tl.load(d_at, mask=d_ok, other=0.0).to(w_i.dtype)
                d_f = tl.load(d_at + H, mask=d_ok, other=0.0).to(w_i.dtype)
                d_g = tl.load(d_at + 2 * H, mask=d_ok, other=0.0).to(w_i.dtype)
                d_o = tl.load(d_at + 3 * H, mask=d_ok, other=0.0).to(w_i.dtype)
                dh = tl.dot(d_i, w_i, dh, input_precision=PRECISION)
                dh = tl.dot(d_f, w_f, dh, input_precision=PRECISION)
                dh = tl.dot(d_g, w_g, dh, input_precision=PRECISION)
                dh = tl.dot(d_o, w_o, dh, input_precision=PRECISION)
            g_at = gates_ptr + t * (4 * B * H) + rows[:, None] * (4 * H) + cols[None, :]
            i = tl.load(g_at, mask=tile_ok, other=0.0)
            f = tl.load(g_at + H, mask=tile_ok, other=0.0)
            g = tl.load(g_at + 2 * H, mask=tile_ok, other=0.0)
            o = tl.load(g_at + 3 * H, mask=tile_ok, other=0.0)
            c = tl.load(cs_ptr + (t + 1) * (B * H) + at, mask=tile_ok, other=0.0)
            c_prev = tl.load(cs_ptr + t * (B * H) + at, mask=tile_ok, other=0.0)
            dc = tl.load(dc_ptr + ((t + 1) % 2) * (B * H) + at, mask=tile_ok, other=0.0).to(acc_ty)
            tc = _tanh(c)
            dc = dc + dh * o * (1.0 - tc * tc)                                       # through h_t = o * tanh(c_t)
            z_at = dz_t + rows[:, None] * (4 * H) + cols[None, :]
            tl.store(z_at, dc * g * i * (1.0 - i), mask=tile_ok)                     # dL/dz_i
            tl.store(z_at + H, dc * c_prev * f * (1.0 - f), mask=tile_ok)            # dL/dz_f
            tl.store(z_at + 2 * H, dc * i * (1.0 - g * g), mask=tile_ok)             # dL/dz_g
            tl.store(z_at + 3 * H, dh * tc * o * (1.0 - o), mask=tile_ok)            # dL/dz_o
            tl.store(dc_ptr + (t % 2) * (B * H) + at, dc * f, mask=tile_ok)          # dL/dc_{t-1} (direct path)
        tl.debug_barrier()  # all of dz_t is stored before any tile of step t - 1 reads it

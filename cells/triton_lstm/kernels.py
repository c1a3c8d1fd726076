"""Triton kernels for one LSTM layer: a persistent forward and a persistent backward launch per sequence.

Never import this module directly: :func:`cells.triton_lstm.runtime.load_kernels`
executes it twice at most, once with Triton's interpreter switched on (CPU
tensors) and once off (CUDA tensors), so both can live in one process. For
that to work the kernels call only Triton *builtins* (``tl.load``, ``tl.dot``,
``tl.exp``, ``tl.where``, ``tl.minimum``, ...) and the helpers below, never
the ``@triton.jit`` functions of ``triton.language``'s own library
(``tl.sigmoid``, ``tl.sum``, ``tl.cdiv``): those are built once, at ``import
triton``, in whichever mode ``TRITON_INTERPRET`` selected then, and a kernel of
the other mode cannot call them.

Layout (time-major, every buffer contiguous), gate order ``i, f, g, o`` as in
``torch.nn.LSTM``; ``T`` steps, ``B`` batch, ``H`` hidden units, already padded
by the caller to a multiple of 16 (so that every row and gate block starts
16-element aligned and a real launch gets vector loads)::

    xp     (T, B, 4H)     x_t @ W_ih^T + b_ih + b_hh, computed before the launch   (compute dtype)
    w      (4H, H)        W_hh                                                     (compute dtype)
    hs     (T + 1, B, H)  hs[0] = h_0, hs[t + 1] = h_t                             (compute dtype)
    cs     (T + 1, B, H)  cs[0] = c_0, cs[t + 1] = c_t                             (accumulation dtype)
    gates  (T, B, 4H)     activated i, f, g, o of every step                       (compute dtype)

The compute dtype is the input's; the accumulation dtype is float32 (float64
for float64 inputs).

Work split: program ``p`` owns batch rows ``p*BLOCK_B .. p*BLOCK_B+BLOCK_B-1``
and the *whole* hidden dimension, which it walks in ``N_TILES`` tiles of
``BLOCK_H`` columns (reduction in ``K_TILES`` tiles of ``BLOCK_K``). Both counts
are compile-time constants, but the loops are not unrolled with
``tl.static_range``: unrolled, the per-tile addresses and masks are hoisted out
of the time loop and stay live across it, and the streamed kernels spill on
sm_90 (636 bytes in the bf16 forward at H = 512) and compile 3-11x slower.
With one tile the loops have one iteration and vanish. No program ever reads
another program's rows, so no cross-program synchronisation is needed.

* One tile covers ``H`` (``N_TILES == K_TILES == 1``): the recurrent state
  (``h``, ``c`` forward; ``dz``, ``dc`` backward) stays in registers from step
  to step; the buffers are only written, for the caller.
* Several tiles: step ``t + 1`` reads all of ``h_t`` that step ``t`` wrote tile
  by tile, through global memory, after a ``tl.debug_barrier()`` (``bar.sync``:
  every thread of the block has stored its part, and the stores are visible to
  the whole block).

Inputs that do not depend on the recurrence (``xp`` forward; ``dL/dh``, the
gates and ``c`` backward) are loaded one tile ahead: the next tile of the same
step, or the first tile of the next step, is in flight while this tile computes.

With ``RESIDENT`` one tile covers ``H`` and the four ``H x H`` blocks of
``W_hh`` are loaded once, before the time loop, and stay on chip for the whole
sequence. Otherwise they are re-read every step (from L2, where a few MiB of
weights stay hot across steps).

Offsets: the per-program, per-step part of every address is 64-bit (a scalar
pointer increment); offsets inside a tile (at most ``BLOCK_B * 4H``) are 32-bit.
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
def _load4(at, stride, mask, UPCAST: tl.constexpr):
    """Four tiles ``stride`` elements apart (the gate blocks ``i, f, g, o``), zero where ``mask`` is false.

    ``UPCAST``: Triton's interpreter stores bf16 as uint16 and its ``tl.dot`` would multiply the bit patterns as
    integers; fp32 operands give the exact products instead (a product of two bf16 values fits in fp32's mantissa).
    """
    a = tl.load(at, mask=mask, other=0.0)
    b = tl.load(at + stride, mask=mask, other=0.0)
    c = tl.load(at + 2 * stride, mask=mask, other=0.0)
    d = tl.load(at + 3 * stride, mask=mask, other=0.0)
    if UPCAST:
        a = a.to(tl.float32)
        b = b.to(tl.float32)
        c = c.to(tl.float32)
        d = d.to(tl.float32)
    return a, b, c, d


@triton.jit
def _store4(at, stride, a, b, c, d, mask):
    """Store four tiles ``stride`` elements apart, converted to the buffer's dtype."""
    ty = at.dtype.element_ty
    tl.store(at, a.to(ty), mask=mask)
    tl.store(at + stride, b.to(ty), mask=mask)
    tl.store(at + 2 * stride, c.to(ty), mask=mask)
    tl.store(at + 3 * stride, d.to(ty), mask=mask)


@triton.jit
def lstm_forward_kernel(
    xp_ptr, w_ptr, hs_ptr, cs_ptr, gates_ptr,
    T, B, H,
    BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr, N_TILES: tl.constexpr,
    K_TILES: tl.constexpr, RESIDENT: tl.constexpr, STORE_GATES: tl.constexpr, PRECISION: tl.constexpr,
    UPCAST: tl.constexpr,
):
    """Run the recurrence over all ``T`` steps for ``BLOCK_B`` batch rows; write ``hs[1:]``, ``cs[1:]`` (and gates)."""
    ONE_TILE: tl.constexpr = N_TILES == 1 and K_TILES == 1
    acc_ty = cs_ptr.dtype.element_ty
    row0 = tl.program_id(0).to(tl.int64) * BLOCK_B
    xp_ptr += row0 * (4 * H)
    gates_ptr += row0 * (4 * H)
    hs_ptr += row0 * H
    cs_ptr += row0 * H
    x_step = B * (4 * H.to(tl.int64))  # elements from one step to the next in xp and gates
    h_step = B * H.to(tl.int64)  # ... in hs and cs
    rows = tl.arange(0, BLOCK_B)
    row_ok = rows < B - row0
    n_base = tl.arange(0, BLOCK_H)
    k_base = tl.arange(0, BLOCK_K)
    x_rows = rows[:, None] * (4 * H)
    h_rows = rows[:, None] * H
    first_ok = row_ok[:, None] & (n_base < H)[None, :]  # the first hidden tile

    if RESIDENT:
        # tile[k, n] = W_hh[gate*H + n, k], so that h_{t-1} @ tile is the gate's recurrent pre-activation
        w_ok = (k_base[:, None] < H) & (n_base[None, :] < H)
        keep_i, keep_f, keep_g, keep_o = _load4(w_ptr + n_base[None, :] * H + k_base[:, None], H * H, w_ok, UPCAST)
    if ONE_TILE:  # h_{t-1} and c_{t-1} live in registers
        h = tl.load(hs_ptr + h_rows + k_base[None, :], mask=row_ok[:, None] & (k_base < H)[None, :], other=0.0)
        if UPCAST:
            h = h.to(tl.float32)
        c = tl.load(cs_ptr + h_rows + n_base[None, :], mask=first_ok, other=0.0)
    x_i, x_f, x_g, x_o = _load4(xp_ptr + x_rows + n_base[None, :], H, first_ok, False)

    for t in range(T):
        h_prev = hs_ptr + t * h_step
        c_prev = cs_ptr + t * h_step
        for n in range(N_TILES):
            cols = n * BLOCK_H + n_base
            tile_ok = row_ok[:, None] & (cols < H)[None, :]
            z_i = x_i.to(acc_ty)
            z_f = x_f.to(acc_ty)
            z_g = x_g.to(acc_ty)
            z_o = x_o.to(acc_ty)
            # prefetch the next tile of this step, or the first tile of the next step (after the last step, its
            # first tile again: the address stays in bounds)
            t_ahead = tl.minimum(t + (n + 1) // N_TILES, T - 1)
            ahead = ((n + 1) % N_TILES) * BLOCK_H + n_base
            x_i, x_f, x_g, x_o = _load4(xp_ptr + t_ahead * x_step + x_rows + ahead[None, :], H,
                                        row_ok[:, None] & (ahead < H)[None, :], False)
            for kk in range(K_TILES):
                ks = kk * BLOCK_K + k_base
                if ONE_TILE:
                    h_op = h
                else:
                    h_op = tl.load(h_prev + h_rows + ks[None, :], mask=row_ok[:, None] & (ks < H)[None, :], other=0.0)
                    if UPCAST:
                        h_op = h_op.to(tl.float32)
                if RESIDENT:
                    w_i, w_f, w_g, w_o = keep_i, keep_f, keep_g, keep_o
                else:
                    w_i, w_f, w_g, w_o = _load4(w_ptr + cols[None, :] * H + ks[:, None], H * H,
                                                (ks < H)[:, None] & (cols < H)[None, :], UPCAST)
                z_i = tl.dot(h_op, w_i, z_i, input_precision=PRECISION)
                z_f = tl.dot(h_op, w_f, z_f, input_precision=PRECISION)
                z_g = tl.dot(h_op, w_g, z_g, input_precision=PRECISION)
                z_o = tl.dot(h_op, w_o, z_o, input_precision=PRECISION)
            i, f, g, o = _activate(z_i, z_f, z_g, z_o)
            at = h_rows + cols[None, :]
            if ONE_TILE:
                c = f * c + i * g                                                    # c_t = f * c_{t-1} + i * g
                h_new = o * _tanh(c)                                                 # h_t = o * tanh(c_t)
                tl.store(c_prev + h_step + at, c, mask=tile_ok)
                h = h_new.to(hs_ptr.dtype.element_ty)
                tl.store(h_prev + h_step + at, h, mask=tile_ok)
                if UPCAST:
                    h = h.to(tl.float32)
            else:
                c_new = f * tl.load(c_prev + at, mask=tile_ok, other=0.0) + i * g
                tl.store(c_prev + h_step + at, c_new, mask=tile_ok)
                tl.store(h_prev + h_step + at, (o * _tanh(c_new)).to(hs_ptr.dtype.element_ty), mask=tile_ok)
            if STORE_GATES:
                _store4(gates_ptr + t * x_step + x_rows + cols[None, :], H, i, f, g, o, tile_ok)
        if not ONE_TILE:
            tl.debug_barrier()  # all of h_t is stored before any tile of step t + 1 reads it


@triton.jit
def _backward_inputs(dh_ptr, gates_ptr, cs_ptr, t, H, x_step, h_step, x_rows, h_rows, cols, mask):
    """What step ``t`` of BPTT reads for one tile that does not depend on the recurrence: ``dh`` (the share of
    ``dL/dh_t`` from outside), the gates ``i, f, g, o`` of step ``t``, ``c_t`` and ``c_{t-1}``."""
    at = h_rows + cols[None, :]
    dh = tl.load(dh_ptr + t * h_step + at, mask=mask, other=0.0)
    i, f, g, o = _load4(gates_ptr + t * x_step + x_rows + cols[None, :], H, mask, False)
    c = tl.load(cs_ptr + (t + 1) * h_step + at, mask=mask, other=0.0)
    c_prev = tl.load(cs_ptr + t * h_step + at, mask=mask, other=0.0)
    return dh, i, f, g, o, c, c_prev


@triton.jit
def lstm_backward_kernel(
    dh_ptr, w_ptr, cs_ptr, gates_ptr, dz_ptr, dc_ptr,
    T, B, H,
    BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr, N_TILES: tl.constexpr,
    K_TILES: tl.constexpr, RESIDENT: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr,
):
    """Backpropagation through time, ``t = T-1 .. 0``, for ``BLOCK_B`` batch rows.

    ``dh (T, B, H)``: the gradient reaching ``h_t`` from outside the recurrence
    (``dL/d out_t``, plus ``dL/dh_T`` at ``T-1``). ``dz (T+1, B, 4H)``: ``dz[T]``
    is zero on entry; the kernel writes ``dz[t] = dL/d(pre-activation gates at t)``.
    ``dc (2, B, H)``: ``dc[T % 2] = dL/dc_T`` on entry, ``dc[0] = dL/dc_0`` on exit; with
    several tiles it is the carry, ping-pong between steps (step ``t`` reads ``dc[(t+1) % 2]``,
    writes ``dc[t % 2]``; no thread overwrites a value another thread of the same step may still read).
    """
    ONE_TILE: tl.constexpr = N_TILES == 1 and K_TILES == 1
    acc_ty = cs_ptr.dtype.element_ty
    if UPCAST:
        op_ty = tl.float32
    else:
        op_ty = w_ptr.dtype.element_ty
    row0 = tl.program_id(0).to(tl.int64) * BLOCK_B
    dh_ptr += row0 * H
    cs_ptr += row0 * H
    dc_ptr += row0 * H
    gates_ptr += row0 * (4 * H)
    dz_ptr += row0 * (4 * H)
    x_step = B * (4 * H.to(tl.int64))  # elements from one step to the next in gates and dz
    h_step = B * H.to(tl.int64)  # ... in dh, cs and dc
    rows = tl.arange(0, BLOCK_B)
    row_ok = rows < B - row0
    n_base = tl.arange(0, BLOCK_H)
    k_base = tl.arange(0, BLOCK_K)
    x_rows = rows[:, None] * (4 * H)
    h_rows = rows[:, None] * H
    first_ok = row_ok[:, None] & (n_base < H)[None, :]

    if RESIDENT:
        # tile[k, n] = W_hh[gate*H + k, n], so that dz_gate @ tile is that gate's share of dL/dh_{t-1}
        w_ok = (k_base[:, None] < H) & (n_base[None, :] < H)
        keep_i, keep_f, keep_g, keep_o = _load4(w_ptr + k_base[:, None] * H + n_base[None, :], H * H, w_ok, UPCAST)
    if ONE_TILE:  # dz_{t+1} (as matmul operands) and the dL/dc carry live in registers
        d_i = tl.full((BLOCK_B, BLOCK_K), 0.0, op_ty)
        d_f = tl.full((BLOCK_B, BLOCK_K), 0.0, op_ty)
        d_g = tl.full((BLOCK_B, BLOCK_K), 0.0, op_ty)
        d_o = tl.full((BLOCK_B, BLOCK_K), 0.0, op_ty)
        dc = tl.load(dc_ptr + (T % 2) * h_step + h_rows + n_base[None, :], mask=first_ok, other=0.0)
    n_dh, n_i, n_f, n_g, n_o, n_c, n_cp = _backward_inputs(dh_ptr, gates_ptr, cs_ptr, T - 1, H, x_step, h_step,
                                                           x_rows, h_rows, n_base, first_ok)

    for s in range(T):
        t = T - 1 - s
        dz_next = dz_ptr + (t + 1) * x_step
        for n in range(N_TILES):
            cols = n * BLOCK_H + n_base
            tile_ok = row_ok[:, None] & (cols < H)[None, :]
            dh = n_dh.to(acc_ty)
            i = n_i.to(acc_ty)
            f = n_f.to(acc_ty)
            g = n_g.to(acc_ty)
            o = n_o.to(acc_ty)
            c = n_c
            c_prev = n_cp
            # prefetch the next tile of this step, or the first tile of step t - 1 (after step 0, its first tile
            # again: the address stays in bounds)
            t_ahead = tl.maximum(t - (n + 1) // N_TILES, 0)
            ahead = ((n + 1) % N_TILES) * BLOCK_H + n_base
            n_dh, n_i, n_f, n_g, n_o, n_c, n_cp = _backward_inputs(dh_ptr, gates_ptr, cs_ptr, t_ahead, H, x_step,
                                                                   h_step, x_rows, h_rows, ahead,
                                                                   row_ok[:, None] & (ahead < H)[None, :])
            for kk in range(K_TILES):                                     # dh += dz_{t+1} @ W_hh
                ks = kk * BLOCK_K + k_base
                if RESIDENT:
                    w_i, w_f, w_g, w_o = keep_i, keep_f, keep_g, keep_o
                else:
                    w_i, w_f, w_g, w_o = _load4(w_ptr + ks[:, None] * H + cols[None, :], H * H,
                                                (ks < H)[:, None] & (cols < H)[None, :], UPCAST)
                if not ONE_TILE:
                    d_i, d_f, d_g, d_o = _load4(dz_next + x_rows + ks[None, :], H,
                                                row_ok[:, None] & (ks < H)[None, :], False)
                dh = tl.dot(d_i.to(op_ty), w_i, dh, input_precision=PRECISION)
                dh = tl.dot(d_f.to(op_ty), w_f, dh, input_precision=PRECISION)
                dh = tl.dot(d_g.to(op_ty), w_g, dh, input_precision=PRECISION)
                dh = tl.dot(d_o.to(op_ty), w_o, dh, input_precision=PRECISION)
            at = h_rows + cols[None, :]
            tc = _tanh(c)
            if ONE_TILE:
                dc = dc + dh * o * (1.0 - tc * tc)                                   # through h_t = o * tanh(c_t)
            else:
                dc = tl.load(dc_ptr + ((t + 1) % 2) * h_step + at, mask=tile_ok, other=0.0) + dh * o * (1.0 - tc * tc)
            dz_i = dc * g * i * (1.0 - i)
            dz_f = dc * c_prev * f * (1.0 - f)
            dz_g = dc * i * (1.0 - g * g)
            dz_o = dh * tc * o * (1.0 - o)
            _store4(dz_ptr + t * x_step + x_rows + cols[None, :], H, dz_i, dz_f, dz_g, dz_o, tile_ok)
            if ONE_TILE:
                d_i = dz_i.to(op_ty)
                d_f = dz_f.to(op_ty)
                d_g = dz_g.to(op_ty)
                d_o = dz_o.to(op_ty)
                dc = dc * f                                                          # dL/dc_{t-1}, direct path
            else:
                tl.store(dc_ptr + (t % 2) * h_step + at, dc * f, mask=tile_ok)
        if not ONE_TILE:
            tl.debug_barrier()  # all of dz_t is stored before any tile of step t - 1 reads it
    if ONE_TILE:
        tl.store(dc_ptr + h_rows + n_base[None, :], dc, mask=first_ok)              # dc[0] = dL/dc_0

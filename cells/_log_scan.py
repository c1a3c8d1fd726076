"""The scans shared by ``mingru`` and ``minlstm`` (Feng et al. 2024, "Were RNNs All We Needed?"), the activation
``g``, and :class:`LogScanCell`, the layer both cells build on.

Both cells reduce, element by element, to the same first-order linear recurrence

    h_t = a_t * h_{t-1} + b_t,        0 < a_t < 1,   b_t > 0,

whose coefficients depend on ``x_t`` only. Two ways to compute all of it at once live here:

* :func:`linear_scan` (the default on the CPU): ``a`` and ``b`` in linear space, a custom autograd function whose
  forward runs the recurrence and whose backward runs the same recurrence in reverse,
  ``gbar_t = dL/dh_t + a_{t+1} gbar_{t+1}``, then ``dL/db_t = gbar_t``, ``dL/da_t = gbar_t h_{t-1}`` and
  ``dL/dh_0 = a_1 gbar_1``. Short or wide scans step through time one ``(B, H)`` slice at a time; long, narrow
  ones (``B * H <= LINEAR_CHUNK_MAX_WIDTH``, ``T >= LINEAR_CHUNK_MIN_T``) split time into chunks of at least
  ``LINEAR_CHUNK`` steps and step through all chunks at once (:func:`linear_chunk`, ``_scan_into``). It forms
  only products and sums of the given numbers, as stepping does: with ``a_t`` in (0, 1) products underflow
  towards 0 and never overflow, and its float32 error does not grow with ``T``.
* :func:`linear_scan_log` (the paper's appendix, kept for other devices): ``log A_t`` by ``cumsum``, the ``b``
  sum by ``logcumsumexp``, in chunks of ``SCAN_CHUNK`` steps. Its float32 error grows with the chunk's length,
  and on the CPU ``logcumsumexp`` and its backward cost 20-50x the whole recurrence.

``docs/min-rnns.md`` has the derivations, the rule's measurements and the tolerances.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from cells._single_layer import SingleLayerCell
from harness.contract import State

SCAN_CHUNK = 64
"""Steps per chunk of :func:`linear_scan_log`; ``T / 64`` chunks run one after another. See ``docs/min-rnns.md``."""

LINEAR_CHUNK = 8
"""Fewest steps per chunk when :func:`linear_scan` chunks (at every level of its recursion)."""
LINEAR_CHUNK_MAX_WIDTH = 1024
""":func:`linear_scan` chunks only when ``B * H`` is at most this; wider slices amortise a step's fixed cost."""
LINEAR_CHUNK_MIN_T = 64
"""... and only when ``T`` is at least this; chunking costs about ``3 * C + T / C`` steps of ``C``-step chunks."""
ONE_THREAD_ELEMENTS = 32768
"""torch's ``at::internal::GRAIN_SIZE``: an elementwise operation on fewer elements runs on the calling thread.
Chunks are made long enough that each step's operation (``T / C * B * H`` elements) stays below it, so the
scan's hundreds of small operations never wake the thread pool."""

SCANS = ("auto", "linear", "log")
"""Values of :attr:`LogScanCell.scan`."""


class _G(torch.autograd.Function):
    """``g`` without ``torch.where``, whose CPU kernel branches per element: on random signs it ran 7-9x slower
    than a multiplication (2 ms for 512k floats). ``clamp``, ``sigmoid`` and ``threshold_backward`` are
    branch-free, and the values and gradients are bit for bit those of the ``where`` form (derivative 1 at 0)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        negative = x.clamp(max=0)                    # min(x, 0)
        s = torch.sigmoid(negative)                  # sigmoid(x) below 0, exactly 0.5 from 0 up
        ctx.save_for_backward(x, s)
        return s + (x - negative)                    # + max(x, 0), exactly

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        x, s = ctx.saved_tensors
        if torch.is_grad_enabled():                  # create_graph=True: a differentiable form
            return torch.where(x >= 0, grad, torch.ops.aten.sigmoid_backward(grad, torch.sigmoid(x)))
        minus_x = -x
        below = torch.ops.aten.threshold_backward(grad, minus_x, 0)           # grad where x < 0, else 0
        return torch.ops.aten.threshold_backward(torch.ops.aten.sigmoid_backward(grad, s), minus_x, 0) \
            + (grad - below)                                                  # + grad where x >= 0 (exact)


def g(x: Tensor) -> Tensor:
    """The paper's positive activation for the candidate: ``x + 0.5`` for ``x >= 0``, ``sigmoid(x)`` below."""
    return _G.apply(x)


def log_g(x: Tensor) -> Tensor:
    """``log g(x)``, computed without ever taking the log of a small number.

    ``relu`` keeps the unused branch of ``where`` finite: below -0.5 it would be log of a negative number, nan,
    and autograd multiplies its gradient by 0, which leaves nan.
    """
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), -F.softplus(-x))


# ------------------------------------------------------------ linear space, with a hand-written backward


def linear_chunk(T: int, width: int) -> int | None:
    """The rule: steps per chunk for a scan of ``T`` steps over ``width = B * H`` elements, ``None`` for stepping.

    Stepping costs ``T`` small operations, each a fixed dispatch cost (a few microseconds on the CPU) plus its
    ``width`` elements. Chunks of ``C`` steps cost about ``3 * C + T / C`` operations per level, but pass over
    every element three times, strided: they pay when the fixed cost dominates, at long ``T`` and small
    ``B * H``. ``C`` is 8, or more where ``T / 8 * B * H`` would reach :data:`ONE_THREAD_ELEMENTS`.
    Measurements: ``docs/min-rnns.md``, ``benchmarks/bench_min_rnn_scan.py``.
    """
    if width > LINEAR_CHUNK_MAX_WIDTH or T < LINEAR_CHUNK_MIN_T:
        return None
    return max(LINEAR_CHUNK, -(-T * width // (ONE_THREAD_ELEMENTS - 1)))


def _step_through(out: Tensor, a: Tensor, b: Tensor, h0: Tensor, reverse: bool) -> None:
    """``out[t] = a[t] * h + b[t]`` one step at a time, ``h`` the previous step's ``out`` (``h0`` first); backwards
    in time when ``reverse``. ``a``, ``b``, ``out``: ``(T, ...)``; ``h0``: ``(...)``."""
    steps = list(zip(a.unbind(0), b.unbind(0), out.unbind(0)))    # unbind: one call for all T views
    h = h0
    for a_t, b_t, o_t in reversed(steps) if reverse else steps:
        torch.addcmul(b_t, a_t, h, out=o_t)                        # one fused operation per step
        h = o_t


def _scan_into(out: Tensor, a: Tensor, b: Tensor, h0: Tensor, reverse: bool, chunk: int | None) -> None:
    """Write the scan of ``h_t = a_t h_{t-1} + b_t`` (``reverse``: ``h_t = a_t h_{t+1} + b_t``) from ``h0`` into
    ``out``. ``a``, ``b``, ``out``: contiguous ``(T, ...)``; ``h0``: ``(...)``. ``chunk``: steps per chunk at every
    level, ``None`` for :func:`linear_chunk`'s choice at each level."""
    T = a.shape[0]
    C = linear_chunk(T, b.shape[1:].numel()) if chunk is None else chunk
    if C is None or C == 1 or 2 * C > T:       # a chunk of one step is a step; one chunk is stepping too
        _step_through(out, a, b, h0, reverse)
        return
    # T = N chunks of C steps, plus r steps stepped through at the end (in scan order). Every chunk is one
    # row of a (N, C, ...) view, so a step through column c advances all N chunks at once.
    N, r = divmod(T, C)
    body = slice(r, T) if reverse else slice(0, N * C)
    a4, b4, o4 = (t[body].view(N, C, *t.shape[1:]) for t in (a, b, out))
    columns = range(C - 1, -1, -1) if reverse else range(C)
    # 1. Every chunk from a zero state: its end value e and its product p = prod a (they map s_in to p s_in + e).
    first, *rest = columns
    e, p = b4[:, first].clone(), a4[:, first].clone()
    for c in rest:
        e = torch.addcmul(b4[:, c], a4[:, c], e)
        p.mul_(a4[:, c])
    # 2. The state after each chunk, s_n = p_n s_{n-1} + e_n: a scan of N steps, by the same function.
    ends = torch.empty_like(e)
    _scan_into(ends, p, e, h0, reverse, chunk)
    if reverse:
        starts, last, remainder = torch.cat([ends[1:], h0.unsqueeze(0)]), ends[0], slice(0, r)
    else:
        starts, last, remainder = torch.cat([h0.unsqueeze(0), ends[:-1]]), ends[-1], slice(N * C, T)
    # 3. Every chunk again, from its true starting state, writing the outputs.
    h = starts
    for c in columns:
        torch.addcmul(b4[:, c], a4[:, c], h, out=o4[:, c])
        h = o4[:, c]
    if r:
        _step_through(out[remainder], a[remainder], b[remainder], last, reverse)


class _LinearScan(torch.autograd.Function):
    """``h = linear_scan(a, b, h0)`` (``reverse``: ``h_t = a_t h_{t+1} + b_t``, ``h0`` after the last step).

    The backward of a scan is a scan the other way (see the module docstring), so each direction's backward
    uses the other. With ``create_graph`` the backward is built from differentiable pieces, this function
    included, so second derivatives work; otherwise it writes into preallocated tensors.
    """

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, h0: Tensor, chunk: int | None, reverse: bool) -> Tensor:
        a, b, h0 = a.contiguous(), b.contiguous(), h0.contiguous()
        out = torch.empty_like(b, memory_format=torch.contiguous_format)
        _scan_into(out, a, b, h0, reverse, chunk)
        ctx.chunk, ctx.reverse = chunk, reverse
        ctx.save_for_backward(a, h0, out)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        a, h0, out = ctx.saved_tensors
        chunk, reverse = ctx.chunk, ctx.reverse
        grad_out = grad_out.contiguous()         # out.sum() hands in an expanded tensor
        # Forward scans: gbar_t = dL/dh_t + a_{t+1} gbar_{t+1}, a reverse scan over steps T-2..0 from
        # gbar_{T-1} = dL/dh_{T-1}; then dL/da_t = gbar_t h_{t-1} (h_{-1} = h0), dL/dh0 = a_0 gbar_0.
        # Reverse scans: the mirror image.
        if torch.is_grad_enabled():              # create_graph=True
            if reverse:
                rest = _LinearScan.apply(a[:-1], grad_out[1:], grad_out[0], chunk, False) if len(a) > 1 else None
                gbar = grad_out if rest is None else torch.cat([grad_out[:1], rest])
                h_before, a_first, g_first = torch.cat([out[1:], h0.unsqueeze(0)]), a[-1], gbar[-1]
            else:
                rest = _LinearScan.apply(a[1:], grad_out[:-1], grad_out[-1], chunk, True) if len(a) > 1 else None
                gbar = grad_out if rest is None else torch.cat([rest, grad_out[-1:]])
                h_before, a_first, g_first = torch.cat([h0.unsqueeze(0), out[:-1]]), a[0], gbar[0]
            return gbar * h_before, gbar, a_first * g_first, None, None
        gbar = torch.empty_like(grad_out)
        grad_a = torch.empty_like(grad_out) if ctx.needs_input_grad[0] else None
        if reverse:
            gbar[0] = grad_out[0]
            _scan_into(gbar[1:], a[:-1], grad_out[1:], grad_out[0], False, chunk)
            if grad_a is not None:
                torch.mul(gbar[:-1], out[1:], out=grad_a[:-1])
                torch.mul(gbar[-1], h0, out=grad_a[-1])
            a_first, g_first = a[-1], gbar[-1]
        else:
            gbar[-1] = grad_out[-1]
            _scan_into(gbar[:-1], a[1:], grad_out[:-1], grad_out[-1], True, chunk)
            if grad_a is not None:
                torch.mul(gbar[1:], out[:-1], out=grad_a[1:])
                torch.mul(gbar[0], h0, out=grad_a[0])
            a_first, g_first = a[0], gbar[0]
        grad_h0 = a_first * g_first if ctx.needs_input_grad[2] else None
        return grad_a, (gbar if ctx.needs_input_grad[1] else None), grad_h0, None, None


def linear_scan(a: Tensor, b: Tensor, h0: Tensor, chunk: int | None = None) -> Tensor:
    """All of ``h_t = a_t * h_{t-1} + b_t`` at once, in linear space, differentiable in ``a``, ``b`` and ``h0``.

    :param a: ``(T, B, H)``, ``a_t`` (the cells give values in (0, 1); any finite values work, but where
        ``|a_t| > 1`` the recurrence itself may overflow).
    :param b: ``(T, B, H)``, ``b_t``, any sign.
    :param h0: ``(B, H)``, the state before step 0, any sign.
    :param chunk: steps per chunk; ``None`` (the default) lets :func:`linear_chunk` choose; 1 (or more than
        ``T / 2``) steps through time one step at a time. For tests and benchmarks.
    :returns: ``h (T, B, H)``, ``h[t]`` the state after step ``t``.
    """
    if a.dim() < 1 or a.shape != b.shape or h0.shape != b.shape[1:]:
        raise ValueError(f"linear_scan: a and b must be (T, B, H) and h0 (B, H), got {tuple(a.shape)}, "
                         f"{tuple(b.shape)} and {tuple(h0.shape)}")
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
        raise ValueError(f"linear_scan: chunk must be a positive integer or None, got {chunk!r}")
    return _LinearScan.apply(a, b, h0, chunk, False)


# ------------------------------------------------------------ log space, the paper's formula


def linear_scan_log(log_a: Tensor, log_b: Tensor, h0: Tensor, chunk: int | None = SCAN_CHUNK) -> Tensor:
    """All of ``h_t = a_t * h_{t-1} + b_t`` at once, from logarithms: the paper's log-space scan, chunked.

    With ``A_t = a_1 ... a_t`` (within a chunk), ``h_t = A_t h_0 + sum_{k <= t} (A_t / A_k) b_k``: ``log A_t`` is
    a cumulative sum of ``log a``, and the sum is ``exp(log A_t + logcumsumexp_k(log b_k - log A_k))``.
    ``h_0`` enters linearly (any sign). ``log A_t`` and the ``logcumsumexp`` grow in magnitude along a chunk
    and cancel in their sum, so the float32 error grows with the chunk's length (``docs/min-rnns.md``).

    :param log_a: ``(T, B, H)``, ``log a_t`` (any finite values; the cells give ``a_t`` in (0, 1)).
    :param log_b: ``(T, B, H)``, ``log b_t`` (finite).
    :param h0: ``(B, H)``, the state before step 0, any sign.
    :param chunk: steps per scan; ``None`` for one scan over all ``T`` (the paper's form).
    :returns: ``h (T, B, H)``, ``h[t]`` the state after step ``t``.
    """
    T = log_a.shape[0]
    step = T if chunk is None else chunk
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise ValueError(f"linear_scan_log: chunk must be a positive integer or None, got {chunk!r}")
    h, outs = h0, []
    for la, lb in zip(log_a.split(step), log_b.split(step)):    # split, not slices: one gradient copy in backward
        log_A = torch.cumsum(la, dim=0)                                  # log A_t, within the chunk
        log_sum_b = log_A + torch.logcumsumexp(lb - log_A, dim=0)        # log sum_k (A_t / A_k) b_k
        h_chunk = torch.exp(log_A) * h + torch.exp(log_sum_b)            # h enters linearly: any sign
        outs.append(h_chunk)
        h = h_chunk[-1]
    return outs[0] if len(outs) == 1 else torch.cat(outs)


class LogScanCell(SingleLayerCell):
    """One layer of a cell whose recurrence is ``h_t = a_t * h_{t-1} + b_t`` with ``a_t, b_t`` from ``x_t`` alone.

    Subclasses give the same recurrence three times: :meth:`step` in the paper's plain equations (one step),
    :meth:`coefficients` (``a``, ``b``) for :func:`linear_scan` and :meth:`log_coefficients` for
    :func:`linear_scan_log`. A call with ``T = 1`` (the gradient-flow measurement steps the cell one step per
    call) runs :meth:`step`; longer calls run the scan :attr:`scan` picks. ``tests/test_min_rnns.py`` holds
    all three to the same outputs and gradients.
    """

    state_names = ("h",)
    scan: str = "auto"
    """``"linear"``: :func:`linear_scan`; ``"log"``: :func:`linear_scan_log`; ``"auto"``: linear on the CPU, log
    elsewhere (the linear scan's speed was measured on the CPU only)."""
    scan_chunk: int | None = SCAN_CHUNK
    """Steps per chunk of the log-space scan; ``None`` runs one scan over the whole sequence (the paper's form)."""

    def step(self, x_t: Tensor, h: Tensor) -> Tensor:
        """One step in linear space: ``x_t (B, I)``, ``h (B, H)`` -> the next ``h (B, H)``."""
        raise NotImplementedError

    def coefficients(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x (T, B, I)`` -> ``(a, b)``, each ``(T, B, H)``."""
        raise NotImplementedError

    def log_coefficients(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x (T, B, I)`` -> ``(log a, log b)``, each ``(T, B, H)``."""
        raise NotImplementedError

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """x: (T, B, I); state: None or (h0,) with h0 (1, B, H) -> out (T, B, H), (h_T (1, B, H),)."""
        (h0,) = self._initial(x, state)
        if self.scan not in SCANS:
            raise ValueError(f"{self.cell_name}: scan must be one of {', '.join(SCANS)}, got {self.scan!r}")
        if x.shape[0] == 1:
            out = self.step(x[0], h0).unsqueeze(0)
        elif self.scan == "log" or (self.scan == "auto" and x.device.type != "cpu"):
            out = linear_scan_log(*self.log_coefficients(x), h0, self.scan_chunk)
        else:
            out = linear_scan(*self.coefficients(x), h0)
        return out, (out[-1:],)

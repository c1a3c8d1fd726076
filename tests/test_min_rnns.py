"""``mingru`` and ``minlstm``: the linear-space scan, the log-space scan and the step-by-step recurrence agree
(outputs and gradients, T up to 4000), finite differences, steps worked by hand, saturated gates, the gate view,
and one-line errors for bad input. (The conformance kit runs in ``test_cells_contract.py``.) Tolerances:
``docs/min-rnns.md``."""

from __future__ import annotations

import math

import pytest
import torch
from torch.func import functional_call

from cells._log_scan import (LINEAR_CHUNK, LINEAR_CHUNK_MAX_WIDTH, LINEAR_CHUNK_MIN_T, ONE_THREAD_ELEMENTS, SCAN_CHUNK,
                              g, linear_chunk, linear_scan, linear_scan_log, log_g)
from cells.lfru_lstm import LFRULSTM
from cells.mingru import MinGRU
from cells.minlstm import MinLSTM

CELLS = {"mingru": MinGRU, "minlstm": MinLSTM}
SCANS = ["linear", "log"]
# |scan - stepping| <= atol + rtol * |stepping|, per scan and dtype, documented in docs/min-rnns.md.
TOL = {("linear", torch.float64): dict(atol=1e-12, rtol=1e-12), ("linear", torch.float32): dict(atol=1e-6, rtol=1e-6),
       ("log", torch.float64): dict(atol=1e-10, rtol=1e-10), ("log", torch.float32): dict(atol=1e-4, rtol=1e-4)}
# Gradients over 512 steps: |scan - stepping| <= bound * the largest entry of the gradient.
GRAD_BOUND = {("linear", torch.float64): 1e-12, ("linear", torch.float32): 1e-4,
              ("log", torch.float64): 1e-8, ("log", torch.float32): 1e-3}


def sig(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def _cell(name: str, I: int = 4, H: int = 8, dtype=torch.float64, seed: int = 0, scan: str = "auto"):
    torch.manual_seed(seed)
    cell = CELLS[name](I, H).to(dtype)
    cell.scan = scan
    return cell


def _data(T: int, B: int, I: int, H: int, dtype, seed: int = 1, scale: float = 2.0):
    """x (T, B, I) and an initial h (1, B, H) of both signs, well away from zero."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, I, dtype=torch.float64, generator=gen).mul_(scale).to(dtype)
    h0 = torch.randn(1, B, H, dtype=torch.float64, generator=gen).mul_(3.0).to(dtype)
    return x, h0


def _stepped(cell, x, h0):
    """One call per step, the state passed along: what the gradient-flow measurement does."""
    state, outs = (h0,), []
    for t in range(x.shape[0]):
        out, state = cell(x[t:t + 1], state)
        outs.append(out)
    return torch.cat(outs), state[0]


# ------------------------------------------------------------ the shared helpers


def test_g_is_positive_continuous_and_log_g_is_its_log():
    v = torch.linspace(-30, 30, 2001, dtype=torch.float64)
    assert (g(v) > 0).all()
    torch.testing.assert_close(log_g(v), torch.log(g(v)))
    zero = torch.zeros((), dtype=torch.float64)
    assert g(zero).item() == 0.5 == torch.sigmoid(zero).item()        # both branches meet at 0
    extreme = torch.tensor([-1e4, -100.0, 0.0, 100.0, 1e4], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(log_g(extreme).sum(), extreme)
    assert torch.isfinite(log_g(extreme)).all() and torch.isfinite(grad).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_g_equals_its_where_form_bit_for_bit_with_gradients(dtype):
    """g runs without torch.where (slow on the CPU for mixed signs); values, gradients (1 at x = 0, the x + 1/2
    branch) and second derivatives must be those of the paper's where form."""
    gen = torch.Generator().manual_seed(0)
    special = torch.tensor([0.0, -0.0, -1e-30, 1e-30, -1e-3, 1e-3, -90.0, 90.0, -1e4, 1e4], dtype=dtype)
    x = torch.cat([special, 10 * torch.randn(10_000, dtype=dtype, generator=gen)]).requires_grad_(True)
    w = torch.randn(x.shape, dtype=dtype, generator=gen)

    def where_form(v):
        return torch.where(v >= 0, v + 0.5, torch.sigmoid(v))

    for create_graph in (False, True):
        new, old = g(x), where_form(x)
        (grad_new,) = torch.autograd.grad((new * w).sum(), x, create_graph=create_graph)
        (grad_old,) = torch.autograd.grad((old * w).sum(), x, create_graph=create_graph)
        assert torch.equal(new, old) and torch.equal(grad_new, grad_old)
    assert grad_new[:2].tolist() == w[:2].tolist()                          # derivative 1 at +0 and -0
    (second_new,) = torch.autograd.grad(grad_new.sum(), x)
    (second_old,) = torch.autograd.grad(grad_old.sum(), x)
    assert torch.equal(second_new, second_old)


@pytest.mark.parametrize("chunk", [None, 1, SCAN_CHUNK, 100])
def test_linear_scan_takes_any_initial_state(chunk):
    T, B, H = 300, 2, 5
    gen = torch.Generator().manual_seed(0)
    log_a = -torch.rand(T, B, H, dtype=torch.float64, generator=gen) * 3
    log_b = torch.randn(T, B, H, dtype=torch.float64, generator=gen)
    h0 = torch.randn(B, H, dtype=torch.float64, generator=gen) * 5               # negative entries included
    h, expected = h0, []
    for t in range(T):
        h = log_a[t].exp() * h + log_b[t].exp()
        expected.append(h)
    torch.testing.assert_close(linear_scan_log(log_a, log_b, h0, chunk), torch.stack(expected), rtol=1e-12, atol=1e-12)


def test_linear_scan_refuses_a_bad_chunk():
    with pytest.raises(ValueError, match="chunk must be a positive integer"):
        linear_scan_log(torch.zeros(3, 1, 1), torch.zeros(3, 1, 1), torch.zeros(1, 1), chunk=0)


# ------------------------------------------------------------ the linear-space scan against the log formula and a loop


def _loop(a, b, h0):
    """h_t = a_t h_{t-1} + b_t, one step at a time, plain autograd: the reference."""
    h, outs = h0, []
    for t in range(a.shape[0]):
        h = a[t] * h + b[t]
        outs.append(h)
    return torch.stack(outs)


def _log_coefficients(T: int, B: int, H: int, seed: int = 0, dtype=torch.float64):
    """log a (a in (0, 1), some near 0, some near 1), log b, and h0 with both signs, all (T, B, H) / (B, H)."""
    gen = torch.Generator().manual_seed(seed)
    log_a = -torch.nn.functional.softplus(2 * torch.randn(T, B, H, dtype=torch.float64, generator=gen))
    log_b = torch.randn(T, B, H, dtype=torch.float64, generator=gen)
    h0 = 5 * torch.randn(B, H, dtype=torch.float64, generator=gen)
    return log_a.to(dtype), log_b.to(dtype), h0.to(dtype)


def _values_and_grads(scan, log_a, log_b, h0):
    """scan(log_a, log_b, h0) -> h, and the gradients of a weighted sum of h w.r.t. log_a, log_b and h0."""
    leaves = [t.clone().requires_grad_(True) for t in (log_a, log_b, h0)]
    h = scan(*leaves)
    weights = torch.linspace(-1, 1, h.numel(), dtype=h.dtype).view_as(h)
    return h, torch.autograd.grad((h * weights).sum(), leaves)


@pytest.mark.parametrize("chunk", [None, 1, 2, 3, LINEAR_CHUNK])
@pytest.mark.parametrize("T", [1, 2, 7, 8, 9, 17, 63, 64, 65, 100, 129])
def test_linear_scan_equals_the_log_formula_and_a_loop(T, chunk):
    """Values and gradients w.r.t. log a, log b and h0 (any sign), float64. B * H = 6, so chunk=None chunks
    from T = 64 on; T = 65, 100 and 129 leave a remainder; chunks of 2 and 3 recurse several levels deep."""
    coefficients = _log_coefficients(T, 2, 3)
    new = _values_and_grads(lambda la, lb, h0: linear_scan(la.exp(), lb.exp(), h0, chunk), *coefficients)
    old = _values_and_grads(linear_scan_log, *coefficients)
    loop = _values_and_grads(lambda la, lb, h0: _loop(la.exp(), lb.exp(), h0), *coefficients)
    for (h, grads), tol in ((new, 1e-12), (old, 1e-10)):
        torch.testing.assert_close(h, loop[0], rtol=tol, atol=tol)
        for what, got, want in zip(["log_a", "log_b", "h0"], grads, loop[1]):
            torch.testing.assert_close(got, want, rtol=tol, atol=tol, msg=what)


@pytest.mark.parametrize("T, chunk", [(1, None), (6, 1), (11, 2), (23, 3), (70, None)])
def test_linear_scan_passes_gradcheck_and_gradgradcheck(T, chunk):
    """Finite differences, float64, w.r.t. a, b and h0, first and second derivatives (the backward's own backward
    runs the scan forward again); T = 70 at width 2 takes the rule's chunks (70 = 8 * 8 + 6)."""
    gen = torch.Generator().manual_seed(T)
    a = (0.05 + 0.9 * torch.rand(T, 1, 2, dtype=torch.float64, generator=gen)).requires_grad_(True)
    b = torch.randn(T, 1, 2, dtype=torch.float64, generator=gen).requires_grad_(True)
    h0 = torch.tensor([[-2.0, 3.0]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, h0: linear_scan(a, b, h0, chunk), (a, b, h0))
    assert torch.autograd.gradgradcheck(lambda a, b, h0: linear_scan(a, b, h0, chunk), (a, b, h0))
    weights = torch.randn(T, 1, 2, dtype=torch.float64, generator=gen)
    plain = torch.autograd.grad((linear_scan(a, b, h0, chunk) * weights).sum(), (a, b, h0))
    graph = torch.autograd.grad((linear_scan(a, b, h0, chunk) * weights).sum(), (a, b, h0), create_graph=True)
    for x, y in zip(plain, graph):                     # the two ways backward runs give the same first derivatives
        torch.testing.assert_close(x, y, rtol=1e-14, atol=1e-14)


def test_the_rule_chunks_long_narrow_scans_only_and_keeps_each_step_on_one_thread():
    assert linear_chunk(LINEAR_CHUNK_MIN_T, LINEAR_CHUNK_MAX_WIDTH) == LINEAR_CHUNK
    assert linear_chunk(4000, 1 * 32) == LINEAR_CHUNK
    assert linear_chunk(LINEAR_CHUNK_MIN_T - 1, 32) is None                   # short: step through
    assert linear_chunk(4000, LINEAR_CHUNK_MAX_WIDTH + 1) is None             # wide: step through
    assert linear_chunk(44, 64 * 128) is None                                 # selective-copy's default
    for T, width in [(1000, 8 * 64), (4000, 1024), (100_000, 1), (LINEAR_CHUNK_MIN_T, 1024), (777, 333)]:
        C = linear_chunk(T, width)
        assert C >= LINEAR_CHUNK and T // C * width < ONE_THREAD_ELEMENTS, (T, width)
        assert C == LINEAR_CHUNK or T // (C - 1) * width >= ONE_THREAD_ELEMENTS - width, (T, width)  # no longer


def test_linear_scan_is_accurate_in_float32_over_4000_steps():
    """The same float32 numbers scanned in float32 (the rule's chunks, two levels deep) and in float64: the error
    does not grow with T (docs/min-rnns.md: 1.4e-7 measured, against 9e-6 for the log formula's 64-step chunks)."""
    log_a, log_b, h0 = _log_coefficients(4000, 2, 16)
    a, b, h0 = (t.float() for t in (log_a.exp(), log_b.exp(), h0))
    h32, grads32 = _values_and_grads(linear_scan, a, b, h0)
    h64, grads64 = _values_and_grads(lambda a, b, h0: linear_scan(a, b, h0, chunk=1), a.double(), b.double(),
                                     h0.double())
    assert ((h32 - h64).abs() / (1 + h64.abs())).max() <= 1e-6
    for what, got, want in zip(["a", "b", "h0"], grads32, grads64):
        assert (got - want).abs().max() <= 1e-6 * want.abs().max(), what


def test_linear_scan_products_underflow_harmlessly():
    """a_t = 1e-20: a chunk's product (1e-160) underflows to 0 in float32, as the state's weight does stepping."""
    T, B, H = 200, 1, 4
    a = torch.full((T, B, H), 1e-20)
    a[::7] = 0.999                                         # some steps keep the state
    b = torch.linspace(0.1, 2.0, T * B * H).view(T, B, H)
    h0 = torch.tensor([[-1e3, 1e3, 0.5, -0.5]])
    for chunk in (None, 2, 1):
        (h, grads) = _values_and_grads(lambda a, b, h0: linear_scan(a, b, h0, chunk), a, b, h0)
        (h_ref, grads_ref) = _values_and_grads(_loop, a.double(), b.double(), h0.double())
        assert torch.isfinite(h).all() and all(torch.isfinite(gr).all() for gr in grads)
        torch.testing.assert_close(h.double(), h_ref, rtol=1e-6, atol=1e-6)
        for got, want in zip(grads, grads_ref):
            torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)


def test_linear_scan_takes_non_contiguous_inputs_and_an_expanded_gradient():
    gen = torch.Generator().manual_seed(3)
    a = torch.rand(2, 100, 3, dtype=torch.float64, generator=gen).transpose(0, 1).requires_grad_(True)  # (T, B, H)
    b = torch.randn(3, 100, 2, dtype=torch.float64, generator=gen).permute(1, 2, 0).requires_grad_(True)
    h0 = torch.randn(3, 2, dtype=torch.float64, generator=gen).t().requires_grad_(True)
    got = torch.autograd.grad(linear_scan(a, b, h0).sum(), [a, b, h0])        # sum(): an expanded gradient
    want = torch.autograd.grad(_loop(a, b, h0).sum(), [a, b, h0])
    for x, y in zip(got, want):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)


def test_linear_scan_refuses_bad_arguments():
    a, b, h0 = torch.rand(5, 2, 3), torch.rand(5, 2, 3), torch.rand(2, 3)
    with pytest.raises(ValueError, match="chunk must be a positive integer"):
        linear_scan(a, b, h0, chunk=0)
    with pytest.raises(ValueError, match=r"h0 \(B, H\), got \(5, 2, 3\), \(5, 2, 3\) and \(1, 2, 3\)"):
        linear_scan(a, b, h0.unsqueeze(0))


# ------------------------------------------------------------ scan against stepping


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("T", [2, SCAN_CHUNK + 1, 512])
@pytest.mark.parametrize("scan", SCANS)
@pytest.mark.parametrize("name", list(CELLS))
def test_scan_equals_stepping_one_step_per_call(name, scan, T, dtype):
    """B * H = 24: the linear scan steps through T = 2 and chunks T = 65 (one level) and 512 (two)."""
    cell = _cell(name, dtype=dtype, scan=scan)
    x, h0 = _data(T, 3, 4, 8, dtype)
    with torch.no_grad():
        out, (h,) = cell(x, (h0,))
        stepped, h_stepped = _stepped(cell, x, h0)
    torch.testing.assert_close(out, stepped, **TOL[scan, dtype])
    torch.testing.assert_close(h[0], h_stepped[0], **TOL[scan, dtype])


@pytest.mark.parametrize("name", list(CELLS))
def test_the_papers_single_scan_agrees_too_in_float64(name):
    cell = _cell(name, scan="log")
    x, h0 = _data(512, 3, 4, 8, torch.float64)
    with torch.no_grad():
        chunked, _ = cell(x, (h0,))
        cell.scan_chunk = None
        whole, _ = cell(x, (h0,))
        stepped, _ = _stepped(cell, x, h0)
    torch.testing.assert_close(whole, stepped, **TOL["log", torch.float64])
    torch.testing.assert_close(chunked, whole, **TOL["log", torch.float64])


@pytest.mark.parametrize("name", list(CELLS))
def test_coefficients_and_log_coefficients_are_one_recurrence(name):
    cell = _cell(name)
    x, _ = _data(50, 3, 4, 8, torch.float64, scale=5.0)
    with torch.no_grad():
        (a, b), (log_a, log_b) = cell.coefficients(x), cell.log_coefficients(x)
    assert ((a > 0) & (a < 1) & (b > 0)).all()
    torch.testing.assert_close(a, log_a.exp(), rtol=1e-12, atol=0)
    torch.testing.assert_close(b, log_b.exp(), rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", list(CELLS))
def test_auto_runs_the_linear_scan_on_the_cpu_and_a_bad_scan_is_refused(name):
    cell = _cell(name, dtype=torch.float32)
    x, h0 = _data(100, 3, 4, 8, torch.float32)
    with torch.no_grad():
        auto = cell(x, (h0,))[0]
        cell.scan = "linear"
        linear = cell(x, (h0,))[0]
        cell.scan = "log"
        log = cell(x, (h0,))[0]
        assert torch.equal(auto, linear) and not torch.equal(auto, log)      # float32 rounding tells them apart
        cell.scan = "parallel"
        with pytest.raises(ValueError, match=f"{name}: scan must be one of auto, linear, log, got 'parallel'"):
            cell(x, (h0,))


def _grads(cell, x, h0, stepwise: bool):
    x, h0 = x.clone().requires_grad_(True), h0.clone().requires_grad_(True)
    out = _stepped(cell, x, h0)[0] if stepwise else cell(x, (h0,))[0]
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    return torch.autograd.grad((out * weights).sum(), [x, h0, *cell.parameters()])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("scan", SCANS)
@pytest.mark.parametrize("name", list(CELLS))
def test_scan_gradients_equal_stepping_gradients_over_512_steps(name, scan, dtype):
    """Float32: the linear scan within 1e-4 of the largest entry of each gradient (3e-5 measured, about the
    stepping path's own distance from float64); the log scan within 1e-3 (2e-4, 3e-4 with 64-step chunks; the
    paper's unchunked scan misses it, 5e-3 and 1.4e-2). docs/min-rnns.md."""
    cell = _cell(name, dtype=dtype, scan=scan)
    x, h0 = _data(512, 3, 4, 8, dtype, scale=1.0)
    scanned, stepped = _grads(cell, x, h0, False), _grads(cell, x, h0, True)
    bound = GRAD_BOUND[scan, dtype]
    for what, a, b in zip(["x", "h0", *(n for n, _ in cell.named_parameters())], scanned, stepped):
        assert (a - b).abs().max() <= bound * b.abs().max(), what


@pytest.mark.parametrize("scan, bound", [("linear", 1e-5), ("log", 1e-3)])
@pytest.mark.parametrize("name", list(CELLS))
def test_saturated_gates_stay_finite_in_float32(name, scan, bound):
    """Pre-activations in the hundreds: sigmoid underflows to exactly 0 or 1, and a naive f / (f + i)
    is 0 / 0. Both paths stay finite and agree."""
    cell = _cell(name, dtype=torch.float32, scan=scan)
    x, h0 = _data(200, 3, 4, 8, torch.float32, scale=100.0)
    for stepwise in (False, True):
        assert all(torch.isfinite(gr).all() for gr in _grads(cell, x, h0, stepwise))
    with torch.no_grad():
        out, stepped = cell(x, (h0,))[0], _stepped(cell, x, h0)[0]
    assert torch.isfinite(out).all()
    assert (out - stepped).abs().max() <= bound * stepped.abs().max()


# ------------------------------------------------------------ gradients against finite differences


@pytest.mark.parametrize("scan, T", [("auto", 1), ("log", 9), ("linear", 9), ("linear", 70)])
@pytest.mark.parametrize("name", list(CELLS))
def test_gradients_match_finite_differences(name, scan, T):
    """T = 1 is the stepping path; T = 9 with 4-step log chunks crosses two chunk boundaries of the log scan;
    the linear scan steps through T = 9 and chunks T = 70 (B * H = 6)."""
    cell = _cell(name, I=2, H=3, scan=scan)
    cell.scan_chunk = 4
    names, params = zip(*((n, p.detach().clone().requires_grad_(True)) for n, p in cell.named_parameters()))
    x, h0 = _data(T, 2, 2, 3, torch.float64)

    def run(x, h0, *values):
        out, (h,) = functional_call(cell, dict(zip(names, values)), (x, (h0,)))
        return out, h

    inputs = (x.requires_grad_(True), h0.requires_grad_(True), *params)
    assert torch.autograd.gradcheck(run, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)


# ------------------------------------------------------------ the paper's equations, by hand


def _scalar_cell(name: str, weights: dict[str, tuple[float, float]]):
    """I = H = 1, float64; ``weights``: linear layer name -> (w, b)."""
    cell = CELLS[name](1, 1).double()
    with torch.no_grad():
        for layer, (w, b) in weights.items():
            getattr(cell, layer).weight.fill_(w)
            getattr(cell, layer).bias.fill_(b)
    return cell


def _two_steps(cell):
    """x = (0.25, -2.0), h_0 = -1: the candidate's pre-activation 0.75 then -1.5 takes both branches of g."""
    x = torch.tensor([0.25, -2.0], dtype=torch.float64).view(2, 1, 1)
    h0 = torch.tensor(-1.0, dtype=torch.float64).view(1, 1, 1)
    first, _ = cell(x[:1], (h0,))             # T = 1: the stepping path
    both, _ = cell(x, (h0,))                  # T = 2: the scan
    return first.item(), both[0].item(), both[1].item()


def test_mingru_two_steps_worked_by_hand():
    cell = _scalar_cell("mingru", {"linear_z": (2.0, -1.0), "linear_h": (1.0, 0.5)})
    z1 = sig(2.0 * 0.25 - 1.0)                                  # update gate
    h1 = (1 - z1) * -1.0 + z1 * (0.75 + 0.5)                    # g(0.75) = 0.75 + 0.5
    z2 = sig(2.0 * -2.0 - 1.0)
    h2 = (1 - z2) * h1 + z2 * sig(-1.5)                          # g(-1.5) = sigmoid(-1.5)
    assert (h1, h2) == pytest.approx((-0.150533, -0.148305), abs=1e-6)
    assert _two_steps(cell) == pytest.approx((h1, h1, h2), abs=1e-12)


def test_minlstm_two_steps_worked_by_hand():
    cell = _scalar_cell("minlstm", {"linear_f": (1.0, 0.5), "linear_i": (-1.0, 0.0), "linear_h": (1.0, 0.5)})
    f1, i1 = sig(0.25 + 0.5), sig(-0.25)
    h1 = f1 / (f1 + i1) * -1.0 + i1 / (f1 + i1) * (0.75 + 0.5)
    f2, i2 = sig(-2.0 + 0.5), sig(2.0)
    h2 = f2 / (f2 + i2) * h1 + i2 / (f2 + i2) * sig(-1.5)
    assert (h1, h2) == pytest.approx((-0.118083, 0.130865), abs=1e-6)
    assert _two_steps(cell) == pytest.approx((h1, h1, h2), abs=1e-12)


# ------------------------------------------------------------ gate view and registration


def test_mingru_gate_view_rebuilds_the_output():
    cell = _cell("mingru")
    x, h0 = _data(6, 2, 4, 8, torch.float64)
    out, _ = cell(x, (h0,))
    gates = cell.gate_activations(x, (h0,))
    assert set(gates) == {"update", "candidate"} and gates["update"].shape == (1, 6, 2, 8)
    h = h0[0]
    for t in range(6):
        z, cand = gates["update"][0, t], gates["candidate"][0, t]
        h = (1 - z) * h + z * cand
        torch.testing.assert_close(h, out[t])


def test_minlstm_gate_view_rebuilds_the_output():
    cell = _cell("minlstm")
    x, h0 = _data(6, 2, 4, 8, torch.float64)
    out, _ = cell(x, (h0,))
    gates = cell.gate_activations(x, (h0,))
    assert set(gates) == {"forget", "input", "candidate"}
    torch.testing.assert_close(gates["forget"] + gates["input"], torch.ones_like(gates["input"]))
    h = h0[0]
    for t in range(6):
        h = gates["forget"][0, t] * h + gates["input"][0, t] * gates["candidate"][0, t]
        torch.testing.assert_close(h, out[t])


@pytest.mark.parametrize("name", list(CELLS))
def test_registered_as_a_single_layer_scan_cell(registry, name):
    spec = registry.cell(name)
    assert spec.factory is CELLS[name]
    assert spec.state_names == ("h",) and spec.max_layers == 1
    assert spec.devices == ("cpu", "cuda") and spec.exposes_gates and spec.whole_sequence
    params = sum(p.numel() for p in spec.factory(5, 7).parameters())
    assert params == {"mingru": 2, "minlstm": 3}[name] * 7 * (5 + 1)      # k Linear(I, H) layers, no projection


# ------------------------------------------------------------ bad input (cells/_single_layer.py, shared by all three)

SINGLE_LAYER_CELLS = [MinGRU, MinLSTM, LFRULSTM]


@pytest.mark.parametrize("cls", SINGLE_LAYER_CELLS)
@pytest.mark.parametrize("args, message", [
    ((0, 4), "input_size must be a positive integer"),
    ((3, 2.5), "hidden_size must be a positive integer"),
    ((3, 4, 2), r"builds one layer.*build_cell\(spec, 3, 4, layers=2\)"),
    ((3, 4, 1, 1.0), r"dropout must be a number in \[0, 1\)"),
])
def test_bad_sizes_are_refused_in_one_line(cls, args, message):
    with pytest.raises(ValueError, match=message):
        cls(*args)


@pytest.mark.parametrize("cls", SINGLE_LAYER_CELLS)
def test_bad_inputs_are_refused_in_one_line(cls):
    cell = cls(3, 4)
    n = len(cell.state_names)
    good_state = tuple(torch.zeros(1, 2, 4) for _ in range(n))
    cases = [
        ((torch.zeros(5, 3),), ValueError, r"x must be a \(T, B, I\) tensor"),
        ((torch.zeros(5, 2, 6),), ValueError, "x has 6 features per step"),
        ((torch.zeros(0, 2, 3),), ValueError, "at least one step"),
        ((torch.zeros(5, 2, 3, dtype=torch.float64),), TypeError, r"cell.to\(x.device, x.dtype\)"),
        ((torch.zeros(5, 2, 3), torch.zeros(1, 2, 4)), TypeError, "state must be a tuple"),
        ((torch.zeros(5, 2, 3), tuple(torch.zeros(2, 2, 4) for _ in range(n))), ValueError, r"must have shape \(1, B, H\)"),
        ((torch.zeros(5, 2, 3), tuple(s.double() for s in good_state)), TypeError, "pass the state in x's dtype"),
    ]
    for args, error, message in cases:
        with pytest.raises(error, match=message):
            cell(*args)
    out, state = cell(torch.zeros(5, 2, 3), good_state)                     # and the good call works
    assert out.shape == (5, 2, 4) and len(state) == n

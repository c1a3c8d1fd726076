"""triton-lstm against nn.LSTM: outputs, final states and every gradient.

CPU tests run the kernels through Triton's interpreter (exact, slow: sizes stay
tiny). The switch is ``HARNESS_TRITON_INTERPRET=1``, set per test with
``monkeypatch``; it works whatever imported triton first, because the package
loads its kernels with the interpreter knob set explicitly (see
``cells/triton_lstm/runtime.py``). GPU tests (``@pytest.mark.gpu``) compile the
same kernels at larger sizes:

    pytest tests/test_triton_lstm.py -m gpu
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
import subprocess
import sys
import warnings

import pandas as pd
import pytest
import torch
from torch import nn

from cells.triton_lstm import SPEC, Tiles, TritonLSTM, aot, function, precision, runtime
from cells.triton_lstm.naive import naive_backward, naive_forward
from harness.cli import main as harness_main
from harness.plugins.testing import check_declared_support, check_determinism, check_shapes_and_state

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STREAM16 = Tiles(block_b=16, block_h=16, block_k=16, resident=False)  # forces several hidden tiles at small H


@pytest.fixture
def interpreter(monkeypatch):
    """Switch the interpreter on for one test, after triton was imported without it (as another module might)."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    import triton  # noqa: F401  -- compiled-mode import first: the cell must not depend on import order
    monkeypatch.setenv(runtime.SWITCH, "1")
    monkeypatch.setattr(function, "POISON", True)  # every buffer the kernels write starts as NaN
    yield
    assert "TRITON_INTERPRET" not in os.environ, "loading the kernels leaked TRITON_INTERPRET into the environment"


@pytest.fixture
def no_switch(monkeypatch):
    monkeypatch.delenv(runtime.SWITCH, raising=False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)


def _pair(I, H, L, dtype, tiles=None, seed=0):
    """nn.LSTM and TritonLSTM with the same weights (same seed: same init order)."""
    torch.manual_seed(seed)
    ref = nn.LSTM(I, H, L).to(dtype)
    torch.manual_seed(seed)
    cell = TritonLSTM(I, H, L, tiles=tiles).to(dtype)
    return ref, cell


def _run(module, x, state, weights):
    """Outputs, final state and gradients of a fixed random objective w.r.t. x, state and parameters."""
    out, (h, c) = module(x, state)
    loss = (out * weights[0]).sum() + (h * weights[1]).sum() + (c * weights[2]).sum()
    grads = torch.autograd.grad(loss, [x, *state, *module.parameters()])
    return [out, h, c, *grads]


def _run_on(module, inputs, device, dtype):
    """:func:`_run` with the float64 ``inputs`` (x, state, objective weights) moved to ``device`` and ``dtype``."""
    x, state, weights = inputs
    return _run(module.to(device), x.to(device, dtype).requires_grad_(),
                [s.to(device, dtype).requires_grad_() for s in state], [w.to(device, dtype) for w in weights])


def _inputs(T, B, I, H, L=1):
    """Seeded float64 input, non-zero initial state and objective weights (CPU)."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, I, generator=gen, dtype=torch.float64)
    state = [torch.randn(L, B, H, generator=gen, dtype=torch.float64) * 0.5 for _ in range(2)]
    weights = [torch.randn(T, B, H, generator=gen, dtype=torch.float64),
               *[torch.randn(L, B, H, generator=gen, dtype=torch.float64) for _ in range(2)]]
    return x, state, weights


def _assert_close(cell, values, ref_values, dtype, atol):
    """Every output and gradient of ``cell`` within ``atol`` (scaled, see precision.scaled_error) of the reference."""
    names = ["out", "h_T", "c_T", "dx", "dh0", "dc0"] + [f"d{n}" for n, _ in cell.named_parameters()]
    assert len(values) == len(ref_values) == len(names)
    for name, a, b in zip(names, values, ref_values):
        assert a.dtype == dtype and a.shape == b.shape, name
        err = precision.scaled_error(a, b)
        assert err <= atol, f"{name}: scaled error {err:.3g} > {atol:.3g}"  # NaN fails too


def _compare(ref, cell, T, B, dtype, atol, device="cpu", ref_device=None):
    inputs = _inputs(T, B, cell.input_size, cell.hidden_size, cell.num_layers)
    values = _run_on(cell, inputs, device, dtype)
    ref_values = _run_on(ref, inputs, ref_device or device, next(ref.parameters()).dtype)
    _assert_close(cell, values, ref_values, dtype, atol)


# ------------------------------------------------------------- no Triton needed


def test_naive_bptt_equals_autograd():
    """The hand-written BPTT the backward kernel implements, checked against autograd in float64."""
    torch.manual_seed(0)
    T, B, I, H = 6, 3, 4, 5
    ref = nn.LSTM(I, H).double()
    w = [getattr(ref, n) for n in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")]
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    h0, c0 = (torch.randn(B, H, dtype=torch.float64, requires_grad=True) for _ in range(2))
    d_out, d_h, d_c = torch.randn(T, B, H, dtype=torch.float64), *torch.randn(2, B, H, dtype=torch.float64)
    hs, cs, gates = naive_forward(x, h0, c0, *w)
    out, (h, c) = ref(x, (h0[None], c0[None]))
    torch.testing.assert_close(hs[1:], out)
    torch.testing.assert_close(cs[-1], c[0])
    loss = (out * d_out).sum() + (h[0] * d_h).sum() + (c[0] * d_c).sum()
    auto = dict(zip(["x", "h0", "c0", "w_ih", "w_hh", "b"], torch.autograd.grad(loss, [x, h0, c0, *w[:3]])))
    mine = naive_backward(d_out, d_h, d_c, x.detach(), w[0].detach(), w[1].detach(), hs.detach(), cs.detach(),
                          gates.detach())
    for name, value in auto.items():
        torch.testing.assert_close(mine[name], value, rtol=1e-10, atol=1e-10, msg=name)


def test_tf32_rounding_emulation():
    """The pieces of the tf32x3 emulation: TF32 keeps 10 mantissa bits, rounds to nearest (ties away from zero),
    and high + truncated low part give back the fp32 value to about 2^-21."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4096, generator=gen) * 10.0 ** torch.randint(-4, 5, (4096,), generator=gen)
    hi = precision.round_tf32(x)
    assert ((hi.view(torch.int32) & 0x1FFF) == 0).all()
    assert ((hi - x).abs() <= x.abs() * 2**-11).all()
    assert precision.round_tf32(torch.tensor([1 + 2**-11, -(1 + 2**-11)])).tolist() == [1 + 2**-10, -(1 + 2**-10)]
    lo = precision.truncate_tf32(x - hi)
    assert ((lo.view(torch.int32) & 0x1FFF) == 0).all()
    assert ((hi + lo - x).abs() <= x.abs() * 2**-21).all()


def test_tf32x3_emulation_is_within_the_documented_tolerance():
    """The emulated tf32x3 LSTM (forward and gradients) stays within TF32X3_TOLERANCE of float64 nn.LSTM, at the
    error level of exact fp32 products, while one TF32 product does not: the tolerance tells them apart."""
    errors = precision.measure(batch=4, hidden=32, steps=16)
    assert max(errors["tf32x3"]) <= precision.TF32X3_TOLERANCE
    assert max(errors["tf32x3"]) <= 4 * max(errors["fp32"])
    assert min(errors["tf32"]) > precision.TF32X3_TOLERANCE


def test_parameters_are_nn_lstm_s():
    """Same names, shapes and (same seed) values as nn.LSTM, so state dicts load both ways."""
    ref, cell = _pair(3, 8, 2, torch.float32)
    assert {k: v.shape for k, v in cell.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    for k, v in ref.state_dict().items():
        assert torch.equal(cell.state_dict()[k], v), k
    other = nn.LSTM(3, 8, 2)
    other.load_state_dict(cell.state_dict())
    cell.load_state_dict(other.state_dict())


def test_tiles_and_supported_sizes():
    f32 = function.choose_tiles(16, torch.float32)
    assert f32.resident and f32.block_h == 16
    assert function.choose_tiles(64, torch.float32).resident                 # 4 * 64^2 * 4 B = 64 KiB
    assert not function.choose_tiles(128, torch.float32).resident            # 256 KiB: streamed
    assert function.choose_tiles(128, torch.bfloat16).resident               # 4 * 128^2 * 2 B = 128 KiB
    assert function.choose_tiles(120, torch.float16).block_h == 128          # padded to 128: still resident
    assert not function.choose_tiles(64, torch.float64).resident             # 128 KiB: streamed
    assert function.choose_tiles(64, torch.float32).counts(64) == (1, 1)
    assert function.choose_tiles(256, torch.float32).counts(256) == (4, 8)   # 64-column tiles, 32-deep reduction
    wide = function.choose_tiles(512, torch.bfloat16)
    assert not wide.resident and wide.block_h == 64
    assert function.fused_supported(1) and function.fused_supported(512) and not function.fused_supported(513)
    with pytest.raises(ValueError, match="powers of two"):
        function._check_tiles(Tiles(16, 24, 16, False), 32)
    with pytest.raises(ValueError, match="must cover"):
        function._check_tiles(Tiles(16, 16, 16, True), 32)


def test_padding_to_a_multiple_of_16():
    assert [function.padded_hidden(h) for h in (1, 16, 17, 20, 512)] == [16, 16, 32, 32, 512]
    w = torch.arange(4 * 20 * 3, dtype=torch.float64).view(80, 3)             # (4H, I), H = 20
    padded = function._pad(w, 0, 20, 32, blocks=4)
    assert padded.shape == (128, 3) and torch.equal(padded.view(4, 32, 3)[:, 20:], torch.zeros(4, 12, 3))
    assert torch.equal(function.unpad(padded.t(), 20, blocks=4), w.t())
    w_hh = function._padded_w_hh(torch.ones(80, 20), 32)
    assert w_hh.shape == (128, 32) and w_hh.sum() == 80 * 20 and w_hh.is_contiguous()
    assert function._pad(w, 0, 32, 32, blocks=4) is w                          # nothing to pad: no copy


def _launches(H, dtype, T=37, B=17):
    return {launch.kernel: launch for launch in aot.record(H, dtype, steps=T, batch=B)}


def test_launches_get_aligned_sizes_and_compute_dtype_gates():
    """What the host code hands the kernels (recorded on "meta" tensors, nothing runs): H padded to a multiple of 16,
    every buffer 16-element aligned per row, gates in the compute dtype, the tile counts as compile-time constants,
    fp32 products on tensor cores as tf32x3 unless TF32 is allowed."""
    launches = _launches(20, torch.bfloat16)
    fwd, bwd = launches["lstm_forward_kernel"], launches["lstm_backward_kernel"]
    assert fwd.args[-3:] == (37, 17, 32) and bwd.args[-3:] == (37, 17, 32)
    for launch in (fwd, bwd):
        assert all(a.shape[-1] % 16 == 0 and a.is_contiguous() for a in launch.args if isinstance(a, torch.Tensor))
    xp, w, hs, cs, gates = fwd.args[:5]
    assert (gates.dtype, hs.dtype, w.dtype, cs.dtype) == (torch.bfloat16,) * 3 + (torch.float32,)
    assert bwd.args[3] is gates
    assert fwd.meta["RESIDENT"] and (fwd.meta["N_TILES"], fwd.meta["K_TILES"]) == (1, 1) and fwd.grid == (2,)
    streamed = _launches(256, torch.float32)["lstm_forward_kernel"]
    assert not streamed.meta["RESIDENT"] and (streamed.meta["N_TILES"], streamed.meta["K_TILES"]) == (4, 8)
    assert streamed.meta["PRECISION"] == "tf32x3"
    saved = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = True
        assert function._precision(torch.float32, interpret=False) == "tf32"
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved


def test_no_32_bit_limit_on_sequence_size():
    """Offsets are 64-bit: a sequence with (T+1) * B * 4H above 2^31 is accepted (recorded on "meta" tensors)."""
    T, B, H = 2**16, 2**10, 64
    assert (T + 1) * B * 4 * H > 2**31
    assert set(_launches(H, torch.bfloat16, T=T, B=B)) == {"lstm_forward_kernel", "lstm_backward_kernel"}


def test_bad_input_gets_a_clear_error():
    cell = TritonLSTM(3, 4)
    with pytest.raises(ValueError, match=r"\(T, B, I\)"):
        cell(torch.randn(5, 2, 7))
    with pytest.raises(TypeError, match="move one with"):
        cell(torch.randn(5, 2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="expected \\(L, B, H\\)"):
        cell(torch.randn(5, 2, 3), (torch.zeros(1, 2, 5), torch.zeros(1, 2, 5)))
    with pytest.raises(ValueError, match="hidden_size"):
        TritonLSTM(3, 0)


def test_import_does_not_import_triton():
    code = ("import sys, cells.triton_lstm; from harness.plugins.registry import load_registry; "
            "r = load_registry(); assert 'triton-lstm' in r.cells; print('triton' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k not in (runtime.SWITCH, "TRITON_INTERPRET")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


# ------------------------------------------------------- CPU without the switch


def test_cpu_without_switch_is_declined_in_one_line(no_switch):
    reason = SPEC.unavailable_reason(torch.device("cpu"), torch.float32)
    assert reason == runtime.CPU_REASON and "\n" not in reason and runtime.SWITCH in reason
    assert SPEC.unavailable_reason(torch.device("cuda"), torch.float32) is None
    with pytest.raises(RuntimeError, match=runtime.SWITCH):
        TritonLSTM(3, 4)(torch.randn(2, 1, 3))


def test_runner_skips_it_and_runs_the_others(no_switch, tmp_path, capsys):
    code = harness_main(["run", "--cells", "triton-lstm,lstm", "--task", "adding", "--steps", "5", "--seq-len", "10",
                         "--task-opt", "eval_size=32", "--no-progress", "--out", str(tmp_path / "r")])
    assert code == 1  # a requested cell that cannot run here fails the command, after the others ran
    summary = pd.read_csv(tmp_path / "r" / "summary.csv").set_index("cell")
    assert summary.loc["triton-lstm", "status"] == "skipped"
    assert summary.loc["triton-lstm", "reason"] == runtime.CPU_REASON
    assert summary.loc["lstm", "status"] == "ok"
    assert capsys.readouterr().err.count(f"triton-lstm skipped: {runtime.CPU_REASON}") == 1  # once, on stderr


# ------------------------------------------------------ CPU through the interpreter


@pytest.mark.parametrize("T,B,I,H,L,tiles", [
    (7, 3, 5, 16, 1, None),        # resident weights, one hidden tile
    (5, 17, 4, 32, 2, STREAM16),   # 2 programs (17 = 16 + 1 rows), 2x2 hidden tiles, 2 layers
    (6, 4, 3, 20, 1, STREAM16),    # H not a multiple of the tile: masked edges
    (1, 2, 3, 16, 1, None),        # T = 1, as the harness unrolls for gradient norms
    (4, 1, 3, 20, 1, None),        # B = 1 and H = 20: padded to 32, one resident tile
    (3, 1, 2, 40, 1, STREAM16),    # B = 1, H = 40 padded to 48: three hidden tiles
])
def test_matches_nn_lstm_float32(interpreter, T, B, I, H, L, tiles):
    ref, cell = _pair(I, H, L, torch.float32, tiles)
    _compare(ref, cell, T, B, torch.float32, atol=1e-4)


def test_matches_nn_lstm_float64_exactly(interpreter):
    ref, cell = _pair(3, 20, 1, torch.float64, STREAM16)
    _compare(ref, cell, 5, 3, torch.float64, atol=1e-12)


@pytest.mark.parametrize("dtype,H,atol", [
    (torch.bfloat16, 24, 5e-2),
    (torch.float16, 24, 1e-2),
    (torch.bfloat16, 120, 5e-2),   # padded to 128: W_hh resident in 16-bit (it is not in fp32)
])
def test_half_precision_accumulates_in_float32(interpreter, dtype, H, atol):
    ref, cell = _pair(4, H, 1, torch.float32)
    ref.double()
    cell.to(dtype)
    _compare(ref, cell, 3, 3, dtype, atol=atol)


def test_gates_match_the_lstm_cell(interpreter, registry):
    torch.manual_seed(0)
    lstm = registry.cell("lstm").factory(3, 16, 2).double()
    cell = TritonLSTM(3, 16, 2).double()
    cell.load_state_dict({k.removeprefix("rnn."): v for k, v in lstm.state_dict().items()})
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    state = tuple(torch.randn(2, 2, 16, dtype=torch.float64) for _ in range(2))
    mine, theirs = cell.gate_activations(x, state), lstm.gate_activations(x, state)
    assert set(mine) == set(theirs)
    for name in theirs:
        torch.testing.assert_close(mine[name], theirs[name], rtol=1e-12, atol=1e-12, msg=name)


def test_interpreter_warns_once(interpreter, monkeypatch):
    monkeypatch.setattr(runtime, "_warned", set())
    cell = TritonLSTM(2, 16)
    with pytest.warns(RuntimeWarning) as record:
        cell(torch.randn(2, 1, 2))
        cell(torch.randn(3, 2, 2))
    assert sum("interpreter" in str(w.message) and "slow" in str(w.message) for w in record) == 1


def test_benchmark_script_runs(interpreter, tmp_path, capsys):
    """The GPU benchmark's own code path, at a tiny size through the interpreter (a smoke test, not a timing)."""
    spec = importlib.util.spec_from_file_location("bench_triton_lstm", os.path.join(ROOT, "benchmarks",
                                                                                   "bench_triton_lstm.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--device", "cpu", "--batch", "3", "--hidden", "16", "--seq-len", "2", "--dtypes", "float32",
                       "--warmup", "0", "--repeats", "1", "--out", str(tmp_path / "b.csv")]) == 0
    table = pd.read_csv(tmp_path / "b.csv")
    assert list(table["pass"]) == ["forward", "forward+backward"] and set(table["status"]) == {"ok"}
    assert (table["max_abs_diff"] < 1e-5).all() and (table["path"] == "triton").all()
    assert "| float32 | 3 | 16 | forward | triton |" in capsys.readouterr().out


def test_conformance_kit(interpreter):
    """The harness's conformance checks. (Its finite-difference gradient check is left out: the float64
    comparison with autograd above is stricter, and finite differences cost ~20 s in the interpreter.)"""
    for check in (check_shapes_and_state, check_determinism, check_declared_support):
        check(SPEC)


def test_above_max_hidden_falls_back_to_torch(monkeypatch, no_switch):
    monkeypatch.setattr(function, "MAX_HIDDEN", 8)
    ref, cell = _pair(3, 12, 1, torch.float64)
    assert not cell.uses_triton
    with pytest.warns(RuntimeWarning, match="falls back"):
        monkeypatch.setattr(runtime, "_warned", set())
        _compare(ref, cell, 4, 2, torch.float64, atol=1e-12)


class _RefuseBackward(torch.autograd.Function):
    """Identity whose backward fails as cuDNN's does after an RNN call made with ``train=False``."""

    @staticmethod
    def forward(ctx, value):
        return value.clone()

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("cudnn RNN backward can only be called in training mode")


def test_fallback_trains_through_cudnn(monkeypatch, no_switch):
    """The fallback must call torch.lstm with train=True when a gradient is wanted: cuDNN (the fallback on a GPU)
    refuses backward otherwise. torch.lstm is replaced by one that refuses the same way, so this runs on the CPU."""
    monkeypatch.setattr(function, "MAX_HIDDEN", 8)
    real, trains = torch.lstm, []

    def cudnn_like(*args):
        trains.append(args[6])  # torch.lstm(input, hx, params, has_biases, num_layers, dropout, train, ...)
        values = real(*args)
        return values if args[6] else tuple(_RefuseBackward.apply(v) for v in values)

    monkeypatch.setattr(torch, "lstm", cudnn_like)
    ref, cell = _pair(3, 12, 1, torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the one-time "falls back" warning
        _compare(ref, cell, 4, 2, torch.float64, atol=1e-12)
        assert trains == [True]
        with torch.no_grad():  # inference keeps cuDNN's cheaper inference mode
            cell(torch.randn(4, 2, 3, dtype=torch.float64))
    assert trains == [True, False]


def test_trains_through_the_runner_like_nn_lstm(interpreter, tmp_path):
    """Same seed, same initial weights: triton-lstm and lstm follow the same training trajectory."""
    code = harness_main(["run", "--cells", "triton-lstm,lstm", "--task", "adding", "--seq-len", "6", "--steps", "3",
                         "--hidden-size", "16", "--batch-size", "4", "--task-opt", "eval_size=8", "--no-progress",
                         "--out", str(tmp_path / "r")])
    assert code == 0
    summary = pd.read_csv(tmp_path / "r" / "summary.csv").set_index("cell")
    assert list(summary["status"]) == ["ok", "ok"]
    for column in ("loss", "eval_loss", "grad_decay_init", "grad_decay_final"):
        mine, theirs = summary.loc["triton-lstm", column], summary.loc["lstm", column]
        assert math.isfinite(mine) and abs(mine - theirs) <= 1e-4 * max(1.0, abs(theirs)), column
    norms = pd.read_csv(tmp_path / "r" / "gradnorms.csv")
    assert set(norms[norms["cell"] == "triton-lstm"]["state"]) == {"h", "c"}


# ------------------------------------------------- compiled for sm_90 (H100/H200), no GPU needed


@pytest.fixture(scope="module")
def sm90():
    reason = aot.unavailable_reason()
    if reason:
        pytest.skip(f"cannot compile for sm_90 here: {reason}")


def _documented_rows() -> dict[tuple[str, str, str], list[str]]:
    """The compile table of docs/triton-lstm.md, by (dtype, H, kernel)."""
    rows = {}
    with open(os.path.join(ROOT, "docs", "triton-lstm.md")) as f:
        for line in f:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 10 and cells[0] in ("float32", "bfloat16", "float16"):
                rows[tuple(cells[:3])] = cells
    return rows


@pytest.mark.parametrize("dtype", aot.DTYPES, ids=lambda d: str(d).removeprefix("torch."))
@pytest.mark.parametrize("hidden", aot.HIDDEN_SIZES)
def test_kernels_compile_for_sm90(sm90, hidden, dtype):
    """Both kernels, specialised as a real launch specialises them, compile for sm_90 with Triton's bundled ptxas:
    no register spills, shared memory within the limit, tensor-core instructions (fp32: tf32x3 with TF32 off), and
    the registers and shared memory that docs/triton-lstm.md records."""
    reports = aot.report(hidden, dtype)
    assert [r.kernel for r in reports] == ["lstm_forward_kernel", "lstm_backward_kernel"]
    documented = _documented_rows()
    for r in reports:
        name = f"{r.kernel} {r.dtype} H={hidden}"
        assert r.divisibility, f"{name}: H reached the kernel without its divisibility-by-16 hint"
        assert r.spill_stores == r.spill_loads == 0, f"{name}: spills {r.spill_stores} B"
        assert r.shared <= aot.SHARED_LIMIT, f"{name}: {r.shared} B of shared memory"
        assert r.tensor_cores, f"{name}: no mma/wgmma instruction"
        if dtype == torch.float32:
            assert r.precision == "tf32x3" and "tf32" in r.tensor_cores, name
        if r.tiles.resident:  # the four W_hh blocks go to shared memory once, before the time loop
            assert r.on_chip_before_loop >= 4, f"{name}: W_hh is not kept on chip"
        row = aot.markdown([r]).splitlines()[-1]
        key = tuple(c.strip() for c in row.strip("|").split("|")[:3])
        assert key in documented, f"{name}: not in docs/triton-lstm.md; regenerate with python -m cells.triton_lstm.aot"
        assert [c.strip() for c in row.strip("|").split("|")] == documented[key], (
            f"{name}: docs/triton-lstm.md is out of date; regenerate with python -m cells.triton_lstm.aot")


def test_sm90_compile_is_skipped_with_a_reason_without_the_nvidia_backend(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name == "triton.backends.nvidia" else find_spec(name, *rest))
    reason = aot.unavailable_reason()
    assert reason == "this Triton build has no NVIDIA backend (triton.backends.nvidia)"
    assert aot.main() == 2


@pytest.mark.parametrize("hidden,dtype", [(20, torch.bfloat16), (256, torch.float32)])
def test_kernels_compile_for_sm90_with_unit_sizes(sm90, hidden, dtype):
    """A real launch makes B = 1 and T = 1 compile-time constants: those kernels compile too, without spills."""
    reports = aot.report(hidden, dtype, steps=1, batch=1)
    assert len(reports) == 2
    for r in reports:
        assert r.divisibility and r.spill_stores == 0 and r.shared <= aot.SHARED_LIMIT and r.tensor_cores, r


# ------------------------------------------------------------------- GPU, compiled


@pytest.fixture
def exact_fp32():
    """TF32 off: for cuDNN and cuBLAS (torch lets cuDNN use it by default) and for the kernels' fp32 products,
    which then run as tf32x3."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


GPU_TOLERANCE = {torch.float32: precision.TF32X3_TOLERANCE, torch.bfloat16: 5e-2, torch.float16: 1e-2}
"""Scaled error (precision.scaled_error) allowed against float64 on a GPU. fp32 (tf32x3): the tolerance documented
from the CPU emulation; 16-bit: unvalidated guesses until a GPU run (see docs/triton-lstm.md)."""
SWEEP = [(T, B, H, dtype) for T in (1, 37) for B in (1, 17, 64, 130, 256) for H in (20, 64, 128, 256, 512)
         for dtype in (torch.float32, torch.bfloat16, torch.float16)]


@functools.lru_cache(maxsize=1)  # SWEEP lists the dtypes of one shape together
def _float64_reference(T, B, H):
    ref, _ = _pair(H, H, 1, torch.float64)
    inputs = _inputs(T, B, H, H)
    return inputs, [v.detach() for v in _run_on(ref, inputs, "cpu", torch.float64)]


@pytest.mark.gpu
@pytest.mark.parametrize("T,B,H,dtype", SWEEP, ids=lambda v: str(v).removeprefix("torch."))
def test_gpu_sweep(no_switch, exact_fp32, monkeypatch, T, B, H, dtype):
    """Forward output, final state and every gradient against a float64 reference, with every buffer the kernels
    write pre-filled with NaN (an element left unwritten shows), each case run twice with identical bits."""
    monkeypatch.setattr(function, "POISON", True)
    inputs, expected = _float64_reference(T, B, H)
    _, cell = _pair(H, H, 1, dtype)
    first = _run_on(cell, inputs, "cuda", dtype)
    second = _run_on(cell, inputs, "cuda", dtype)
    assert all(torch.equal(a, b) for a, b in zip(first, second)), "two runs differ"
    _assert_close(cell, first, expected, dtype, GPU_TOLERANCE[dtype])


@pytest.mark.gpu
@pytest.mark.parametrize("B,H", [(16, 128), (64, 512)])
def test_gpu_tf32x3_accuracy_as_documented(no_switch, exact_fp32, B, H):
    """fp32 at the benchmark's T = 256 (TF32 off: tf32x3) within the tolerance documented from the CPU emulation;
    with TF32 allowed (one TF32 product) the error is larger, so the switch reaches the kernel."""
    T = 256
    ref, cell = _pair(H, H, 1, torch.float32)
    inputs = _inputs(T, B, H, H)
    expected = _run_on(ref.double(), inputs, "cpu", torch.float64)

    def worst():
        return max(map(precision.scaled_error, _run_on(cell, inputs, "cuda", torch.float32), expected))

    tf32x3 = worst()
    assert tf32x3 <= precision.TF32X3_TOLERANCE, f"tf32x3: {tf32x3:.3g}"
    torch.backends.cuda.matmul.allow_tf32 = True  # restored by exact_fp32
    assert worst() > tf32x3


@pytest.mark.gpu
@pytest.mark.parametrize("T,B,H,L", [(64, 1, 64, 1), (50, 37, 128, 2), (40, 64, 256, 1), (32, 130, 512, 1)])
def test_gpu_matches_float64_reference(no_switch, exact_fp32, T, B, H, L):
    ref, cell = _pair(H // 2, H, L, torch.float32)
    _compare(ref.double(), cell, T, B, torch.float32, atol=precision.TF32X3_TOLERANCE, device="cuda",
             ref_device="cpu")
    assert runtime.use_interpreter(torch.device("cuda")) is False and False in runtime._kernels


@pytest.mark.gpu
@pytest.mark.parametrize("B,H,dtype", [(1, 20, torch.float32), (17, 128, torch.bfloat16), (17, 512, torch.float32),
                                       (130, 64, torch.float16)])
def test_gpu_sanitizer_case(no_switch, monkeypatch, B, H, dtype):
    """T = 4, forward and backward: small enough to run under compute-sanitizer (memcheck, synccheck; commands in
    docs/triton-lstm.md). Every output written (NaN-filled buffers) and finite."""
    monkeypatch.setattr(function, "POISON", True)
    _, cell = _pair(H, H, 1, dtype)
    values = _run_on(cell, _inputs(4, B, H, H), "cuda", dtype)
    torch.cuda.synchronize()
    assert all(v.isfinite().all() for v in values)


@pytest.mark.gpu
def test_gpu_fallback_above_max_hidden(no_switch, exact_fp32):
    ref, cell = _pair(64, function.MAX_HIDDEN * 2, 1, torch.float32)
    assert not cell.uses_triton
    _compare(ref.double(), cell, 8, 4, torch.float32, atol=1e-4, device="cuda", ref_device="cpu")


@pytest.mark.gpu
def test_gpu_run_compares_with_cudnn(no_switch, tmp_path):
    code = harness_main(["run", "--cells", "triton-lstm,lstm", "--task", "copy", "--device", "cuda", "--steps", "20",
                         "--no-progress", "--out", str(tmp_path / "r")])
    assert code == 0
    summary = pd.read_csv(tmp_path / "r" / "summary.csv").set_index("cell")
    assert list(summary["status"]) == ["ok", "ok"]
    assert abs(summary.loc["triton-lstm", "loss"] - summary.loc["lstm", "loss"]) < 1e-2

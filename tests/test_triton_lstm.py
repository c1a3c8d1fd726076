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

from cells.triton_lstm import SPEC, Tiles, TritonLSTM, function, runtime
from cells.triton_lstm.naive import naive_backward, naive_forward
from harness.cli import main as harness_main
from harness.testing import check_declared_support, check_determinism, check_shapes_and_state

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STREAM16 = Tiles(block_b=16, block_h=16, block_k=16, resident=False)  # forces several hidden tiles at small H


@pytest.fixture
def interpreter(monkeypatch):
    """Switch the interpreter on for one test, after triton was imported without it (as another module might)."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    import triton  # noqa: F401  -- compiled-mode import first: the cell must not depend on import order
    monkeypatch.setenv(runtime.SWITCH, "1")
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
    return [out, h, c], grads


def _compare(ref, cell, T, B, dtype, atol, device="cpu", ref_device=None):
    ref_device = ref_device or device
    gen = torch.Generator().manual_seed(1)
    L, H, I = cell.num_layers, cell.hidden_size, cell.input_size
    x = torch.randn(T, B, I, generator=gen, dtype=torch.float64)
    state = [torch.randn(L, B, H, generator=gen, dtype=torch.float64) * 0.5 for _ in range(2)]  # non-zero
    weights = [torch.randn(T, B, H, generator=gen, dtype=torch.float64), *[torch.randn(L, B, H, generator=gen,
               dtype=torch.float64) for _ in range(2)]]

    def on(device_, dtype_):
        return ([t.to(device_, dtype_) for t in weights], x.to(device_, dtype_).requires_grad_(),
                [s.to(device_, dtype_).requires_grad_() for s in state])

    w, xx, ss = on(device, dtype)
    values, grads = _run(cell.to(device), xx, ss, w)
    rw, rx, rs = on(ref_device, next(ref.parameters()).dtype)
    ref_values, ref_grads = _run(ref.to(ref_device), rx, rs, rw)
    names = ["out", "h_T", "c_T"] + ["dx", "dh0", "dc0"] + [f"d{n}" for n, _ in cell.named_parameters()]
    for name, a, b in zip(names, [*values, *grads], [*ref_values, *ref_grads]):
        assert a.dtype == dtype and a.shape == b.shape, name
        err = (a.double().cpu() - b.double().cpu()).abs().max().item()
        scale = max(1.0, b.abs().max().item())
        assert err <= atol * scale, f"{name}: max abs error {err:.3g} > {atol * scale:.3g}"


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
    assert not function.choose_tiles(64, torch.float64).resident             # 128 KiB: streamed
    wide = function.choose_tiles(512, torch.bfloat16)
    assert not wide.resident and wide.block_h == 64
    assert function.fused_supported(1) and function.fused_supported(512) and not function.fused_supported(513)
    with pytest.raises(ValueError, match="powers of two"):
        function._check_tiles(Tiles(16, 24, 16, False), 32)
    with pytest.raises(ValueError, match="must cover"):
        function._check_tiles(Tiles(16, 16, 16, True), 32)


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
    code = ("import sys, cells.triton_lstm; from harness.registry import load_registry; "
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
    assert code == 0
    summary = pd.read_csv(tmp_path / "r" / "summary.csv").set_index("cell")
    assert summary.loc["triton-lstm", "status"] == "skipped"
    assert summary.loc["triton-lstm", "reason"] == runtime.CPU_REASON
    assert summary.loc["lstm", "status"] == "ok"
    assert f"skipped triton-lstm: {runtime.CPU_REASON}" in capsys.readouterr().out


# ------------------------------------------------------ CPU through the interpreter


@pytest.mark.parametrize("T,B,I,H,L,tiles", [
    (7, 3, 5, 16, 1, None),        # resident weights, one hidden tile
    (5, 17, 4, 32, 2, STREAM16),   # 2 programs (17 = 16 + 1 rows), 2x2 hidden tiles, 2 layers
    (6, 4, 3, 20, 1, STREAM16),    # H not a multiple of the tile: masked edges
    (1, 2, 3, 16, 1, None),        # T = 1, as the harness unrolls for gradient norms
])
def test_matches_nn_lstm_float32(interpreter, T, B, I, H, L, tiles):
    ref, cell = _pair(I, H, L, torch.float32, tiles)
    _compare(ref, cell, T, B, torch.float32, atol=1e-4)


def test_matches_nn_lstm_float64_exactly(interpreter):
    ref, cell = _pair(3, 20, 1, torch.float64, STREAM16)
    _compare(ref, cell, 5, 3, torch.float64, atol=1e-12)


def test_bfloat16_accumulates_in_float32(interpreter):
    ref, cell = _pair(4, 24, 1, torch.float32)
    ref.double()
    cell.bfloat16()
    _compare(ref, cell, 5, 3, torch.bfloat16, atol=5e-2)


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


def test_kernels_compile_for_sm90_without_a_gpu():
    """Triton compiles both kernels for an H100/H200 (sm_90) with its bundled ptxas; no device needed."""
    pytest.importorskip("triton.backends.nvidia")
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler.compiler import ASTSource

    kernels = runtime.load_kernels(False)
    buffers = {"xp_ptr": 0, "w_ptr": 0, "hs_ptr": 0, "cs_ptr": 1, "gates_ptr": 1, "dh_ptr": 1, "dz_ptr": 1, "dc_ptr": 1}
    for dtype, tiles in (("fp32", function.choose_tiles(64, torch.float32)),
                         ("bf16", function.choose_tiles(256, torch.bfloat16))):
        for fn in (kernels.lstm_forward_kernel, kernels.lstm_backward_kernel):
            const = {"BLOCK_B": tiles.block_b, "BLOCK_H": tiles.block_h, "BLOCK_K": tiles.block_k,
                     "RESIDENT": tiles.resident, "PRECISION": "ieee" if dtype == "fp32" else None, "UPCAST": False}
            if "STORE_GATES" in fn.arg_names:
                const["STORE_GATES"] = True
            signature = {n: ("*fp32" if buffers[n] else f"*{dtype}") if n in buffers else "i32"
                         for n in fn.arg_names if n not in const}
            signature.update({n: "constexpr" for n in const})
            compiled = triton.compile(ASTSource(fn, signature, const), target=GPUTarget("cuda", 90, 32),
                                      options={"num_warps": tiles.num_warps})
            assert "bar.sync" in compiled.asm["ptx"] or "barrier.sync" in compiled.asm["ptx"]


# ------------------------------------------------------------------- GPU, compiled


@pytest.fixture
def exact_fp32():
    """cuDNN and cuBLAS use TF32 for fp32 under some torch defaults; compare exact arithmetic."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.gpu
@pytest.mark.parametrize("T,B,H,L", [(64, 1, 64, 1), (50, 37, 128, 2), (40, 64, 256, 1), (32, 130, 512, 1)])
def test_gpu_matches_float64_reference(no_switch, exact_fp32, T, B, H, L):
    ref, cell = _pair(H // 2, H, L, torch.float32)
    _compare(ref.double(), cell, T, B, torch.float32, atol=1e-4, device="cuda", ref_device="cpu")
    assert runtime.use_interpreter(torch.device("cuda")) is False and False in runtime._kernels


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_gpu_half_precision(no_switch, dtype):
    ref, cell = _pair(64, 128, 1, torch.float32)
    cell.to(dtype)
    _compare(ref.double(), cell, 32, 48, dtype, atol=5e-2, device="cuda", ref_device="cpu")


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

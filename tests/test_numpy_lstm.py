"""``numpy-lstm``: equal to ``nn.LSTM`` (outputs, states, every gradient), finite differences, training
through the runner, gradient-norm curves, gate activations, dropout, and one-line errors for bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from cells.lstm import TorchLSTM
from cells.numpy_lstm import NumpyLSTM, NumpyLSTMFunction, kernel, threads
from cells.numpy_lstm.pool import ArrayPool, POOL
from harness.cli import main as cli_main
from harness.measurements.gradflow import state_gradient_norms
from harness.plugins.model import TaskModel
from harness.plugins.testing import check_cell
from harness.reports.results import RunWriter
from harness.run.config import resolve_config
from harness.run.runner import Runner
from tasks import adding

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def _pair(I, H, L, dtype, seed=0):
    """An nn.LSTM with random weights (biases included) and a NumpyLSTM holding a copy of them."""
    torch.manual_seed(seed)
    ref = nn.LSTM(I, H, L).to(dtype)
    with torch.no_grad():
        for p in ref.parameters():
            p.uniform_(-0.6, 0.6)
    return ref, NumpyLSTM.from_torch(ref)


def _inputs(T, B, I, H, L, dtype, with_state, seed=1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, I, dtype=dtype, generator=gen, requires_grad=True)
    if not with_state:
        return x, None
    h0 = torch.randn(L, B, H, dtype=dtype, generator=gen).requires_grad_(True)
    c0 = torch.randn(L, B, H, dtype=dtype, generator=gen).requires_grad_(True)
    return x, (h0, c0)


def test_registered_with_the_declared_spec(registry):
    spec = registry.cell("numpy-lstm")
    assert spec.factory is NumpyLSTM
    assert spec.state_names == ("h", "c") and spec.devices == ("cpu",)
    assert spec.dtypes == (torch.float32, torch.float64)
    assert spec.exposes_gates and spec.whole_sequence and spec.max_layers is None
    assert "cuda" in spec.unavailable_reason(torch.device("cuda"), torch.float32)


def test_passes_the_conformance_kit(registry):
    check_cell(registry.cell("numpy-lstm"))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("with_state", [False, True])
def test_forward_and_every_gradient_equal_nn_lstm(dtype, layers, with_state):
    T, B, I, H = 7, 3, 4, 5
    ref, cell = _pair(I, H, layers, dtype)
    x, state = _inputs(T, B, I, H, layers, dtype, with_state)
    out_ref, (h_ref, c_ref) = ref(x, state)
    out, (h, c) = cell(x, state)
    tol = TOL[dtype]
    for mine, theirs in ((out, out_ref), (h, h_ref), (c, c_ref)):
        assert mine.dtype == dtype and mine.shape == theirs.shape
        assert (mine - theirs).abs().max().item() <= tol

    # A loss that weighs every output and both final states differently, so every path carries gradient.
    gen = torch.Generator().manual_seed(2)
    weights = [torch.randn(t.shape, dtype=dtype, generator=gen) for t in (out, h, c)]
    leaves = [x] + (list(state) if state else [])
    names = [n for n, _ in ref.named_parameters()]
    assert names == [n for n, _ in cell.named_parameters()]
    g_ref = torch.autograd.grad(sum((a * w).sum() for a, w in zip((out_ref, h_ref, c_ref), weights)),
                                leaves + list(ref.parameters()))
    g_mine = torch.autograd.grad(sum((a * w).sum() for a, w in zip((out, h, c), weights)),
                                 leaves + list(cell.parameters()))
    labels = ["x"] + (["h0", "c0"] if state else []) + names
    grad_tol = 1e-10 if dtype == torch.float64 else 1e-4
    for label, mine, theirs in zip(labels, g_mine, g_ref):
        scale = max(1.0, theirs.abs().max().item())
        assert (mine - theirs).abs().max().item() <= grad_tol * scale, label


def test_function_passes_gradcheck_with_dropout_masks():
    T, B, I, H, L = 3, 2, 2, 3, 2
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(T, B, I, dtype=torch.float64, generator=gen, requires_grad=True)
    h0 = torch.randn(L, B, H, dtype=torch.float64, generator=gen, requires_grad=True)
    c0 = torch.randn(L, B, H, dtype=torch.float64, generator=gen, requires_grad=True)
    params = []
    for layer in range(L):
        for shape in ((4 * H, I if layer == 0 else H), (4 * H, H), (4 * H,), (4 * H,)):
            params.append((torch.randn(shape, dtype=torch.float64, generator=gen) * 0.5).requires_grad_(True))
    masks = [np.random.default_rng(0).choice([0.0, 2.0], size=(H, T, B))]
    assert torch.autograd.gradcheck(lambda *a: NumpyLSTMFunction.apply(a[0], a[1], a[2], masks, *a[3:]),
                                    (x, h0, c0, *params), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_numpy_kernel_matches_finite_differences():
    assert kernel.check_gradients(seed=0) < 1e-6
    assert kernel.check_gradients(seed=1, T=2, B=1, I=3, H=2, L=3) < 1e-6


def test_same_seed_gives_nn_lstm_weights_and_state_dicts_interchange():
    torch.manual_seed(5)
    ref = nn.LSTM(3, 4, 2)
    torch.manual_seed(5)
    cell = NumpyLSTM(3, 4, 2)
    assert list(cell.state_dict()) == list(ref.state_dict())
    for (name, a), b in zip(ref.state_dict().items(), cell.state_dict().values()):
        assert torch.equal(a, b), name
    other = NumpyLSTM(3, 4, 2)
    other.load_state_dict(ref.state_dict())                        # keys match nn.LSTM's one to one
    wrapped = TorchLSTM(3, 4, 2)
    other.load_from_torch(wrapped)                                 # the harness's lstm cell (nn.LSTM as .rnn)
    assert torch.equal(other.weight_hh_l1, wrapped.rnn.weight_hh_l1)


def test_load_from_torch_refuses_a_different_layout():
    cell = NumpyLSTM(3, 4)
    with pytest.raises(ValueError, match="input_size, hidden_size, num_layers"):
        cell.load_from_torch(nn.LSTM(3, 5))
    with pytest.raises(ValueError, match="bidirectional"):
        cell.load_from_torch(nn.LSTM(3, 4, bidirectional=True))
    with pytest.raises(ValueError, match="proj_size"):
        cell.load_from_torch(nn.LSTM(3, 4, proj_size=2))
    with pytest.raises(TypeError, match="nn.LSTM"):
        cell.load_from_torch(nn.GRU(3, 4))


def test_one_step_per_call_equals_one_call_including_gradients():
    """The harness unrolls T=1 calls; the state passed along must carry the gradient too."""
    ref, cell = _pair(2, 3, 2, torch.float64)
    x, state = _inputs(6, 2, 2, 3, 2, torch.float64, with_state=True)
    out, (h, c) = cell(x, state)
    steps, s = [], state
    for t in range(6):
        o, s = cell(x[t:t + 1], s)
        steps.append(o)
    unrolled = torch.cat(steps)
    assert torch.allclose(unrolled, out, atol=1e-12) and torch.allclose(s[1], c, atol=1e-12)
    (g_whole,) = torch.autograd.grad(out.square().sum() + c.sum(), state[0])
    (g_steps,) = torch.autograd.grad(unrolled.square().sum() + s[1].sum(), state[0])
    assert torch.allclose(g_whole, g_steps, atol=1e-12)


def test_backward_twice_and_in_place_changes_are_caught():
    cell = NumpyLSTM(3, 4, 2)
    x = torch.randn(5, 2, 3, requires_grad=True)
    loss = cell(x)[0].square().sum()
    first = torch.autograd.grad(loss, x, retain_graph=True)[0]
    assert torch.equal(first, torch.autograd.grad(loss, x)[0])    # the cache survives a first backward
    loss = cell(x)[0].sum()
    with torch.no_grad():
        cell.weight_hh_l1.mul_(2)                                  # the NumPy cache holds a view of this weight
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_array_pool_reuses_within_its_limits():
    pool = ArrayPool(max_bytes=3 * 800, per_key=2)               # room for three (10, 10) float64 arrays
    a = pool.take((10, 10), np.float64)
    pool.give([a])
    assert pool.take((10, 10), np.float64) is a                   # handed out again, not reallocated
    assert pool.take((10, 10), np.float64) is not a               # the pool is empty again
    pool.give([np.empty((10, 10)) for _ in range(3)])             # only per_key=2 of one shape are kept
    assert pool.bytes_held == 2 * 800
    newer = np.empty((5, 20))
    pool.give([newer, np.empty((20, 5))])                         # over max_bytes: the oldest shape goes first
    assert pool.bytes_held == 3 * 800
    assert pool.take((5, 20), np.float64) is newer
    pool.give([np.empty((100, 100))])                             # larger than the whole pool: not kept
    assert pool.bytes_held == 2 * 800


def test_reused_memory_never_changes_earlier_results():
    cell = NumpyLSTM(3, 4, 2)
    x1, x2 = torch.randn(6, 2, 3, requires_grad=True), torch.randn(6, 2, 3, requires_grad=True)
    out1, (h1, c1) = cell(x1)
    expected = [t.detach().clone() for t in (out1, h1, c1)]
    (grad1,) = torch.autograd.grad(out1.square().sum(), x1)
    for _ in range(3):                                            # later calls get the freed cache arrays back
        out2, _ = cell(x2)
        out2.sum().backward()
        del out2
    for kept, before in zip((out1, h1, c1), expected):
        assert torch.equal(kept, before)
    out1_again, _ = cell(x1)
    assert torch.equal(torch.autograd.grad(out1_again.square().sum(), x1)[0], grad1)
    assert POOL.bytes_held > 0


def _outputs_and_grads(cell, x, state, seed):
    """Outputs, final states and the gradients of a random linear loss wrt x, the state and every parameter."""
    torch.manual_seed(seed)                                        # the same dropout masks for every call
    out, (h, c) = cell(x, state)
    gen = torch.Generator().manual_seed(2)
    loss = sum((a * torch.randn(a.shape, dtype=a.dtype, generator=gen)).sum() for a in (out, h, c))
    return [out, h, c, *torch.autograd.grad(loss, [x, *state, *cell.parameters()])]


@pytest.mark.parametrize("workers", [2, 3])
def test_batch_split_across_threads_equals_one_thread(workers):
    T, B, I, H, L = 6, 7, 4, 5, 2                                  # an uneven split, two layers, dropout
    _, cell = _pair(I, H, L, torch.float64)
    cell.dropout = 0.3
    x, state = _inputs(T, B, I, H, L, torch.float64, with_state=True)
    with threads.forced_workers(1):
        single = _outputs_and_grads(cell, x, state, seed=5)
    with threads.forced_workers(workers):
        assert threads.workers(B, H) == workers
        split = _outputs_and_grads(cell, x, state, seed=5)
        again = _outputs_and_grads(cell, x, state, seed=5)
    for one, many, repeat in zip(single, split, again):
        assert many.shape == one.shape
        assert torch.allclose(many, one, rtol=1e-12, atol=1e-12)   # the same LSTM, only the sum order differs
        assert torch.equal(many, repeat)                           # and the same numbers every time


def test_workers_follow_blas_threads_and_batch_size():
    from threadpoolctl import threadpool_limits

    n, size = threads.MIN_COLUMNS, threads.MIN_SLICE_SIZE
    with threadpool_limits(2, user_api="blas"):
        assert threads.workers(2 * n, size // n) == 2
        assert threads.workers(2 * n - 1, size) == 1               # too few columns for two slices
        assert threads.workers(4 * n, size // (2 * n) - 1) == 1    # too little work per slice
        hidden = threads.HIDDEN_PER_COLUMN * 4 * n
        assert threads.workers(8 * n, hidden) == 2
        assert threads.workers(8 * n - 1, hidden) == 1             # too few columns for this many units
    with threadpool_limits(1, user_api="blas"):
        assert threads.workers(1000, 1000) == 1
    with threads.forced_workers(3):
        assert threads.workers(2, 1) == 2                          # never an empty slice
    assert threads.column_slices(10, 3) == [slice(0, 3), slice(3, 6), slice(6, 10)]
    with pytest.raises(ValueError, match="workers must be >= 1"):
        with threads.forced_workers(0):
            pass


def test_an_error_in_a_worker_thread_is_raised_and_blas_restored():
    from threadpoolctl import threadpool_info, threadpool_limits

    def fails():
        raise RuntimeError("boom in a worker")

    with threadpool_limits(2, user_api="blas"):
        blas_before = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
        with pytest.raises(RuntimeError, match="boom in a worker"):
            threads.run_parallel([lambda: 1, fails])
        assert threads.run_parallel([lambda: 1, lambda: 2, lambda: 3]) == [1, 2, 3]
        assert [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"] == blas_before


def test_any_batch_size_and_float32_round_trip():
    for B in (1, 2, 33):
        ref, cell = _pair(3, 4, 1, torch.float32)
        x = torch.randn(5, B, 3)
        out, (h, c) = cell(x)
        assert out.shape == (5, B, 4) and h.shape == c.shape == (1, B, 4)
        assert torch.allclose(out, ref(x)[0], atol=1e-5)


@pytest.mark.parametrize("layers", [1, 2])
def test_gate_activations_match_the_lstm_cell(layers):
    torch.manual_seed(0)
    ref = TorchLSTM(3, 4, layers).double()
    cell = NumpyLSTM(3, 4, layers).double().load_from_torch(ref)
    x, state = _inputs(5, 2, 3, 4, layers, torch.float64, with_state=True)
    mine, theirs = cell.gate_activations(x, state), ref.gate_activations(x, state)
    assert set(mine) == {"input", "forget", "cell", "output", "learn", "remember", "use"} == set(theirs)
    for name in mine:
        assert mine[name].shape == (layers, 5, 2, 4), name
        assert torch.allclose(mine[name], theirs[name], atol=1e-12), name
    out, (h, c) = cell(x, state)
    assert torch.allclose(mine["use"][-1], out, atol=1e-12)
    assert torch.allclose(mine["remember"][:, -1], c, atol=1e-12)
    assert torch.allclose(mine["learn"], mine["input"] * mine["cell"])


def test_dropout_between_layers_only_when_training():
    torch.manual_seed(0)
    cell = NumpyLSTM(3, 6, 2, dropout=0.5).double()
    ref = nn.LSTM(3, 6, 2, dropout=0.5).double()
    cell.load_from_torch(ref)
    x = torch.randn(4, 5, 3, dtype=torch.float64)
    cell.eval(), ref.eval()
    assert torch.allclose(cell(x)[0], ref(x)[0], atol=1e-12)       # eval: no dropout, same as nn.LSTM
    cell.train()
    torch.manual_seed(1)
    a = cell(x)[0]
    torch.manual_seed(1)
    b = cell(x)[0]
    c = cell(x)[0]
    assert torch.equal(a, b)                                       # repeatable under the same seed
    assert not torch.allclose(a, c)                                # and random from call to call
    assert not torch.allclose(a, ref.eval()(x)[0])
    single = NumpyLSTM(3, 6, 1, dropout=0.5).double()
    single.train()
    assert torch.equal(single(x)[0], single.eval()(x)[0])          # never after the top layer


def _runner_rows(tmp_path, task, cells, **overrides):
    from harness.plugins.registry import load_registry
    registry = load_registry()
    settings = dict(steps=3, seq_len=6, batch_size=4, hidden_size=6, lr=1e-2, dtype="float64", log_every=1)
    settings.update(overrides)
    cfg = resolve_config(registry.task(task), cells, settings=settings, task_options={"eval_size": 8})
    cfg.warmup = 0
    writer = RunWriter(tmp_path / task)
    runner = Runner(cfg, registry.task(task), [registry.cell(c) for c in cells], writer, progress=False,
                    say=lambda _: None)
    return pd.DataFrame(runner.run()), writer


@pytest.mark.parametrize("task", ["copy", "adding"])
def test_trains_through_the_runner_with_the_same_gradient_curves_as_lstm(tmp_path, task):
    summary, writer = _runner_rows(tmp_path, task, ["numpy-lstm", "lstm"], seq_len=4 if task == "copy" else 6)
    assert list(summary["status"]) == ["ok", "ok"], summary["reason"].tolist()
    assert (summary["steps"] == 3).all() and np.isfinite(summary["loss"]).all()
    # Same seed -> same initial weights as nn.LSTM, so the whole run agrees, curves included.
    mine, theirs = summary.iloc[0], summary.iloc[1]
    assert mine["eval_loss"] == pytest.approx(theirs["eval_loss"], rel=1e-9)
    norms = writer.frame("gradnorms")
    a = norms[norms["cell"] == "numpy-lstm"].sort_values(["step", "state", "t"])
    b = norms[norms["cell"] == "lstm"].sort_values(["step", "state", "t"])
    assert len(a) == len(b) > 0 and set(a["step"]) == {0, 3}
    np.testing.assert_allclose(a["norm"].to_numpy(), b["norm"].to_numpy(), rtol=1e-8, atol=1e-300)


def test_gradient_norm_curve_equals_nn_lstm_from_copied_weights(registry):
    """Independently of the init: copy nn.LSTM's weights, and the curves over time are the same."""
    task = adding.SPEC.build(12, 4, 0, {"eval_size": 8})
    torch.manual_seed(0)
    head = task.make_head(5)
    ref = TorchLSTM(2, 5)
    with torch.no_grad():
        for p in ref.parameters():
            p.uniform_(-1, 1)                                      # not the default init
    cell = NumpyLSTM(2, 5).load_from_torch(ref)
    batch = next(iter(task.eval_batches("val")))
    curves = {}
    for name, module in (("numpy-lstm", cell), ("lstm", ref)):
        model = TaskModel(head, module).double()
        curves[name] = state_gradient_norms(model, registry.cell(name), task, batch, layers=1, hidden_size=5)
    for state in ("h", "c"):
        assert curves["lstm"][state][0] > 0
        np.testing.assert_allclose(curves["numpy-lstm"][state], curves["lstm"][state], rtol=1e-9)


def test_cli_run_with_both_cells(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli_main(["run", "--cells", "numpy-lstm,lstm", "--task", "adding", "--steps", "2", "--seq-len", "6",
                     "--batch-size", "4", "--hidden-size", "6", "--task-opt", "eval_size=8", "--out", str(out),
                     "--no-progress"])
    assert code == 0
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["cell"]) == ["numpy-lstm", "lstm"] and (summary["status"] == "ok").all()


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("make_x, state, error, match", [
    (lambda: [[1.0]], None, TypeError, "must be a torch.Tensor"),
    (lambda: torch.zeros(4, 2, 3, dtype=torch.float16), None, TypeError, "float32 and float64 only.*float16"),
    (lambda: torch.zeros(4, 2, 3, dtype=torch.int64), None, TypeError, "float32 and float64 only.*int64"),
    (lambda: torch.zeros(4, 2, 3, dtype=torch.float64), None, TypeError, "x is float64 but the parameters are float32"),
    (lambda: torch.zeros(2, 3), None, ValueError, r"3-D \(T, B, I\).*\(2, 3\)"),
    (lambda: torch.zeros(4, 2, 5), None, ValueError, "5 features per step.*input_size=3"),
    (lambda: torch.zeros(0, 2, 3), None, ValueError, "at least one step"),
    (lambda: torch.zeros(4, 2, 3, device="meta"), None, ValueError, "CPU only.*meta"),
    (lambda: torch.zeros(4, 2, 3), (torch.zeros(1, 2, 4),), TypeError, r"tuple \(h0, c0\)"),
    (lambda: torch.zeros(4, 2, 3), (torch.zeros(1, 2, 4), torch.zeros(1, 3, 4)), ValueError,
     r"state c0 must have shape \(L, B, H\) = \(1, 2, 4\), got \(1, 3, 4\)"),
    (lambda: torch.zeros(4, 2, 3), (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4, dtype=torch.float64)), TypeError,
     "state c0 is float64 but x is float32"),
    (lambda: torch.zeros(4, 2, 3), (torch.zeros(1, 2, 4), "c"), TypeError, "state c0 must be a torch.Tensor"),
])
def test_bad_input_gets_a_clear_error(make_x, state, error, match):
    cell = NumpyLSTM(3, 4)
    with pytest.raises(error, match=match):
        cell(make_x(), state)


def test_bad_construction_and_parameters_off_the_cpu():
    with pytest.raises(ValueError, match="hidden_size must be a positive integer"):
        NumpyLSTM(3, 0)
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\)"):
        NumpyLSTM(3, 4, 2, dropout=1.5)
    cell = NumpyLSTM(3, 4).to("meta")
    with pytest.raises(ValueError, match="parameters are on meta"):
        cell(torch.zeros(2, 1, 3))


@pytest.mark.gpu
def test_cuda_input_is_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="CPU only.*cuda"):
        NumpyLSTM(3, 4)(torch.zeros(4, 2, 3, device="cuda"))

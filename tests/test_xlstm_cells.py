"""``slstm`` and ``mlstm``: xlstm's layers with their real states, held to xlstm's own forward and step.

Skipped only when xlstm is not installed; the ``test`` extra installs it.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("xlstm")

from xlstm import mLSTMLayer, mLSTMLayerConfig, sLSTMLayer, sLSTMLayerConfig  # noqa: E402

from cells.xlstm.mlstm import MLSTM  # noqa: E402
from cells.xlstm.slstm import SLSTM  # noqa: E402
from harness.measurements import correctness  # noqa: E402
from harness.plugins.model import CellContractError, build_cell  # noqa: E402
from harness.plugins.testing import check_cell  # noqa: E402


def _random_state(cell, B: int, dtype=torch.float64, seed=1, positive=()):
    """A random state of the cell's declared shapes; ``positive`` names get |.| + 0.5 (sLSTM's normaliser n)."""
    gen = torch.Generator().manual_seed(seed)
    shapes = cell.state_shapes()
    state = []
    for name in cell.state_names:
        s = torch.randn(1, B, *shapes[name], generator=gen, dtype=dtype) * 0.5
        state.append(s.abs() + 0.5 if name in positive else s)
    return tuple(state)


def _carried_equals_one_call(cell, x, start, cuts):
    whole, final = cell(x, start)
    pieces, state, edges = [], start, [0, *cuts, x.shape[0]]
    for a, b in zip(edges, edges[1:]):
        out, state = cell(x[a:b], state)
        pieces.append(out)
    torch.testing.assert_close(torch.cat(pieces), whole, rtol=1e-11, atol=1e-12)
    for mine, theirs in zip(state, final):
        torch.testing.assert_close(mine, theirs, rtol=1e-11, atol=1e-12)


# ---------------------------------------------------------------- sLSTM


def _slstm_reference(cell: SLSTM) -> sLSTMLayer:
    """A fresh xlstm sLSTMLayer holding the cell's weights (its GroupNorm, which the cell leaves out, at identity)."""
    ref = sLSTMLayer(sLSTMLayerConfig(embedding_dim=cell.hidden_size, num_heads=4, backend="vanilla"))
    ref.to(cell.proj.weight.dtype)  # before loading: float32 parameters would round float64 weights
    missing, unexpected = ref.load_state_dict(cell.layer.state_dict(), strict=False)
    assert missing == ["group_norm.weight"] and unexpected == []
    return ref


def test_slstm_equals_xlstms_forward_and_state_with_the_same_weights():
    torch.manual_seed(0)
    cell = SLSTM(3, 16)
    ref = _slstm_reference(cell)
    captured = {}
    ref.slstm_cell.register_forward_hook(lambda module, args, result: captured.update(y=result[0]))
    x = torch.randn(9, 4, 3)
    out, (h, c, n, m, conv) = cell(x)
    with torch.no_grad():
        normed, last = ref(cell.proj(x).transpose(0, 1), return_last_state=True)
    y = captured["y"].permute(2, 0, 1, 3).reshape(9, 4, 16)        # the cell's h at every step, (T, B, H)
    torch.testing.assert_close(out, y, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(torch.cat([h, c, n, m]), last["slstm_state"], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(conv[0], last["conv_state"])
    # the layer's own output is the per-head GroupNorm of exactly this h
    torch.testing.assert_close(ref.group_norm(captured["y"]).transpose(1, 2).reshape(4, 9, 16), normed)


def test_slstm_continues_from_a_given_state_as_xlstms_layer_does():
    torch.manual_seed(0)
    cell = SLSTM(3, 8).double()
    ref = _slstm_reference(cell)
    start = _random_state(cell, 2, positive=("n",))
    captured = {}
    ref.slstm_cell.register_forward_hook(lambda module, args, result: captured.update(y=result[0]))
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    out, state = cell(x, start)
    _, last = ref(cell.proj(x).transpose(0, 1), conv_state=start[4][0], slstm_state=torch.cat(start[:4]),
                  return_last_state=True)
    torch.testing.assert_close(out, captured["y"].permute(2, 0, 1, 3).reshape(6, 2, 8), rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(torch.cat(state[:4]), last["slstm_state"], rtol=1e-12, atol=1e-13)
    _carried_equals_one_call(cell, x, start, [1, 3, 4])


def test_slstm_gradients_of_input_and_initial_state_pass_gradcheck_in_float64():
    torch.manual_seed(0)
    cell = SLSTM(2, 8).double()
    with torch.no_grad():  # xlstm starts R at zero; a non-zero R puts h_{t-1} into the gradient too
        cell.layer.slstm_cell._recurrent_kernel_.normal_(0, 0.3)
    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    state = [s.requires_grad_(True) for s in _random_state(cell, 2, positive=("n",))]
    assert torch.autograd.gradcheck(lambda x, *s: cell(x, tuple(s))[0], (x, *state))


def test_slstm_passes_the_conformance_kit_and_the_bench_gate(registry):
    spec = registry.cell("slstm")
    check_cell(spec)
    verdict = correctness.check(spec, 5, 3, 4, 8, 2, torch.device("cpu"), torch.float32)
    assert verdict.gate == correctness.PASSED, verdict.reason


def test_slstm_needs_whole_heads_of_two_units_or_more(registry):
    with pytest.raises(CellContractError, match="multiple of 8, got 12"):
        build_cell(registry.cell("slstm"), 3, 12)
    with pytest.raises(ValueError, match="at least 2 units per head"):
        SLSTM(3, 4)  # one unit per head: xlstm's forget-gate initialisation would give NaN


def test_slstm_parameter_count_is_the_documented_formula():
    """I*H + 2H^2 + 10H with 4 heads (docs/modern-cells.md)."""
    for H in (8, 16, 24, 64):
        assert sum(p.numel() for p in SLSTM(5, H).parameters()) == 5 * H + 2 * H * H + 10 * H


# ---------------------------------------------------------------- mLSTM


def _mlstm_reference(cell: MLSTM, context_length: int) -> mLSTMLayer:
    ref = mLSTMLayer(mLSTMLayerConfig(embedding_dim=cell.hidden_size, num_heads=4, proj_factor=2,
                                      qkv_proj_blocksize=4, round_proj_up_to_multiple_of=4,
                                      context_length=context_length)).to(cell.proj.weight.dtype)
    ref.load_state_dict(cell.layer.state_dict())
    return ref


def test_mlstm_equals_xlstms_forward_with_the_same_weights():
    torch.manual_seed(0)
    cell = MLSTM(3, 8)
    x = torch.randn(12, 4, 3)
    out, (h, C, n, m, conv) = cell(x)
    with torch.no_grad():
        theirs = _mlstm_reference(cell, 12)(cell.proj(x).transpose(0, 1)).transpose(0, 1)
    torch.testing.assert_close(out, theirs, rtol=1e-5, atol=1e-6)
    assert C.shape == (1, 4, 4, 4, 4) and n.shape == (1, 4, 4, 4) and m.shape == (1, 4, 4) and conv.shape == (1, 4, 3, 16)


def test_mlstm_from_a_given_state_equals_xlstms_step_loop_beyond_its_context_length():
    """xlstm's forward fails past context_length; its step() has no limit. From a non-zero state, over 70 steps
    (two of our chunks), our chunkwise form equals xlstm's step loop in float64."""
    torch.manual_seed(0)
    cell = MLSTM(3, 8).double()
    with torch.no_grad():
        cell.layer.mlstm_cell.igate.bias.normal_(0, 2.0)  # spread the gates: the stabiliser m moves
    ref = _mlstm_reference(cell, 16)
    T, B = 70, 2
    x = torch.randn(T, B, 3, dtype=torch.float64)
    u = cell.proj(x).transpose(0, 1)
    with pytest.raises(RuntimeError):
        ref(u)                                            # the package's own limit, which this cell does not have
    _, start = cell(torch.randn(5, B, 3, dtype=torch.float64))
    out, (_, C, n, m, conv) = cell(x, start)
    mlstm_state = (start[1][0], start[2][0].unsqueeze(-1), start[3][0][..., None, None])
    conv_state = (torch.cat([torch.zeros(B, 1, cell.inner, dtype=torch.float64), start[4][0]], dim=1),)
    steps = []
    with torch.no_grad():
        for t in range(T):  # xlstm's step keeps K inputs where we keep the K-1 that matter
            y, states = ref.step(u[:, t:t + 1], mlstm_state=mlstm_state, conv_state=conv_state)
            mlstm_state, conv_state = states["mlstm_state"], states["conv_state"]
            steps.append(y)
    torch.testing.assert_close(out, torch.cat(steps, dim=1).transpose(0, 1), rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(C[0], mlstm_state[0], rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(n[0], mlstm_state[1][..., 0], rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(m[0], mlstm_state[2][..., 0, 0], rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(conv[0], conv_state[0][:, 1:])


def test_mlstm_chunk_size_changes_nothing_and_carried_state_equals_one_call():
    torch.manual_seed(0)
    cell = MLSTM(3, 8).double()
    other = MLSTM(3, 8, chunk=3).double()
    other.load_state_dict(cell.state_dict())
    x = torch.randn(11, 2, 3, dtype=torch.float64)
    start = _random_state(cell, 2)
    torch.testing.assert_close(other(x, start)[0], cell(x, start)[0], rtol=1e-11, atol=1e-12)
    torch.testing.assert_close(other(x)[0], cell(x)[0], rtol=1e-11, atol=1e-12)
    _carried_equals_one_call(cell, x, start, [1, 2, 7])
    _carried_equals_one_call(cell, x, None, [1, 5])


def test_mlstm_gradients_of_input_and_initial_state_pass_gradcheck_in_float64():
    torch.manual_seed(0)
    cell = MLSTM(2, 4, chunk=2).double()
    x = torch.randn(5, 2, 2, dtype=torch.float64, requires_grad=True)
    state = [s.requires_grad_(True) for s in _random_state(cell, 2)]
    assert torch.autograd.gradcheck(lambda x, *s: cell(x, tuple(s))[0], (x, *state))


def test_mlstm_passes_the_conformance_kit_and_the_bench_gate(registry):
    spec = registry.cell("mlstm")
    check_cell(spec)
    verdict = correctness.check(spec, 5, 3, 4, 8, 2, torch.device("cpu"), torch.float32)
    assert verdict.gate == correctness.PASSED, verdict.reason


def test_mlstm_parameter_count_is_the_documented_formula():
    """I*H + 6H^2 + 87H + 8 with 4 heads and P = 2H (docs/modern-cells.md)."""
    for H in (2, 4, 8, 10, 64):
        assert sum(p.numel() for p in MLSTM(5, H).parameters()) == 5 * H + 6 * H * H + 87 * H + 8


# ---------------------------------------------------------------- all three in a run


def test_a_tiny_run_trains_the_three_cells_and_records_every_state(cli, tmp_path):
    pytest.importorskip("mambapy")
    import pandas as pd
    out = tmp_path / "run"
    code, _, err = cli("run", "--cells", "mamba,slstm,mlstm", "--task", "copy", "--steps", "3", "--seq-len", "3",
                       "--hidden-size", "8", "--batch-size", "4", "--task-opt", "eval_size=8", "--log-every", "3",
                       "--out", out, "--no-progress", "--no-plots")
    assert code == 0, err
    assert pd.read_csv(out / "summary.csv")["status"].tolist() == ["ok", "ok", "ok"]
    grads = pd.read_csv(out / "gradnorms.csv")
    states = {cell: set(g["state"]) for cell, g in grads.groupby("cell")}
    assert states == {"mamba": {"h", "ssm", "conv"}, "slstm": {"h", "c", "n", "m", "conv"},
                      "mlstm": {"h", "C", "n", "m", "conv"}}


def test_mlstm_reads_an_empty_memory_as_xlstms_forward_does():
    """Zero (C, n, m) is m = -inf for us and for xlstm's forward; xlstm's step() reads it as m = 0, which differs
    only through the 1e-6 in the normaliser: the stabiliser is a scale."""
    torch.manual_seed(0)
    cell = MLSTM(3, 8).double()
    with torch.no_grad():
        cell.layer.mlstm_cell.igate.bias.normal_(0, 3.0)
    T, B = 40, 2
    ref = _mlstm_reference(cell, T)
    x = torch.randn(T, B, 3, dtype=torch.float64)
    u = cell.proj(x).transpose(0, 1)
    with torch.no_grad():
        forward = ref(u).transpose(0, 1)
        mlstm_state = conv_state = None
        steps = []
        for t in range(T):
            y, states = ref.step(u[:, t:t + 1], mlstm_state=mlstm_state, conv_state=conv_state)
            mlstm_state, conv_state = states["mlstm_state"], states["conv_state"]
            steps.append(y)
        stepped = torch.cat(steps, dim=1).transpose(0, 1)
        ours = cell(x)[0]
    torch.testing.assert_close(ours, forward, rtol=1e-12, atol=1e-13)
    gap = (stepped - forward).abs().max().item() / forward.abs().max().item()
    assert 1e-9 < gap < 1e-6

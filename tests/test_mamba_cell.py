"""``mamba``: mambapy's Mamba block with its true state, held to mambapy's own forward and step.

Skipped only when mambapy is not installed; the ``test`` extra installs it.
"""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("mambapy")

from mambapy.mamba import MambaBlock, MambaConfig  # noqa: E402

from cells.mamba import Mamba  # noqa: E402
from harness.measurements import correctness  # noqa: E402
from harness.plugins.testing import check_cell  # noqa: E402


def _cell(I=3, H=8, dtype=torch.float64, seed=0, **kwargs) -> Mamba:
    torch.manual_seed(seed)
    return Mamba(I, H, **kwargs).to(dtype)


def _random_state(cell: Mamba, B: int, dtype=torch.float64, seed=1):
    gen = torch.Generator().manual_seed(seed)
    shapes = cell.state_shapes()
    return tuple(torch.randn(1, B, *shapes[n], generator=gen, dtype=dtype) * 0.5 for n in cell.state_names)


def test_mamba_equals_mambapys_forward_with_the_same_weights():
    """No initial state: our block is mambapy's MambaBlock.forward on the projected input, to float32 round-off."""
    cell = _cell(dtype=torch.float32)
    x = torch.randn(13, 4, 3)                      # 13: not a power of two, so pscan pads
    out, (h, ssm, conv) = cell(x)
    with torch.no_grad():
        theirs = cell.block(cell.proj(x).transpose(0, 1)).transpose(0, 1)
    torch.testing.assert_close(out, theirs, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h[0], out[-1])
    assert ssm.shape == (1, 4, 16, 16) and conv.shape == (1, 4, 16, 3)


def test_mamba_state_is_mambapys_step_cache_and_continues_from_a_given_state():
    """mambapy's step() carries (h, inputs) = (SSM state, last d_conv-1 conv inputs): our (ssm, conv) are those
    exact tensors, and from any given state our one call equals mambapy's step loop."""
    cell = _cell(dtype=torch.float32)  # mambapy's step casts A and D to float32 whatever the dtype
    B, T = 3, 6
    x = torch.randn(T, B, 3)
    u = cell.proj(x)
    for start in (None, _random_state(cell, B, torch.float32)):
        out, (_, ssm, conv) = cell(x, start)
        cache = (None, torch.zeros(B, 16, 3)) if start is None else (start[1][0], start[2][0])
        steps = []
        with torch.no_grad():
            for t in range(T):
                y, cache = cell.block.step(u[t], cache)
                steps.append(y)
        torch.testing.assert_close(out, torch.stack(steps), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ssm[0], cache[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(conv[0], cache[1], rtol=0, atol=0)


@pytest.mark.parametrize("cuts", [[4], [1, 2, 3], list(range(1, 9))])
def test_mamba_state_carried_across_calls_equals_one_long_call(cuts):
    cell = _cell()
    x = torch.randn(9, 2, 3, dtype=torch.float64)
    start = _random_state(cell, 2)
    whole, final = cell(x, start)
    pieces, state, edges = [], start, [0, *cuts, 9]
    for a, b in zip(edges, edges[1:]):
        out, state = cell(x[a:b], state)
        pieces.append(out)
    torch.testing.assert_close(torch.cat(pieces), whole, rtol=1e-12, atol=1e-12)
    for mine, theirs in zip(state, final):
        torch.testing.assert_close(mine, theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("T", [1, 5])
def test_mamba_gradients_of_input_and_initial_state_pass_gradcheck_in_float64(T):
    cell = _cell(I=2, H=3, d_state=2)
    x = torch.randn(T, 2, 2, dtype=torch.float64, requires_grad=True)
    _, ssm0, conv0 = (s.requires_grad_(True) for s in _random_state(cell, 2))

    def f(x, ssm0, conv0):
        out, (_, ssm, conv) = cell(x, (torch.zeros(1, 2, 3, dtype=torch.float64), ssm0, conv0))
        return out, ssm, conv

    assert torch.autograd.gradcheck(f, (x, ssm0, conv0))


def test_mamba_passes_the_conformance_kit(registry):
    check_cell(registry.cell("mamba"))  # includes every parameter's gradient against finite differences


def test_mamba_passes_the_bench_gate_with_its_shaped_state(registry):
    verdict = correctness.check(registry.cell("mamba"), 7, 3, 4, 8, 2, torch.device("cpu"), torch.float32)
    assert verdict.gate == correctness.PASSED, verdict.reason


def test_mamba_parameter_count_is_the_documented_formula():
    """I*H + 6H^2 + 111H + 4H*ceil(H/16) (docs/modern-cells.md): increasing in H."""
    counts = []
    for H in range(1, 70):
        cell = Mamba(5, H)
        n = sum(p.numel() for p in cell.parameters())
        assert n == 5 * H + 6 * H * H + 111 * H + 4 * H * math.ceil(H / 16), H
        counts.append(n)
    assert all(a < b for a, b in zip(counts, counts[1:]))


def test_mamba_block_is_mambapys_with_its_defaults():
    cell = Mamba(3, 8)
    assert isinstance(cell.block, MambaBlock)
    config = cell.block.config
    assert (config.d_model, config.d_state, config.expand_factor, config.d_conv, config.dt_rank) == (8, 16, 2, 4, 1)
    assert config.d_state == MambaConfig(d_model=8, n_layers=1).d_state  # mambapy's own default

"""Data generators of the copy and adding tasks: shapes, baselines, determinism."""

import math

import pytest
import torch
import torch.nn.functional as F

from tasks import adding, copy_memory


def copy_task(T=7, B=5, seed=0, **opts):
    """The paper's N = 10 unless told otherwise (the layouts below are written for it)."""
    return copy_memory.SPEC.build(T, B, seed, {"copy_len": 10, **opts})


def test_copy_default_is_three_symbols_and_the_paper_preset_ten(registry):
    task = copy_memory.SPEC.build(20, 4, 0)
    assert task.copy_len == 3 and task.baseline == pytest.approx(3 * math.log(8) / (20 + 6))
    assert copy_memory.SPEC.presets["paper"]["task_options"] == {"copy_len": 10}


def test_copy_layout():
    task = copy_task(T=7, B=5)
    b = task.train_batch(0)
    assert b.x.shape == (27, 5) and b.y.shape == (27, 5)
    assert ((b.x[:10] >= 1) & (b.x[:10] <= 8)).all()           # 10 symbols drawn from 8
    assert (b.x[10:16] == 0).all()                                # T-1 = 6 blanks
    assert (b.x[16] == 9).all()                                   # the delimiter
    assert (b.x[17:] == 0).all()                                  # 10 blanks
    assert (b.y[:17] == 0).all() and torch.equal(b.y[17:], b.x[:10])


def test_copy_baseline_is_the_memoryless_loss():
    task = copy_task(T=30, B=400)
    b = task.train_batch(3)
    # blank with certainty for T+10 steps, uniform over the 8 symbols for the last 10
    logits = torch.full((50, 400, 9), -1e9)
    logits[:40, :, 0] = 0.0
    logits[40:, :, 1:] = 0.0
    assert task.loss(logits, b.y).item() == pytest.approx(10 * math.log(8) / 50, rel=1e-6)
    assert task.baseline == pytest.approx(10 * math.log(8) / (30 + 20))


def test_copy_accuracy_counts_recall_steps_only():
    task = copy_task(T=4, B=3)
    b = task.train_batch(0)
    perfect = F.one_hot(b.y, 9).float()
    assert task.metrics(perfect, b.y)["accuracy"] == 1.0
    wrong_blanks = perfect.clone()
    wrong_blanks[:14] = F.one_hot(torch.full((14, 3), 5), 9).float()
    assert task.metrics(wrong_blanks, b.y)["accuracy"] == 1.0
    assert task.solved({"accuracy": 0.995}) and not task.solved({"accuracy": 0.9})


@pytest.mark.parametrize("make", [lambda s: copy_task(seed=s), lambda s: adding.SPEC.build(20, 8, s)])
def test_streams_are_deterministic_per_seed(make):
    a, b, c = make(1), make(1), make(2)
    for step in (0, 5, 1000):
        assert torch.equal(a.train_batch(step).x, b.train_batch(step).x)
        assert not torch.equal(a.train_batch(step).x, c.train_batch(step).x)
    assert not torch.equal(a.train_batch(0).x, a.train_batch(1).x)
    val, test = next(iter(a.eval_batches("val"))), next(iter(a.eval_batches("test")))
    assert not torch.equal(val.x, test.x)
    assert torch.equal(next(iter(b.eval_batches("test"))).x, test.x)


def test_adding_layout_and_target():
    task = adding.SPEC.build(20, 16, 0)
    b = task.train_batch(0)
    assert b.x.shape == (20, 16, 2) and b.y.shape == (16,)
    values, marker = b.x[..., 0], b.x[..., 1]
    assert ((values >= 0) & (values <= 1)).all()
    assert (marker[:10].sum(0) == 1).all() and (marker[10:].sum(0) == 1).all()
    assert torch.allclose((values * marker).sum(0), b.y)


def test_adding_baseline_is_predicting_one():
    task = adding.SPEC.build(10, 20000, 0)
    b = task.train_batch(0)
    mse_of_one = task.loss(torch.ones(20000), b.y).item()
    assert task.baseline == pytest.approx(1 / 6)
    assert mse_of_one == pytest.approx(1 / 6, abs=0.01)
    assert task.metrics(b.y + 0.03, b.y)["accuracy"] == 1.0
    assert task.metrics(b.y + 0.05, b.y)["accuracy"] == 0.0


def test_adding_rejects_too_short():
    with pytest.raises(ValueError, match="seq-len >= 2"):
        adding.SPEC.build(1, 2, 0)

"""The selective-copy and mqar tasks: layouts, answer positions, baselines, determinism, bad input, end to end."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from tasks import mqar, selective_copy

TINY = ["--steps", "4", "--hidden-size", "6", "--batch-size", "4", "--no-progress", "--no-plots",
        "--task-opt", "eval_size=8"]


def sel(T=7, B=5, seed=0, **opts):
    return selective_copy.SPEC.build(T, B, seed, {"n_data": 3, "vocab_size": 6, **opts})


def recall(T=16, B=5, seed=0, **opts):
    return mqar.SPEC.build(T, B, seed, {"n_pairs": 3, "vocab_size": 12, **opts})


def empirical_log_loss(context: torch.Tensor, target: torch.Tensor) -> float:
    """Cross-entropy of the best predictor that sees only ``context``: per context value, the targets' frequencies."""
    total = 0.0
    for c in context.unique():
        counts = torch.bincount(target[context == c]).double()
        p = counts[counts > 0] / counts.sum()
        total -= (counts[counts > 0] * p.log()).sum().item()
    return total / target.numel()


# ------------------------------------------------------------ selective-copy


def test_selective_copy_layout():
    task = sel(T=7, B=50)
    b = task.train_batch(0)
    assert b.x.shape == (13, 50) and b.y.shape == (3, 50)       # T + 2M steps; M answers
    assert (b.x[10:] == 5).all()                                  # M markers at the end
    before = b.x[:10]
    assert ((before == 0) | ((before >= 1) & (before <= 4))).all()
    assert ((before != 0).sum(0) == 3).all()                      # M data tokens among T noise
    for col in range(50):                                         # the targets are the data tokens, in order
        assert torch.equal(b.y[:, col] + 1, before[:, col][before[:, col] != 0])
    # the tokens are scattered, not always first as in copy
    assert (before[3:] != 0).any() and (before[:3] == 0).any()


def test_selective_copy_readout_reads_the_marker_steps_only():
    task = sel(T=7, B=4)
    head = task.make_head(hidden_size=8)
    h = torch.randn(13, 4, 8)
    out = head.readout(h)
    assert out.shape == (3, 4, 4)                                  # (M, B, A - 2)
    changed = h.clone()
    changed[:10] = torch.randn(10, 4, 8)
    assert torch.equal(head.readout(changed), out)
    assert head.embed(task.train_batch(0).x).shape == (13, 4, 6)


def test_selective_copy_baseline_is_the_memoryless_loss():
    task = sel(T=20, B=20000, vocab_size=7)
    b = task.train_batch(0)
    assert task.baseline == pytest.approx(math.log(5))
    assert task.loss(torch.zeros(3, 20000, 5), b.y).item() == pytest.approx(math.log(5), rel=1e-6)
    # the best predictor that knows only which answer step it is at
    steps = torch.arange(3).unsqueeze(1).expand(3, 20000)
    assert empirical_log_loss(steps.reshape(-1), b.y.reshape(-1)) == pytest.approx(task.baseline, abs=0.01)


def test_selective_copy_accuracy_and_solved():
    task = sel(T=5, B=6)
    b = task.train_batch(0)
    perfect = F.one_hot(b.y, 4).float()
    assert task.metrics(perfect, b.y)["accuracy"] == 1.0
    assert task.metrics(F.one_hot((b.y + 1) % 4, 4).float(), b.y)["accuracy"] == 0.0
    half = perfect.clone()
    half[0] = F.one_hot((b.y[0] + 1) % 4, 4).float()
    assert task.metrics(half, b.y)["accuracy"] == pytest.approx(2 / 3)
    assert task.solved({"accuracy": 0.99}) and not task.solved({"accuracy": 0.98})


# ---------------------------------------------------------------------- mqar


def test_mqar_layout_and_targets():
    task = recall(T=20, B=200)                       # keys 1..5, values 6..11, 3 pairs, query slots 0..6
    b = task.train_batch(0)
    assert b.x.shape == (20, 200) and b.y.shape == (20, 200)
    keys, values = b.x[0:6:2], b.x[1:6:2]
    assert ((keys >= 1) & (keys <= 5)).all() and ((values >= 6) & (values <= 11)).all()
    assert (b.y[:6] == mqar.IGNORE).all()                          # nothing is asked inside the pairs
    for col in range(200):
        k, v, x, y = keys[:, col], values[:, col], b.x[:, col], b.y[:, col]
        assert len(set(k.tolist())) == 3 and len(set(v.tolist())) == 3     # distinct keys and values
        asked = torch.nonzero(y != mqar.IGNORE).squeeze(1)
        assert len(asked) == 3 and ((asked - 6) % 2 == 0).all()            # N queries at even offsets
        assert torch.equal(torch.nonzero(x[6:]).squeeze(1) + 6, asked)     # the only non-blank tokens
        assert sorted(x[asked].tolist()) == sorted(k.tolist())             # each key asked once
        answer = dict(zip(k.tolist(), v.tolist()))
        assert [int(t) + 6 for t in y[asked]] == [answer[int(q)] for q in x[asked]]


def test_mqar_keys_and_values_are_distinct_and_uniform_in_a_large_vocabulary():
    task = recall(T=40, B=4000, n_pairs=8, vocab_size=1000)      # 499 keys, 500 values: drawn, repeats redrawn
    b = task.train_batch(0)
    keys, values = b.x[0:16:2].T, b.x[1:16:2].T                  # (B, N)
    for pairs in (keys, values):
        ordered = pairs.sort(dim=1).values
        assert (ordered[:, 1:] != ordered[:, :-1]).all()
    assert keys.min() >= 1 and keys.max() <= 499 and values.min() >= 500 and values.max() <= 999
    counts = torch.bincount(keys.reshape(-1), minlength=500)[1:].double()   # 32,000 draws over 499 keys
    assert counts.mean() == pytest.approx(32000 / 499) and counts.std() < 1.3 * (32000 / 499) ** 0.5
    first = torch.bincount(keys[:, 0], minlength=500)[1:].double()          # every position uniform too
    assert first.std() < 1.3 * (4000 / 499) ** 0.5


def test_mqar_loss_and_accuracy_score_the_queries_only():
    task = recall(T=16, B=8)
    b = task.train_batch(0)
    asked = b.y != mqar.IGNORE
    uniform = torch.zeros(16, 8, 6)
    assert task.loss(uniform, b.y).item() == pytest.approx(math.log(6), rel=1e-6)
    noisy = uniform.clone()
    noisy[~asked] = torch.randn(int((~asked).sum()), 6) * 50       # confident nonsense where nothing is asked
    assert task.loss(noisy, b.y).item() == pytest.approx(math.log(6), rel=1e-6)
    perfect = torch.zeros(16, 8, 6)
    perfect[asked] = F.one_hot(b.y[asked], 6).float()
    assert task.metrics(perfect, b.y)["accuracy"] == 1.0
    assert task.memory_loss(perfect * 20, b.y).item() < 1e-6
    wrong = perfect.clone()
    wrong[asked] = F.one_hot((b.y[asked] + 1) % 6, 6).float()
    assert task.metrics(wrong, b.y)["accuracy"] == 0.0
    assert task.solved({"accuracy": 0.995}) and not task.solved({"accuracy": 0.9})


def test_mqar_baseline_is_a_uniform_guess_among_the_values():
    task = recall(T=16, B=20000, n_pairs=2)
    b = task.train_batch(0)
    asked = b.y != mqar.IGNORE
    assert task.baseline == pytest.approx(math.log(6))
    # the best predictor that sees the query key but not the pairs before it, and the best constant one
    assert empirical_log_loss(b.x[asked], b.y[asked]) == pytest.approx(task.baseline, abs=0.01)
    assert empirical_log_loss(torch.zeros(int(asked.sum())), b.y[asked]) == pytest.approx(task.baseline, abs=0.01)


def test_mqar_power_law_puts_queries_early_and_one_spreads_them():
    def mean_query_step(power_a):
        b = recall(T=60, B=2000, power_a=power_a).train_batch(0)
        return torch.nonzero(b.y != mqar.IGNORE)[:, 0].double().mean().item()
    crowded, uniform = mean_query_step(0.01), mean_query_step(1.0)
    assert uniform == pytest.approx(6 + 2 * (27 - 1) / 2, abs=1.0)  # 27 slots: uniform mean slot 13
    assert crowded < uniform - 5


@pytest.mark.parametrize("opts, T, match", [({"n_pairs": 6, "vocab_size": 12}, 40, "vocab_size=14"),
                                            ({"n_pairs": 3, "vocab_size": 12}, 11, "--seq-len 12")])
def test_mqar_rejects_what_cannot_fit(opts, T, match):
    with pytest.raises(ValueError, match=match):
        mqar.SPEC.build(T, 2, 0, opts)


# ---------------------------------------------------------------- both tasks


@pytest.mark.parametrize("make", [lambda s: sel(seed=s), lambda s: recall(seed=s)])
def test_streams_are_deterministic_per_seed(make):
    a, b, c = make(1), make(1), make(2)
    for step in (0, 7, 1000):
        assert torch.equal(a.train_batch(step).x, b.train_batch(step).x)
        assert torch.equal(a.train_batch(step).y, b.train_batch(step).y)
        assert not torch.equal(a.train_batch(step).x, c.train_batch(step).x)
    assert not torch.equal(a.train_batch(0).x, a.train_batch(1).x)
    val, test = next(iter(a.eval_batches("val"))), next(iter(a.eval_batches("test")))
    assert not torch.equal(val.x, test.x)
    assert torch.equal(next(iter(b.eval_batches("val"))).x, val.x)


def test_bad_options_are_one_line_errors(cli, tmp_path):
    code, _, err = cli("run", "--cells", "lstm", "--task", "mqar", "--seq-len", "10", "--task-opt", "n_pairs=3",
                       "--out", tmp_path / "a", *TINY)
    lines = [l for l in err.strip().splitlines() if l and not l.startswith("warning:")]
    assert code != 0 and len(lines) == 1 and "--seq-len 12" in lines[0] and "Traceback" not in err
    code, _, err = cli("run", "--cells", "lstm", "--task", "selective-copy", "--task-opt", "vocab_size=3",
                       "--out", tmp_path / "b", *TINY)
    lines = [l for l in err.strip().splitlines() if l and not l.startswith("warning:")]
    assert code != 0 and len(lines) == 1 and "vocab_size" in lines[0]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize("task, seq_len, extra", [("selective-copy", 5, ["--task-opt", "n_data=2"]),
                                                   ("mqar", 12, ["--task-opt", "n_pairs=2"])])
def test_end_to_end_run(task, seq_len, extra, tmp_path, cli):
    code, _, _ = cli("run", "--cells", "lstm,gru", "--task", task, "--seq-len", seq_len, "--out", tmp_path / "r",
                     *TINY, *extra)
    assert code == 0
    summary = pd.read_csv(tmp_path / "r" / "summary.csv")
    assert list(summary["cell"]) == ["lstm", "gru"] and (summary["status"] == "ok").all()
    assert np.isfinite(summary[["loss", "eval_loss", "baseline", "accuracy"]].to_numpy(float)).all()
    grads = pd.read_csv(tmp_path / "r" / "gradnorms.csv")
    length = seq_len + 4 if task == "selective-copy" else seq_len
    assert sorted(set(grads["t"])) == list(range(length))
    if task == "mqar":  # the last step is never a query: no gradient reaches its state from the memory loss
        assert (grads[grads.t == length - 1]["norm"] == 0).all()
        assert (grads[grads.t == 0]["norm"] > 0).all()


@pytest.mark.parametrize("task, preset, length", [("selective-copy", "mamba", 4096 + 32), ("mqar", "zoology", 64)])
def test_presets_resolve_and_build(registry, task, preset, length):
    from harness.run.config import resolve_config
    spec = registry.task(task)
    cfg = resolve_config(spec, ["lstm"], preset=preset)
    built = spec.build(cfg.seq_len, 2, 0, cfg.task_options)
    assert cfg.layers == 2 and built.config()["sequence_length"] == length
    assert next(iter(built.eval_batches("val"))).x.shape[0] == length

"""seq-image as a task: sequence layout, permutation, splits and baseline, on the shared Fashion-MNIST; and end to
end through the CLI (run, presets, sweep, compare, plot) with exit codes and one-line errors."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from harness import HarnessError
from harness.run.config import resolve_config
from harness.run.runner import make_task
from tasks.seq_image import SPEC, permutation, steps_and_width
from tests.conftest import SHARED_DATA

FASHION = str(SHARED_DATA / "fashion-mnist")
SMALL = {"path": FASHION, "train_size": 256, "val_size": 64, "test_size": 64}
TINY = ["--steps", "3", "--batch-size", "8", "--hidden-size", "4", "--no-progress", "--no-plots",
        "--task-opt", f"path={FASHION}", "--task-opt", "train_size=64", "--task-opt", "val_size=32",
        "--task-opt", "test_size=32"]


def build(seed: int = 0, seq_len: int = 28, batch_size: int = 16, **options):
    return make_task(SPEC, resolve_config(SPEC, ["lstm"], settings={"seed": seed, "seq_len": seq_len,
                                                                    "batch_size": batch_size},
                                          task_options={**SMALL, **options}))


def one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line and not line.startswith("warning:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ------------------------------------------------------------------ steps, pixels and order


def test_seq_len_and_pixels_per_step_name_the_same_thing():
    assert steps_and_width(28, 0) == (28, 28) and steps_and_width(784, 0) == (784, 1)
    assert steps_and_width(784, 1) == (784, 1) and steps_and_width(7, 112) == (7, 112)
    with pytest.raises(HarnessError, match=r"pixels_per_step=5 does not divide the 784 pixels .* 1, 2, 4, 7"):
        steps_and_width(28, 5)
    with pytest.raises(HarnessError, match=r"pixels_per_step=1 reads an image in 784 steps but --seq-len is 28; "
                                           r"add --seq-len 784"):
        steps_and_width(28, 1)
    with pytest.raises(HarnessError, match=r"--seq-len 30 does not divide the 784 pixels"):
        steps_and_width(30, 0)


def test_row_by_row_batches_are_the_image_rows_scaled_to_0_1():
    task = build()
    batch = task.train_batch(0)
    assert batch.x.shape == (28, 16, 28) and batch.x.dtype == torch.float32 and batch.y.shape == (16,)
    assert 0.0 <= float(batch.x.min()) and float(batch.x.max()) <= 1.0
    pixels = task.x["train"][task._perm[:16]]                       # the first batch's images, uint8 (B, 784)
    rows = pixels.view(16, 28, 28).float() / 255.0                  # (B, row, column)
    assert torch.equal(batch.x, rows.transpose(0, 1))              # step t = row t
    assert torch.equal(batch.y, task.y["train"][task._perm[:16]])


def test_pixel_by_pixel_permuted_follows_a_fixed_permutation_whatever_the_run_seed():
    plain = build(seq_len=784)
    permuted, other_seed = build(seq_len=784, permute=True), build(seed=5, seq_len=784, permute=True)
    order = permutation(0)
    assert sorted(order.tolist()) == list(range(784)) and not np.array_equal(order, np.arange(784))
    assert np.array_equal(other_seed.order, order) and not np.array_equal(permutation(1), order)
    x_plain = next(iter(plain.eval_batches("test"))).x             # (784, B, 1), the same test images
    x_perm = next(iter(permuted.eval_batches("test"))).x
    assert x_perm.shape == (784, 64, 1)
    assert torch.equal(x_perm[:, :, 0], x_plain[torch.from_numpy(order), :, 0])


def test_batches_depend_on_seed_and_step_only():
    a, b, c = build(), build(), build(seed=1)
    for step in (0, 15, 16, 40):                                   # 256 images / 16 per batch: epoch 1 at step 16
        assert torch.equal(a.train_batch(step).x, b.train_batch(step).x)
    assert not torch.equal(a.train_batch(3).x, c.train_batch(3).x)
    assert not torch.equal(a.train_batch(0).y, a.train_batch(16).y)   # a new epoch, a new order


# ------------------------------------------------------------------ splits and baseline


def test_validation_is_held_out_from_train_and_the_same_for_every_seed():
    full = make_task(SPEC, resolve_config(SPEC, ["lstm"], task_options={"path": FASHION}))
    assert [len(full.y[s]) for s in ("train", "val", "test")] == [55_000, 5_000, 10_000]
    other = make_task(SPEC, resolve_config(SPEC, ["lstm"], settings={"seed": 3}, task_options={"path": FASHION}))
    assert torch.equal(full.x["val"], other.x["val"])
    train_rows = {bytes(r) for r in full.x["train"][:5000].numpy()}
    assert not any(bytes(r) in train_rows for r in full.x["val"][:500].numpy())   # held out, not shared
    # the baseline: the entropy of the training labels' frequencies, near ln 10 for balanced classes
    assert full.baseline == pytest.approx(math.log(10), abs=2e-3) and full.baseline <= math.log(10)
    # ... which is what predicting those frequencies for every test image scores
    prior = torch.tensor(full.config()["label_prior_train"])
    blind = F.cross_entropy(prior.log().expand(10_000, 10), full.y["test"]).item()
    assert blind == pytest.approx(full.baseline, abs=2e-3)
    assert full.solved_rule == "test accuracy >= 0.85 (fashion-mnist)"


def test_too_large_a_training_subset_or_batch_is_one_line():
    with pytest.raises(HarnessError, match="train_size=59000 is more than the 55,000"):
        build(train_size=59_000, val_size=5000)
    with pytest.raises(HarnessError, match="fewer than --batch-size 512"):
        build(batch_size=512)


# ------------------------------------------------------------------ end to end through the CLI


def test_default_shape_run_prints_accuracy_against_the_baseline(cli, tmp_path):
    code, out, err = cli("run", "--cells", "lstm,gru,rnn", "--task", "seq-image", "--out", tmp_path / "r", *TINY)
    assert code == 0, err
    summary = pd.read_csv(tmp_path / "r" / "summary.csv")
    assert list(summary.cell) == ["lstm", "gru", "rnn"] and (summary.status == "ok").all()
    assert summary.baseline.iloc[0] == pytest.approx(json.loads((tmp_path / "r" / "config.json").read_text())
                                                     ["baseline"])
    assert summary.accuracy.between(0, 1).all() and summary.seq_len.eq(28).all()
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    task = config["task_config"]
    assert task["source"].startswith("fashion-mnist") and "Zalando" in task["source"] and "MIT" in task["source"]
    assert task["pixels_per_step"] == 28 and task["split"]["train"] == 64 and task["split"]["test"] == 32
    assert config["steps"] == 3 and config["lr"] == 3e-3                 # the flag, then the task's default
    grads = pd.read_csv(tmp_path / "r" / "gradnorms.csv")
    assert sorted(set(grads.t)) == list(range(28))
    assert "baseline" in out


def test_pixel_by_pixel_permuted_run_and_the_paper_preset(cli, tmp_path):
    code, _, err = cli("run", "--cells", "rnn", "--task", "seq-image", "--seq-len", "784", "--task-opt",
                       "permute=true", "--out", tmp_path / "p", *TINY)
    assert code == 0, err
    task = json.loads((tmp_path / "p" / "config.json").read_text())["task_config"]
    assert task["sequence_length"] == 784 and "permutation" in task["reading_order"]

    code, _, err = cli("run", "--cells", "lstm", "--task", "seq-image", "--preset", "paper", "--out",
                       tmp_path / "m", "--no-progress")                      # MNIST is not here
    line = one_error_line(err)
    assert code == 2 and "no mnist data found" in line and "download=true" in line
    assert not (tmp_path / "m").exists()

    code, _, err = cli("run", "--cells", "lstm", "--task", "seq-image", "--preset", "paper", "--out",
                       tmp_path / "f", "--task-opt", "source=fashion-mnist", *TINY)
    assert code == 0, err
    config = json.loads((tmp_path / "f" / "config.json").read_text())
    assert (config["seq_len"], config["optimizer"], config["lr"], config["hidden_size"]) == (784, "rmsprop", 1e-3, 4)
    assert config["task_options"]["pixels_per_step"] == 1 and config["task_options"]["val_size"] == 32


@pytest.mark.parametrize("case", ["no data", "truncated", "corrupt", "pixels_per_step", "seq_len"])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(case, cli, tmp_path):
    args = ["run", "--cells", "lstm", "--task", "seq-image", "--out", tmp_path / "r", *TINY]
    folder = tmp_path / "copy"
    if case in ("truncated", "corrupt"):
        shutil.copytree(FASHION, folder)
        target = folder / "t10k-labels-idx1-ubyte.gz"
        raw = target.read_bytes()
        target.chmod(0o644)
        target.write_bytes(raw[:2000] if case == "truncated" else raw[:100] + bytes([raw[100] ^ 0xFF]) + raw[101:])
        args += ["--task-opt", f"path={folder}"]
    elif case == "no data":
        folder.mkdir()
        args += ["--task-opt", f"path={folder}"]
    elif case == "pixels_per_step":
        args += ["--task-opt", "pixels_per_step=5"]
    else:
        args += ["--seq-len", "100"]
    code, _, err = cli(*args)
    line = one_error_line(err)
    assert code == 2 and not (tmp_path / "r").exists()
    expected = {"no data": "holds no MNIST-format data", "truncated": "t10k-labels-idx1-ubyte.gz is truncated",
                "corrupt": "t10k-labels-idx1-ubyte.gz is truncated or corrupt", "pixels_per_step":
                "does not divide the 784 pixels", "seq_len": "--seq-len 100 does not divide"}[case]
    assert expected in line


def test_compare_and_plot_read_its_runs(cli, tmp_path):
    # (harness sweep runs the task through the studies: tests/test_studies.py)
    for name in ("a", "b"):
        assert cli("run", "--cells", "lstm,rnn", "--task", "seq-image", "--out", tmp_path / name, *TINY)[0] == 0
    code, out, err = cli("compare", tmp_path / "a", tmp_path / "b")
    assert code == 0, err
    assert "rnn" in out and "seq-image" in out
    code, _, err = cli("plot", tmp_path / "a")
    assert code == 0, err
    assert (tmp_path / "a" / "figures").is_dir() and any((tmp_path / "a" / "figures").iterdir())

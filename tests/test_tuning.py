"""``sweep --tune``: each (cell, point, seed) is represented by its candidate with the best validation loss, never
the test loss; the summary, the horizon and ``compare`` read the picked units; resume and widening work."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from fake_cells import CountingExecutor, CountingPlugin
from harness.sweep.folder import standing
from harness.sweep.tuning import pick, picked_values

TINY = ["--steps", "6", "--batch-size", "4", "--task-opt", "eval_size=8", "--no-progress", "--no-plots",
        "--executor", "counting"]


@pytest.fixture
def counting(plugins):
    plugins(CountingPlugin())
    CountingExecutor.ran = []
    return CountingExecutor


def units(rows):
    frame = pd.DataFrame(rows, columns=["task", "cell", "seq_len", "seed", "lr", "status", "val_loss", "eval_loss"])
    return frame


def test_the_pick_follows_the_validation_loss_never_the_test_loss():
    frame = units([
        ("copy", "lstm", 5, 0, 1e-3, "ok", 0.30, 0.10),   # best test loss, worse validation loss
        ("copy", "lstm", 5, 0, 3e-3, "ok", 0.20, 0.90),   # best validation loss: picked
        ("copy", "lstm", 5, 1, 1e-3, "ok", 0.10, 0.50),   # picked
        ("copy", "lstm", 5, 1, 3e-3, "ok", 0.40, 0.05),
    ])
    picked = pick(frame, ["seq_len"])
    assert picked.tolist() == [False, True, True, False]
    frame["picked"] = picked
    table = picked_values(frame, ["seq_len"], ["lr"])
    assert table.loc[0, "tune_runs"] == 2
    assert set(table.loc[0, "tuned_lr"].split(", ")) == {"0.001 x1", "0.003 x1"}


def test_a_seed_with_an_unfinished_candidate_stays_pending_and_a_failed_or_diverged_one_is_never_preferred():
    frame = units([
        ("copy", "gru", 5, 0, 1e-3, "ok", 0.9, 0.9),
        ("copy", "gru", 5, 0, 3e-3, "pending", math.nan, math.nan),   # not all candidates ran: no verdict yet
        ("copy", "gru", 5, 1, 1e-3, "diverged", math.nan, math.nan),
        ("copy", "gru", 5, 1, 3e-3, "ok", 0.8, 0.8),                   # the only ok one
        ("copy", "gru", 5, 2, 1e-3, "failed", math.nan, math.nan),
        ("copy", "gru", 5, 2, 3e-3, "diverged", math.nan, math.nan),   # no ok: the seed counts as diverged
    ])
    frame["picked"] = pick(frame, ["seq_len"])
    chosen = standing(frame)
    assert chosen["status"].tolist() == ["pending", "ok", "diverged"]
    assert chosen["lr"].tolist()[1] == 3e-3


def test_a_tuned_sweep_reports_the_picks_resumes_widens_and_compares(counting, cli, tmp_path):
    out = tmp_path / "tuned"
    args = ["sweep", "--cells", "lstm,rnn", "--task", "copy", "--seq-len", "3", "--seeds", "2", "--tune",
            "lr=1e-3,3e-2", "--out", out, *TINY]
    code, stdout, err = cli(*args)
    assert code == 0, err
    assert len(counting.ran) == 8                                     # 2 cells x 2 seeds x 2 candidates
    assert "tuned lr over {0.001, 0.03} by validation loss: 2 run(s) per cell, point and seed" in stdout
    table = pd.read_csv(out / "units.csv")
    assert table["picked"].sum() == 4                                 # one per (cell, seed)
    for (cell, seed), group in table.groupby(["cell", "seed"]):
        assert group.loc[group["picked"], "val_loss"].iloc[0] == group["val_loss"].min()
    summary = pd.read_csv(out / "sweep_summary.csv")
    assert "lr" not in summary.columns and set(summary["n_units"]) == {2} and set(summary["tune_runs"]) == {2}
    lstm = summary[summary["cell"] == "lstm"].iloc[0]
    picked = table[(table["cell"] == "lstm") & table["picked"]]
    assert lstm["loss_ratio_mean"] == pytest.approx(picked["loss_ratio"].mean())   # the picked units alone
    counting.ran.clear()
    code, stdout, _ = cli(*args)                                      # resume: nothing left to run
    assert code == 0 and counting.ran == [] and "8 of 8 units already finished" in stdout
    wider = [a if a != "lr=1e-3,3e-2" else "lr=1e-3,3e-2,1e-2" for a in args]
    code, stdout, _ = cli(*wider)                                     # widen: only the new candidate runs
    assert code == 0 and len(counting.ran) == 4
    assert set(pd.read_csv(out / "sweep_summary.csv")["tune_runs"]) == {3}
    code, stdout, err = cli("compare", out, out, "--out", tmp_path / "cmp")
    assert code == 0, err
    compared = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    assert set(compared["cell"]) == {"lstm", "rnn"} and "lr" not in compared.columns
    assert (out / "horizon.csv").exists()


@pytest.mark.parametrize("tune, message", [
    ("warmth=1,2", "--tune warmth: not a run setting or an option of task copy; tune one of: "),
    ("lr=1e-3", "--tune lr: give at least two values to choose from"),
    ("threads=1,2", "--tune threads: --threads cannot be tuned"),
])
def test_bad_tuning_is_one_line_exit_2(counting, cli, tmp_path, tune, message):
    code, _, err = cli("sweep", "--cells", "lstm", "--task", "copy", "--tune", tune, "--out", tmp_path / "s", *TINY)
    assert code == 2 and counting.ran == []
    (line,) = err.strip().splitlines()
    assert message in line


def test_a_setting_both_tuned_and_set_is_refused(counting, cli, tmp_path):
    code, _, err = cli("sweep", "--cells", "lstm", "--task", "copy", "--lr", "1e-3", "--tune", "lr=1e-3,3e-3",
                       "--out", tmp_path / "s", *TINY)
    assert code == 2 and "--tune lr: lr is also set or swept" in err


def test_a_sweep_file_can_tune(tmp_path):
    from harness.sweep.files import load
    path = tmp_path / "s.toml"
    path.write_text('task = "copy"\ncells = ["lstm"]\n[tune]\nlr = [1e-3, 3e-3]\n')
    request = load(path)
    assert request.tune == {"lr": [1e-3, 3e-3]}
    assert "[tune]\nlr = [0.001, 0.003]" in request.to_toml()

"""listops end to end through the CLI: a tiny run, the lra preset's settings, and one-line errors (exit 2)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from harness.run.config import resolve_config

TINY = ["--steps", "3", "--batch-size", "8", "--hidden-size", "4", "--seq-len", "20", "--no-progress",
        "--no-plots", "--task-opt", "eval_size=16"]


def test_tiny_run_reports_accuracy_against_the_prior_entropy(cli, tmp_path):
    code, out, err = cli("run", "--cells", "lstm,rnn", "--task", "listops", "--out", tmp_path / "r", *TINY)
    assert code == 0, err
    summary = pd.read_csv(tmp_path / "r" / "summary.csv")
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert list(summary.cell) == ["lstm", "rnn"] and (summary.status == "ok").all()
    assert summary.baseline.iloc[0] == pytest.approx(config["baseline"]) and 2.2 < config["baseline"] < 2.303
    task = config["task_config"]
    assert task["length_range"] == [5, 20] and task["max_depth"] == 3 and task["max_args"] == 5
    assert sum(task["value_prior"]) == pytest.approx(1.0)
    assert sorted(set(pd.read_csv(tmp_path / "r" / "gradnorms.csv").t)) == list(range(20))
    assert "baseline" in out


def test_lra_preset_has_lra_lengths_and_settings(registry):
    spec = registry.task("listops")
    cfg = resolve_config(spec, ["lstm"], preset="lra")
    assert (cfg.seq_len, cfg.batch_size, cfg.steps, cfg.hidden_size) == (2000, 32, 5000, 512)
    assert cfg.task_options == {"max_depth": 10, "max_args": 10, "min_length": 501, "max_length": 1999,
                                "eval_size": 2000, "solved_at": 0.9}


@pytest.mark.parametrize("options, expected", [
    (["--task-opt", "max_length=30"], "max_length=30 is longer than --seq-len 20"),
    (["--task-opt", "min_length=25"], "min_length=25 is more than max_length 20"),
    (["--task-opt", "max_depth=2", "--task-opt", "max_args=2", "--task-opt", "min_length=10"], "too rare to draw"),
    (["--task-opt", "max_args=1"], "max_args=1: must be between 2 and 20"),
])
def test_impossible_settings_are_one_line_exit_2(options, expected, cli, tmp_path):
    code, _, err = cli("run", "--cells", "lstm", "--task", "listops", "--out", tmp_path / "r", *TINY, *options)
    lines = [line for line in err.strip().splitlines() if line and not line.startswith("warning:")]
    assert code == 2 and len(lines) == 1 and expected in lines[0] and "Traceback" not in err
    assert not (tmp_path / "r").exists()

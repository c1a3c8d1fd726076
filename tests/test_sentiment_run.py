"""sentiment end to end through the CLI: tiny runs, gates.csv, presets, one-line data errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from harness.cli import main
from tasks.sentiment import SEED_REVIEW
from tasks.sentiment.text import tokenize

TINY = ["--steps", "4", "--seq-len", "20", "--batch-size", "8", "--hidden-size", "6", "--log-every", "2",
        "--no-progress", "--task-opt", "n_reviews=120", "--task-opt", "embed_dim=5", "--task-opt", "inspect=2"]


def test_tiny_run_writes_gates_for_cells_that_expose_them(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--cells", "lstm,gru,rnn", "--task", "sentiment", "--out", str(out), *TINY]) == 0
    summary = pd.read_csv(out / "summary.csv")
    assert summary.status.tolist() == ["ok", "ok", "ok"]
    assert summary.baseline.iloc[0] == pytest.approx(json.loads((out / "config.json").read_text())["baseline"])
    assert all(0.0 <= a <= 1.0 for a in summary.accuracy)
    metrics = pd.read_csv(out / "metrics.csv")
    for name in ("val_loss", "val_accuracy", "test_accuracy", "grad_norm"):
        assert set(metrics[metrics.metric == name].cell) == {"lstm", "gru", "rnn"}, name

    gates = pd.read_csv(out / "gates.csv", keep_default_na=False, na_values=[""])
    assert set(gates.cell) == {"lstm", "gru"}                        # rnn has no gates to show
    lstm, gru = gates[gates.cell == "lstm"], gates[gates.cell == "gru"]
    for col in ("forget", "input", "output"):
        assert lstm[col].between(0, 1).all()
    assert gru[["reset", "update"]].notna().all().all()
    seed_rows = lstm[lstm.origin == "seeds' example"]
    shown = tokenize(SEED_REVIEW)[:20]                               # T = 20 keeps the first 20 tokens
    assert seed_rows.token.tolist() == shown
    assert lstm.review.nunique() == 3                                # the seeds' example + inspect=2
    assert seed_rows.label.eq(1).all()

    config = json.loads((out / "config.json").read_text())
    assert config["task_config"]["source"] == "synthetic (generated, not real reviews)"
    assert config["layers"] == 2 and config["dropout"] == 0.5       # the task's defaults: the seeds' 2 layers
    assert config["baseline"] == pytest.approx(math.log(2), abs=0.05)


def write_polarity(folder: Path, n: int = 40) -> Path:
    folder.mkdir()
    (folder / "rt-polarity.pos").write_text("".join(f"a truly fine film number {i} .\n" for i in range(n)))
    (folder / "rt-polarity.neg").write_text("".join(f"a dull mess number {i} .\n" for i in range(n)))
    return folder


def test_rt_polarity_preset_run_on_fixture_files(tmp_path):
    folder = write_polarity(tmp_path / "rt")
    out = tmp_path / "run"
    code = main(["run", "--cells", "lstm", "--task", "sentiment", "--preset", "rt-polarity", "--out", str(out),
                 "--steps", "2", "--hidden-size", "4", "--batch-size", "8", "--no-progress",
                 "--task-opt", "source=rt-polarity", "--task-opt", f"path={folder}"])
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert config["seq_len"] == 50 and config["lr"] == 2e-3 and config["hidden_size"] == 4   # preset, then flags
    task_config = config["task_config"]
    assert task_config["source"].startswith("rt-polarity") and "CC BY 4.0" in task_config["source"]
    assert task_config["embed_dim"] == 128                                   # embed_dim=0: the real-data size
    assert task_config["split"] == {"train": 64, "val": 8, "test": 8, "seed": 0,
                                    "method": "random permutation by seed"}
    assert config["solved_rule"] == "test accuracy >= 0.7 (rt-polarity)"
    assert pd.read_csv(out / "summary.csv").status.tolist() == ["ok"]


def test_missing_data_is_one_line_error_not_a_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    code = main(["run", "--cells", "lstm", "--task", "sentiment", "--out", str(tmp_path / "run"), "--no-progress",
                 "--task-opt", "source=imdb"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 or all(line.startswith("warning:") for line in err[:-1])
    assert "no IMDB data" in err[-1] and "download=true" in err[-1] and "Traceback" not in err[-1]

"""``harness compare``: one table across runs whose values are the runs' own summaries."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from harness.cli import main
from harness.reports.compare import compare_runs, run_labels
from harness.reports.report import markdown_table
from harness.reports.results import read_run

TINY = ["--steps", "8", "--seq-len", "3", "--hidden-size", "4", "--batch-size", "4", "--task-opt", "eval_size=16",
        "--no-progress", "--no-plots"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A copy run (lstm, rnn) and an adding run (rnn, gru: no lstm), tiny."""
    root = tmp_path_factory.mktemp("compare")
    assert main(["run", "--cells", "lstm,rnn", "--task", "copy", "--out", str(root / "copy-run"), *TINY]) == 0
    assert main(["run", "--cells", "rnn,gru", "--task", "adding", "--out", str(root / "adding-run"), *TINY]) == 0
    return [root / "copy-run", root / "adding-run"]


def test_table_values_are_the_run_summaries_and_ratios_use_the_same_run(runs):
    table = compare_runs([read_run(f) for f in runs], reference="lstm")
    assert list(table["run"]) == ["copy-run"] * 2 + ["adding-run"] * 2
    assert list(table["cell"]) == ["lstm", "rnn", "rnn", "gru"]
    for folder in runs:
        summary = pd.read_csv(folder / "summary.csv")
        mine = table[table["run"] == folder.name].reset_index(drop=True)
        for column in ("task", "seq_len", "cell", "status", "steps", "solved", "beats_baseline"):
            assert list(mine[column]) == list(summary[column])
        for column in ("eval_loss", "baseline", "accuracy", "grad_decay_init", "grad_decay_final", "tokens_per_s",
                       "wall_s"):
            np.testing.assert_array_equal(mine[column].to_numpy(float), summary[column].to_numpy(float))
        assert summary["tokens_per_s"].notna().all()  # 8 steps: past the timer's 5 warm-up steps
    copy = table[table["run"] == "copy-run"]
    lstm = copy[copy["cell"] == "lstm"].iloc[0]
    np.testing.assert_allclose(copy["tokens_per_s_vs_lstm"], copy["tokens_per_s"] / lstm["tokens_per_s"])
    np.testing.assert_allclose(copy["eval_loss_vs_lstm"], copy["eval_loss"] / lstm["eval_loss"])
    assert lstm["tokens_per_s_vs_lstm"] == 1.0 and lstm["eval_loss_vs_lstm"] == 1.0
    # the adding run has no lstm: its ratios are empty, never borrowed from the copy run
    assert table.loc[table["run"] == "adding-run", ["tokens_per_s_vs_lstm", "eval_loss_vs_lstm"]].isna().all().all()


def test_a_run_without_the_reference_gets_empty_ratios(runs):
    table = compare_runs([read_run(f) for f in runs], reference="gru")
    assert table.loc[table["run"] == "copy-run", "eval_loss_vs_gru"].isna().all()
    adding = table[table["run"] == "adding-run"]
    gru = adding[adding["cell"] == "gru"].iloc[0]
    np.testing.assert_allclose(adding["eval_loss_vs_gru"], adding["eval_loss"] / gru["eval_loss"])


def test_compare_command_prints_and_saves_csv_and_markdown(runs, tmp_path, cli):
    out = tmp_path / "cmp"
    code, stdout, err = cli("compare", *runs, "--reference", "rnn", "--out", out)
    assert code == 0, err
    saved = pd.read_csv(out / "compare.csv")
    expected = compare_runs([read_run(f) for f in runs], reference="rnn")
    pd.testing.assert_frame_equal(saved, expected, check_dtype=False)
    assert "tokens_per_s_vs_rnn" in stdout and "adding-run" in stdout and str(out / "compare.csv") in stdout
    md = (out / "compare.md").read_text().splitlines()
    start = next(i for i, line in enumerate(md) if line.startswith("| run |"))
    header = [c.strip() for c in md[start].strip("|").split("|")]
    rows = [line for line in md[start + 2:] if line.startswith("|")]
    assert len(rows) == 4
    first = dict(zip(header, (c.strip() for c in rows[0].strip("|").split("|"))))
    lstm_copy = expected.iloc[0]
    assert first["cell"] == "lstm" and first["eval_loss"] == f"{lstm_copy['eval_loss']:.4f}"
    assert first["tokens_per_s_vs_rnn"] == f"{lstm_copy['tokens_per_s_vs_rnn']:.3f}"


def test_compare_warns_when_the_reference_is_nowhere(runs, tmp_path, cli):
    code, _, err = cli("compare", runs[0], "--reference", "gru", "--out", tmp_path / "c")
    assert code == 0
    assert "reference cell 'gru' is in none of these runs" in err and "cells here: lstm, rnn" in err
    assert pd.read_csv(tmp_path / "c" / "compare.csv")["eval_loss_vs_gru"].isna().all()


def test_compare_rejects_a_folder_that_is_not_a_run(tmp_path, cli):
    code, _, err = cli("compare", tmp_path)
    assert code == 2 and "not a run folder" in err and len(err.strip().splitlines()) == 1


def test_runs_with_the_same_folder_name_stay_apart(tmp_path):
    assert run_labels([tmp_path / "a" / "r", tmp_path / "b" / "r", tmp_path / "c"]) == [
        str(tmp_path / "a" / "r"), str(tmp_path / "b" / "r"), "c"]


def test_markdown_table_formats_and_escapes():
    df = pd.DataFrame({"name": ["a|b", "c"], "value": [1234.5678, math.nan], "ok": [True, False]})
    text = markdown_table(df, {"value": ",.1f"}).splitlines()
    assert text[0] == "| name | value | ok |"
    assert text[1] == "|:---|---:|:---|"
    assert text[2] == "| a\\|b | 1,234.6 | yes |"
    assert text[3] == "| c | - | no |"

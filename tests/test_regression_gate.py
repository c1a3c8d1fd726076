"""``harness compare BASE NEW --fail-slower/--fail-worse``: the regression gate on run, sweep and bench folders.

The folders are fabricated in the documented formats (``summary.csv``; ``sweep.json`` + ``sweep_summary.csv``;
``bench.csv``), so each case states its numbers."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from harness.reports.regression import Thresholds, compare_folders, parse_fraction


def run_folder(path, rows):
    path.mkdir(parents=True)
    base = {"task": "copy", "seq_len": 50, "status": "ok", "eval_loss": 0.1, "baseline": 0.2}
    pd.DataFrame([{**base, **r} for r in rows]).to_csv(path / "summary.csv", index=False)
    return path


def sweep_folder(path, rows):
    """``rows``: (cell, seq_len, tokens (mean, lo, hi), loss_ratio (mean, lo, hi), n_seeds)."""
    path.mkdir(parents=True)
    (path / "sweep.json").write_text(json.dumps({"kind": "sweep", "task": "copy", "cells": ["lstm", "rnn"],
                                                 "settings": {"seq_len": [50, 100]}}))
    records = []
    for cell, seq_len, tokens, loss, n in rows:
        record = {"cell": cell, "task": "copy", "seq_len": seq_len, "lr": 0.001, "n_units": 3, "n_seeds": n,
                  "n_diverged": 0, "n_failed": 3 - n, "n_pending": 0}
        for metric, (mean, lo, hi) in (("tokens_per_s", tokens), ("loss_ratio", loss), ("accuracy", (0.9,) * 3),
                                       ("grad_decay_init", (0.9,) * 3), ("grad_decay_final", (0.9,) * 3)):
            record.update({f"{metric}_mean": mean, f"{metric}_lo": lo, f"{metric}_hi": hi})
        record.update({"solved": 1, "solve_rate": 0.33, "solve_lo": 0.05, "solve_hi": 0.8,
                       "loss_ratio_diff_mean": 0.01, "loss_ratio_diff_lo": -0.1, "loss_ratio_diff_hi": 0.1,
                       "n_paired": n, "better_fraction": 0.5})
        records.append(record)
    pd.DataFrame(records).to_csv(path / "sweep_summary.csv", index=False)
    return path


def bench_folder(path, rows):
    """``rows``: (cell, median_s, q25_s, q75_s, status) at T=100, B=10 (1,000 tokens per call)."""
    path.mkdir(parents=True)
    records = []
    for cell, median, q25, q75, status in rows:
        for p in ("forward", "forward+backward"):
            records.append({"cell": cell, "device": "cpu", "dtype": "float32", "T": 100, "B": 10, "I": 8, "H": 16,
                            "layers": 1, "pass": p, "median_s": median, "q25_s": q25, "q75_s": q75,
                            "tokens_per_s": 1000 / median if status == "ok" else math.nan,
                            "us_per_step": median / 100 * 1e6, "repeats": 10, "status": status, "gate": "passed",
                            "gate_reference": "", "gate_error": math.nan, "gate_tolerance": 1e-3, "reason": ""})
    pd.DataFrame(records).to_csv(path / "bench.csv", index=False)
    return path


def gate(cli, base, new, *flags):
    code, out, err = cli("compare", base, new, *flags, "--out", base.parent / "cmp")
    return code, out, [line for line in err.splitlines() if line.startswith("regression:")]


# ------------------------------------------------------------------ run folders (one seed: no noise band)

def test_runs_slower_beyond_the_threshold_fail_with_one_line(cli, tmp_path):
    base = run_folder(tmp_path / "base", [{"cell": "lstm", "tokens_per_s": 10000, "loss_ratio": 0.5, "accuracy": 0.8},
                                          {"cell": "rnn", "tokens_per_s": 20000, "loss_ratio": 0.9, "accuracy": 0.3}])
    new = run_folder(tmp_path / "new", [{"cell": "lstm", "tokens_per_s": 8500, "loss_ratio": 0.5, "accuracy": 0.8},
                                        {"cell": "rnn", "tokens_per_s": 19000, "loss_ratio": 0.9, "accuracy": 0.3}])
    code, out, lines = gate(cli, base, new, "--fail-slower", "10%")
    assert code == 1
    assert lines == ["regression: cell=lstm task=copy seq_len=50: tokens_per_s 10,000 -> 8,500 (-15.0%; "
                     "limit --fail-slower 10%)"]
    assert "-5.0%" in out and "ok" in out and "1 regression(s) in 2 comparison(s)" in out
    changes = pd.read_csv(tmp_path / "cmp" / "changes.csv")
    assert list(changes["verdict"]) == ["regression", "ok"]
    assert gate(cli, base, new, "--fail-slower", "0.2")[0] == 0          # 15% is within a 20% limit


def test_runs_worse_loss_ratio_or_accuracy_fail(cli, tmp_path):
    base = run_folder(tmp_path / "base", [{"cell": "lstm", "tokens_per_s": 1e4, "loss_ratio": 0.50, "accuracy": 0.80},
                                          {"cell": "gru", "tokens_per_s": 1e4, "loss_ratio": 0.50, "accuracy": 0.80}])
    new = run_folder(tmp_path / "new", [{"cell": "lstm", "tokens_per_s": 1e4, "loss_ratio": 0.58, "accuracy": 0.79},
                                        {"cell": "gru", "tokens_per_s": 1e4, "loss_ratio": 0.52, "accuracy": 0.70}])
    code, _, lines = gate(cli, base, new, "--fail-worse", "0.05")
    assert code == 1 and len(lines) == 2
    assert lines[0].startswith("regression: cell=lstm task=copy seq_len=50: loss_ratio 0.5000 -> 0.5800 (+0.0800")
    assert lines[1].startswith("regression: cell=gru task=copy seq_len=50: accuracy 0.8000 -> 0.7000 (-0.1000")
    assert all(line.endswith("limit --fail-worse 0.05)") for line in lines)
    assert gate(cli, base, new, "--fail-worse", "0.2")[0] == 0


def test_a_cell_that_failed_in_new_is_a_regression(cli, tmp_path):
    base = run_folder(tmp_path / "base", [{"cell": "lstm", "tokens_per_s": 1e4, "loss_ratio": 0.5, "accuracy": 0.8}])
    new = run_folder(tmp_path / "new", [{"cell": "lstm", "tokens_per_s": math.nan, "loss_ratio": math.nan,
                                         "accuracy": math.nan, "status": "failed"}])
    code, _, lines = gate(cli, base, new, "--fail-slower", "10%")
    assert code == 1 and lines == ["regression: cell=lstm task=copy seq_len=50: tokens_per_s no value in NEW "
                                   "(failed) (BASE 10,000)"]


# ------------------------------------------------------------------ sweeps (confidence intervals over seeds)

def test_sweep_changes_within_overlapping_intervals_are_noise(cli, tmp_path):
    base = sweep_folder(tmp_path / "base", [("lstm", 50, (1000, 900, 1100), (0.50, 0.40, 0.60), 5)])
    new = sweep_folder(tmp_path / "new", [("lstm", 50, (850, 800, 920), (0.58, 0.50, 0.66), 5)])
    code, out, lines = gate(cli, base, new, "--fail-slower", "10%", "--fail-worse", "0.05")
    assert code == 0 and lines == []
    assert out.count("within noise") == 2 and "2 change(s) beyond the threshold but within the noise" in out


def test_sweep_changes_with_separate_intervals_fail(cli, tmp_path):
    base = sweep_folder(tmp_path / "base", [("lstm", 50, (1000, 950, 1050), (0.50, 0.45, 0.55), 5),
                                            ("rnn", 50, (2000, 1900, 2100), (0.95, 0.90, 1.00), 5)])
    new = sweep_folder(tmp_path / "new", [("lstm", 50, (800, 760, 840), (0.70, 0.65, 0.75), 5),
                                          ("rnn", 50, (2010, 1900, 2100), (0.95, 0.90, 1.00), 5)])
    code, _, lines = gate(cli, base, new, "--fail-slower", "10%", "--fail-worse", "0.05")
    assert code == 1
    assert [line.split(": ")[1] for line in lines] == ["cell=lstm task=copy seq_len=50 lr=0.001"] * 2
    assert "tokens_per_s 1,000 -> 800 (-20.0%" in lines[0] and "loss_ratio 0.5000 -> 0.7000 (+0.2000" in lines[1]


def test_sweep_with_one_seed_has_no_interval_so_any_change_counts(tmp_path):
    nan = math.nan
    base = sweep_folder(tmp_path / "base", [("lstm", 50, (1000, nan, nan), (0.5, nan, nan), 1)])
    new = sweep_folder(tmp_path / "new", [("lstm", 50, (850, 800, 920), (0.5, 0.4, 0.6), 3)])
    kind, changes = compare_folders(base, new, Thresholds(slower=0.1))
    assert kind == "sweep" and list(changes["verdict"]) == ["regression"]


def test_sweep_settings_missing_from_new_fail_and_new_ones_are_listed(tmp_path):
    base = sweep_folder(tmp_path / "base", [("lstm", 50, (1000, 900, 1100), (0.5, 0.4, 0.6), 5),
                                            ("lstm", 100, (900, 800, 1000), (0.6, 0.5, 0.7), 5)])
    new = sweep_folder(tmp_path / "new", [("lstm", 50, (1000, 900, 1100), (0.5, 0.4, 0.6), 5),
                                          ("lstm", 200, (700, 600, 800), (0.8, 0.7, 0.9), 5)])
    _, changes = compare_folders(base, new, Thresholds(slower=0.1))
    verdicts = dict(zip(changes["key"], zip(changes["verdict"], changes["reason"])))
    assert verdicts["cell=lstm task=copy seq_len=100 lr=0.001"] == ("regression", "missing from NEW")
    assert verdicts["cell=lstm task=copy seq_len=200 lr=0.001"] == ("new", "only in NEW")
    assert verdicts["cell=lstm task=copy seq_len=50 lr=0.001"][0] == "ok"


# ------------------------------------------------------------------ bench (quartile bands)

def test_bench_bands_decide_between_noise_and_regression(cli, tmp_path):
    base = bench_folder(tmp_path / "base", [("lstm", 0.100, 0.095, 0.105, "ok")])
    noisy = bench_folder(tmp_path / "noisy", [("lstm", 0.115, 0.100, 0.130, "ok")])  # 13% slower, bands overlap
    slow = bench_folder(tmp_path / "slow", [("lstm", 0.125, 0.120, 0.130, "ok")])    # 20% slower, apart
    code, out, lines = gate(cli, base, noisy, "--fail-slower", "10%")
    assert code == 0 and out.count("within noise") == 2
    code, _, lines = gate(cli, base, slow, "--fail-slower", "10%")
    assert code == 1 and len(lines) == 2
    assert lines[0].startswith("regression: cell=lstm T=100 B=10 I=8 H=16 layers=1 dtype=float32 device=cpu "
                               "pass=forward: tokens_per_s 10,000 -> 8,000 (-20.0%")


def test_an_incorrect_cell_in_the_new_bench_fails_the_gate(tmp_path):
    base = bench_folder(tmp_path / "base", [("lstm", 0.1, 0.1, 0.1, "ok")])
    new = bench_folder(tmp_path / "new", [("lstm", math.nan, math.nan, math.nan, "incorrect")])
    _, changes = compare_folders(base, new, Thresholds(slower=0.5))
    assert set(changes["reason"]) == {"no value in NEW (incorrect)"} and set(changes["verdict"]) == {"regression"}


# ------------------------------------------------------------------ usage

@pytest.mark.parametrize("make_args, needle", [
    (lambda b, n, s: [b, n, s, "--fail-slower", "10%"], "compare exactly two folders, BASE then NEW; got 3"),
    (lambda b, n, s: [b, s, "--fail-slower", "10%"], "is a run folder but NEW"),
    (lambda b, n, s: [b, s], "the table compares runs with runs, or sweeps with sweeps"),
    (lambda b, n, s: [b, n, "--fail-slower", "ten"], "expected a percentage like 10% or a fraction like 0.1"),
    (lambda b, n, s: [b, n, "--fail-slower", "150%"], "must be at least 0% and below 100%"),
    (lambda b, n, s: [b, n, "--fail-worse", "0.1", "--reference", "rnn"], "--reference is for the table of runs"),
])
def test_usage_errors_are_one_line_and_exit_2(cli, tmp_path, make_args, needle):
    row = {"cell": "lstm", "tokens_per_s": 1e4, "loss_ratio": 0.5, "accuracy": 0.8}
    b, n = run_folder(tmp_path / "b", [row]), run_folder(tmp_path / "n", [row])
    s = sweep_folder(tmp_path / "s", [("lstm", 50, (1, 1, 1), (1, 1, 1), 1)])
    code, _, err = cli("compare", *make_args(b, n, s), "--out", tmp_path / "cmp")
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_parse_fraction():
    assert parse_fraction("10%") == pytest.approx(0.1) and parse_fraction("0.25") == 0.25
    assert parse_fraction("0") == 0.0

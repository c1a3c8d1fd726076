"""The table builder behind docs/reproductions.md, on a fabricated sweep folder with known numbers."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from harness.sweep.aggregate import sweep_summary
from harness.sweep.horizon import horizons
from harness.sweep.studies import (NOT, NOT_RUN, PARTLY, REPRODUCED, UNTESTABLE, claims_table, judge, read_study,
                                   verdicts_table)

STUDY = """
task = "copy"
cells = ["lstm", "gru", "rnn"]
seeds = 3
out = "sweeps/fab"

[settings]
seq_len = [100, 200]

[study]
title = "A fabricated paper: copy"
source = "Nobody et al. 2099, Table 9"
reduced = "200 steps instead of 20,000"
full_command = "python -m harness sweep --config studies/fab.toml --steps 20000 (about 2 h on a GPU)"

[[claims]]
cell = "lstm"
seq_len = 100
claim = "below_baseline"
paper = "the LSTM gets below the baseline"

[[claims]]
cell = "rnn"
seq_len = 100
claim = "at_baseline"
paper = "the RNN stays at the baseline"
value = 0.173

[[claims]]
cell = "gru"
seq_len = 100
claim = "solves"
paper = "the GRU solves it"

[[claims]]
cell = "lstm"
seq_len = 200
claim = "below_baseline"
paper = "the LSTM still gets below the baseline at T = 200"

[[claims]]
cell = "lstm"
seq_len = 400
claim = "below_baseline"
paper = "and at T = 400"
"""

BASELINE = {100: 10 * math.log(8) / 120, 200: 10 * math.log(8) / 220}


def _fabricate(root):
    rows = []
    for cell, seq_len, ratios, solved in [
        ("lstm", 100, [0.5, 0.6, 0.7], [False, False, False]),   # whole interval < 1: reproduced
        ("rnn", 100, [1.0, 0.99, 1.01], [False] * 3),             # interval >= 0.9: reproduced
        ("gru", 100, [0.01, 0.02, 0.015], [True, True, False]),   # 2/3 solved, Wilson lower 0.21: partly
        ("lstm", 200, [1.0, 1.02, 0.98], [False] * 3),            # mean >= 1: not reproduced
        ("rnn", 200, [1.0, 1.0, 1.0], [False] * 3),
        ("gru", 200, [0.9, 0.8, 1.1], [False] * 3),
    ]:
        for seed, (ratio, ok) in enumerate(zip(ratios, solved)):
            rows.append({"unit": f"{cell}{seq_len}{seed}", "task": "copy", "cell": cell, "seed": seed,
                         "seq_len": seq_len, "status": "ok", "loss_ratio": ratio, "baseline": BASELINE[seq_len],
                         "accuracy": 0.5, "grad_decay_init": 0.8, "grad_decay_final": 0.9 + seed / 10,
                         "tokens_per_s": 100.0, "solved": ok})
    units = pd.DataFrame(rows)
    folder = root / "sweeps" / "fab"
    (folder / "units").mkdir(parents=True)
    (folder / "sweep.json").write_text(json.dumps({
        "kind": "sweep", "task": "copy", "preset": None, "reference": "lstm", "cells": ["lstm", "gru", "rnn"],
        "invocations": [{"started": "2099-01-01 10:00:00", "finished": "2099-01-01 10:30:00", "elapsed_s": 1800.0,
                         "executor": "local", "jobs": 2, "threads_per_unit": 1}]}))
    units.to_csv(folder / "units.csv", index=False)
    summary = sweep_summary(units, ["seq_len"], "lstm")
    summary.to_csv(folder / "sweep_summary.csv", index=False)
    horizons(summary, ["seq_len"]).to_csv(folder / "horizon.csv", index=False)
    (root / "fab.toml").write_text(STUDY)
    return root / "fab.toml"


@pytest.fixture
def study(tmp_path):
    return read_study(_fabricate(tmp_path), root=tmp_path)


def test_each_claim_gets_the_rule_s_verdict_with_its_numbers(study):
    table = claims_table(study)
    assert list(table["verdict"]) == [REPRODUCED, REPRODUCED, PARTLY, NOT, NOT_RUN]
    lstm = table.iloc[0]
    assert lstm["test / baseline"] == "0.6 [0.5, 0.7]" and lstm["seeds"] == 3
    assert lstm["harness test loss"] == f"{0.6 * BASELINE[100]:.3g} [{0.5 * BASELINE[100]:.3g}, {0.7 * BASELINE[100]:.3g}]"
    assert "the whole interval is below 1" in lstm["why"]
    assert table.iloc[1]["paper value"] == 0.173
    assert table.iloc[2]["solved"] == "2/3" and "some seeds, not most for sure" in table.iloc[2]["why"]
    assert "at or above the baseline" in table.iloc[3]["why"]
    assert table.iloc[4]["why"] == "the sweep has not run this point"


def test_a_claim_the_budget_cannot_test_gets_its_reason_and_numbers_not_a_verdict(tmp_path):
    file = _fabricate(tmp_path)
    why = "at 200 steps the paper's own LSTM is still at the baseline"
    file.write_text(STUDY.replace('paper = "the LSTM still gets below the baseline at T = 200"',
                                  f'paper = "the LSTM still gets below the baseline at T = 200"\nuntestable = "{why}"'))
    table = claims_table(read_study(file, root=tmp_path))
    row = table.iloc[3]                                    # the rule alone would say: not reproduced
    assert row["verdict"] == UNTESTABLE and row["why"].startswith(why) and "at or above the baseline" in row["why"]
    assert row["test / baseline"] == "1 [0.98, 1.02]"
    assert list(table["verdict"])[:3] == [REPRODUCED, REPRODUCED, PARTLY]   # the other claims keep their verdicts


def test_an_empty_untestable_reason_is_refused(tmp_path):
    from harness.contract.errors import HarnessError
    from harness.sweep.files import load

    file = tmp_path / "s.toml"
    file.write_text('task = "copy"\ncells = ["lstm"]\n[[claims]]\ncell = "lstm"\nclaim = "below_baseline"\n'
                    'paper = "p"\nuntestable = ""\n')
    with pytest.raises(HarnessError, match=r"claims\[0\]\.untestable: must say why"):
        load(file)


def test_the_rules_at_their_edges():
    row = pd.Series({"loss_ratio_mean": 0.95, "loss_ratio_lo": 0.9, "loss_ratio_hi": 1.0, "n_seeds": 3,
                     "n_diverged": 0, "solved": 0, "solve_rate": 0.0, "solve_lo": 0.0, "solve_hi": 0.56})
    assert judge("below_baseline", row)[0] == PARTLY          # mean below 1, interval reaches 1
    assert judge("at_baseline", row)[0] == REPRODUCED         # lo = 0.9 exactly: no 10% gain
    assert judge("at_baseline", row.replace({0.9: 0.85}))[0] == PARTLY
    assert judge("solves", row)[0] == NOT
    one = row.copy()
    one[["loss_ratio_lo", "loss_ratio_hi", "n_seeds"]] = [math.nan, math.nan, 1]
    verdict, why = judge("below_baseline", one)
    assert verdict == PARTLY and "one seed has no interval" in why
    four = row.copy()
    four[["solved", "n_seeds", "solve_lo"]] = [4, 4, 0.51]
    assert judge("solves", four)[0] == REPRODUCED


def test_the_page_has_the_tables_facts_and_figures(tmp_path, cli, monkeypatch):
    file = _fabricate(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("reproductions", file.name, "--out", "docs/reproductions.md", "--figures", "docs/figures/r")
    assert code == 0, err
    page = (tmp_path / "docs" / "reproductions.md").read_text()
    assert "## A fabricated paper: copy" in page and "Nobody et al. 2099, Table 9" in page
    assert "**Budget: REDUCED: 200 steps instead of 20,000**" in page
    assert "command: `python -m harness sweep --config fab.toml`" in page
    assert "wall time 30.0 min over 1 invocation(s) (local executor, 2 at a time" in page
    assert ("| A fabricated paper: copy | REDUCED | gru | 100 | partly reproduced | "
            "test / baseline 0.015 [0.01, 0.02], 3 seeds |") in page
    assert "| lstm | 100 | 3 | 0.8000 [0.8000, 0.8000] | 1.0000 [0.9000, 1.1000] |" in page   # 0.9, 1.0, 1.1
    assert "lstm remembers up to T = 100" in page
    for name in ("loss_vs_length", "solve_rate", "gradient_decay", "throughput"):   # drawn, then copied
        assert f"](figures/r/fab/{name}.png)" in page
        assert (tmp_path / "docs" / "figures" / "r" / "fab" / f"{name}.png").exists()


def test_a_study_that_has_not_run_says_so(tmp_path, cli, monkeypatch):
    (tmp_path / "later.toml").write_text(STUDY.replace("sweeps/fab", "sweeps/none"))
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("reproductions", "later.toml", "--out", "page.md")
    assert code == 0, err
    page = (tmp_path / "page.md").read_text()
    assert page.count(NOT_RUN) >= 5 and "python -m harness sweep --config later.toml" in page


def test_by_default_only_files_with_a_study_table_are_reported(tmp_path, cli, monkeypatch):
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "full.toml").write_text(STUDY)
    part = "\n".join(line for line in STUDY.splitlines() if not line.startswith(("[study]", "title", "source",
                                                                                 "reduced", "full_command")))
    part = part.split("[[claims]]")[0]
    (tmp_path / "studies" / "part.toml").write_text(part)
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("reproductions", "--out", "page.md")
    assert code == 0, err
    assert "(1 studies" in out
    page = (tmp_path / "page.md").read_text()
    assert "studies/full.toml" in page and "studies/part.toml" not in page


def test_an_unrun_published_claim_points_to_the_reduced_study_that_ran_it(tmp_path):
    reduced = read_study(_fabricate(tmp_path), root=tmp_path)
    full_text = STUDY.replace("sweeps/fab", "sweeps/full").replace('reduced = "200 steps instead of 20,000"', 'reduced = ""')
    (tmp_path / "full.toml").write_text(full_text.replace("A fabricated paper: copy", "The full study"))
    full = read_study(tmp_path / "full.toml", root=tmp_path)
    # fab.toml's full_command names studies/fab.toml, itself: it reduces nothing, so no pointer yet
    table = verdicts_table([full, reduced])
    assert list(table[table.study == "The full study"]["evidence"]) == ["not run at this budget"] * 5
    (tmp_path / "fab.toml").write_text(STUDY.replace("studies/fab.toml", "studies/full.toml"))
    reduced = read_study(tmp_path / "fab.toml", root=tmp_path)
    table = verdicts_table([full, reduced])
    ours = table[table.study == "The full study"].reset_index(drop=True)
    assert list(ours["verdict"]) == [NOT_RUN] * 5
    assert ours.loc[0, "evidence"] == "not run at this budget; reduced run (A fabricated paper: copy): reproduced"
    assert ours.loc[3, "evidence"] == "not run at this budget; reduced run (A fabricated paper: copy): not reproduced"
    assert ours.loc[4, "evidence"] == "not run at this budget"        # T = 400: the reduced study did not run it
    theirs = table[table.study == "A fabricated paper: copy"].reset_index(drop=True)
    assert theirs.loc[0, "evidence"] == "test / baseline 0.6 [0.5, 0.7], 3 seeds"


def test_a_study_whose_folder_is_not_here_keeps_what_the_page_reported(tmp_path, cli, monkeypatch):
    # Built once with the folder, then again without it (a fresh checkout, another machine): the study's section
    # and verdicts stand, marked as kept; a study that never ran is still "not run yet".
    file = _fabricate(tmp_path)
    (tmp_path / "other.toml").write_text(STUDY.replace("sweeps/fab", "sweeps/none").replace(
        "A fabricated paper: copy", "Another paper"))
    monkeypatch.chdir(tmp_path)
    assert cli("reproductions", file.name, "other.toml", "--out", "page.md", "--figures", "figs")[0] == 0
    first = (tmp_path / "page.md").read_text()
    import shutil
    shutil.rmtree(tmp_path / "sweeps" / "fab")
    code, _, err = cli("reproductions", file.name, "other.toml", "--out", "page.md", "--figures", "figs")
    assert code == 0, err
    again = (tmp_path / "page.md").read_text()
    assert "Kept from an earlier build of this page" in again
    row = ("| A fabricated paper: copy | REDUCED | gru | 100 | partly reproduced | "
           "test / baseline 0.015 [0.01, 0.02], 3 seeds |")
    assert row in first and row in again
    assert "| lstm | 100 | 3 | 0.8000 [0.8000, 0.8000] | 1.0000 [0.9000, 1.1000] |" in again   # the section itself
    assert "| Another paper | REDUCED | lstm | 100 | not run yet |" in again
    assert again.count("Kept from an earlier build") == 1     # not stacked on a third build
    assert cli("reproductions", file.name, "other.toml", "--out", "page.md", "--figures", "figs")[0] == 0
    assert (tmp_path / "page.md").read_text() == again

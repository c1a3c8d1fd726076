"""The end-of-run table and sentences name what each gradient number is: a decay per time step (the table) or the
ratio over the whole sequence (the sentence), so that 0.613 and 5.0e-06 read as the same curve, not a contradiction."""

from __future__ import annotations

import pandas as pd
import pytest

from harness.reports.columns import BY_NAME, SUMMARY_NAMES
from harness.reports.summary import closing_lines, summary_table, verdicts


def _tables():
    row = dict.fromkeys(SUMMARY_NAMES, float("nan"))
    row.update(cell="lstm", task="copy", status="ok", seq_len=20, steps=200, eval_loss=0.2441, baseline=0.2399,
               loss_ratio=1.017, accuracy=0.141, solved=False, beats_baseline=False, grad_decay_init=0.613,
               grad_decay_final=0.974, reason="")
    summary = pd.DataFrame([row])
    # 26 time steps: first / last = decay ** 25
    grads = pd.DataFrame([{"cell": "lstm", "step": 0, "state": "h", "first": 0.613 ** 25, "last": 1.0,
                           "decay_per_step": 0.613, "steps_to_10x": 5},
                          {"cell": "lstm", "step": 200, "state": "h", "first": 0.974 ** 25, "last": 1.0,
                           "decay_per_step": 0.974, "steps_to_10x": float("nan")}])
    return summary, grads


def test_the_table_headers_say_per_step():
    assert BY_NAME["grad_decay_init"].header == "grad decay/step init"
    assert BY_NAME["grad_decay_final"].header == "grad decay/step final"
    summary, _ = _tables()
    header = summary_table(summary).splitlines()[0]
    assert "grad decay/step init" in header and "grad decay/step final" in header


def test_the_sentence_names_the_whole_sequence_ratio_and_the_per_step_decay_side_by_side():
    summary, grads = _tables()
    (line,) = verdicts(summary, grads, "recall accuracy")
    assert ("dL/dh at the first step is 4.9e-06 x its value at the last step over the whole sequence at init "
            "(0.613 per step), 5.2e-01 x after training (0.974 per step).") in line


def test_the_closing_words_explain_how_the_two_numbers_relate():
    summary, _ = _tables()

    class Cfg:
        task, seq_len = "copy", 20
    text = " ".join(closing_lines(summary, Cfg()))
    assert "'grad decay/step' columns" in text and "per time step" in text and "whole sequence" in text


def test_the_two_numbers_are_one_curve_per_step_to_the_power_of_the_steps():
    """What docs/results.md and the closing words claim: whole-sequence ratio = (decay per step) ** (steps back)."""
    import numpy as np

    from harness.measurements.gradflow import summarise_curve

    rng = np.random.default_rng(0)
    curve = np.cumprod(rng.uniform(1.2, 2.0, 26))       # ||dL/dh_t|| growing towards the last step, t = 0..25
    s = summarise_curve(curve)
    assert s.first / s.last == pytest.approx(s.decay_per_step ** 25, rel=1e-9)

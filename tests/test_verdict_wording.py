"""The verdict line never contradicts itself: the ratio is printed with enough digits to show its side of the
rule, and the rule is named."""

from __future__ import annotations

import pandas as pd
import pytest

from harness.reports.summary import ratio_text, verdicts

BASELINE = 2.0


def _verdict(ratio: float) -> str:
    summary = pd.DataFrame([{"cell": "lstm", "status": "ok", "reason": "", "eval_loss": ratio * BASELINE,
                             "baseline": BASELINE, "beats_baseline": ratio < 0.9, "accuracy": 0.5,
                             "solved": False}])
    gradsummary = pd.DataFrame(columns=["cell", "state", "first", "last"])
    return verdicts(summary, gradsummary, "accuracy")[0]


@pytest.mark.parametrize("ratio, verdict, shown", [
    (0.8996, "lstm beat the memoryless baseline", "0.8996 x baseline"),
    (0.90004, "lstm did NOT beat the memoryless baseline", "0.90004 x baseline"),
    (0.5, "lstm beat the memoryless baseline", "0.500 x baseline"),
    (0.9, "lstm did NOT beat the memoryless baseline", "0.9 x baseline"),
])
def test_the_printed_ratio_agrees_with_the_verdict_and_the_rule_is_named(ratio, verdict, shown):
    line = _verdict(ratio)
    assert line.startswith(verdict) and shown in line
    assert "(the rule: below 0.9 x baseline)" in line


def test_ratio_text_keeps_the_side_of_the_threshold():
    for ratio in (0.89951, 0.8999999, 0.9000001, 0.90049):
        assert (float(ratio_text(ratio)) < 0.9) == (ratio < 0.9)

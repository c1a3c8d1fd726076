"""Aggregation of a fabricated units.csv against numbers worked out by hand: intervals, paired difference, horizon.

Why [min, max] is the 95% percentile-bootstrap interval of 2 or 3 values: the resampled means that fall below the
smallest value's own resample cannot exist, and the all-min resample alone has probability 1/27 > 2.5% (1/4 for two
values), so the 2.5th and 97.5th percentiles are exactly the smallest and largest value.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from harness.sweep.aggregate import sweep_summary
from harness.sweep.grid import HorizonRule
from harness.sweep.horizon import horizon_table, horizons
from harness.sweep.stats import bootstrap_mean, wilson

# Wilson's 95% interval, from the formula by hand (z = 1.959964):
WILSON_3_OF_3 = (0.43850, 1.0)       # 3 / (3 + z^2) = 0.4385
WILSON_1_OF_3 = (0.06149, 0.79235)
WILSON_4_OF_4 = (0.51010, 1.0)       # 4 / (4 + z^2) = 0.5101: the fewest all-solved seeds that pass 0.5


def _units() -> pd.DataFrame:
    rows = []

    def add(cell, seq_len, ratios, solved, status="ok"):
        for seed, (ratio, ok) in enumerate(zip(ratios, solved)):
            rows.append({"unit": f"{cell}{seq_len}{seed}", "task": "copy", "cell": cell, "seed": seed,
                         "seq_len": seq_len, "status": status, "loss_ratio": ratio, "accuracy": 1 - ratio,
                         "grad_decay_init": 0.5, "grad_decay_final": 0.9 + seed / 100, "tokens_per_s": 1000.0 * (seed + 1),
                         "solved": ok})

    add("lstm", 10, [0.2, 0.3, 0.4], [True, True, True])
    add("lstm", 20, [0.5, 0.6, 0.95], [True, False, False])       # the interval reaches 0.9: no memory at 20
    add("gru", 10, [0.1, 0.2, 0.15, 0.12], [True, True, True, True])
    add("gru", 20, [0.3, 0.35, 0.4, 0.2], [True, True, True, False])
    add("rnn", 10, [1.0, 0.98, 1.01], [False] * 3)                 # never beats the baseline
    add("rnn", 20, [1.0, 1.0, 1.0], [False] * 3)
    add("single", 10, [0.3], [True])                               # one seed: no interval
    add("dead", 10, [math.nan] * 3, [False] * 3, status="failed")  # every unit failed
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def summary():
    return sweep_summary(_units(), ["seq_len"], reference="lstm").set_index(["cell", "seq_len"])


def test_two_or_three_values_give_min_max_and_one_value_no_interval():
    three, two = bootstrap_mean([0.2, 0.3, 0.4]), bootstrap_mean([1.0, 3.0])
    assert (three.lo, three.hi) == pytest.approx((0.2, 0.4), abs=1e-12)   # the mean of 0.2 three times
    assert (two.lo, two.hi) == (1.0, 3.0)
    one = bootstrap_mean([0.7])
    assert one.value == 0.7 and math.isnan(one.lo) and math.isnan(one.hi)
    flat = bootstrap_mean([0.5, 0.5, 0.5])
    assert (flat.lo, flat.hi) == (0.5, 0.5)
    assert bootstrap_mean([1, 2, 3, 4, 5, 6]).text == bootstrap_mean([6, 5, 4, 3, 2, 1]).text  # deterministic
    assert math.isnan(bootstrap_mean([]).value)


@pytest.mark.parametrize("k, n, expected", [(3, 3, WILSON_3_OF_3), (1, 3, WILSON_1_OF_3), (4, 4, WILSON_4_OF_4)])
def test_wilson_interval_matches_the_hand_computed_bounds(k, n, expected):
    rate = wilson(k, n)
    assert rate.value == k / n
    assert rate.lo == pytest.approx(expected[0], abs=1e-4) and rate.hi == pytest.approx(expected[1], abs=1e-4)
    assert wilson(0, 3).lo == 0.0 and math.isnan(wilson(0, 0).value)


def test_means_intervals_and_solve_rates(summary):
    lstm10 = summary.loc[("lstm", 10)]
    assert lstm10["n_seeds"] == 3 and lstm10["n_units"] == 3
    assert lstm10["loss_ratio_mean"] == pytest.approx(0.3)
    assert (lstm10["loss_ratio_lo"], lstm10["loss_ratio_hi"]) == pytest.approx((0.2, 0.4), abs=1e-12)
    assert (lstm10["tokens_per_s_lo"], lstm10["tokens_per_s_hi"]) == (1000.0, 3000.0)
    assert lstm10["solve_rate"] == 1.0 and lstm10["solve_lo"] == pytest.approx(WILSON_3_OF_3[0], abs=1e-4)
    lstm20 = summary.loc[("lstm", 20)]
    assert lstm20["solve_rate"] == pytest.approx(1 / 3) and lstm20["solve_hi"] == pytest.approx(WILSON_1_OF_3[1], abs=1e-4)
    single = summary.loc[("single", 10)]
    assert single["n_seeds"] == 1 and single["loss_ratio_mean"] == 0.3 and math.isnan(single["loss_ratio_lo"])
    dead = summary.loc[("dead", 10)]
    assert dead["n_seeds"] == 0 and dead["n_failed"] == 3 and math.isnan(dead["loss_ratio_mean"])
    assert math.isnan(dead["solve_rate"])


def test_paired_difference_with_the_reference_on_the_same_seeds(summary):
    rnn10 = summary.loc[("rnn", 10)]
    # rnn - lstm at T=10, seed by seed: 1.0-0.2, 0.98-0.3, 1.01-0.4 = 0.8, 0.68, 0.61
    assert rnn10["n_paired"] == 3 and rnn10["reference"] == "lstm"
    assert rnn10["loss_ratio_diff_mean"] == pytest.approx((0.8 + 0.68 + 0.61) / 3)
    assert (rnn10["loss_ratio_diff_lo"], rnn10["loss_ratio_diff_hi"]) == pytest.approx((0.61, 0.8))
    assert rnn10["better_fraction"] == 0.0
    gru10 = summary.loc[("gru", 10)]          # gru has a 4th seed that lstm lacks: only 3 pairs
    assert gru10["n_paired"] == 3 and gru10["better_fraction"] == 1.0
    assert gru10["loss_ratio_diff_mean"] == pytest.approx(((0.1 - 0.2) + (0.2 - 0.3) + (0.15 - 0.4)) / 3)
    assert math.isnan(summary.loc[("lstm", 10)]["loss_ratio_diff_mean"])   # the reference itself
    assert summary.loc[("single", 10)]["n_paired"] == 1


def test_memory_and_solve_horizons_with_their_sentences(summary):
    table = horizons(summary.reset_index(), ["seq_len"], HorizonRule()).set_index("cell")
    assert table.loc["lstm", "memory_horizon"] == 10      # at 20 the interval [0.5, 0.95] reaches 0.9
    assert math.isnan(table.loc["lstm", "solve_horizon"])  # 3/3 has a lower Wilson bound of 0.44 < 0.5
    assert table.loc["gru", "memory_horizon"] == 20 and table.loc["gru", "solve_horizon"] == 10  # 4/4: 0.51
    assert math.isnan(table.loc["rnn", "memory_horizon"]) and math.isnan(table.loc["rnn", "solve_horizon"])
    lstm = table.loc["lstm", "sentence"]
    assert "lstm remembers up to T = 10 of the swept 10, 20" in lstm and "[0.200, 0.400]" in lstm
    assert "at T = 20 it is [0.500, 0.950]" in lstm
    assert "beats the memoryless baseline at none of the swept T (10, 20)" in table.loc["rnn", "sentence"]
    assert "solves up to T = 10 (4/4 seeds; lower Wilson bound 0.51 >= 0.5)" in table.loc["gru", "sentence"]
    assert "one seed per length gives no confidence interval" in table.loc["single", "sentence"]
    assert "no finished units" in table.loc["dead", "sentence"]


def test_a_gap_below_the_horizon_is_named():
    units = _units()
    units.loc[(units["cell"] == "gru") & (units["seq_len"] == 10) & (units["seed"] == 0), "loss_ratio"] = 1.5
    table = horizons(sweep_summary(units, ["seq_len"], "lstm"), ["seq_len"]).set_index("cell")
    assert table.loc["gru", "memory_horizon"] == 20
    assert "(but not at T = 10, where the CI reaches 0.9)" in table.loc["gru", "sentence"]


def test_the_printed_table_has_cells_down_and_lengths_across(summary):
    text = horizon_table(summary.reset_index(), ["seq_len"])
    header, *rows = [line for line in text.splitlines() if line.strip()]
    assert "T=10" in header and "T=20" in header
    lstm = next(r for r in rows if r.startswith("lstm"))
    assert "0.30 [0.20,0.40] 3/3" in lstm and "0.68 [0.50,0.95] 1/3" in lstm
    assert next(r for r in rows if r.startswith("dead")).split()[1] == "-"


def test_other_swept_settings_give_one_horizon_each():
    units = _units()
    units = pd.concat([units.assign(lr=0.001), units.assign(lr=0.01, loss_ratio=units["loss_ratio"] * 3)])
    summary = sweep_summary(units, ["seq_len", "lr"], "lstm")
    table = horizons(summary, ["seq_len", "lr"])
    lstm = table[table["cell"] == "lstm"].set_index("lr")
    assert lstm.loc[0.001, "memory_horizon"] == 10 and np.isnan(lstm.loc[0.01, "memory_horizon"])
    assert "lstm (lr=0.001) remembers" in lstm.loc[0.001, "sentence"]

"""What a sweep leaves behind for people: the figures' data, report.md, the comparison table, the printed verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fake_cells import CountingPlugin
from harness.cli import main
from harness.plugins.registry import add_plugin, remove_plugin
from harness.sweep import plots
from harness.sweep.folder import read_sweep

TINY = ["--steps", "4", "--hidden-size", "6", "--batch-size", "4", "--task-opt", "eval_size=8", "--no-progress"]


@pytest.fixture(scope="module")
def sweep_folder(tmp_path_factory):
    """lstm and rnn on copy at T = 3 and 5, two seeds, run in-process, with figures drawn at the end."""
    plugin = CountingPlugin()
    add_plugin(plugin)
    try:
        out = tmp_path_factory.mktemp("sweep") / "s"
        assert main(["sweep", "--cells", "lstm,rnn", "--task", "copy", "--seq-len", "3,5", "--seeds", "2",
                     "--executor", "counting", "--out", str(out), *TINY]) == 0
        return out
    finally:
        remove_plugin(plugin)


@pytest.fixture(scope="module")
def sweep(sweep_folder):
    return read_sweep(sweep_folder)


def test_every_figure_plots_the_summary_with_its_band(sweep, registry):
    summary = sweep["sweep_summary"]
    figure = plots.loss_vs_length(sweep)
    ax = figure.axes[0]
    for cell in ("lstm", "rnn"):
        (line,) = [l for l in ax.get_lines() if l.get_label() == cell]
        rows = summary[summary["cell"] == cell].sort_values("seq_len")
        np.testing.assert_allclose(line.get_xdata(), rows["seq_len"])
        np.testing.assert_allclose(line.get_ydata(), rows["loss_ratio_mean"])
        assert line.get_color() == registry.cell(cell).color             # the colour of every run figure
    bands = [c for c in ax.collections]
    assert len(bands) == 2                                                # one 95% band per cell
    lows = np.sort(np.concatenate([b.get_paths()[0].vertices[:, 1] for b in bands]))
    assert lows.min() == pytest.approx(summary["loss_ratio_lo"].min())
    labels = [l.get_label() for l in ax.get_lines()]
    assert "memoryless baseline" in labels and "margin 0.9" in labels
    rate = plots.solve_rate(sweep).axes[0]
    assert rate.get_ylim()[0] < 0 < 1 < rate.get_ylim()[1]
    decay = plots.gradient_decay(sweep).axes[0]
    assert {"lstm at init", "lstm after training", "rnn at init", "rnn after training"} <= \
        {l.get_label() for l in decay.get_lines()}


def test_the_sweep_ends_with_figures_and_a_report(sweep_folder, sweep):
    for name in plots.FIGURES:
        assert (sweep_folder / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    report = (sweep_folder / "report.md").read_text()
    for sentence in sweep["horizon"]["sentence"]:
        assert sentence in report
    assert "![Memory: test loss / baseline against T](figures/loss_vs_length.png)" in report
    assert "| lstm | 3 | 2 |" in report


def test_plot_redraws_a_sweep_elsewhere(sweep_folder, tmp_path, cli):
    code, out, err = cli("plot", sweep_folder, "--out", tmp_path / "figs", "--format", "png,svg")
    assert code == 0, err
    assert (tmp_path / "figs" / "figures" / "gradient_decay.svg").exists()
    assert (tmp_path / "figs" / "report.md").exists()


def test_compare_puts_sweeps_side_by_side(sweep_folder, tmp_path, cli):
    code, out, err = cli("compare", sweep_folder, sweep_folder, "--out", tmp_path / "c")
    assert code == 0, err
    table = pd.read_csv(tmp_path / "c" / "compare.csv")
    assert len(table) == 2 * 4 and {"sweep", "cell", "seq_len", "loss_ratio_mean", "loss_ratio_lo",
                                     "loss_ratio_diff_mean"} <= set(table.columns)
    code, _, err = cli("compare", sweep_folder, tmp_path, "--out", tmp_path / "d")
    assert code == 2 and "runs with runs, or sweeps with sweeps" in err


def test_the_printed_verdict_names_every_cell(plugins, cli, tmp_path):
    plugins(CountingPlugin())
    code, out, err = cli("sweep", "--cells", "lstm,rnn", "--task", "copy", "--seq-len", "3", "--seeds", "2",
                         "--executor", "counting", "--out", tmp_path / "s", "--no-plots", *TINY)
    assert code == 0, err
    assert "task copy: test loss / memoryless baseline, mean [95% CI] over seeds, and seeds solved" in out
    assert "T=3" in out
    for cell in ("lstm", "rnn"):
        assert any(line.startswith(f"{cell} ") and line.rstrip().endswith(".") for line in out.splitlines())


def test_the_gradient_curves_read_back_from_the_units_give_each_unit_s_own_decay(sweep, sweep_folder):
    from harness.measurements.gradflow import summarise_curve
    from harness.sweep.curves import decay_table, read_curves

    curves = read_curves(sweep)
    units = sweep["units"]
    assert set(zip(curves["cell"], curves["seq_len"], curves["seed"])) == set(zip(units["cell"], units["seq_len"],
                                                                                  units["seed"]))
    one = units.iloc[0]
    own = pd.read_csv(sweep_folder / "units" / one["folder"] / "gradnorms.csv")
    own = own[(own["state"] == "h") & (own["step"] == 0)].sort_values("t")
    table = decay_table(curves)
    row = table[(table["cell"] == one["cell"]) & (table["seq_len"] == one["seq_len"]) & (table["step"] == 0)].iloc[0]
    seeds = curves[(curves["cell"] == one["cell"]) & (curves["seq_len"] == one["seq_len"]) & (curves["step"] == 0)]
    per_seed = [summarise_curve(g.sort_values("t")["norm"].to_numpy()).decay_per_step for _, g in seeds.groupby("seed")]
    assert row["seeds"] == 2 and row["decay"] == pytest.approx(np.mean(per_seed))
    assert any(summarise_curve(own["norm"].to_numpy()).decay_per_step == pytest.approx(d) for d in per_seed)
    assert row["lo"] == pytest.approx(min(per_seed)) and row["hi"] == pytest.approx(max(per_seed))  # 2 seeds

    figure = plots.gradient_curves(sweep)
    left = figure.axes[0]
    (line,) = [l for l in left.get_lines() if l.get_label() == one["cell"]]
    longest = curves[(curves["cell"] == one["cell"]) & (curves["seq_len"] == curves["seq_len"].max())
                     & (curves["step"] == 0)]
    np.testing.assert_allclose(line.get_ydata(), longest.groupby("t")["norm"].median())

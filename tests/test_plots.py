"""Figures and reports: the data behind every axis matches the run's tables."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from harness.cli import main
from harness.reports import plots
from harness.reports.results import read_run

TINY = ["--seq-len", "3", "--hidden-size", "8", "--batch-size", "8", "--task-opt", "eval_size=32", "--no-progress"]


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """One tiny copy run of lstm and rnn, with figures made by 'run' itself (the default)."""
    folder = tmp_path_factory.mktemp("plots") / "run"
    code = main(["run", "--cells", "lstm,rnn", "--task", "copy", "--steps", "12", "--log-every", "3",
                 "--grad-at", "6", "--out", str(folder), *TINY])
    assert code == 0
    return folder


@pytest.fixture(scope="module")
def run(run_folder):
    return read_run(run_folder)


def _lines(ax) -> dict[str, object]:
    return {line.get_label(): line for line in ax.get_lines()}


def test_run_makes_figures_and_a_report_by_default(run_folder):
    for name in ("learning_curves", "gradient_flow", "throughput", "gates"):  # gates: copy's, for lstm
        assert (run_folder / "figures" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (run_folder / "report.md").read_text()
    for name in ("learning_curves", "gradient_flow", "throughput", "gates"):
        assert f"](figures/{name}.png)" in report
    summary = pd.read_csv(run_folder / "summary.csv")
    for row in summary.itertuples():
        assert (f"| {row.cell} | ok | 3 | {row.hidden_size} | {row.params} | 12 | {row.loss:.4f} | "
                f"{row.eval_loss:.4f} |") in report
    assert f"memoryless baseline loss {summary['baseline'][0]:.4f}" in report


def test_learning_curves_plot_the_logged_metrics_and_the_baseline(run):
    fig = plots.learning_curves(run)
    ax_loss, ax_acc = fig.axes
    lines = _lines(ax_loss)
    metrics = run["metrics"]
    for cell in ("lstm", "rnn"):
        for metric, label in (("train_loss", f"{cell} train"), ("val_loss", f"{cell} validation")):
            want = metrics[(metrics["cell"] == cell) & (metrics["metric"] == metric)].sort_values("step")
            assert len(want) == 4  # steps 3, 6, 9, 12
            np.testing.assert_array_equal(lines[label].get_xdata(), want["step"].to_numpy())
            np.testing.assert_allclose(lines[label].get_ydata(), want["value"].to_numpy())
        acc = metrics[(metrics["cell"] == cell) & (metrics["metric"] == "val_accuracy")].sort_values("step")
        np.testing.assert_allclose(_lines(ax_acc)[f"{cell} validation"].get_ydata(), acc["value"].to_numpy())
    baseline = [line for label, line in lines.items() if label.startswith("memoryless baseline")]
    assert len(baseline) == 1
    expected = 3 * math.log(8) / (3 + 6)  # copy: N ln K / (T + 2N), N = 3 by default
    assert run["config"]["baseline"] == pytest.approx(expected)
    np.testing.assert_allclose(baseline[0].get_ydata(), [expected, expected])
    for ax in (ax_loss, ax_acc):
        assert ax.get_xlabel() == "training step" and ax.get_ylabel() and ax.get_legend() is not None
    assert "nats" in ax_loss.get_ylabel()


def test_gradient_flow_is_log_scale_with_one_curve_per_cell_and_recorded_step(run):
    fig = plots.gradient_flow(run)
    grads = run["gradnorms"]
    assert [ax.get_title() for ax in fig.axes] == ["gradient reaching h_t", "gradient reaching c_t"]
    ax_h, ax_c = fig.axes
    for ax in (ax_h, ax_c):
        assert ax.get_yscale() == "log"
        assert "time step" in ax.get_xlabel() and "log scale" in ax.get_ylabel()
    labels = {"lstm init", "lstm step 6", "lstm step 12 (final)", "rnn init", "rnn step 6", "rnn step 12 (final)"}
    assert set(_lines(ax_h)) == labels
    assert set(_lines(ax_c)) == {label for label in labels if label.startswith("lstm")}  # rnn has no c
    for label, line in _lines(ax_h).items():
        cell, step = label.split()[0], {"init": 0, "6": 6}.get(label.split()[-1], 12)
        want = grads[(grads["cell"] == cell) & (grads["step"] == step) & (grads["state"] == "h")].sort_values("t")
        assert len(want) == 3 + 6  # T + 2N steps, N = 3
        np.testing.assert_array_equal(line.get_xdata(), want["t"].to_numpy())
        norms = want["norm"].to_numpy()
        np.testing.assert_allclose(line.get_ydata(), np.where(norms > 0, norms, np.nan))
    assert _lines(ax_h)["lstm init"].get_linestyle() == "--" and _lines(ax_h)["lstm step 12 (final)"].get_linestyle() == "-"


def test_throughput_bars_are_the_summary_numbers(run):
    fig = plots.throughput(run)
    (ax,) = fig.axes
    summary = run["summary"]
    bars = ax.containers  # one BarContainer per cell, labelled with it
    assert len(bars) == len(summary)
    for bar, row in zip(bars, summary.itertuples()):
        assert bar.get_label() == row.cell
        assert bar.patches[0].get_width() == pytest.approx(row.tokens_per_s)
    assert "tokens/s" in ax.get_xlabel() and ax.get_legend() is not None


def test_cells_without_a_throughput_say_why(run):
    summary = run["summary"].copy()
    summary.loc[1, ["tokens_per_s", "status"]] = [float("nan"), "skipped"]
    fig = plots.throughput({**run, "summary": summary})
    bars = fig.axes[0].containers
    assert bars[0].patches[0].get_width() == pytest.approx(summary["tokens_per_s"][0])
    assert bars[1].patches[0].get_width() == 0
    assert "no figure (skipped)" in [t.get_text().strip() for t in fig.axes[0].texts]


def test_each_cell_keeps_its_colour_in_every_figure(run, registry):
    from matplotlib.colors import to_hex
    figs = [plots.learning_curves(run), plots.gradient_flow(run)]
    for cell in ("lstm", "rnn"):
        colours = {to_hex(line.get_color()) for fig in figs for ax in fig.axes for line in ax.get_lines()
                   if line.get_label().split()[0] == cell}
        colours |= {to_hex(bar.patches[0].get_facecolor()) for bar in plots.throughput(run).axes[0].containers
                    if bar.get_label() == cell}
        assert colours == {registry.cell(cell).color}            # the colour the cell's spec declares
    assert registry.cell("lstm").color != registry.cell("rnn").color


def test_plugin_cell_colours_are_stable_across_processes(registry):
    """Hash-based colours must not depend on Python's per-process salted hash()."""
    names = ["peephole-lstm", "leaky-rnn", "indrnn", "my.cell_2"]
    # Load plots.py by path (it imports no torch), in a process with another hash seed.
    code = ("import importlib.util as u; s = u.spec_from_file_location('p', sys.argv[1]); m = u.module_from_spec(s); "
            f"s.loader.exec_module(m); print(','.join(m.cell_color(n) for n in {names!r}))")
    out = subprocess.run([sys.executable, "-c", "import sys; " + code, plots.__file__], capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "12345"}).stdout.strip()
    assert out == ",".join(plots.cell_color(n) for n in names)
    declared = {r.spec.color for r in registry.cells.values()}
    for name in names:
        assert plots.cell_color(name) not in declared          # a plugin's cell never looks like a built-in
        assert plots.cell_color(name, {name: "#123456"}) == "#123456"


def _with_gates(run_folder, tmp_path, layers=(0,)):
    folder = tmp_path / "gaterun"
    shutil.copytree(run_folder, folder, ignore=shutil.ignore_patterns("figures", "report.*"))
    tokens = ["amazing", "movie", "!", "full", "of", "surprises"]
    rng = np.random.default_rng(0)
    # the columns tasks/sentiment writes, plus a layer column to check that the top layer is shown
    rows = [{"cell": cell, "review": review, "origin": "test", "position": pos, "token": tok, "in_vocab": True,
             "label": review % 2, "p_positive": 0.5, "prediction": 0.5, "layer": layer, "forget": rng.random(),
             "input": rng.random(), "output": rng.random(), "candidate": rng.random() - 0.5}
            for cell in ("lstm", "rnn") for review in (0, 1) for layer in layers
            for pos, tok in reversed(list(enumerate(tokens)))]  # written out of order on purpose
    pd.DataFrame(rows).to_csv(folder / "gates.csv", index=False)
    return folder


def test_gate_heatmap_shows_the_gate_means_per_token(run_folder, run, tmp_path):
    assert plots.gate_heatmap({k: v for k, v in run.items() if k != "gates"}) is None  # no gates.csv: no figure
    folder = _with_gates(run_folder, tmp_path, layers=(0, 1))
    gated = read_run(folder)
    fig = plots.gate_heatmap(gated, review=1)
    axes = [ax for ax in fig.axes if ax.images]
    assert len(axes) == 4  # per cell: the gates in [0, 1], then the signed candidate on its own scale
    gates = gated["gates"]
    for (unit, signed), cell in zip(zip(axes[::2], axes[1::2]), ("lstm", "rnn")):
        want = gates[(gates["cell"] == cell) & (gates["review"] == 1) & (gates["layer"] == 1)].sort_values("position")
        np.testing.assert_allclose(unit.images[0].get_array(), want[["forget", "input", "output"]].to_numpy().T)
        np.testing.assert_allclose(signed.images[0].get_array(), want[["candidate"]].to_numpy().T)
        assert unit.images[0].get_clim() == (0.0, 1.0)
        low, high = signed.images[0].get_clim()   # no fixed range (minGRU's candidate is unbounded): fitted, symmetric
        assert low == -high and high >= np.abs(want["candidate"]).max()
        assert [t.get_text() for t in unit.get_xticklabels()] == want["token"].tolist()
        assert [t.get_text() for t in unit.get_yticklabels()] == ["forget gate", "input gate", "output gate"]
        assert [t.get_text() for t in signed.get_yticklabels()] == ["candidate gate"]  # never dropped
        assert unit.get_ylabel() == cell and "token" in unit.get_xlabel()
    assert any("gate activation" in ax.get_ylabel() for ax in fig.axes if not ax.images)  # the colour bar
    with pytest.raises(ValueError, match="review '7' is not in gates.csv"):
        plots.gate_heatmap(gated, review="7")


def test_plot_command_writes_formats_into_out_and_an_html_report(run_folder, tmp_path, cli):
    gated = _with_gates(run_folder, tmp_path)
    out = tmp_path / "figs"
    code, stdout, err = cli("plot", gated, "--out", out, "--format", "png,svg,pdf", "--report", "html")
    assert code == 0, err
    names = ["learning_curves", "gradient_flow", "throughput", "gates"]
    for name in names:
        assert (out / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert "<svg" in (out / "figures" / f"{name}.svg").read_text()[:2000]
        assert (out / "figures" / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
    html = (out / "report.html").read_text()
    assert all(f'src="figures/{name}.png"' in html for name in names)
    assert "<td>lstm</td>" in html and "<td>rnn</td>" in html
    assert not (gated / "figures").exists() and not (gated / "report.md").exists()  # --out leaves the run alone
    assert stdout.strip().endswith(str(out / "report.html"))


def test_several_runs_go_to_one_sub_folder_each_under_out(tmp_path):
    from harness.commands.plot import destinations
    a, b, c = tmp_path / "x" / "run1", tmp_path / "x" / "run2", tmp_path / "y" / "run1"
    assert destinations([a, b], None) == [a, b]
    assert destinations([a], tmp_path / "o") == [tmp_path / "o"]
    assert destinations([a, b, c], tmp_path / "o") == [tmp_path / "o" / "x-run1", tmp_path / "o" / "run2",
                                                       tmp_path / "o" / "y-run1"]


def test_plot_command_errors_are_one_line(tmp_path, run_folder, cli):
    code, _, err = cli("plot", tmp_path)
    assert code == 2 and "not a run folder" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("plot", run_folder, "--format", "png,gif")
    assert code == 2 and "choose from png, svg, pdf" in err and len(err.strip().splitlines()) == 1


def test_no_plots_and_a_plotting_failure_never_lose_the_run(tmp_path, cli, monkeypatch):
    args = ["--cells", "rnn", "--task", "adding", "--steps", "2", "--seq-len", "3", "--hidden-size", "4", "--no-progress"]
    code, _, _ = cli("run", *args, "--out", tmp_path / "quiet", "--no-plots")
    assert code == 0 and (tmp_path / "quiet" / "summary.csv").exists()
    assert not (tmp_path / "quiet" / "figures").exists() and not (tmp_path / "quiet" / "report.md").exists()

    def broken(folder, *a, **k):
        raise RuntimeError("no fonts here\nsecond line")

    monkeypatch.setattr("harness.reports.report.render", broken)
    code, out, err = cli("run", *args, "--out", tmp_path / "loud")
    assert code == 0 and (tmp_path / "loud" / "summary.csv").exists()
    warning = [line for line in err.splitlines() if "figures not made" in line]
    assert len(warning) == 1 and "RuntimeError: no fonts here" in warning[0] and "harness plot" in warning[0]
    assert "second line" not in err

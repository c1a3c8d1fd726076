"""``bench --scaling DIM=V1,V2,...``: parsing, the log-log slope fit, and a tiny sweep through the CLI that writes
``scaling.csv`` and ``scaling.png``."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from harness.contract.errors import HarnessError
from harness.measurements.bench import Shape
from harness.measurements.scaling import Scaling, fit_slope, parse_scaling, scaling_table
from harness.reports.scaling_plots import scaling_figure


@pytest.mark.parametrize("text, dimension, values", [
    ("T=100,300,1000", "T", (100, 300, 1000)),
    ("h=128, 32,64", "H", (32, 64, 128)),                  # any case, any order, spaces: sorted
    ("B=1,4,4,16", "B", (1, 4, 16)),                       # repeats dropped
    ("I=8,16", "I", (8, 16)),
])
def test_parse_scaling(text, dimension, values):
    assert parse_scaling(text) == Scaling(dimension, values)


@pytest.mark.parametrize("text, says", [
    ("T100,300", "write DIM=V1,V2,... with DIM one of T, B, I, H"),
    ("X=1,2", "the dimension must be one of T, B, I, H (not 'X')"),
    ("T=100,abc", "the values must be whole numbers from 1 to 1000000"),
    ("T=0,10", "the values must be whole numbers from 1 to 1000000"),
    ("T=", "the values must be whole numbers"),
    ("T=100", "give at least two different values to fit a slope"),
    ("T=100,100", "give at least two different values to fit a slope"),
])
def test_bad_scaling_specs_name_the_fix(text, says):
    with pytest.raises(HarnessError) as caught:
        parse_scaling(text)
    message = str(caught.value)
    assert says in message and "e.g. T=100,300,1000" in message and "\n" not in message


def test_bad_specs_through_the_cli_exit_2_with_one_line(cli, tmp_path):
    code, out, err = cli("bench", "--cells", "rnn", "--scaling", "Q=1,2", "--out", tmp_path / "a")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "bad --scaling 'Q=1,2'" in err
    code, _, err = cli("bench", "--cells", "rnn", "--scaling", "T=4,8", "--shapes", "4x2x3x4,8x2x3x4",
                       "--out", tmp_path / "b")
    assert code == 2 and "--scaling sweeps one base shape: give --shapes a single T x B x I x H" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_shapes_of_a_sweep():
    base = Shape(100, 8, 32, 64)
    assert Scaling("T", (10, 20)).shapes(base) == [Shape(10, 8, 32, 64), Shape(20, 8, 32, 64)]
    assert Scaling("H", (16, 32)).shapes(base) == [Shape(100, 8, 32, 16), Shape(100, 8, 32, 32)]


def test_fit_slope_on_power_laws():
    x = np.array([100, 300, 1000, 3000])
    assert fit_slope(x, 3e-6 * x) == pytest.approx(1.0)
    assert fit_slope(x, 5.0 * x ** 2) == pytest.approx(2.0)
    assert fit_slope(x, 0.5 * x ** 0.5) == pytest.approx(0.5)
    assert fit_slope(x, np.full(4, 7.0)) == pytest.approx(0.0, abs=1e-12)


def test_fit_slope_is_least_squares_on_the_logs():
    x = np.array([1.0, 10.0, 100.0])
    y = np.array([1.0, 100.0, 1000.0])                     # log10 y = 0, 2, 3 at log10 x = 0, 1, 2
    assert fit_slope(x, y) == pytest.approx(np.polyfit([0, 1, 2], [0, 2, 3], 1)[0]) == pytest.approx(1.5)


def test_fit_slope_skips_points_a_log_cannot_take():
    x = [10, 20, 40, 80]
    assert fit_slope(x, [1.0, 2.0, math.nan, 8.0]) == pytest.approx(1.0)
    assert fit_slope(x, [0.0, 2.0, 4.0, 8.0]) == pytest.approx(1.0)
    assert math.isnan(fit_slope(x, [math.nan, 2.0, math.nan, 0.0]))     # one point: no line
    assert math.isnan(fit_slope([5, 5], [1.0, 2.0]))                     # one x: no line


def fabricated_bench() -> pd.DataFrame:
    """lstm linear in T (time and memory), rnn quadratic in time; one noisy point; gru failed."""
    rows = []
    for T in (10, 20, 40):
        for cell, time_per, power in (("lstm", 1e-4, 1), ("rnn", 1e-6, 2)):
            for p, factor in (("forward", 1.0), ("forward+backward", 3.0)):
                median = factor * time_per * T ** power
                rows.append({"cell": cell, "pass": p, "T": T, "B": 2, "I": 3, "H": 4, "median_s": median,
                             "q25_s": median, "q75_s": median, "tokens_per_s": 2 * T / median,
                             "peak_mem_bytes": 1000.0 * T * factor, "noisy": cell == "rnn" and T == 20,
                             "status": "ok"})
        rows.append({"cell": "gru", "pass": "forward", "T": T, "B": 2, "I": 3, "H": 4, "status": "failed"})
    return pd.DataFrame(rows)


def test_the_scaling_table_fits_each_cell_and_pass():
    table = scaling_table(fabricated_bench(), Scaling("T", (10, 20, 40)))
    assert set(table["cell"]) == {"lstm", "rnn"} and len(table) == 12          # the failed cell has no point
    fits = table.groupby(["cell", "pass"])[["time_slope", "memory_slope"]].first()
    assert fits.loc[("lstm", "forward+backward"), "time_slope"] == pytest.approx(1.0)
    assert fits.loc[("rnn", "forward"), "time_slope"] == pytest.approx(2.0)
    assert list(fits["memory_slope"]) == pytest.approx([1.0] * 4)
    assert list(table["value"][:3]) == [10, 20, 40]


def test_the_figure_plots_every_cell_in_its_colour_with_its_slope():
    table = scaling_table(fabricated_bench(), Scaling("T", (10, 20, 40)))
    fig = scaling_figure(table, {"lstm": "#1f77b4", "rnn": "#d62728"}, "title")
    time_ax, memory_ax = fig.axes[:2]
    assert time_ax.get_xscale() == "log" and time_ax.get_yscale() == "log"
    lines = {line.get_label(): line for line in time_ax.get_lines() if not line.get_label().startswith("_")}
    assert lines["lstm fwd+bwd (slope 1.00)"].get_color() == "#1f77b4"
    assert lines["rnn fwd (slope 2.00)"].get_color() == "#d62728"
    assert list(lines["rnn fwd (slope 2.00)"].get_xdata()) == [10, 20, 40]
    assert "slope 1 (linear)" in lines
    memory = {line.get_label(): line for line in memory_ax.get_lines() if not line.get_label().startswith("_")}
    assert memory["lstm fwd (slope 1.00)"].get_ydata() == pytest.approx(np.array([10e3, 20e3, 40e3]) / 2 ** 20)
    hollow = [line for line in time_ax.get_lines() if line.get_markerfacecolor() == "white" and len(line.get_xdata())]
    assert [list(line.get_xdata()) for line in hollow] == [[20], [20]]        # rnn's noisy point, both passes
    assert "open markers: noisy" in fig._suptitle.get_text()


def test_a_tiny_sweep_through_the_cli(cli, tmp_path):
    folder = tmp_path / "curves"
    code, out, err = cli("bench", "--cells", "lstm,rnn", "--scaling", "T=4,8", "--shapes", "4x2x3x4",
                         "--repeats", "2", "--warmup", "0", "--out", folder)
    assert code == 0, err
    bench = pd.read_csv(folder / "bench.csv")
    assert sorted(set(bench["T"])) == [4, 8] and (bench["status"] == "ok").all()
    assert (bench["gate"] == "passed").all()                                   # checked at every shape
    table = pd.read_csv(folder / "scaling.csv")
    assert len(table) == 8 and set(table["dimension"]) == {"T"} and sorted(set(table["value"])) == [4, 8]
    assert table["time_slope"].notna().all() and table["memory_slope"].notna().all()
    assert (table["peak_mem_bytes"] > 0).all()
    assert (folder / "scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "log-log slopes against T (1 = linear):" in out and "scaling.png" in out


def test_help_documents_the_new_options(cli):
    code, out, _ = cli("bench", "--help")
    text = " ".join(out.split())
    assert code == 0
    assert "--scaling DIM=V1,V2,..." in text and "T=100,300,1000,3000" in text
    assert "--no-memory" in text and "noisy" in text

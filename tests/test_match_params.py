"""``--match-params N``: each cell's width gives its whole model about N parameters (within 2 %, or the nearest
reachable, said so); the widths and counts are printed and recorded; a budget below a cell's minimum is one line."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from fake_cells import CountingExecutor, CountingPlugin
from harness.contract.errors import HarnessError
from harness.run.config import resolve_config
from harness.run.runner import make_task
from harness.run.widths import TOLERANCE, match_width, param_count

TINY = ["--steps", "4", "--batch-size", "4", "--task-opt", "eval_size=8", "--no-progress", "--no-plots"]


@pytest.fixture
def copy_task(registry):
    spec = registry.task("copy")
    return make_task(spec, resolve_config(spec, ["lstm"]))


def test_the_count_is_the_built_model_s_head_and_cell(registry, copy_task):
    from harness.plugins.model import TaskModel, build_cell
    head = copy_task.make_head(37)
    model = TaskModel(head, build_cell(registry.cell("gru"), head.input_size, 37))
    assert param_count(registry.cell("gru"), copy_task, 37) == sum(p.numel() for p in model.parameters())
    cell_alone = sum(p.numel() for p in model.cell.parameters())
    assert cell_alone == 3 * 37 * (head.input_size + 37 + 2)            # nn.GRU: 3 gates, two biases each
    assert param_count(registry.cell("gru"), copy_task, 37) > cell_alone  # the head counts too


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "mingru"])
def test_every_cell_lands_within_the_tolerance_or_on_the_nearest_width(registry, copy_task, cell):
    target = 20_000
    width = match_width(registry.cell(cell), copy_task, target)
    assert width.params == param_count(registry.cell(cell), copy_task, width.hidden_size)
    assert abs(width.params - target) / target <= TOLERANCE
    for other in (width.hidden_size - 1, width.hidden_size + 1):   # no neighbour is nearer
        assert abs(param_count(registry.cell(cell), copy_task, other) - target) >= abs(width.params - target)


def test_a_cell_whose_width_comes_in_steps_gets_a_multiple(registry, copy_task):
    spec = registry.cell("slstm") if "slstm" in registry.cells else None
    if spec is None or spec.missing_requirements():
        pytest.skip("slstm needs the xlstm extra")
    width = match_width(spec, copy_task, 30_000)
    assert width.hidden_size % spec.hidden_multiple == 0
    if not width.within:
        assert "the nearest reachable" in width.describe()


def test_below_the_narrowest_model_is_an_error_naming_the_minimum(registry, copy_task):
    smallest = param_count(registry.cell("lstm"), copy_task, 1)
    with pytest.raises(HarnessError, match=f"has {smallest:,} parameters at its narrowest width"):
        match_width(registry.cell("lstm"), copy_task, smallest // 2)


def test_a_run_prints_and_records_the_widths(cli, tmp_path):
    out = tmp_path / "run"
    code, stdout, err = cli("run", "--cells", "lstm,rnn", "--task", "copy", "--match-params", "6000", "--out", out,
                            *TINY)
    assert code == 0, err
    assert "--match-params 6,000: lstm H=" in stdout and "; rnn H=" in stdout
    config = json.loads((out / "config.json").read_text())
    summary = pd.read_csv(out / "summary.csv").set_index("cell")
    assert config["match_params"] == 6000
    assert config["cell_hidden"] == {c: int(summary.loc[c, "hidden_size"]) for c in ("lstm", "rnn")}
    assert summary.loc["rnn", "hidden_size"] > summary.loc["lstm", "hidden_size"]     # rnn: 1 gate, so wider
    for cell in ("lstm", "rnn"):
        assert abs(summary.loc[cell, "params"] - 6000) / 6000 <= TOLERANCE


def test_bad_budgets_are_one_line_exit_2(cli, tmp_path):
    code, _, err = cli("run", "--cells", "lstm", "--task", "copy", "--match-params", "10", "--out", tmp_path / "a",
                       *TINY)
    assert code == 2 and "--match-params 10: lstm has" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "a").exists()                            # refused before the folder was made
    code, _, err = cli("run", "--cells", "lstm", "--task", "copy", "--match-params", "5000", "--hidden-size", "8",
                       "--out", tmp_path / "b", *TINY)
    assert code == 2 and "give it or --hidden-size, not both" in err


def test_a_sweep_matches_each_cell_and_keeps_the_width_out_of_the_grid(plugins, cli, tmp_path):
    plugins(CountingPlugin())
    CountingExecutor.ran = []
    out = tmp_path / "s"
    code, stdout, err = cli("sweep", "--cells", "lstm,gru", "--task", "copy", "--seq-len", "3", "--seeds", "2",
                            "--match-params", "5000", "--executor", "counting", "--out", out, *TINY)
    assert code == 0, err
    assert "--match-params: lstm H=" in stdout and "gru H=" in stdout
    units = pd.read_csv(out / "units.csv")
    assert (abs(units["params"] - 5000) / 5000 <= TOLERANCE).all()
    summary = pd.read_csv(out / "sweep_summary.csv")
    assert len(summary) == 2 and "hidden_size" not in summary.columns   # one point per cell, not one per width


@pytest.mark.parametrize("cell, hidden, params", [("lstm", 102, 50_402), ("gru", 118, 49_810), ("rnn", 208, 49_934),
                                                  ("mingru", 1041, 49_982), ("mamba", 79, 50_179),
                                                  ("slstm", 152, 52_302)])
def test_the_widths_docs_sweeps_md_quotes_for_selective_copy(registry, cell, hidden, params):
    spec = registry.cell(cell)
    if spec.missing_requirements():
        pytest.skip(f"{cell} needs its extra")
    task_spec = registry.task("selective-copy")
    width = match_width(spec, make_task(task_spec, resolve_config(task_spec, [cell])), 50_000)
    assert (width.hidden_size, width.params) == (hidden, params)

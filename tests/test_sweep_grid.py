"""Sweeps: grid expansion, unit identity, resume, refusal, retry; counted with an in-process executor plugin."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from harness.contract.errors import HarnessError
from harness.sweep.grid import SweepSpec, expand, parse_seeds, unit_id
from harness.sweep.order import longest_first
from fake_cells import CountingExecutor, CountingPlugin, MisbehavingPlugin

TINY = ["--steps", "4", "--hidden-size", "6", "--batch-size", "4", "--task-opt", "eval_size=8", "--no-progress",
        "--no-plots"]


@pytest.fixture
def counting(plugins):
    plugins(CountingPlugin())
    CountingExecutor.ran = []
    return CountingExecutor


def test_seeds_parse_as_a_count_a_range_or_a_list():
    assert parse_seeds("3") == [0, 1, 2]
    assert parse_seeds("10:13") == [10, 11, 12]
    assert parse_seeds("4,1,4") == [4, 1]
    for bad in ("0", "x", "-1,2", "5:5"):
        with pytest.raises(HarnessError, match="--seeds"):
            parse_seeds(bad)


def test_expansion_is_the_product_ordered_seed_by_seed(registry, tmp_path):
    spec = SweepSpec(task="copy", cells=["lstm", "rnn"], seeds=[0, 1], settings={"seq_len": [5, 10], "steps": [3]},
                     task_options={"copy_len": [2, 3]})
    units = expand(spec, registry, tmp_path, threads=1)
    assert len(units) == 2 * 2 * 2 * 2                              # cells x T x copy_len x seeds
    assert [u.seed for u in units] == [0] * 8 + [1] * 8             # whole seeds first: a partial sweep is balanced
    assert len({u.id for u in units}) == 16 and len({u.folder for u in units}) == 16
    first = units[0]
    assert first.point == {"seq_len": 5, "copy_len": 2} and first.config["steps"] == 3
    assert first.config["task_options"] == {"n_symbols": 8, "copy_len": 2, "eval_size": 512}
    assert first.config["cells"] == ["lstm"] and first.config["threads"] == 1


def test_units_start_seed_by_seed_longest_first_and_finished_units_teach_each_cells_speed(registry, tmp_path):
    spec = SweepSpec(task="copy", cells=["lstm", "rnn"], seeds=[0, 1], settings={"seq_len": [5, 20]})
    units = expand(spec, registry, tmp_path, threads=1)
    order = [(u.seed, u.point["seq_len"]) for u in longest_first(units)]
    assert order == [(0, 20)] * 2 + [(0, 5)] * 2 + [(1, 20)] * 2 + [(1, 5)] * 2   # no long unit left for the end
    assert sorted(u.id for u in longest_first(units)) == sorted(u.id for u in units)
    # A finished unit says rnn took 10x lstm's time per unit of work: rnn's T=5 now outranks lstm's T=20.
    by_label = {u.label: u for u in units}
    known = {u.id: {"cell": u.cell, "config": dict(u.config), "result": {"status": "ok", "wall_s": w}}
             for u, w in ((by_label["lstm (seq_len=5, seed 0)"], 1.0), (by_label["rnn (seq_len=5, seed 0)"], 10.0))}
    first_seed = [(u.cell, u.point["seq_len"]) for u in longest_first(units, known)[:4]]
    assert first_seed == [("rnn", 20), ("rnn", 5), ("lstm", 20), ("lstm", 5)]


def test_unit_identity_is_the_resolved_settings_not_the_grid_or_the_threads(registry, tmp_path):
    narrow = SweepSpec(task="copy", cells=["lstm"], seeds=[0], settings={"seq_len": [5]})
    wide = SweepSpec(task="copy", cells=["rnn", "lstm"], seeds=[1, 0], settings={"seq_len": [10, 5], "lr": [5e-3]})
    (alone,) = expand(narrow, registry, tmp_path, threads=1)
    again = {u.label: u.id for u in expand(wide, registry, tmp_path, threads=2)}
    assert again["lstm (seq_len=5, seed 0)"] == alone.id            # lr 5e-3 is copy's default: the same unit
    assert unit_id({**alone.config, "threads": 8}) == alone.id
    assert unit_id({**alone.config, "steps": 1}) != alone.id


@pytest.mark.parametrize("spec, message", [
    (dict(settings={"colour": [1]}), "unknown setting 'colour'"),
    (dict(settings={"device": ["cpu", "cuda"]}), "--device cannot be swept"),
    (dict(cell_settings={"rnn": {"hidden_size": 8}}), "not among the swept cells"),
    (dict(settings={"hidden_size": [4, 8]}, cell_settings={"lstm": {"hidden_size": 8}}), "both swept and set"),
    (dict(cells=["lsmt"]), "unknown cell 'lsmt'"),
    (dict(task_options={"colour": [1]}), "unknown option"),
])
def test_bad_grids_are_one_line_errors(registry, tmp_path, spec, message):
    values = dict(task="copy", cells=["lstm"], seeds=[0])
    values.update(spec)
    with pytest.raises(HarnessError, match=message):
        expand(SweepSpec(**values), registry, tmp_path, threads=1)


def test_a_second_identical_call_runs_nothing_and_a_widened_grid_only_the_new_units(counting, cli, tmp_path):
    out = tmp_path / "s"
    args = ["sweep", "--cells", "lstm,rnn", "--task", "copy", "--seq-len", "3", "--seeds", "2", "--executor",
            "counting", "--out", out, *TINY]
    code, stdout, err = cli(*args)
    assert code == 0, err
    assert len(counting.ran) == 4
    counting.ran.clear()
    code, stdout, _ = cli(*args)
    assert code == 0 and counting.ran == []                        # everything finished: nothing runs
    assert "4 of 4 units already finished" in stdout
    wider = [a if a != "3" else "3,4" for a in args]
    code, _, _ = cli(*wider[:wider.index("2")], "3", *wider[wider.index("2") + 1:])
    assert code == 0
    assert counting.ran[:2] == [f"{c} (seq_len=4, seed 0)" for c in ("lstm", "rnn")]  # the longer units first
    assert sorted(counting.ran) == sorted([f"{c} (seq_len=3, seed 2)" for c in ("lstm", "rnn")]
                                          + [f"{c} (seq_len=4, seed {s})" for c in ("lstm", "rnn") for s in (0, 1, 2)])
    units = pd.read_csv(out / "units.csv")
    assert len(units) == 12 and set(units["status"]) == {"ok"}
    assert set(units.columns) >= {"unit", "cell", "seed", "seq_len", "status", "loss_ratio", "tokens_per_s"}
    summary = pd.read_csv(out / "sweep_summary.csv")
    assert sorted(zip(summary["cell"], summary["seq_len"], summary["n_seeds"])) == \
        [("lstm", 3, 3), ("lstm", 4, 3), ("rnn", 3, 3), ("rnn", 4, 3)]
    for unit in units.itertuples():                                # each unit folder is a run folder
        assert (out / "units" / unit.folder / "config.json").exists()
        assert (out / "units" / unit.folder / "summary.csv").exists()
    assert "seq_len = [3, 4]" in (out / "sweep.toml").read_text()


def test_a_folder_of_another_task_or_not_a_sweep_is_refused(counting, cli, tmp_path):
    out = tmp_path / "s"
    code, _, err = cli("sweep", "--cells", "lstm", "--task", "copy", "--seq-len", "3", "--seeds", "1",
                       "--executor", "counting", "--out", out, *TINY)
    assert code == 0, err
    code, _, err = cli("sweep", "--cells", "lstm", "--task", "adding", "--seq-len", "4", "--seeds", "1",
                       "--executor", "counting", "--out", out, *TINY)
    assert code == 2 and "holds a sweep of task 'copy', not 'adding'" in err
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    code, _, err = cli("sweep", "--cells", "lstm", "--task", "copy", "--seeds", "1", "--executor", "counting",
                       "--out", other, *TINY)
    assert code == 2 and "holds no sweep.json" in err
    assert len(counting.ran) == 1


def test_failed_units_exit_1_and_run_again_only_with_retry_failed(counting, plugins, cli, tmp_path):
    plugins(MisbehavingPlugin())
    out = tmp_path / "s"
    args = ["sweep", "--cells", "rnn,raising-cell", "--task", "adding", "--seq-len", "4", "--seeds", "1",
            "--reference", "rnn", "--executor", "counting", "--out", out, *TINY]
    code, _, err = cli(*args)
    assert code == 1
    assert "raising-cell" in err and "boom inside the plugin" in err and "--retry-failed" in err
    assert "Traceback" not in err
    counting.ran.clear()
    assert cli(*args)[0] == 1 and counting.ran == []               # failed units are not repeated by default
    assert cli(*args, "--retry-failed")[0] == 1
    assert counting.ran == ["raising-cell (seed 0)"]               # only the failed one runs again
    result = json.loads(next((out / "units").glob("raising-cell-*/result.json")).read_text())
    assert result["status"] == "failed" and "boom" in result["reason"]


def test_a_missing_extra_is_one_line_naming_the_install(monkeypatch, cli, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    code, out, err = cli("sweep", "--cells", "lstm", "--task", "copy", "--seeds", "1", "--executor", "ray",
                         "--out", tmp_path / "s", *TINY)
    assert code == 2
    assert err.strip().splitlines() == ["harness sweep: error: --executor ray needs the ray package; install it "
                                        "with: pip install 'rnn-harness[ray]'"]
    assert not (tmp_path / "s").exists()


def test_an_unknown_executor_lists_the_valid_ones(cli, tmp_path):
    code, _, err = cli("sweep", "--cells", "lstm", "--task", "copy", "--executor", "dask", "--out", tmp_path / "s")
    assert code == 2 and "unknown executor 'dask'; valid executors: local, ray, submitit" in err

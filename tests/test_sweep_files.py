"""Sweep files: the TOML format, its one-line validation errors, and the command line overriding the file."""

from __future__ import annotations

import pandas as pd
import pytest

from fake_cells import CountingPlugin
from harness.contract.errors import HarnessError
from harness.plugins.registry import load_registry
from harness.run.config import task_defaults
from harness.sweep.files import SweepRequest, load

FULL = """
# a study
task = "copy"
cells = ["lstm", "rnn"]
seeds = 2
reference = "lstm"
grad_at = [2]

[settings]
seq_len = [3, 5]
steps = 4
clip = "none"
batch_size = 4

[task_options]
eval_size = 8

[cell_settings.rnn]
hidden_size = 7

[horizon]
margin = 0.8

[executor]
name = "counting"
jobs = 1
"""


def _file(tmp_path, text, name="s.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_full_file_reads_into_a_request(tmp_path):
    request = load(_file(tmp_path, FULL))
    assert request.task == "copy" and request.cells == ["lstm", "rnn"] and request.seeds == [0, 1]
    assert request.settings == {"seq_len": [3, 5], "steps": [4], "clip": [None], "batch_size": [4]}
    assert request.cell_settings == {"rnn": {"hidden_size": 7}}
    assert request.horizon == {"margin": 0.8} and request.executor == {"name": "counting", "jobs": 1}
    again = load(_file(tmp_path, request.to_toml(), "again.toml"))       # what sweep.toml holds reads back the same
    assert {**vars(again), "origins": None} == {**vars(request), "origins": None}
    assert request.origins["settings.seq_len"] == str(tmp_path / "s.toml") and set(request.origins) == request.keys()


@pytest.mark.parametrize("text, message", [
    ('task = "copy"\ncolour = 1', "colour: unknown key; valid keys:"),
    ('cells = "lstm"\n[settings]\nlrate = 1', "settings.lrate: unknown setting; valid:"),
    ('[settings]\nseed = 1', "settings.seed: unknown setting; valid: .* \\(seeds go in the top-level 'seeds'\\)"),
    ('[settings]\nsteps = [10, -1]', "settings.steps: must be between 1 and"),
    ('[settings]\nlr = "fast"', "settings.lr: expected a number"),
    ('[settings]\noptimizer = "adamw"', "settings.optimizer: choose one of adam, rmsprop, sgd"),
    ('seeds = true', "seeds: give a count"),
    ('cells = [1, 2]', "cells: must be a list of cell names"),
    ('[horizon]\nmargin = 2', "horizon.margin: must be a number between 0 and 1"),
    ('[horizon]\nwidth = 0.5', "horizon.width: unknown key"),
    ('[executor]\nworkers = 2', "executor.workers: unknown key; valid: name, jobs"),
    ('[cell_settings.rnn]\ndevice = "cuda"', "cell_settings.rnn.device: unknown setting; a cell may set:"),
    ('task = ', "not valid TOML"),
])
def test_bad_files_get_one_line_naming_the_key(tmp_path, text, message):
    with pytest.raises(HarnessError, match=message) as error:
        load(_file(tmp_path, text))
    assert "\n" not in str(error.value) and str(tmp_path / "s.toml") in str(error.value)


def test_a_missing_file_is_one_line(tmp_path, cli):
    code, _, err = cli("sweep", "--config", tmp_path / "nope.toml")
    assert code == 2 and f"--config {tmp_path / 'nope.toml'}: no such file" in err


def test_an_uninstalled_cell_or_unknown_task_option_stops_before_anything_runs(tmp_path, cli):
    code, _, err = cli("sweep", "--config", _file(tmp_path, FULL.replace('"rnn"]', '"indrnn"]')), "--out", tmp_path / "o")
    assert code == 2 and "unknown cell 'indrnn'" in err and not (tmp_path / "o").exists()
    code, _, err = cli("sweep", "--config", _file(tmp_path, FULL.replace("eval_size = 8", "evals = 8")),
                       "--out", tmp_path / "o", "--executor", "local")
    assert code == 2 and "evals: unknown option" in err and not (tmp_path / "o").exists()


def test_the_command_line_overrides_the_file_key_by_key(plugins, tmp_path, cli):
    plugins(CountingPlugin())
    out = tmp_path / "o"
    code, _, err = cli("sweep", "--config", _file(tmp_path, FULL), "--seq-len", "4", "--seeds", "1",
                       "--out", out, "--no-plots", "--no-progress")
    assert code == 0, err
    units = pd.read_csv(out / "units.csv")
    assert sorted(zip(units["cell"], units["seq_len"], units["seed"])) == [("lstm", 4, 0), ("rnn", 4, 0)]
    configs = {c: pd.read_json(next((out / "units").glob(f"{c}-*/config.json")), typ="series") for c in ("lstm", "rnn")}
    default_width = task_defaults(load_registry().task("copy"))[0]["hidden_size"]
    assert configs["rnn"]["hidden_size"] == 7 != default_width  # the cell's own setting
    assert configs["lstm"]["hidden_size"] == default_width
    assert configs["lstm"]["clip"] is None and configs["lstm"]["steps"] == 4 and configs["lstm"]["grad_steps"] == [2]
    resolved = load(out / "sweep.toml")                                 # the resolved request is in the folder
    assert resolved.settings["seq_len"] == [4] and resolved.seeds == [0] and resolved.settings["steps"] == [4]
    assert resolved.horizon == {"margin": 0.8}
    assert pd.read_json(out / "sweep.json", typ="series")["horizon"]["margin"] == 0.8


def test_requests_merge_tables_key_by_key():
    base = SweepRequest(task="copy", settings={"lr": [1e-3], "steps": [5]}, cell_settings={"rnn": {"lr": 0.1}})
    over = SweepRequest(settings={"steps": [9]}, cell_settings={"rnn": {"steps": 3}})
    merged = base.merged(over)
    assert merged.settings == {"lr": [1e-3], "steps": [9]} and merged.task == "copy"
    assert merged.cell_settings == {"rnn": {"lr": 0.1, "steps": 3}}


@pytest.mark.parametrize("text, key, detail", [
    ('seeds = "three"', "seeds", "give a count (5), a range"),
    ('seeds = [0, -3]', "seeds", "give a count (5), a range"),
    ('[settings]\nlr = "fast"', "settings.lr", "expected a number, got 'fast'"),
    ('[settings]\ndevice = ["cpu", "cuda"]', "settings.device", "cannot be swept; give one value"),
    ('[task_options]\ncopy_len = "ten"', "task_options.copy_len = 'ten'", "expected an integer"),
    ('[task_options]\ncopy_length = 3', "task_options.copy_length", "unknown option of task copy; valid options:"),
    ('[executor]\njobs = "two"', "executor.jobs", "must be a whole number >= 1, got 'two'"),
    ('[executor]\nthreads_per_unit = 0', "executor.threads_per_unit", "must be a whole number >= 1, got 0"),
    ('[executor]\nslurm_time = "an hour"', "executor.slurm_time", "must be a whole number >= 1"),
    ('[executor]\nname = "dask"', "executor.name", "unknown executor 'dask'; valid executors: local"),
    ('cells = ["lstm", "indrnn"]', "cells", "unknown cell 'indrnn'"),
    ('preset = "fast"', "preset", "unknown preset 'fast' for task copy"),
    ('reference = "gru"', "reference", "'gru' is not among the swept cells (lstm)"),
])
def test_a_sweep_file_error_names_the_file_and_the_key_not_a_command_line_option(tmp_path, cli, text, key, detail):
    head = 'task = "copy"\n' + ("" if text.startswith("cells") else 'cells = ["lstm"]\n')
    path = _file(tmp_path, f"{head}{text}\n")
    code, out, err = cli("sweep", "--config", path, "--out", tmp_path / "o", "--no-progress")
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith(f"harness sweep: error: {path}: {key}: "), line
    assert detail in line and "--" not in line.split(": error: ", 1)[1], line   # no flag that nobody typed
    assert not (tmp_path / "o").exists() and "sweep folder" not in out       # stopped before anything ran


def test_a_command_line_value_is_still_blamed_on_its_option_when_a_file_sets_the_same_key(tmp_path, cli):
    path = _file(tmp_path, 'task = "copy"\ncells = ["lstm"]\n[task_options]\ncopy_len = 3\n')
    code, _, err = cli("sweep", "--config", path, "--task-opt", "copy_len=ten", "--out", tmp_path / "o")
    assert code == 2 and "harness sweep: error: --task-opt copy_len=ten: expected an integer" in err
    assert str(path) not in err


def test_origins_follow_the_merge():
    base = SweepRequest(task="copy", settings={"lr": [1e-3], "steps": [5]},
                        origins={"task": "f.toml", "settings.lr": "f.toml", "settings.steps": "f.toml"})
    merged = base.merged(SweepRequest(settings={"steps": [9]}))
    assert merged.origins == {"task": "f.toml", "settings.lr": "f.toml"}


def test_a_grad_at_step_beyond_the_steps_is_blamed_on_the_files_key(tmp_path, cli):
    """The step range is known only once each unit's steps are resolved; the error still names the file's key."""
    path = _file(tmp_path, 'task = "copy"\ncells = ["lstm"]\ngrad_at = [500]\n[settings]\nsteps = 10\n')
    code, _, err = cli("sweep", "--config", path, "--out", tmp_path / "o", "--no-progress")
    (line,) = err.strip().splitlines()
    assert code == 2 and line == (f"harness sweep: error: {path}: grad_at: 500 is not a training step; each must be "
                                  "between 0 and 10, the run's steps"), line
    assert not (tmp_path / "o" / "units").exists()
    code, _, err = cli("sweep", "--config", path, "--grad-at", "700", "--out", tmp_path / "o", "--no-progress")
    assert code == 2 and "error: --grad-at 700: each entry must be a step between 0 and 10" in err   # typed: the flag

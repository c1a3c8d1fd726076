"""A damaged unit folder (a result.json or unit.json cut off or edited by hand) is reported in one line before its
unit runs again, never repeated silently."""

from __future__ import annotations

import pytest

from fake_cells import CountingExecutor, CountingPlugin

TINY = ["--steps", "4", "--hidden-size", "6", "--batch-size", "4", "--task-opt", "eval_size=8", "--no-progress",
        "--no-plots"]


@pytest.fixture
def sweep(plugins, cli, tmp_path):
    plugins(CountingPlugin())
    CountingExecutor.ran = []
    out = tmp_path / "s"
    args = ["sweep", "--cells", "lstm,rnn", "--task", "copy", "--seq-len", "3", "--seeds", "1", "--executor",
            "counting", "--out", out, *TINY]
    code, _, err = cli(*args)
    assert code == 0, err
    CountingExecutor.ran.clear()
    return out, args


@pytest.mark.parametrize("name, damage", [
    ("result.json", '{"id": "abc", "status": "o'),                   # cut off mid-write
    ("result.json", ""),                                             # emptied
    ("result.json", '{"status": "ok", "colour": 1}'),                # JSON, but not a result
    ("unit.json", '{"id": '),                                        # the unit's own record cut off
])
def test_a_damaged_unit_file_is_named_in_one_line_before_the_unit_runs_again(sweep, cli, name, damage):
    out, args = sweep
    (damaged,) = (out / "units").glob("rnn-*")
    (damaged / name).write_text(damage)
    code, stdout, err = cli(*args)
    assert code == 0, err
    lines = [line for line in err.splitlines() if name in line]
    assert len(lines) == 1, err
    line = lines[0]
    assert "rnn (seed 0)" in line and str(damaged / name) in line and "will run again" in line
    assert "Traceback" not in err
    assert CountingExecutor.ran == ["rnn (seed 0)"]      # that unit ran again, and only it
    assert "1 of 2 units already finished" in stdout
    code, _, err = cli(*args)                                        # repaired: nothing to say, nothing to run
    assert code == 0 and name not in err and CountingExecutor.ran == ["rnn (seed 0)"]

"""docs/writing-a-task.md's example task, taken from the page as written, registered and run end to end."""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from fake_cells import CountingPlugin

DOC = Path(__file__).resolve().parents[1] / "docs" / "writing-a-task.md"
BLOCK = re.compile(r"<!-- file: first_symbol.py -->\s*\n```python\n(?P<body>.*?)\n```", re.DOTALL)


@pytest.fixture
def example(tmp_path, plugins):
    path = tmp_path / "first_symbol.py"
    path.write_text(BLOCK.search(DOC.read_text())["body"])
    spec = importlib.util.spec_from_file_location("first_symbol", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugins(module)
    return module


def test_the_example_task_trains_and_its_option_default_comes_from_the_declaration(example, registry, cli, tmp_path):
    from harness.plugins.registry import load_registry

    task = load_registry().task("first-symbol").build(10, 4, 0)
    assert task.n_symbols == 4 and task.baseline == pytest.approx(math.log(4))
    code, out, err = cli("run", "--cells", "lstm,rnn", "--task", "first-symbol", "--steps", "5", "--task-opt",
                         "n_symbols=3", "--out", tmp_path / "r", "--no-progress", "--no-plots")
    assert code == 0, err
    summary = pd.read_csv(tmp_path / "r" / "summary.csv")
    assert list(summary["status"]) == ["ok", "ok"] and (summary["seq_len"] == 10).all()   # the task's default T
    assert summary["baseline"].iloc[0] == pytest.approx(math.log(3))
    config = pd.read_json(tmp_path / "r" / "config.json", typ="series")
    assert config["loss_unit"] == "cross-entropy (nats)" and config["task_options"] == {"n_symbols": 3}


def test_the_example_task_sweeps(example, cli, tmp_path, plugins):
    plugins(CountingPlugin())
    code, out, err = cli("sweep", "--cells", "lstm", "--task", "first-symbol", "--seq-len", "3,6", "--seeds", "2",
                         "--steps", "3", "--executor", "counting", "--out", tmp_path / "s", "--no-plots",
                         "--no-progress")
    assert code == 0, err
    assert len(pd.read_csv(tmp_path / "s" / "units.csv")) == 4

"""The plugin examples are real: the docs page's package and examples/peephole-lstm install and run.

Both packages are installed once, with pip, into a temporary folder (no build
isolation, no index: nothing is downloaded), and the CLI runs in a subprocess
with that folder on PYTHONPATH, so the plugins are found through their
dist-info and entry points exactly as after a ``pip install``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.plugins.testing import check_cell

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "writing-a-cell-plugin.md"
EXAMPLE = ROOT / "examples" / "peephole-lstm"
FILE_BLOCK = re.compile(r"<!-- file: (?P<name>\S+) -->\s*\n```[^\n]*\n(?P<body>.*?)\n```", re.DOTALL)


def doc_files() -> dict[str, str]:
    """The files the docs page marks with ``<!-- file: NAME -->``, by name."""
    return {m["name"]: m["body"] + "\n" for m in FILE_BLOCK.finditer(DOC.read_text())}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """Both plugin packages, pip-installed into one temporary folder."""
    tmp = tmp_path_factory.mktemp("plugins")
    doc_pkg = tmp / "harness-leaky-rnn"
    doc_pkg.mkdir()
    for name, body in doc_files().items():
        (doc_pkg / name).write_text(body)
    example = tmp / "peephole-lstm"  # a copy, so the build leaves nothing in the checkout
    shutil.copytree(EXAMPLE, example, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp / "site"
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                             "--no-build-isolation", "--disable-pip-version-check", "--target", str(target),
                             str(doc_pkg), str(example)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return target


def harness_cli(site: Path, *args, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "harness", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {}), "PYTHONPATH": path},
                          timeout=300)


def test_the_docs_page_holds_a_complete_package():
    files = doc_files()
    assert set(files) == {"pyproject.toml", "leaky_rnn.py"}
    assert '[project.entry-points.harness]\nleaky-rnn = "leaky_rnn"' in files["pyproject.toml"]
    assert "@hookimpl" in files["leaky_rnn.py"]


def test_list_json_shows_the_installed_plugins_with_package_and_version(site):
    result = harness_cli(site, "list", "--json")
    assert result.returncode == 0, result.stderr
    cells = {c["name"]: c for c in json.loads(result.stdout)["cells"]}
    leaky, peephole = cells["leaky-rnn"], cells["peephole-lstm"]
    assert (leaky["package"], leaky["version"], leaky["plugin"]) == ("harness-leaky-rnn", "0.1.0", "leaky-rnn")
    assert (peephole["package"], peephole["version"]) == ("harness-peephole-lstm", "0.1.0")
    assert peephole["state"] == ["h", "c"] and peephole["exposes_gates"] and peephole["max_layers"] == 1
    assert cells["lstm"]["package"] == "rnn-harness"  # the built-ins are still there


def test_a_tiny_run_trains_both_plugins_on_copy(site, tmp_path):
    out = tmp_path / "run"
    result = harness_cli(site, "run", "--cells", "leaky-rnn,peephole-lstm", "--task", "copy", "--steps", "12",
                         "--seq-len", "3", "--hidden-size", "8", "--batch-size", "16", "--log-every", "3",
                         "--task-opt", "eval_size=16", "--layers", "2", "--out", out, "--no-progress", "--no-plots")
    assert result.returncode == 0, result.stderr
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["cell"]) == ["leaky-rnn", "peephole-lstm"]
    assert list(summary["status"]) == ["ok", "ok"] and list(summary["steps"]) == [12, 12]
    metrics = pd.read_csv(out / "metrics.csv")
    for cell in ("leaky-rnn", "peephole-lstm"):
        loss = metrics[(metrics["cell"] == cell) & (metrics["metric"] == "train_loss")].sort_values("step")["value"]
        assert len(loss) == 4 and loss.iloc[-1] < loss.iloc[0]  # it learns: copy loss starts near ln 9
    grads = pd.read_csv(out / "gradnorms.csv")
    assert set(grads[grads["cell"] == "peephole-lstm"]["state"]) == {"h", "c"}


def test_plugins_can_be_disabled_or_allow_listed(site, cli, monkeypatch):
    result = harness_cli(site, "list", "--json", env={"HARNESS_DISABLE_PLUGINS": "peephole-lstm"})
    cells = {c["name"] for c in json.loads(result.stdout)["cells"]}
    assert "peephole-lstm" not in cells and {"leaky-rnn", "lstm"} <= cells
    # In-process from here: the installed dist-info is found on sys.path just as on PYTHONPATH.
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("HARNESS_DISABLE_PLUGINS", raising=False)
    monkeypatch.setenv("HARNESS_PLUGINS", "peephole-lstm,copy")
    code, out, _ = cli("list")
    assert code == 0
    assert re.search(r"^  peephole-lstm +peephole LSTM .*\[harness-peephole-lstm 0\.1\.0\]$", out, re.MULTILINE)
    assert "leaky-rnn" not in out and "adding" not in out and " lstm " not in out


def test_global_plugin_options_apply_to_one_command_only(cli, monkeypatch):
    monkeypatch.delenv("HARNESS_PLUGINS", raising=False)
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "gru")
    code, out, _ = cli("--disable-plugins", "rnn", "list", "--json")
    assert code == 0
    cells = {c["name"] for c in json.loads(out)["cells"]}
    assert "rnn" not in cells and "gru" in cells and "lstm" in cells  # the option replaces the variable
    assert os.environ["HARNESS_DISABLE_PLUGINS"] == "gru" and "HARNESS_PLUGINS" not in os.environ
    code, out, _ = cli("--plugins", "lstm,adding", "list", "--json")
    data = json.loads(out)
    assert [c["name"] for c in data["cells"]] == ["lstm"] and [t["name"] for t in data["tasks"]] == ["adding"]
    assert "HARNESS_PLUGINS" not in os.environ


def test_the_example_and_the_docs_cell_pass_the_conformance_kit(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    import peephole_lstm
    check_cell(peephole_lstm.SPEC)

    (tmp_path / "leaky_rnn.py").write_text(doc_files()["leaky_rnn.py"])
    monkeypatch.syspath_prepend(str(tmp_path))
    import leaky_rnn
    specs = []
    leaky_rnn.register_cells(specs.append)
    assert [s.name for s in specs] == ["leaky-rnn"]
    check_cell(specs[0])


def test_peephole_gates_are_what_the_forward_pass_computes(monkeypatch):
    """gate_activations replays the forward pass: h = o * tanh(c) and c = f * c_prev + i * g, step by step."""
    import torch
    monkeypatch.syspath_prepend(str(EXAMPLE))
    import peephole_lstm
    torch.manual_seed(0)
    cell = peephole_lstm.PeepholeLSTM(3, 5).double()
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    out, (h, c) = cell(x)
    g = cell.gate_activations(x)
    assert all(v.shape == (1, 6, 2, 5) for v in g.values())
    cs = [torch.zeros(2, 5, dtype=torch.float64)]
    for t in range(6):
        cs.append(g["forget"][0, t] * cs[-1] + g["input"][0, t] * g["cell"][0, t])
    torch.testing.assert_close(cs[-1], c[0])
    torch.testing.assert_close(g["output"][0] * torch.tanh(torch.stack(cs[1:])), out.detach())

"""Name clashes, strict plugin checks and provenance, with real distributions on the path.

The fixture writes two installed distributions by hand (a ``.dist-info`` folder
with ``METADATA`` and ``entry_points.txt``, what pip leaves behind) into one
temporary folder that goes first on the path:

* ``harness-impostor`` 6.6.6, whose entry point is named ``lstm`` like the
  built-in's; it registers an impostor ``lstm``, ``boomcell`` and ``twin``;
* ``harness-aaa`` 1.0, an editable install (PEP 610 ``direct_url.json``) that
  registers ``twin`` too.

Expected: the built-in ``lstm`` wins wherever the command runs from; ``boomcell``
stays; ``twin`` goes to ``harness-aaa`` (first by distribution name); each
clash is one warning naming both packages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest

from harness.plugins.registry import load_registry

ROOT = Path(__file__).resolve().parents[1]

IMPOSTOR = '''
from cells.rnn import VanillaRNN
from harness import CellSpec, hookimpl

@hookimpl
def register_cells(register):
    register(CellSpec(name="lstm", description="IMPOSTOR lstm", factory=VanillaRNN))
    register(CellSpec(name="boomcell", description="boomcell from the impostor", factory=VanillaRNN))
    register(CellSpec(name="twin", description="twin from harness-impostor", factory=VanillaRNN))
'''

AAA = '''
from cells.rnn import VanillaRNN
from harness import CellSpec, hookimpl

@hookimpl
def register_cells(register):
    register(CellSpec(name="twin", description="twin from harness-aaa", factory=VanillaRNN))
'''


def _distribution(site: Path, name: str, version: str, module: str, source: str, entry_point: str,
                  project: Path | None = None) -> None:
    """Metadata in ``site``; the module there too, or in ``project`` for an editable install (whose folder is
    then on the path, as its ``.pth`` file would put it)."""
    (project or site).mkdir(exist_ok=True)
    ((project or site) / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[harness]\n{entry_point} = {module}\n")
    if project:
        (info / "direct_url.json").write_text(json.dumps({"url": project.as_uri(), "dir_info": {"editable": True}}))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    _distribution(site, "harness-impostor", "6.6.6", "impostor_lstm", IMPOSTOR, "lstm")
    _distribution(site, "harness-aaa", "1.0", "aaa_twin", AAA, "twin", project=project_of(site))
    return site


def project_of(site: Path) -> Path:
    return site.parent / "aaa-project"


def prepend(monkeypatch, site: Path) -> None:
    monkeypatch.syspath_prepend(str(project_of(site)))
    monkeypatch.syspath_prepend(str(site))


def harness_cli(site: Path, *args, cwd: Path) -> subprocess.CompletedProcess:
    path = os.pathsep.join(filter(None, [str(site), str(project_of(site)), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    env.pop("HARNESS_PLUGINS", None)
    env.pop("HARNESS_DISABLE_PLUGINS", None)
    return subprocess.run([sys.executable, "-m", "harness", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def warnings_about(err: str, word: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning:") and word in line]


@pytest.mark.parametrize("inside", [False, True], ids=["outside-the-checkout", "inside-the-checkout"])
def test_the_builtin_lstm_wins_wherever_the_command_runs(site, tmp_path, inside):
    result = harness_cli(site, "list", "--json", cwd=ROOT if inside else tmp_path)
    assert result.returncode == 0, result.stderr
    cells = {c["name"]: c for c in json.loads(result.stdout)["cells"]}
    assert cells["lstm"]["package"] == "rnn-harness" and "IMPOSTOR" not in cells["lstm"]["description"]
    assert cells["boomcell"]["package"] == "harness-impostor"          # the impostor's other cells stay
    assert cells["twin"]["package"] == "harness-aaa"                   # first by distribution name
    lstm_lines = warnings_about(result.stderr, "'lstm'")
    assert len(lstm_lines) == 1
    assert "harness-impostor 6.6.6" in lstm_lines[0] and "rnn-harness" in lstm_lines[0]
    assert "built-ins always win" in lstm_lines[0] and "other registrations stand" in lstm_lines[0]
    twin_lines = warnings_about(result.stderr, "'twin'")
    assert len(twin_lines) == 1 and "harness-impostor 6.6.6" in twin_lines[0] and "harness-aaa 1.0" in twin_lines[0]
    assert "--disable-plugins harness-aaa:twin" in twin_lines[0]


def test_run_trains_the_builtin_and_records_who_supplied_each_cell(site, tmp_path):
    out = tmp_path / "run"
    result = harness_cli(site, "run", "--cells", "lstm,boomcell,twin", "--task", "adding", "--steps", "2",
                         "--seq-len", "3", "--hidden-size", "4", "--batch-size", "4", "--out", out,
                         "--no-progress", "--no-plots", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False).set_index("cell")
    assert summary.loc["lstm", "cell_package"] == "rnn-harness"
    assert summary.loc["boomcell", "cell_package"] == "harness-impostor"
    assert str(summary.loc["boomcell", "cell_version"]) == "6.6.6" and summary.loc["boomcell", "cell_path"] == ""
    project = str(project_of(site))
    assert summary.loc["twin", "cell_package"] == "harness-aaa" and summary.loc["twin", "cell_path"] == project
    config = json.loads((out / "config.json").read_text())
    assert config["cell_sources"]["twin"] == {"plugin": "twin", "package": "harness-aaa", "version": "1.0",
                                              "path": project}
    assert config["cell_sources"]["lstm"]["package"] == "rnn-harness"
    assert config["task_source"]["package"] == "rnn-harness"


@pytest.mark.parametrize("order", [list, lambda eps: list(reversed(list(eps)))], ids=["as-found", "reversed"])
def test_precedence_does_not_depend_on_discovery_order(site, monkeypatch, order):
    prepend(monkeypatch, site)
    real = metadata.entry_points
    monkeypatch.setattr("harness.plugins.registry._entry_points", lambda: order(real(group="harness")))
    reg = load_registry()
    assert reg.cells["lstm"].source.own and reg.cells["lstm"].source.package == "rnn-harness"
    assert reg.cells["twin"].source.package == "harness-aaa"
    assert reg.cells["boomcell"].source.plugin == "harness-impostor:lstm"  # the built-in keeps the plain name
    assert reg.cells["twin"].source.path == str(project_of(site))
    lines = [str(p) for p in reg.problems]
    assert len(lines) == 2 and all("harness-impostor 6.6.6" in line for line in lines)


def test_a_distribution_that_borrows_the_projects_name_is_not_a_builtin(tmp_path, monkeypatch):
    """``own`` needs both the name rnn-harness and a module of this project's own packages; and a distribution
    of that name first on the path does not hide the real one's entry points (``metadata.entry_points()`` would)."""
    _distribution(tmp_path, "rnn-harness", "9.9.9", "fake_builtin", IMPOSTOR, "lstm")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = load_registry()
    assert "IMPOSTOR" not in reg.cells["lstm"].spec.description
    assert reg.cells["lstm"].source.own and {"gru", "rnn"} <= set(reg.cells)
    assert reg.cells["boomcell"].source.version == "9.9.9" and not reg.cells["boomcell"].source.own


def test_a_disable_selector_can_name_one_distribution(site, monkeypatch):
    prepend(monkeypatch, site)
    reg = load_registry(disable=["harness-aaa:twin"])
    assert reg.cells["twin"].source.package == "harness-impostor"
    assert reg.cells["lstm"].source.own                            # the built-in entry point 'lstm' still loads
    reg = load_registry(disable=["lstm"])                          # a bare name selects every entry point of that name
    assert "lstm" not in reg.cells and "boomcell" not in reg.cells


def test_an_editable_folder_is_recorded_only_if_the_code_comes_from_it(tmp_path, monkeypatch):
    source = AAA.replace('"twin"', '"shadowed"')
    _distribution(tmp_path, "harness-shadow", "1.0", "shadow_twin", source, "shadow")
    info = tmp_path / "harness_shadow-1.0.dist-info"
    elsewhere = tmp_path / "an-old-checkout"
    (info / "direct_url.json").write_text(json.dumps({"url": elsewhere.as_uri(), "dir_info": {"editable": True}}))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_registry().cells["shadowed"].source.path == ""    # the module is in tmp_path, not the old checkout

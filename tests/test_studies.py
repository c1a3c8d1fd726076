"""The checked-in studies (studies/*.toml): each loads, expands to the grid its header describes with the
published settings, and runs end to end through ``python -m harness sweep --config FILE`` on a tiny budget."""

from __future__ import annotations

import contextlib
import io
import itertools
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.commands.sweep import build
from harness.plugins.model import build_cell
from harness.run.config import resolve_config
from harness.run.runner import make_task
from harness.sweep.files import load
from harness.sweep.grid import expand
from tests.conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ROOT / "studies"

# What each file's header says it runs: cells, the swept values, seeds, and the settings every unit shares.
# hidden_size is per cell (the paper's widths) where the header gives a table of widths.
ARJOVSKY_COPY = dict(task="copy", optimizer="rmsprop", lr=1e-3, clip=1.0, batch_size=20, steps=50000)
ARJOVSKY_ADDING = dict(task="adding", optimizer="rmsprop", lr=1e-3, clip=1.0, steps=30000)
PAPER_WIDTHS = {"lstm": 40, "rnn": 80, "gru": 46}
MATCHED_WIDTHS = {"lstm": 38, "rnn": 80, "gru": 45}      # --match-params 8089, the paper's RNN-80 model counted whole
TCN_WIDTHS = {"lstm": 130, "gru": 150, "rnn": 262}
TCN = dict(task="adding", optimizer="adam", lr=2e-3, clip=5.0, batch_size=32, seq_len=600)
ARJOVSKY_MNIST = dict(task="seq-image", optimizer="rmsprop", lr=1e-3, clip=1.0, batch_size=20)
# seq-image reads real images: its tiny runs take Fashion-MNIST from shared/data, a T that divides 784, and
# small splits (the other studies' tiny runs get --seq-len 5 and eval_size=16).
SEQ_IMAGE_TINY = {"seq_len": 28, "task_options": {"source": "fashion-mnist", "download": "false",
                                                  "path": str(SHARED_DATA / "fashion-mnist"), "train_size": "64",
                                                  "val_size": "16", "test_size": "16"}}
EXPECTED = {
    "arjovsky2016-copy.toml": dict(
        cells=["lstm", "rnn", "gru"], seq_len=[100, 200], seeds=[0, 1, 2], widths=PAPER_WIDTHS, units=18,
        fixed=ARJOVSKY_COPY, task_options={"copy_len": 10}),
    "arjovsky2016-copy-reduced.toml": dict(
        cells=["lstm", "rnn"], seq_len=[100], seeds=[0, 1, 2], widths=PAPER_WIDTHS, units=6,
        fixed=ARJOVSKY_COPY, task_options={"copy_len": 10}, subset_of="arjovsky2016-copy.toml"),
    "arjovsky2016-copy-equal-width.toml": dict(
        cells=["lstm", "rnn", "gru"], seq_len=[100, 200], seeds=[0, 1, 2], widths=dict.fromkeys(PAPER_WIDTHS, 128),
        units=18, fixed=ARJOVSKY_COPY, task_options={"copy_len": 10}),
    "arjovsky2016-copy-t200-reduced.toml": dict(
        cells=["lstm", "rnn"], seq_len=[200], seeds=[0], widths=PAPER_WIDTHS, units=2,
        fixed={**ARJOVSKY_COPY, "steps": 10000}, task_options={"copy_len": 10}),
    "arjovsky2016-copy-equal-width-reduced.toml": dict(
        cells=["lstm", "rnn", "gru"], seq_len=[100], seeds=[0], widths=dict.fromkeys(PAPER_WIDTHS, 128),
        units=3, fixed={**ARJOVSKY_COPY, "steps": 10000}, task_options={"copy_len": 10}),
    "arjovsky2016-copy-matched.toml": dict(
        cells=["lstm", "rnn", "gru"], seq_len=[100, 200], seeds=[0, 1, 2], widths=MATCHED_WIDTHS, units=18,
        fixed={**ARJOVSKY_COPY, "match_params": 8089}, task_options={"copy_len": 10}),
    "arjovsky2016-copy-matched-reduced.toml": dict(
        cells=["lstm", "rnn", "gru"], seq_len=[100], seeds=[0], widths=MATCHED_WIDTHS, units=3,
        fixed={**ARJOVSKY_COPY, "steps": 10000, "match_params": 8089}, task_options={"copy_len": 10}),
    "arjovsky2016-adding.toml": dict(
        cells=["lstm", "rnn", "gru"], seq_len=[100, 200, 400, 750], batch_size=[20, 50], seeds=[0, 1, 2],
        widths=dict.fromkeys(PAPER_WIDTHS, 128), units=72, fixed=ARJOVSKY_ADDING),
    "arjovsky2016-adding-reduced.toml": dict(
        cells=["lstm", "rnn"], seq_len=[100], batch_size=[20], seeds=[0, 1, 2],
        widths=dict.fromkeys(PAPER_WIDTHS, 128), units=6, fixed=ARJOVSKY_ADDING, subset_of="arjovsky2016-adding.toml"),
    "arjovsky2016-adding-long-reduced.toml": dict(
        cells=["lstm", "rnn"], seq_len=[400, 750], batch_size=[20], seeds=[0],
        widths=dict.fromkeys(PAPER_WIDTHS, 128), units=4, fixed={**ARJOVSKY_ADDING, "steps": 2000}),
    "arjovsky2016-gradflow.toml": dict(
        cells=["lstm", "rnn", "gru"], seq_len=[1000], seeds=[0, 1, 2], widths=dict.fromkeys(PAPER_WIDTHS, 128),
        units=9, fixed={**ARJOVSKY_ADDING, "steps": 100, "batch_size": 20}, grad_steps=[10, 50],
        task_options={"eval_size": 200}),
    "bai2018-tcn-adding.toml": dict(
        cells=["lstm", "gru", "rnn"], seq_len=[600], seeds=[0, 1, 2], widths=TCN_WIDTHS, units=9,
        fixed={**TCN, "steps": 15630}),
    "bai2018-tcn-adding-reduced.toml": dict(
        cells=["lstm", "gru", "rnn"], seq_len=[600], seeds=[0], widths=TCN_WIDTHS, units=3,
        fixed={**TCN, "steps": 1000}),
    "cooijmans2016-char-lm-reduced.toml": dict(
        cells=["lstm"], seq_len=[100], seeds=[0, 1, 2], widths={"lstm": 128}, units=3,
        fixed=dict(task="char-lm", optimizer="adam", lr=2e-3, clip=1.0, batch_size=64, steps=600),
        task_options={"source": "text", "path": "../shared/data/rt-polarity"}),
    "arjovsky2016-mnist.toml": dict(
        cells=["lstm", "rnn"], seq_len=[784], seeds=[0, 1, 2], widths=dict.fromkeys(PAPER_WIDTHS, 128), units=12,
        fixed={**ARJOVSKY_MNIST, "steps": 150000}, task_options={"source": "mnist", "val_size": 10000},
        points=2, tiny=SEQ_IMAGE_TINY),
    "arjovsky2016-pmnist-fashion-reduced.toml": dict(
        cells=["lstm", "rnn"], seq_len=[784], seeds=[0], widths=dict.fromkeys(PAPER_WIDTHS, 128), units=2,
        fixed={**ARJOVSKY_MNIST, "steps": 1000}, task_options={"source": "fashion-mnist", "permute": True},
        tiny=SEQ_IMAGE_TINY),
    "nangia2018-listops-reduced.toml": dict(
        cells=["lstm", "gru", "rnn"], seq_len=[40], seeds=[0, 1, 2], widths=dict.fromkeys(PAPER_WIDTHS, 128),
        units=9, fixed=dict(task="listops", optimizer="adam", lr=3e-3, clip=1.0, batch_size=64, steps=3000)),
}

# Parameter counts (cell + task head) that the headers quote for the paper's widths.
PARAMETERS = {("copy", "lstm", 40): 8689, ("copy", "rnn", 80): 8089, ("copy", "gru", 46): 8427,
              ("copy", "lstm", 38): 7951, ("copy", "gru", 45): 8109,
              ("copy", "lstm", 128): 72841, ("copy", "rnn", 128): 19081, ("copy", "gru", 128): 54921,
              ("adding", "lstm", 128): 67713, ("adding", "rnn", 128): 17025, ("adding", "gru", 128): 50817,
              ("adding", "lstm", 130): 69811, ("adding", "gru", 150): 69451, ("adding", "rnn", 262): 69955}

# The tiny budget each end-to-end run gets (every file's own settings stay, except these).
TINY = ["--steps", "2", "--seeds", "1", "--seq-len", "5", "--executor", "local", "--jobs", "1",
        "--task-opt", "eval_size=16", "--no-plots", "--no-progress"]


def _units(name: str, registry, root: Path):
    """The file's units, expanded the way 'harness sweep --config FILE' expands them."""
    spec, executor, settings = build(load(STUDIES / name), registry)
    return expand(spec, registry, root, threads=settings["threads_per_unit"]), executor, settings


def test_every_study_file_is_expected_here_and_listed_with_its_command_in_the_readme():
    files = sorted(p.name for p in STUDIES.glob("*.toml"))
    assert files == sorted(EXPECTED)
    readme = (STUDIES / "README.md").read_text()
    for name in files:
        assert f"python -m harness sweep --config studies/{name}" in readme, name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_study_expands_to_the_grid_and_the_settings_its_header_describes(name, registry, tmp_path):
    want = EXPECTED[name]
    request = load(STUDIES / name)
    assert request.reference == "lstm" and request.cells == want["cells"]
    own = want.get("subset_of", name)                         # a subset shares its full study's folder
    assert request.out == f"results/studies/{own.removesuffix('.toml')}"
    units, executor, settings = _units(name, registry, tmp_path)
    assert executor == "local" and settings["jobs"] == 2 and settings["threads_per_unit"] >= 1
    assert len(units) == want["units"]
    batches = want.get("batch_size", [want["fixed"].get("batch_size")])
    grid = {(u.cell, u.config["seq_len"], u.config["batch_size"], u.seed) for u in units}
    assert grid == set(itertools.product(want["cells"], want["seq_len"], batches, want["seeds"]))
    for unit in units:
        config = unit.config
        for key, value in want["fixed"].items():
            assert config[key] == value, (name, unit.label, key)
        assert config["hidden_size"] == want["widths"][unit.cell]
        assert config["layers"] == 1 and config["dropout"] == 0.0
        assert config["grad_steps"] == want.get("grad_steps", [])
        for key, value in want.get("task_options", {}).items():
            assert config["task_options"][key] == value
    if "subset_of" in want:  # the header says its units are units of the full grid, so the full run resumes it
        full, _, _ = _units(want["subset_of"], registry, tmp_path)
        assert {u.id for u in units} < {u.id for u in full}
        assert request.out == load(STUDIES / want["subset_of"]).out


@pytest.mark.parametrize("key", sorted(PARAMETERS), ids=lambda k: "-".join(map(str, k)))
def test_the_parameter_counts_quoted_in_the_headers(key, registry):
    task, cell, width = key
    spec = registry.task(task)
    task_obj = make_task(spec, resolve_config(spec, [cell], settings={"hidden_size": width, "seq_len": 20}))
    head = task_obj.make_head(width)
    model = build_cell(registry.cell(cell), head.input_size, width)
    total = sum(p.numel() for p in model.parameters()) + sum(p.numel() for p in head.parameters())
    assert total == PARAMETERS[key]


def test_the_paper_width_cells_have_about_equal_parameter_counts():
    copy = [PARAMETERS[("copy", c, w)] for c, w in PAPER_WIDTHS.items()]
    assert max(copy) / min(copy) < 1.08                      # "roughly 6500 parameters per model", each
    tcn = [PARAMETERS[("adding", c, w)] for c, w in TCN_WIDTHS.items()]
    assert all(abs(n - 70_000) < 700 for n in tcn)           # Table 1's "about 70K"


def _tiny(name: str) -> tuple[int, dict[str, str]]:
    """The tiny run's sequence length and task options for a study file."""
    tiny = EXPECTED[name].get("tiny", {"seq_len": 5, "task_options": {"eval_size": "16"}})
    return tiny["seq_len"], tiny["task_options"]


def _tiny_args(name: str, out: Path) -> list[str]:
    extra = ["--grad-at", "1"] if load(STUDIES / name).grad_at else []   # the file's grad_at lies beyond 2 steps
    seq_len, options = _tiny(name)
    drop = {i for i, a in enumerate(TINY) if a in ("--seq-len", "--task-opt")}
    args = [a for i, a in enumerate(TINY) if i not in drop and i - 1 not in drop]   # TINY less T and options
    args += ["--seq-len", str(seq_len)] + [x for k, v in options.items() for x in ("--task-opt", f"{k}={v}")]
    return ["sweep", "--config", str(STUDIES / name), *args, *extra, "--out", str(out)]


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """Every study through 'harness sweep --config FILE' with TINY: the first as 'python -m harness' in a process
    of its own, the others through the same entry point in this process (the local executor's forkserver, which
    imports torch, then starts once rather than once per file)."""
    from harness.cli import main

    root = tmp_path_factory.mktemp("studies")
    names = sorted(EXPECTED)
    runs = {}
    done = subprocess.run([sys.executable, "-m", "harness", *_tiny_args(names[0], root / names[0])],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    runs[names[0]] = (done.returncode, done.stderr, root / names[0])
    for name in names[1:]:
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            code = main(_tiny_args(name, root / name))
        runs[name] = (code, err.getvalue(), root / name)
    return runs


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_study_runs_end_to_end_on_a_tiny_budget(name, tiny_runs):
    code, stderr, out = tiny_runs[name]
    assert code == 0, stderr[-3000:]
    want = EXPECTED[name]
    study = load(STUDIES / name)
    units = pd.read_csv(out / "units.csv")
    batches = want.get("batch_size", [want["fixed"].get("batch_size")])
    # seq_len and seeds overridden to one value each; a swept task option (points) keeps its values
    assert len(units) == len(want["cells"]) * len(batches) * want.get("points", 1)
    assert set(units["status"]) == {"ok"}
    assert sorted(units["cell"]) == sorted(want["cells"] * len(batches) * want.get("points", 1))
    assert set(units["steps"]) == {2} and set(units["seed"]) == {0}
    resolved = load(out / "sweep.toml")                      # the file with the command line applied
    assert resolved.task == study.task and resolved.cells == study.cells and resolved.reference == "lstm"
    seq_len, options = _tiny(name)
    assert resolved.settings == {**study.settings, "steps": [2], "seq_len": [seq_len]}
    assert resolved.cell_settings == study.cell_settings
    assert resolved.task_options == {**study.task_options, **{k: [v] for k, v in options.items()}}
    assert resolved.seeds == [0] and resolved.executor == {"name": "local", "jobs": 1}
    assert resolved.grad_at == ([1] if study.grad_at else None)


def test_every_study_that_reports_has_claims_and_a_subset_reports_under_its_full_study():
    for name, want in EXPECTED.items():
        request = load(STUDIES / name)
        if "subset_of" in want:
            assert not request.study and not request.claims, name   # reported once, under the full file
        else:
            assert request.study.get("title") and request.study.get("source"), name
            assert request.claims or request.grad_at, name           # gradflow reports its table, not claims
            for claim in request.claims:
                assert claim["cell"] in request.cells and claim.get("seq_len") in request.settings["seq_len"], name

"""End-to-end runs through the CLI, every table and column, and every bad-input case."""

import json
import math

import pandas as pd
import pytest
import torch

from fake_cells import MisbehavingPlugin, OutsiderPlugin
from harness.reports.results import GRADNORMS_COLUMNS, GRADSUMMARY_COLUMNS, METRICS_COLUMNS, SUMMARY_COLUMNS

TINY = ["--steps", "6", "--seq-len", "3", "--hidden-size", "6", "--batch-size", "4", "--no-progress",
        "--no-plots"]


def one_line_error(err: str) -> str:
    """The error output minus plugin warnings must be exactly one line."""
    lines = [l for l in err.strip().splitlines() if l and not l.startswith("warning:")]
    assert len(lines) == 1, f"expected one line, got: {err!r}"
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from harness.cli import main
    out = tmp_path_factory.mktemp("runs") / "copy"
    code = main(["run", "--cells", "lstm,rnn,gru", "--task", "copy", "--out", str(out), "--grad-at", "3", *TINY])
    assert code == 0
    return out


def test_run_writes_every_table_with_documented_columns(tiny_run):
    for name, columns in [("summary", SUMMARY_COLUMNS), ("metrics", METRICS_COLUMNS),
                          ("gradnorms", GRADNORMS_COLUMNS), ("gradsummary", GRADSUMMARY_COLUMNS)]:
        df = pd.read_csv(tiny_run / f"{name}.csv")
        assert list(df.columns) == columns
        assert len(df) > 0
        assert (tiny_run / f"{name}.parquet").exists()
    summary = pd.read_csv(tiny_run / "summary.csv")
    assert list(summary["cell"]) == ["lstm", "rnn", "gru"] and (summary["status"] == "ok").all()
    assert (summary["steps"] == 6).all() and (summary["tokens_per_s"] > 0).all()
    assert summary["baseline"].iloc[0] == pytest.approx(3 * math.log(8) / (3 + 6))    # N = 3 by default
    grads = pd.read_csv(tiny_run / "gradnorms.csv")
    assert set(grads["step"]) == {0, 3, 6}
    assert set(grads[grads.cell == "lstm"]["state"]) == {"h", "c"}
    assert set(grads[grads.cell == "rnn"]["state"]) == {"h"}
    assert sorted(set(grads["t"])) == list(range(3 + 6))                     # T + 2N steps, N = 3
    metrics = pd.read_csv(tiny_run / "metrics.csv")
    assert {"train_loss", "grad_norm", "val_loss", "val_accuracy", "test_loss", "test_accuracy"} <= set(metrics.metric)
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["steps"] == 6 and config["task"] == "copy" and config["cells"] == ["lstm", "rnn", "gru"]
    env = json.loads((tiny_run / "environment.json").read_text())
    for key in ("python", "torch", "numpy", "triton", "cpu", "gpu", "torch_threads", "git_commit"):
        assert key in env


def test_same_seed_gives_the_same_numbers(tiny_run, tmp_path, cli):
    code, _, _ = cli("run", "--cells", "lstm,rnn,gru", "--task", "copy", "--out", tmp_path / "again",
                     "--grad-at", "3", *TINY)
    assert code == 0
    for table in ("metrics", "gradnorms"):
        pd.testing.assert_frame_equal(pd.read_csv(tiny_run / f"{table}.csv"), pd.read_csv(tmp_path / "again" / f"{table}.csv"))
    a, b = pd.read_csv(tiny_run / "summary.csv"), pd.read_csv(tmp_path / "again" / "summary.csv")
    cols = ["loss", "eval_loss", "accuracy", "grad_decay_init", "grad_decay_final"]
    pd.testing.assert_frame_equal(a[cols], b[cols])


def test_summary_is_printed_with_baseline_verdicts(tmp_path, cli):
    code, out, _ = cli("run", "--cells", "lstm,rnn", "--task", "adding", "--out", tmp_path / "r", *TINY)
    assert code == 0
    assert "baseline" in out and "memoryless baseline" in out
    assert out.count("the memoryless baseline") == 2 and "dL/dh at the first step" in out and "per step" in out


def test_clipping_logs_the_norm_before_clipping(tmp_path, cli):
    code, _, _ = cli("run", "--cells", "rnn", "--task", "adding", "--clip", "1e-4", "--log-every", "1",
                     "--out", tmp_path / "r", *TINY)
    assert code == 0
    m = pd.read_csv(tmp_path / "r" / "metrics.csv")
    assert (m[m.metric == "grad_norm"]["value"] > 1e-3).all()


def test_list_shows_cells_tasks_and_their_package(cli):
    code, out, _ = cli("list")
    assert code == 0
    for name in ("rnn", "lstm", "gru", "copy", "adding"):
        assert f"  {name} " in out
    assert "rnn-harness 0.1.0" in out
    code, out, _ = cli("list", "--json")
    data = json.loads(out)
    assert {"rnn", "lstm", "gru"} <= {c["name"] for c in data["cells"]}


@pytest.mark.parametrize("args, needle", [
    (["--cells", "lsmt", "--task", "copy"], "unknown cell 'lsmt'; valid cells: "),
    (["--cells", "lstm", "--task", "kopy"], "unknown task 'kopy'; valid tasks: "),
    (["--cells", "lstm", "--task", "copy", "--steps", "0"], "--steps: must be between 1"),
    (["--cells", "lstm", "--task", "copy", "--steps", "-5"], "--steps: must be between 1"),
    (["--cells", "lstm", "--task", "copy", "--hidden-size", "1000000"], "--hidden-size: must be between"),
    (["--cells", "lstm", "--task", "copy", "--lr", "-1"], "--lr: must be > 0"),
    (["--cells", "lstm", "--task", "copy", "--lr", "abc"], "--lr: expected a number"),
    (["--cells", "lstm", "--task", "copy", "--task-opt", "n_symbols=0"], "n_symbols=0: must be between"),
    (["--cells", "lstm", "--task", "copy", "--task-opt", "colour=red"], "unknown option; valid options:"),
    (["--cells", "lstm", "--task", "adding", "--seq-len", "1"], "seq-len >= 2"),
    (["--cells", "lstm", "--task", "copy", "--preset", "nope"], "unknown preset 'nope'"),
    (["--cells", "", "--task", "copy"], "--cells is empty"),
])
def test_bad_options_get_one_line(args, needle, cli, tmp_path):
    code, _, err = cli("run", *args, "--out", tmp_path / "r", "--no-progress")
    assert code == 2
    assert not (tmp_path / "r").exists()                          # a refused run leaves no folder
    line = one_line_error(err)
    assert needle in line
    if "unknown cell" in needle:
        assert "lstm" in line and "rnn" in line


def test_cuda_without_a_gpu(monkeypatch, cli, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = cli("run", "--cells", "lstm", "--task", "copy", "--device", "cuda", "--out", tmp_path / "r")
    assert code == 2
    assert "no CUDA GPU" in one_line_error(err) and "--device cpu" in err


def test_an_existing_run_is_never_overwritten(tiny_run, cli):
    before = (tiny_run / "summary.csv").read_text()
    code, _, err = cli("run", "--cells", "lstm", "--task", "copy", "--out", tiny_run, *TINY)
    assert code == 2 and "already holds a run" in err
    assert (tiny_run / "summary.csv").read_text() == before


def test_diverged_and_failed_cells_do_not_stop_the_others(plugins, cli, tmp_path):
    plugins(MisbehavingPlugin(), OutsiderPlugin())
    code, out, err = cli("run", "--cells", "nan-cell,raising-cell,outsider-rnn", "--task", "adding",
                         "--out", tmp_path / "r", *TINY)
    assert code == 1                                           # a failed cell fails the command
    assert "harness run: raising-cell failed: RuntimeError: boom inside the plugin" in err
    assert "boom" not in out                                   # failures go to stderr
    s = pd.read_csv(tmp_path / "r" / "summary.csv").set_index("cell")
    assert s.loc["nan-cell", "status"] == "diverged" and "non-finite loss" in s.loc["nan-cell", "reason"]
    assert s.loc["nan-cell", "steps"] == 3
    assert s.loc["raising-cell", "status"] == "failed" and "boom inside the plugin" in s.loc["raising-cell", "reason"]
    assert s.loc["outsider-rnn", "status"] == "ok" and s.loc["outsider-rnn", "steps"] == 6
    assert "Traceback" not in out + err


def test_ctrl_c_keeps_the_finished_tables(plugins, cli, tmp_path):
    plugins(MisbehavingPlugin())
    folder = tmp_path / "r"
    code, _, err = cli("run", "--cells", "rnn,interrupt-cell,lstm", "--task", "adding", "--out", folder,
                       "--log-every", "1", *TINY)
    assert code == 130
    assert f"the finished tables are kept in {folder}" in err
    s = pd.read_csv(folder / "summary.csv")
    assert list(s["cell"]) == ["rnn", "interrupt-cell"]
    assert list(s["status"]) == ["ok", "interrupted"]
    m = pd.read_csv(folder / "metrics.csv")
    assert set(m["cell"]) == {"rnn", "interrupt-cell"}          # the partial cell's log is kept too


def test_bench_writes_timings(cli, tmp_path):
    code, out, err = cli("bench", "--cells", "lstm,rnn", "--shapes", "5x2x3x4", "--repeats", "3", "--warmup", "1",
                         "--out", tmp_path / "b")
    assert code == 0, err
    b = pd.read_csv(tmp_path / "b" / "bench.csv")
    assert set(b["pass"]) == {"forward", "forward+backward"} and (b["status"] == "ok").all()
    assert (b["tokens_per_s"] > 0).all() and (b["q25_s"] <= b["q75_s"]).all()
    assert "fwd+bwd vs lstm" in out
    ratio_line = next(l for l in out.splitlines() if l.split()[4:5] == ["lstm"])
    assert ratio_line.split()[-1] == "1.00"
    code, _, err = cli("bench", "--shapes", "5x2x3", "--out", tmp_path / "c")
    assert code == 2 and "write T x B x I x H" in err
    code, _, err = cli("bench", "--cells", "rnn", "--reference", "gru", "--shapes", "5x2x3x4", "--out", tmp_path / "d")
    assert code == 2 and "--reference gru: not among the timed cells" in err


def test_a_preset_sets_task_options_and_the_command_line_wins(cli, tmp_path):
    data = tmp_path / "polarity"
    data.mkdir()
    words = ["good", "fine", "great", "bad", "poor", "dull", "plot", "actors", "the", "film"]
    for name, offset in (("rt-polarity.pos", 0), ("rt-polarity.neg", 3)):
        (data / name).write_text("\n".join(" ".join(words[(i + offset + k) % 10] for k in range(5))
                                           for i in range(30)) + "\n")
    small = ["--steps", "2", "--hidden-size", "4", "--seq-len", "6", "--batch-size", "4", "--no-progress", "--no-plots"]
    code, _, err = cli("run", "--cells", "lstm", "--task", "sentiment", "--preset", "rt-polarity",
                       "--task-opt", f"path={data}", "--out", tmp_path / "a", *small)
    assert code == 0, err
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["task_options"]["source"] == "rt-polarity" and config["hidden_size"] == 4
    code, _, err = cli("run", "--cells", "lstm", "--task", "sentiment", "--preset", "rt-polarity",
                       "--task-opt", "source=synthetic", "--out", tmp_path / "b", *small)
    assert code == 0, err
    assert json.loads((tmp_path / "b" / "config.json").read_text())["task_options"]["source"] == "synthetic"


def test_a_run_flushes_denormals_to_zero_on_every_cpu_thread():
    """Vanishing gradients pass through float32's denormals, which x86 computes about 10-100x slower
    (benchmarks/bench_denormals.py). A run (execute, bench) calls prepare_cpu before any other torch work, so
    torch's pool threads, started later, inherit the flush-to-zero flag: every element below is flushed."""
    import subprocess
    import sys

    def total(prepare: str) -> list[str]:
        code = (f"import torch; from harness.measurements.environment import prepare_cpu; {prepare}; "
                "tiny = torch.full((1 << 20,), 1e-39); print(float((tiny * 1.0).sum()), torch.get_num_threads())")
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()

    kept = total("torch.set_num_threads(2)")
    assert float(kept[0]) > 0                       # denormals survive by default: the test can tell
    assert total("prepare_cpu(2)") == ["0.0", "2"]  # flushed on both threads

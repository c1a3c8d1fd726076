"""Executors for real: the local pool, a local Ray cluster and submitit's local executor give bit-identical rows;
a killed worker fails only its unit; a real Ctrl-C keeps every finished unit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from harness.reports.columns import TIMING

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--task", "copy", "--seq-len", "4", "--steps", "15", "--hidden-size", "8", "--batch-size", "8",
        "--task-opt", "eval_size=32", "--no-progress", "--no-plots"]
SLOW = ["--task", "copy", "--seq-len", "6", "--steps", "400", "--hidden-size", "16", "--batch-size", "16",
        "--task-opt", "eval_size=32", "--no-progress", "--no-plots"]


def _row(folder: Path) -> dict:
    """The reproducible part of a run folder's one summary row (timing columns left out)."""
    (row,) = pd.read_csv(folder / "summary.csv").to_dict("records")
    return {k: (None if pd.isna(v) else v) for k, v in row.items() if k not in TIMING}  # NaN == NaN here


def _unit(sweep: Path, cell: str, seed: int) -> Path:
    (folder,) = (sweep / "units").glob(f"{cell}-*seed-{seed}-*")
    return folder


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    """lstm, seed 1, through 'harness run' alone with one thread: the numbers every executor must reproduce."""
    out = tmp_path_factory.mktemp("alone") / "run"
    from harness.cli import main
    assert main(["run", "--cells", "lstm", "--seed", "1", "--threads", "1", "--out", str(out), *TINY]) == 0
    return _row(out)


@pytest.mark.parametrize("executor", [
    ["--executor", "local", "--jobs", "2"],
    ["--executor", "ray", "--jobs", "2"],                                  # a real local Ray cluster, num_cpus=2
    ["--executor", "submitit", "--submitit-cluster", "local", "--jobs", "2"],
], ids=["local", "ray", "submitit"])
def test_a_unit_gives_the_same_row_alone_and_on_every_executor(alone, executor, tmp_path):
    out = tmp_path / "sweep"
    done = subprocess.run([sys.executable, "-m", "harness", "sweep", "--cells", "lstm,gru", "--seeds", "0,1",
                           "--threads-per-unit", "1", *executor, "--out", str(out), *TINY],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    units = pd.read_csv(out / "units.csv")
    assert len(units) == 4 and set(units["status"]) == {"ok"} and set(units["threads"]) == {1}
    assert _row(_unit(out, "lstm", 1)) == alone                   # bit for bit, every reproducible column
    assert "lstm remembers" in done.stdout or "lstm beats the memoryless baseline at none" in done.stdout


def _wait_for(condition, what: str, timeout: float = 240.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _early_in_training(sweep: Path) -> Path | None:
    """A running unit that has logged metrics, all from its first half of SLOW's 400 steps (seconds from its end)."""
    folder = _running_unit(sweep)
    if folder is None or not (folder / "metrics.csv").exists():
        return None
    steps = pd.read_csv(folder / "metrics.csv")["step"]
    return folder if len(steps) and steps.max() < 200 else None


def _running_unit(sweep: Path) -> Path | None:
    """A unit folder whose process has started and not finished."""
    for folder in (sweep / "units").glob("*"):
        if (folder / "started.json").exists() and not (folder / "result.json").exists():
            return folder
    return None


def _sweep(out: Path, *extra: str, background: bool = False) -> subprocess.Popen:
    """The sweep as a process; ``background``: with SIGINT ignored, as a shell starts 'COMMAND &' (and nohup jobs);
    otherwise with SIGINT as a terminal's foreground job has it, whatever pytest itself inherited."""
    handler = signal.SIG_IGN if background else signal.SIG_DFL
    return subprocess.Popen([sys.executable, "-m", "harness", "sweep", "--cells", "lstm,rnn", "--seeds", "2",
                             "--threads-per-unit", "1", "--out", str(out), *SLOW, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, handler))


WIDE = ["--task", "copy", "--seq-len", "10", "--steps", "60", "--task-opt", "eval_size=64", "--no-progress",
        "--no-plots"]
"""Sizes (the default H = 64, B = 64) at which torch splits work between threads: an lstm's numbers after 60 steps
differ between 1 and 2 threads here, where they do not at TINY's."""


def test_jobs_never_change_the_numbers(tmp_path):
    # The same 4-unit sweep one unit at a time and two at a time: every metric column identical, bit for bit
    # (the thread count per unit no longer follows --jobs; it did, and lstm's loss then differed).
    tables = []
    for jobs in ("1", "2"):
        out = tmp_path / f"jobs-{jobs}"
        done = subprocess.run([sys.executable, "-m", "harness", "sweep", "--cells", "lstm,gru", "--seeds", "2",
                               "--jobs", jobs, "--out", str(out), *WIDE], capture_output=True, text=True, cwd=ROOT,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        units = pd.read_csv(out / "units.csv").drop(columns=["unit", "folder", *TIMING], errors="ignore")
        tables.append(units.sort_values(["cell", "seed"]).reset_index(drop=True))
    assert len(tables[0]) == 4 and set(tables[0]["threads"]) == {1}
    pd.testing.assert_frame_equal(tables[0], tables[1], check_exact=True)


def _processes_with(marker: str) -> list[int]:
    """The live processes whose environment holds ``marker`` (Linux's /proc)."""
    pids = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in environ.read_bytes():
                pids.append(int(environ.parent.name))
        except OSError:
            pass                                                   # gone, or not ours to read
    return pids


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads other processes' environments in /proc")
def test_no_process_of_a_sweep_outlives_it(tmp_path):
    # The forkserver used to outlive the sweep by most of a second (its own interpreter shutdown, torch loaded),
    # holding the sweep's stdout open: a pipe's reader ('| tee', subprocess.run) waited for it.
    marker = f"HARNESS_TEST_MARKER={tmp_path.name}"
    env = {**os.environ, "HARNESS_TEST_MARKER": tmp_path.name}
    with open(tmp_path / "out.txt", "w") as log:
        sweep = subprocess.Popen([sys.executable, "-m", "harness", "sweep", "--cells", "lstm", "--seeds", "2",
                                  "--jobs", "2", "--out", str(tmp_path / "sweep"), *TINY], stdout=log,
                                 stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        assert sweep.wait(timeout=600) == 0, (tmp_path / "out.txt").read_text()[-3000:]
    assert _processes_with(marker) == []                          # no forkserver, no unit left behind


def test_a_resume_with_another_thread_count_is_refused_in_one_line(tmp_path):
    out = tmp_path / "sweep"
    first = subprocess.run([sys.executable, "-m", "harness", "sweep", "--cells", "lstm", "--seeds", "1",
                            "--out", str(out), *TINY], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    again = subprocess.run([sys.executable, "-m", "harness", "sweep", "--cells", "lstm", "--seeds", "2",
                            "--threads-per-unit", "2", "--out", str(out), *TINY], capture_output=True, text=True,
                           cwd=ROOT, timeout=600)
    assert again.returncode == 2
    (line,) = again.stderr.strip().splitlines()
    assert "ran with 1 thread(s) each" in line and "--threads-per-unit 1" in line and "Traceback" not in line
    assert len(list((out / "units").glob("*/result.json"))) == 1          # nothing ran, nothing was mixed in


def test_a_worker_killed_mid_unit_fails_only_that_unit_and_retry_failed_completes_it(tmp_path):
    out = tmp_path / "sweep"
    sweep = _sweep(out, "--jobs", "2")
    victim = _wait_for(lambda: _running_unit(out), "a running unit")
    pid = json.loads((victim / "started.json").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)                                   # as the out-of-memory killer would
    stdout, stderr = sweep.communicate(timeout=600)
    assert sweep.returncode == 1, stderr[-3000:]
    units = pd.read_csv(out / "units.csv").set_index("folder")
    assert units.loc[victim.name, "status"] == "failed"
    assert "killed by SIGKILL" in units.loc[victim.name, "reason"]
    others = units.drop(index=victim.name)
    assert (others["status"] == "ok").all() and len(units) == 4, others[["status", "reason"]].to_string()  # finished
    assert f"{victim.name.split('-')[0]}" in stderr and "killed by SIGKILL" in stderr and "Traceback" not in stderr
    again = _sweep(out, "--jobs", "2", "--retry-failed")
    stdout, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stderr[-3000:]
    assert "3 of 4 units already finished" in stdout               # only the failed unit ran again
    assert set(pd.read_csv(out / "units.csv")["status"]) == {"ok"}


@pytest.mark.parametrize("signum,background", [(signal.SIGINT, False), (signal.SIGTERM, True)],
                         ids=["ctrl-c", "sigterm-to-a-background-sweep"])
def test_a_real_ctrl_c_keeps_every_finished_unit_and_the_same_command_resumes(signum, background, tmp_path):
    out = tmp_path / "sweep"
    sweep = _sweep(out, "--jobs", "1", background=background)
    running = _wait_for(lambda: list((out / "units").glob("*/result.json")) and _early_in_training(out),
                        "one finished unit and one in its first half of training")
    sweep.send_signal(signum)      # SIGINT: what Ctrl-C in a terminal sends; SIGTERM: kill, or Slurm's time limit
    stdout, stderr = sweep.communicate(timeout=300)
    assert sweep.returncode == 130, stderr[-3000:]
    assert "run the same command again to resume" in stderr and "Traceback" not in stderr
    # The unit that was training stopped there (it takes the sweep's SIGINT even where the shell had SIGINT
    # ignored) and wrote its tables, marked interrupted; one that ignored it would have finished 'ok'.
    assert not (running / "result.json").exists(), running
    assert pd.read_csv(running / "summary.csv")["status"].tolist() == ["interrupted"], running
    finished = [f.parent for f in (out / "units").glob("*/result.json")]
    assert finished
    for folder in finished:                                        # finished units are whole run folders
        assert _row(folder)["status"] == "ok" and (folder / "metrics.csv").exists()
    units = pd.read_csv(out / "units.csv")
    assert (units["status"] == "ok").sum() == len(finished) and set(units["status"]) <= {"ok", "pending"}
    again = _sweep(out, "--jobs", "1")
    stdout, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stderr[-3000:]
    assert f"{len(finished)} of 4 units already finished" in stdout
    assert set(pd.read_csv(out / "units.csv")["status"]) == {"ok"}

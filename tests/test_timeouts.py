"""Time limits: a cell that hangs is stopped and marked ``timeout``, the others go on, and every finished table stays
on disk; in ``harness run`` (--cell-timeout, in-process) and in every sweep unit (--unit-timeout, with the local
executor's kill from outside as the backstop)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch._dynamo  # noqa: F401  what an optimiser imports on its first step (~2 s here): not the cell's time

from harness import CellSpec, hookimpl
from harness.run.deadline import CellTimeout, deadline
from fake_cells import HandRNN

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--steps", "6", "--seq-len", "3", "--hidden-size", "4", "--batch-size", "4", "--no-progress", "--no-plots"]


class SleepsOnThirdStep(HandRNN):
    """Trains two steps, then hangs in its forward pass (as a deadlocked kernel or a stuck read would)."""

    steps = 0

    def forward(self, x, state=None):
        if self.training and x.shape[0] > 1:        # a training step (the gradient measurement runs T = 1 calls)
            self.steps += 1
            if self.steps == 3:
                time.sleep(120)
        return super().forward(x, state)


class SleepyPlugin:
    @hookimpl
    def register_cells(self, register):
        register(CellSpec(name="sleepy", description="hangs at step 3", factory=SleepsOnThirdStep, max_layers=1))


def test_deadline_interrupts_a_sleep_in_the_main_thread():
    start = time.monotonic()
    with pytest.raises(CellTimeout):
        with deadline(0.3):
            time.sleep(30)
    assert time.monotonic() - start < 5


def test_deadline_interrupts_a_python_loop_in_another_thread_and_never_fires_after_the_block():
    caught = []

    def work():
        try:
            with deadline(0.3):
                while True:
                    sum(range(100))
        except CellTimeout:
            caught.append("timeout")
        with deadline(0.2):
            pass                                    # finished in time: nothing may be raised later
        time.sleep(0.5)
        caught.append("after")

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(20)
    assert caught == ["timeout", "after"]


def test_no_limit_and_an_outer_alarm_are_left_alone():
    with deadline(None):
        time.sleep(0.01)
    fired = []
    previous = signal.signal(signal.SIGALRM, lambda *_: fired.append(True))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.6)
        with deadline(5):
            time.sleep(0.05)
        time.sleep(1.5)
        assert fired == [True]                      # the outer alarm still came, after the block
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_run_stops_a_hanging_cell_marks_it_timeout_and_runs_the_next(plugins, cli, tmp_path):
    plugins(SleepyPlugin())
    start = time.monotonic()
    code, out, err = cli("run", "--cells", "sleepy,rnn", "--task", "adding", "--cell-timeout", "2",
                         "--log-every", "1", "--out", tmp_path / "r", *TINY)
    assert time.monotonic() - start < 60                            # not the 120 s the cell sleeps
    assert code == 1, err
    summary = pd.read_csv(tmp_path / "r" / "summary.csv").set_index("cell")
    assert summary.loc["sleepy", "status"] == "timeout" and summary.loc["rnn", "status"] == "ok"
    assert summary.loc["sleepy", "steps"] == 2
    assert summary.loc["sleepy", "reason"] == "ran past its time limit of 2 s, after 2 of 6 training steps"
    metrics = pd.read_csv(tmp_path / "r" / "metrics.csv")
    assert set(metrics[metrics.cell == "sleepy"]["step"]) == {1, 2}   # its curve up to the hang is kept
    assert "harness run: sleepy timeout: ran past its time limit of 2 s" in err and "Traceback" not in err


def test_cell_timeout_none_is_no_limit_and_bad_values_are_one_line(cli, tmp_path):
    code, _, err = cli("run", "--cells", "rnn", "--task", "adding", "--cell-timeout", "none", "--out",
                       tmp_path / "r", *TINY)
    assert code == 0, err
    code, _, err = cli("run", "--cells", "rnn", "--task", "adding", "--cell-timeout", "-3", "--out",
                       tmp_path / "r2", *TINY)
    assert code == 2 and "--cell-timeout: must be > 0" in err


# ------------------------------------------------------------------------------------------------- sweeps

SWEEP_TINY = ["--task", "adding", "--seq-len", "3", "--hidden-size", "4", "--batch-size", "4", "--seeds", "1",
              "--no-progress", "--no-plots"]


@pytest.fixture
def counting(plugins):
    from fake_cells import CountingExecutor, CountingPlugin
    plugins(CountingPlugin())
    CountingExecutor.ran = []
    return CountingExecutor


def test_a_unit_past_its_time_is_timeout_the_others_go_on_and_only_retry_failed_runs_it_again(counting, cli, tmp_path):
    out = tmp_path / "s"
    args = ["sweep", "--cells", "rnn", "--steps", "4,1000000", "--log-every", "2", "--unit-timeout", "2",
            "--executor", "counting", "--out", out, *SWEEP_TINY]
    start = time.monotonic()
    code, stdout, err = cli(*args)
    assert time.monotonic() - start < 60
    assert code == 1, err
    units = pd.read_csv(out / "units.csv").set_index("steps")
    assert units.loc[4, "status"] == "ok" and units.loc[1000000, "status"] == "timeout"
    assert units.loc[1000000, "reason"].startswith("ran past its time limit of 2 s, after ")
    slow = out / "units" / units.loc[1000000, "folder"]
    assert json.loads((slow / "result.json").read_text())["status"] == "timeout"
    assert pd.read_csv(slow / "summary.csv")["status"].tolist() == ["timeout"]      # its tables are kept
    assert len(pd.read_csv(slow / "metrics.csv"))
    summary = pd.read_csv(out / "sweep_summary.csv").set_index("steps")
    assert summary.loc[1000000, "n_failed"] == 1 and summary.loc[1000000, "n_seeds"] == 0
    assert "at most 2 s each" in stdout
    assert "unit rnn (steps=1000000, seed 0) timeout: ran past its time limit of 2 s" in err
    assert "1 unit(s) failed, timed out or were skipped" in err and "--unit-timeout" in err and "--retry-failed" in err
    assert json.loads((out / "sweep.json").read_text())["invocations"][-1]["unit_timeout_s"] == 2

    counting.ran.clear()
    code, stdout, _ = cli(*args)                                   # a plain re-run keeps the timeout
    assert code == 1 and counting.ran == [] and "2 of 2 units already finished" in stdout
    code, stdout, _ = cli(*args, "--retry-failed")                 # --retry-failed runs it again, and only it
    assert code == 1 and counting.ran == ["rnn (steps=1000000, seed 0)"] and "1 of 2 units already finished" in stdout


def test_the_unit_timeout_comes_from_the_sweep_file_and_none_means_no_limit(counting, cli, tmp_path):
    from harness.commands.sweep import DEFAULT_UNIT_TIMEOUT_S, build, request_from_args
    from harness.cli import build_parser
    from harness.plugins.registry import load_registry
    from harness.sweep.files import load

    def settings(*argv, text=""):
        path = tmp_path / "s.toml"
        path.write_text(f'task = "adding"\ncells = ["rnn"]\n{text}')
        args = build_parser().parse_args(["sweep", "--config", str(path), *argv])
        return build(load(path).merged(request_from_args(args)), load_registry())[2]

    assert settings()["unit_timeout"] == DEFAULT_UNIT_TIMEOUT_S == 86400
    assert settings(text="[executor]\nunit_timeout = 90\n")["unit_timeout"] == 90
    assert settings(text='[executor]\nunit_timeout = "none"\n')["unit_timeout"] is None
    assert settings("--unit-timeout", "none", text="[executor]\nunit_timeout = 90\n")["unit_timeout"] is None
    assert settings("--unit-timeout", "30")["unit_timeout"] == 30
    code, _, err = cli("sweep", "--cells", "rnn", "--task", "adding", "--unit-timeout", "0", "--out", tmp_path / "o")
    assert code == 2 and "--unit-timeout: must be > 0" in err


@pytest.mark.slow
def test_the_local_executor_stops_a_unit_itself_in_a_real_sweep(tmp_path):
    """A real 'harness sweep' process (12 to 18 s here, mostly torch loading in it and its forkserver): the
    unit's limit travels to the unit's own process and stops it there."""
    out = tmp_path / "s"
    done = subprocess.run([sys.executable, "-m", "harness", "sweep", "--cells", "rnn", "--steps", "4,1000000",
                           "--unit-timeout", "3", "--jobs", "2", "--threads-per-unit", "1", "--out", str(out),
                           *SWEEP_TINY], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 1, done.stderr[-3000:]
    units = pd.read_csv(out / "units.csv").set_index("steps")
    assert units.loc[4, "status"] == "ok" and units.loc[1000000, "status"] == "timeout"
    assert units.loc[1000000, "reason"].startswith("ran past its time limit of 3 s")   # it stopped itself
    assert "Traceback" not in done.stderr


@dataclass(frozen=True)
class Job:
    id: str
    folder: str


STUCK_S = 900
"""How long a stuck unit would sleep: far beyond any start-up time, so that finishing well before it (the bounds
below) can only mean it was stopped, however slowly a busy machine starts Ray or a process."""


def stuck_or_quick(job: Job):
    """A unit's work for the local executor: 'quick' returns at once; 'stuck' starts a child process and then
    blocks SIGALRM and sleeps, as a unit stuck in one long C call would (its own timer cannot reach it)."""
    from harness.contract.executors import UnitResult
    if job.id == "quick":
        return UnitResult(job.id, "ok")
    if job.id == "patient":                         # well within the limit, once it runs
        time.sleep(1.0)
        return UnitResult(job.id, "ok")
    child = subprocess.Popen(["sleep", str(STUCK_S)])
    Path(job.folder, "child.pid").write_text(str(child.pid))
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM, signal.SIGINT})
    time.sleep(STUCK_S)
    return UnitResult(job.id, "ok")


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"                                            # dead, waiting for its new parent to reap it


def test_the_local_executor_kills_the_process_group_of_a_unit_that_does_not_stop_itself(monkeypatch, tmp_path):
    from harness.contract.executors import ExecutorSettings
    from harness.executors import local

    monkeypatch.setattr(local, "KILL_AFTER_S", 1.0)
    warm = []                                       # start the forkserver first: seconds here, not the unit's time
    local.LocalExecutor(ExecutorSettings(folder=str(tmp_path), jobs=1, threads_per_unit=1)).run(
        [Job("quick", str(tmp_path))], stuck_or_quick, warm.append)
    assert [r.status for r in warm] == ["ok"]
    executor = local.LocalExecutor(ExecutorSettings(folder=str(tmp_path), jobs=2, threads_per_unit=1,
                                                    unit_timeout=3.0))
    results = {}
    start = time.monotonic()
    executor.run([Job("stuck", str(tmp_path)), Job("quick", str(tmp_path))], stuck_or_quick,
                 lambda r: results.setdefault(r.id, r))
    assert time.monotonic() - start < STUCK_S / 3                  # stopped, not slept out
    assert results["quick"].status == "ok", results["quick"]
    assert results["stuck"].status == "timeout"
    assert results["stuck"].reason == ("still running 1 s past its time limit of 3 s (stuck in a call its own timer "
                                       "cannot interrupt): its processes were killed")
    child = int((tmp_path / "child.pid").read_text())
    end = time.monotonic() + 10
    while not _gone(child) and time.monotonic() < end:
        time.sleep(0.05)
    assert _gone(child), "the unit's own child process outlived it"


@pytest.mark.slow
def test_ray_force_cancels_a_task_that_does_not_stop_itself_counting_from_its_start(monkeypatch, tmp_path):
    """A real local Ray cluster with one CPU (about 20 s here, most of it Ray starting). The stuck unit is cancelled
    after its limit; the unit queued behind it waited longer than the limit, and is not cut short for it."""
    ray = pytest.importorskip("ray")
    from harness.contract.executors import ExecutorSettings
    from harness.executors import ray_engine

    monkeypatch.setattr(ray_engine, "KILL_AFTER_S", 0.5)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT / "tests")}})   # the workers import this module
    try:
        executor = ray_engine.RayExecutor(ExecutorSettings(folder=str(tmp_path), jobs=1, threads_per_unit=1,
                                                           unit_timeout=1.5))
        results = []
        start = time.monotonic()
        executor.run([Job("stuck", str(tmp_path)), Job("patient", str(tmp_path))], stuck_or_quick, results.append)
        assert time.monotonic() - start < STUCK_S / 3              # cancelled, not slept out
    finally:
        ray.shutdown()
    assert [(r.id, r.status) for r in results] == [("stuck", "timeout"), ("patient", "ok")]
    assert "its Ray task was force-cancelled" in results[0].reason


@pytest.mark.parametrize("slurm_time, unit_timeout, minutes", [
    (None, None, 24 * 60),          # neither: submitit's default of a day
    (None, 86400, 24 * 60 + 1),     # the unit's limit plus a minute's grace
    (None, 2, 2),                   # 62 s: rounded up to whole minutes
    (30, 86400, 30),                # --slurm-time wins
])
def test_submitit_sets_the_job_time_limit_from_the_unit_limit(slurm_time, unit_timeout, minutes):
    from harness.executors.submitit_engine import time_limit_min
    assert time_limit_min(slurm_time, unit_timeout) == minutes


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the lost one, on purpose
def test_a_timeout_swallowed_by_a_finaliser_is_raised_again():
    """The garbage collector runs __del__ at any moment, and an exception raised inside one is lost ("Exception
    ignored"): the deadline must fire again, or the cell would never stop."""
    import gc

    class Swallows:
        def __del__(self):
            time.sleep(1.0)                            # the alarm lands in here, and is lost

    start = time.monotonic()
    with pytest.raises(CellTimeout):
        with deadline(0.3):
            obj = Swallows()
            del obj                                    # __del__ runs now, across the deadline
            gc.collect()
            while time.monotonic() - start < 20:
                sum(range(1000))
    assert time.monotonic() - start < 10


def test_the_defaults_are_stated_where_users_look():
    from harness.cli import build_parser
    from harness.commands.sweep import DEFAULT_UNIT_TIMEOUT_S

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices
    sweep_help = " ".join(sub["sweep"].format_help().split())
    run_help = " ".join(sub["run"].format_help().split())
    hours = DEFAULT_UNIT_TIMEOUT_S // 3600
    assert f"default {DEFAULT_UNIT_TIMEOUT_S} s = {hours} hours" in sweep_help and f"default {hours} hours" in sweep_help
    assert "--cell-timeout SECONDS" in run_help and "default: none" in run_help
    docs = " ".join((ROOT / "docs" / "sweeps.md").read_text().split())
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"**Default: {hours} hours.**" in docs and f"(default: {hours} hours;" in readme
    assert "`harness run --cell-timeout SECONDS` (default: none)" in readme

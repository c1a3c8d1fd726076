"""Time limits: a cell that hangs is stopped and marked ``timeout``, the others go on, and every finished table stays
on disk; in ``harness run`` (--cell-timeout, in-process) and in every sweep unit (--unit-timeout, with the local
executor's kill from outside as the backstop)."""

from __future__ import annotations

import json
import os
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

"""The command line under real conditions: started in the background, read by a pipe that closes early, writing
into a folder it may not write to."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SLOW = ["--task", "copy", "--seq-len", "6", "--steps", "3000", "--hidden-size", "16", "--batch-size", "16",
        "--task-opt", "eval_size=32", "--log-every", "5", "--threads", "1", "--no-progress", "--no-plots"]


def _harness(*args: str, background: bool = False, **kwargs) -> subprocess.Popen:
    """``python -m harness ARGS`` as a process; ``background``: with SIGINT ignored, as a shell starts 'CMD &'."""
    ignore_sigint = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if background else None
    return subprocess.Popen([sys.executable, "-m", "harness", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, preexec_fn=ignore_sigint, **kwargs)


def _wait_for(condition, what: str, timeout: float = 120.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_run_started_in_the_background_still_stops_on_sigint_and_keeps_its_tables(tmp_path):
    out = tmp_path / "run"
    run = _harness("run", "--cells", "lstm,rnn", "--out", str(out), *SLOW, background=True)
    _wait_for(lambda: (out / "metrics.csv").exists(), "the first logged training steps")
    run.send_signal(signal.SIGINT)                  # 'kill -INT PID': SIGINT to a job the shell started with '&'
    try:
        _, stderr = run.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        run.kill()
        raise AssertionError("the run ignored SIGINT and went on training") from None
    assert run.returncode == 130, stderr[-2000:]
    assert "interrupted: the finished tables are kept in" in stderr and "Traceback" not in stderr
    summary = pd.read_csv(out / "summary.csv")
    assert summary["status"].tolist() == ["interrupted"] and summary["steps"].iloc[0] < 3000
    assert len(pd.read_csv(out / "metrics.csv"))                   # the curve so far is kept


def test_the_background_handler_is_restored_after_the_command(cli):
    """In-process callers (notebooks, tests) get their own SIGINT handling back."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        code, _, _ = cli("list")
        assert code == 0 and signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_reader_that_stops_early_ends_the_command_quietly():
    lister = _harness("list", "--json")
    lister.stdout.close()                            # 'harness list --json | head -0': the reader is gone at once
    stderr = lister.stderr.read()
    assert lister.wait(timeout=120) == 141, stderr
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr


# ----------------------------------------------------------------------------- plot into a folder it cannot write


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    from harness.cli import main
    out = tmp_path_factory.mktemp("plot") / "run"
    assert main(["run", "--cells", "rnn", "--task", "adding", "--steps", "4", "--seq-len", "3", "--hidden-size", "4",
                 "--batch-size", "4", "--no-progress", "--no-plots", "--out", str(out)]) == 0
    return out


def _read_only(folder: Path):
    """Make ``folder`` read-only for real: chmod for a normal user; as root (whom chmod does not stop) a read-only
    bind mount over it. -> a function that undoes it."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return lambda: folder.chmod(0o755)
    made = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True)
    if made.returncode == 0:
        ro = subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], capture_output=True)
        if ro.returncode == 0:
            return lambda: subprocess.run(["umount", str(folder)], check=True)
        subprocess.run(["umount", str(folder)])
    pytest.skip("running as root without the right to mount: no way to make a folder read-only here "
                "(test_a_write_that_fails_mid_plot_is_one_line covers the message)")


def test_plot_into_a_read_only_folder_says_so_in_one_line_and_names_out(run_folder, cli):
    undo = _read_only(run_folder)
    try:
        code, out, err = cli("plot", run_folder)
    finally:
        undo()
    assert code == 2, err
    (line,) = err.strip().splitlines()
    assert line.startswith("harness plot: error: cannot write the figures into")
    assert "read-only file system" in line.lower() or "permission denied" in line.lower()
    assert "--out DIR" in line and "Traceback" not in err
    assert not (run_folder / "figures").exists()


def test_plot_with_out_elsewhere_works_from_a_read_only_run(run_folder, cli, tmp_path):
    undo = _read_only(run_folder)
    try:
        code, out, err = cli("plot", run_folder, "--dest", tmp_path / "figs")     # --dest is --out's other name
    finally:
        undo()
    assert code == 0, err
    assert list((tmp_path / "figs" / "figures").glob("*.png")) and (tmp_path / "figs" / "report.md").exists()


@pytest.mark.parametrize("error", [OSError(errno.EROFS, "Read-only file system"),
                                   PermissionError(errno.EACCES, "Permission denied")], ids=["erofs", "eacces"])
def test_a_write_that_fails_mid_plot_is_one_line(run_folder, cli, monkeypatch, tmp_path, error):
    """A folder that turns read-only (or full) between the up-front check and the figures: one line, no traceback."""
    import matplotlib.figure

    def refuse(self, fname, *args, **kwargs):
        error.filename = str(fname)
        raise error
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", refuse)
    code, _, err = cli("plot", run_folder, "--out", tmp_path / "figs")
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith("harness plot: error: cannot write") and error.strerror in line
    assert "--out DIR" in line and "Traceback" not in err

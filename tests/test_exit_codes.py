"""``harness run`` exit status: 0 when every cell finished (ok or diverged), 1 when a requested cell produced no
result (failed, or skipped as unavailable here), 2 for a usage error. The reason goes to stderr."""

from __future__ import annotations

import pandas as pd
import pytest

from harness import CellSpec, hookimpl
from fake_cells import HandRNN, MisbehavingPlugin

TINY = ["--steps", "6", "--seq-len", "3", "--hidden-size", "4", "--batch-size", "4", "--no-progress", "--no-plots"]


class CudaOnlyPlugin:
    @hookimpl
    def register_cells(self, register):
        register(CellSpec(name="cuda-only", description="declares cuda only", factory=HandRNN, devices=("cuda",)))


@pytest.mark.parametrize("cell, code, status, stderr_line", [
    ("rnn", 0, "ok", None),
    ("nan-cell", 0, "diverged", None),
    ("raising-cell", 1, "failed", "harness run: raising-cell failed: RuntimeError: boom inside the plugin"),
    ("cuda-only", 1, "skipped", "harness run: cuda-only skipped: cuda-only runs on cuda only, not cpu"),
])
def test_run_exit_status_follows_the_cells_status(cell, code, status, stderr_line, plugins, cli, tmp_path):
    plugins(MisbehavingPlugin(), CudaOnlyPlugin())
    got, out, err = cli("run", "--cells", cell, "--task", "adding", "--out", tmp_path / "r", *TINY)
    assert got == code
    assert pd.read_csv(tmp_path / "r" / "summary.csv")["status"].tolist() == [status]
    if stderr_line:
        assert stderr_line in err.splitlines() and stderr_line not in out
        assert sum(cell in line for line in err.splitlines()) == 1          # one clear line, not two
    assert "Traceback" not in out + err


def test_run_usage_error_is_2(cli, tmp_path):
    code, _, err = cli("run", "--cells", "rnn", "--task", "adding", "--steps", "0", "--out", tmp_path / "r")
    assert code == 2 and "--steps: must be between 1" in err


def test_run_help_states_the_exit_codes(capsys):
    from harness.cli import main
    assert main(["run", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "Exit status: 0 when every cell finished ok or diverged; 1 when a cell failed, timed out or was skipped" in text

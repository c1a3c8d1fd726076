"""Shared fixtures. Every test runs on the CPU; GPU-only tests carry the ``gpu`` marker."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _deterministic_threads():
    # Few threads keep timings out of the way and results identical run to run.
    torch.set_num_threads(1)
    yield


@pytest.fixture
def registry():
    from harness.plugins.registry import load_registry
    return load_registry()


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none visible)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def plugins():
    """Register in-process plugin objects for one test: ``plugins(obj, ...)``."""
    from harness.plugins import registry as reg
    added = []

    def add(*objs):
        for obj in objs:
            reg.add_plugin(obj)
            added.append(obj)

    yield add
    for obj in added:
        reg.remove_plugin(obj)


@pytest.fixture
def cli(capsys):
    """Run ``python -m harness ARGS`` in-process: returns (exit code, stdout, stderr)."""
    from harness.cli import main

    def run(*args):
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run

"""Argument types and shared options, with one-line errors that say what is allowed."""

from __future__ import annotations

import argparse
import math
from typing import Any, Callable

import torch

from harness.contract import TaskOption
from harness.errors import HarnessError


def bounded_int(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be between {lo} and {hi}, got {value}")
        return value
    return parse


def bounded_float(lo: float, hi: float, *, allow_none: bool = False) -> Callable[[str], float | None]:
    def parse(text: str) -> float | None:
        if allow_none and text.lower() in ("none", "off"):
            return math.inf  # "no limit": told apart from an option left unset (None)
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (lo < value <= hi):
            raise argparse.ArgumentTypeError(f"must be > {lo:g} and <= {hi:g}, got {text}")
        return value
    return parse


DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}


def apply_threads(threads: int | None) -> None:
    """Set torch's CPU thread count and NumPy's BLAS pool to ``threads`` (both, so CPU comparisons are fair)."""
    if threads is None:
        return
    import numpy  # noqa: F401  (load the BLAS so that threadpoolctl can find it)
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(threads)


def resolve_device(name: str) -> torch.device:
    """``cpu`` / ``cuda`` / ``auto`` -> a device, or a one-line error when CUDA is asked for and absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise HarnessError("--device cuda: no CUDA GPU is visible to torch here; use --device cpu (or auto)")
    return torch.device(name)


def parse_task_options(pairs: list[str], declared: Any, preset: dict[str, Any] | None = None) -> dict[str, Any]:
    """``["n_symbols=4", ...]`` -> typed values, checked against the task's declared options.

    Values come from, in rising priority: each option's default, the preset's
    ``task_options``, then the command line."""
    by_name: dict[str, TaskOption] = {o.name: o for o in declared}
    values = {o.name: o.default for o in declared}
    for name, value in (preset or {}).items():
        if name not in by_name:
            raise HarnessError(f"the preset sets unknown task option {name!r}; valid options: {', '.join(sorted(by_name))}")
        values[name] = value
    for pair in pairs:
        if "=" not in pair:
            raise HarnessError(f"--task-opt {pair!r}: write NAME=VALUE")
        name, text = (s.strip() for s in pair.split("=", 1))
        if name not in by_name:
            valid = ", ".join(sorted(by_name)) or "(this task has none)"
            raise HarnessError(f"--task-opt {name}: unknown option; valid options: {valid}")
        opt = by_name[name]
        try:
            value = (text.lower() in ("1", "true", "yes", "on")) if opt.type is bool else opt.type(text)
        except (TypeError, ValueError):
            raise HarnessError(f"--task-opt {name}={text}: expected {opt.type.__name__}") from None
        if opt.minimum is not None and value < opt.minimum or opt.maximum is not None and value > opt.maximum:
            raise HarnessError(f"--task-opt {name}={text}: must be between {opt.minimum} and {opt.maximum}")
        if opt.choices is not None and value not in opt.choices:
            raise HarnessError(f"--task-opt {name}={text}: choose one of {', '.join(map(str, opt.choices))}")
        values[name] = value
    return values

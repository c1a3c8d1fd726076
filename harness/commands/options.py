"""Argument types and shared options, with one-line errors that say what is allowed."""

from __future__ import annotations

import argparse
import math
from typing import Callable

from harness.contract.errors import HarnessError
from harness.run.config import RUN_OPTIONS, RunOption


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


def option_type(option: RunOption) -> Callable[[str], object]:
    """An argparse ``type=`` for one run option: its own checks, as a one-line argparse error. A word meaning
    "no value" (``--clip none``) stays text, so that it is told apart from an option left unset (``None``)."""
    def parse(text: str):
        try:
            value = option.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text.strip().lower() if value is None else value
    parse.__name__ = option.name  # argparse names the type in some messages
    return parse


def add_run_options(p: argparse.ArgumentParser, names: tuple[str, ...] | None = None,
                    type_for: Callable[[RunOption], Callable[[str], object]] = option_type,
                    help_suffix: str = "") -> None:
    """One ``--flag`` per run option (``harness.run.config.RUN_OPTIONS``); unset ones stay ``None``, so the task's
    defaults and presets apply."""
    for option in RUN_OPTIONS:
        if names is not None and option.name not in names:
            continue
        if option.sweepable:
            default = f" (default: the task's; {option.default} where it sets none)"
        else:
            default = "" if option.default is None else f" (default {option.default})"
        p.add_argument(option.flag, dest=option.name, type=type_for(option), default=None,
                       metavar=option.name.upper() if option.choices is None else "{" + ",".join(option.choices) + "}",
                       help=f"{option.help}{help_suffix if option.sweepable else ''}{default}")


def given_settings(args: argparse.Namespace) -> dict[str, object]:
    """The run options set on the command line (``None`` = left unset)."""
    return {o.name: getattr(args, o.name) for o in RUN_OPTIONS if getattr(args, o.name, None) is not None}


def parse_pairs(pairs: list[str], flag: str = "--task-opt") -> dict[str, str]:
    """``["n_symbols=4", ...]`` -> ``{"n_symbols": "4"}``; values are checked against the task's declarations later."""
    values = {}
    for pair in pairs:
        if "=" not in pair:
            raise HarnessError(f"{flag} {pair!r}: write NAME=VALUE")
        name, text = (s.strip() for s in pair.split("=", 1))
        values[name] = text
    return values

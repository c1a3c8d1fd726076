"""``python -m harness COMMAND``. Each command lives in ``harness/commands/<name>.py``.

User errors (:class:`~harness.contract.errors.HarnessError`, bad options) print one
line on stderr and exit with status 2; Ctrl-C exits with 130. SIGTERM (``kill``,
a Slurm time limit, a container stopping) stops a command exactly as Ctrl-C
does: finished tables stay on disk and the exit status is 130. So does SIGINT
sent to a command started in the background (``harness run ... &``), which a
shell starts with SIGINT ignored. A reader that stops early (``harness list |
head``) ends the command quietly, with status 141 as for any tool ended by SIGPIPE.

The global options ``--plugins`` and ``--disable-plugins`` (before the
command) do what ``HARNESS_PLUGINS`` and ``HARNESS_DISABLE_PLUGINS`` do, for
this one command.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading

from harness.contract.errors import HarnessError

COMMANDS = ("list", "run", "sweep", "bench", "plot", "compare", "reproductions")


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad option in one line (no usage dump) and names the fix."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="harness", description="Benchmark recurrent cells: memory, learning, "
                           "gradient flow through time, and speed.")
    parser.add_argument("--plugins", metavar="A,B",
                        help="load only these plugin entry points, tasks included (as HARNESS_PLUGINS does)")
    parser.add_argument("--disable-plugins", metavar="A,B",
                        help="skip these plugin entry points (as HARNESS_DISABLE_PLUGINS does)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name in COMMANDS:
        module = importlib.import_module(f"harness.commands.{name}")
        p = sub.add_parser(name, help=module.HELP, description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(handler=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a bad option already reported in one line
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        with _plugin_environment(args.plugins, args.disable_plugins), _terminate_as_interrupt():
            return int(args.handler(args) or 0)
    except HarnessError as exc:
        print(f"harness {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"harness {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _reader_gone()


BROKEN_PIPE_EXIT = 141
"""128 + SIGPIPE: what a shell reports for a tool that stopped because its reader went away."""


def _reader_gone() -> int:
    """stdout's reader closed the pipe (``harness list | head``): stop quietly. Python would otherwise print a
    second BrokenPipeError when it flushes stdout at exit, so stdout is pointed at /dev/null first."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is not a file descriptor (captured): nothing will be flushed to it
        pass
    return BROKEN_PIPE_EXIT


def _interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def _terminate_as_interrupt():
    """Turn SIGTERM into the KeyboardInterrupt that Ctrl-C raises, and take SIGINT even where it was ignored,
    for the command's duration.

    Every command already stops tidily on Ctrl-C (a sweep asks its running units to write their tables);
    SIGTERM is what a batch system or ``kill`` sends, and by default it ends Python with nothing written.
    A shell starts a background job (``COMMAND &``) with SIGINT ignored, and Python then installs no
    Ctrl-C handler at all: ``kill -INT`` would be lost on a run that may last hours. Only the main thread may
    set handlers, so a command called from another thread keeps the defaults.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    previous_int = signal.getsignal(signal.SIGINT)
    if previous_int == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if previous_int == signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def _plugin_environment(only: str | None, disable: str | None):
    """Set HARNESS_PLUGINS / HARNESS_DISABLE_PLUGINS for the command, and restore them after it."""
    wanted = {"HARNESS_PLUGINS": only, "HARNESS_DISABLE_PLUGINS": disable}
    saved = {name: os.environ.get(name) for name in wanted}
    try:
        for name, value in wanted.items():
            if value is not None:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

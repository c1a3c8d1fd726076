"""Errors that are the user's to fix. The CLI prints them in one line, without a traceback."""


class HarnessError(Exception):
    """A user-facing error: the message says what is wrong and how to fix it."""


def one_line(exc: BaseException) -> str:
    """``"ValueError: the first line of the message"``: how the harness reports an exception it does not stop for."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")

"""Errors that are the user's to fix. The CLI prints them in one line, without a traceback."""


class HarnessError(Exception):
    """A user-facing error: the message says what is wrong and how to fix it."""

"""User-facing errors.

Anything a user can fix (a missing directory, a bad option, a file in the wrong form) is raised
as :class:`MMCurateError`; the CLI prints its message on one line, without a traceback, and
exits with status 2. Everything else is a bug and keeps its traceback under ``MMCURATE_DEBUG=1``.
"""

from __future__ import annotations


class MMCurateError(Exception):
    """An error whose message tells the user what is wrong and what to change."""

    exit_code = 2


class StageNotReadyError(MMCurateError):
    """An earlier stage's output that this stage needs is missing or incomplete."""


def one_line(text: object, limit: int = 200) -> str:
    """``text`` (an exception or a string) with whitespace collapsed and capped at ``limit`` characters.

    An error message must fit one line; library exceptions often carry multi-line details.
    An exception without a message is named by its type.
    """
    flat = " ".join(str(text).split())
    if not flat and isinstance(text, BaseException):
        flat = type(text).__name__
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."

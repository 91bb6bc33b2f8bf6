"""User-facing errors.

Anything a user can fix (a missing directory, a bad option, a file in the wrong form) is raised
as :class:`MMCurateError`; the CLI prints its message on one line, without a traceback, and
exits with status 2. Everything else is a bug and keeps its traceback under ``MMCURATE_DEBUG=1``.
"""

from __future__ import annotations

#: Longest error message: a longer one (a hostile value quoted whole) is cut in the middle, so an
#: error stays a line a terminal can show.
MAX_MESSAGE_CHARS = 1000


class MMCurateError(Exception):
    """An error whose message tells the user what is wrong and what to change."""

    exit_code = 2

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            args = (bounded_message(args[0]),)
        super().__init__(*args)


def bounded_message(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` on one line (line breaks become spaces) and at most about ``limit`` characters: a
    longer one keeps its start (which names the file or option) and its end (the advice)."""
    text = text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    if len(text) <= limit:
        return text
    head, tail = text[: limit * 3 // 4], text[-(limit // 5) :]
    return f"{head} ... [{len(text) - len(head) - len(tail):,} characters left out] ... {tail}"


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

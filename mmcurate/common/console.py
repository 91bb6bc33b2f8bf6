"""Console output shared by all commands: progress bars and summary tables on stderr.

Results (paths, tables a user may pipe) go to stdout; progress and logs go to stderr so that
``mmcurate ... > out.txt`` stays clean.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

#: Logs and progress.
err_console = Console(stderr=True, highlight=False)
#: Results.
out_console = Console(highlight=False)


def progress_enabled() -> bool:
    """Progress bars are shown unless ``MMCURATE_NO_PROGRESS`` is set (CI logs, tests)."""
    return not os.environ.get("MMCURATE_NO_PROGRESS")


@contextlib.contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Any]:
    """A rich progress bar; yields a callable ``advance(n=1)``.

    Disabled (a no-op) when ``MMCURATE_NO_PROGRESS`` is set, so tests and batch logs stay small.
    """
    if not progress_enabled():
        yield lambda n=1: None
        return
    prog = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )
    with prog:
        task = prog.add_task(description, total=total)
        yield lambda n=1: prog.advance(task, n)


def info(message: str) -> None:
    """A log line on stderr."""
    err_console.print(message)


def warn(message: str) -> None:
    """A warning line on stderr."""
    err_console.print(f"[yellow]warning:[/yellow] {message}")


def summary_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a summary table on stderr (the end-of-run summary every command shows)."""
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(str(col))
    for row in rows:
        table.add_row(*(_fmt(v) for v in row))
    err_console.print(table)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)

"""Console output shared by all commands: progress bars and summary tables on stderr.

Results (paths, tables a user may pipe) go to stdout; progress and logs go to stderr so that
``mmcurate ... > out.txt`` stays clean.

Messages carry user text (paths, labels, repo ids, recipe names), so nothing here is read as rich
markup: ``[/]`` in an ``--out`` path must print as itself, not crash the summary after the work
is done, and ``[bold red]`` in a folder name must not vanish from the path shown.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

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
        task = prog.add_task(escape(description), total=total)  # the column renders it as markup
        yield lambda n=1: prog.advance(task, n)


def info(message: str) -> None:
    """A log line on stderr, printed literally."""
    err_console.print(message, markup=False)


def warn(message: str) -> None:
    """A warning line on stderr (the message printed literally)."""
    err_console.print(Text("warning:", style="yellow") + Text(" " + message))


def summary_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a summary table on stderr (the end-of-run summary every command shows)."""
    table = Table(title=Text(title), title_justify="left")
    for col in columns:
        table.add_column(Text(str(col)))
    for row in rows:
        table.add_row(*(_fmt(v) for v in row))
    err_console.print(table)


def _fmt(v: Any) -> Text:
    if isinstance(v, float):
        return Text(f"{v:.4g}")
    return Text(str(v))

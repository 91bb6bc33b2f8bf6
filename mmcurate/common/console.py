"""Console output shared by all commands: progress bars and summary tables on stderr.

Results (paths, tables a user may pipe) go to stdout; progress and logs go to stderr so that
``mmcurate ... > out.txt`` stays clean.

Messages carry user text (paths, labels, repo ids, recipe names), so nothing here is read as rich
markup: ``[/]`` in an ``--out`` path must print as itself, not crash the summary after the work
is done, and ``[bold red]`` in a folder name must not vanish from the path shown.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from rich.console import Console, ConsoleDimensions
from rich.table import Table
from rich.text import Text

#: Width of output that is not a terminal (a log file, a pipe): wide enough that no table cuts a path with an
#: ellipsis and no line is wrapped. rich would use 80 columns there.
UNBOUNDED_WIDTH = 10_000


class LogConsole(Console):
    """A console that is as wide as its content when it writes to a file or a pipe.

    On a terminal it is rich's console (the terminal's width); elsewhere tables are rendered at full
    width, so paths and commands in them are never truncated with '...'. ``COLUMNS`` in the
    environment, or an explicit ``width``, still win.
    """

    @property  # type: ignore[override]
    def size(self) -> ConsoleDimensions:
        dims = Console.size.fget(self)  # type: ignore[attr-defined]
        if self._width is None and "COLUMNS" not in os.environ and not self.is_terminal:
            return ConsoleDimensions(UNBOUNDED_WIDTH, dims.height)
        return dims

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


#: Logs and progress.
err_console = LogConsole(stderr=True, highlight=False)
#: Results.
out_console = LogConsole(highlight=False)


def progress_enabled() -> bool:
    """Progress bars are shown unless ``MMCURATE_NO_PROGRESS`` is set (CI logs, tests)."""
    return not os.environ.get("MMCURATE_NO_PROGRESS")


def info(message: str) -> None:
    """A log line on stderr, printed literally."""
    err_console.print(message, markup=False)


def warn(message: str) -> None:
    """A warning line on stderr (the message printed literally)."""
    err_console.print(Text("warning:", style="yellow") + Text(" " + message))


def summary_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a summary table on stderr (the end-of-run summary every command shows)."""
    # the title on its own line: as a table title rich wraps it to the table's width, cutting a long path in three
    err_console.print(Text(title), soft_wrap=True)
    table = Table()
    for col in columns:
        table.add_column(Text(str(col)))
    for row in rows:
        table.add_row(*(_fmt(v) for v in row))
    err_console.print(table)


def _fmt(v: Any) -> Text:
    if isinstance(v, float):
        return Text(f"{v:.4g}")
    return Text(str(v))

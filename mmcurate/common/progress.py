"""Progress that reads well both on a terminal and in a log file.

On a terminal: a rich bar that redraws in place. Anywhere else (``mmcurate ... 2> log``, a batch job,
CI): plain lines, one per update at most every ``MMCURATE_PROGRESS_SECONDS`` seconds, plus the last,
so a log shows how far a job got and how long it has left without carriage-return bars.
``MMCURATE_NO_PROGRESS=1`` silences both.

Two helpers, one rule for totals: a count is what the label names, and the total is the number of
those things (a bar never ends at ``39/20``, nor says ``3/3 shards`` when it counted splits).

* :func:`progress_bar` ``(label, total)`` yields ``advance(n=1)``: many small items (clips, samples).
  Line mode prints at most every 30 s by default.
* :func:`epoch_progress` ``(label, total, start=0)`` yields ``report(done, **metrics)``: training,
  where ``done`` is the number of finished epochs (absolute, so a resumed run starts at its own
  ``start``) and ``metrics`` (``loss=0.53, val_acc=0.71``) are shown next to it. Line mode prints
  every epoch by default::

      reeval joint seed 0: epoch 3/20 loss 1.0312 val_acc 0.4667 | 0:04 elapsed, ~0:23 left
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from mmcurate.common.console import err_console, progress_enabled

#: Minimum seconds between two progress lines when stderr is not a terminal (overrides the defaults below).
INTERVAL_ENV = "MMCURATE_PROGRESS_SECONDS"
#: Default line interval for item counts (clips, samples) and for epochs.
ITEM_LINE_SECONDS, EPOCH_LINE_SECONDS = 30.0, 0.0


def line_mode() -> bool:
    """Whether progress is printed as lines: stderr is not a terminal, or this is a worker process (a pool's
    workers share the terminal: live bars from several processes would overwrite each other)."""
    return not err_console.is_terminal or multiprocessing.parent_process() is not None


def _interval(default: float) -> float:
    raw = os.environ.get(INTERVAL_ENV)
    try:
        return max(0.0, float(raw)) if raw else default
    except ValueError:
        return default


def clock(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``."""
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class LineProgress:
    """Progress as lines: ``label: <unit> done/total [metrics] | elapsed, ~left``, throttled to ``interval``."""

    def __init__(
        self,
        label: str,
        total: int | None,
        *,
        unit: str = "",
        start: int = 0,
        interval: float = 0.0,
        write: Callable[[str], None] | None = None,
    ) -> None:
        self.label, self.total, self.unit, self.interval = label, total, unit, interval
        self.start = self.done = start
        self.began = time.monotonic()
        self.last_line: float | None = None
        self._write = write or (lambda line: err_console.print(line, markup=False, highlight=False, soft_wrap=True))

    def update(self, done: int, metrics: dict[str, Any] | None = None, *, force: bool = False) -> None:
        """``done`` so far (absolute); a line when due, on the first update and when the total is reached."""
        self.done = done
        now = time.monotonic()
        final = self.total is not None and done >= self.total
        if force or final or self.last_line is None or now - self.last_line >= self.interval:
            self.last_line = now
            self._write(self.line(metrics or {}, now))

    def line(self, metrics: dict[str, Any], now: float) -> str:
        count = f"{self.done}/{self.total}" if self.total is not None else str(self.done)
        parts = [f"{self.label}: {self.unit + ' ' if self.unit else ''}{count}"]
        parts += [f"{k} {_num(v)}" for k, v in metrics.items()]
        elapsed = now - self.began
        timing = f"{clock(elapsed)} elapsed"
        ran = self.done - self.start
        if self.total is not None and ran > 0:
            timing += f", ~{clock(elapsed / ran * (self.total - self.done))} left"
        return " ".join(parts) + " | " + timing


def _num(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


@contextlib.contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """Count items: yields ``advance(n=1)`` (see the module docstring)."""
    if not progress_enabled():
        yield lambda n=1: None
        return
    if line_mode():
        lines = LineProgress(description, total, interval=_interval(ITEM_LINE_SECONDS))

        def advance(n: int = 1) -> None:
            lines.update(lines.done + n)

        yield advance
        if lines.done and (total is None or lines.done < total):  # an open count, or one that stopped early
            lines.update(lines.done, force=True)
        return
    prog = _rich_progress()
    with prog:
        task = prog.add_task(escape(description), total=total, metrics="")  # the column renders it as markup
        yield lambda n=1: prog.advance(task, n)


@contextlib.contextmanager
def epoch_progress(label: str, total: int, start: int = 0) -> Iterator[Callable[..., None]]:
    """Training progress by epoch: yields ``report(done, **metrics)`` (see the module docstring)."""
    if not progress_enabled():
        yield lambda done, **metrics: None
        return
    if line_mode():
        lines = LineProgress(label, total, unit="epoch", start=start, interval=_interval(EPOCH_LINE_SECONDS))
        yield lambda done, **metrics: lines.update(done, metrics)
        return
    prog = _rich_progress()
    with prog:
        task = prog.add_task(escape(label), total=total, completed=start, metrics="")

        def report(done: int, **metrics: Any) -> None:
            shown = " ".join(f"{k} {_num(v)}" for k, v in metrics.items())
            prog.update(task, completed=done, metrics=escape(shown))

        yield report


def _rich_progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[metrics]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )

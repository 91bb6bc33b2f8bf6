"""Executors, apart from the work: map a pure per-item function over work units.

A stage cuts its work into :class:`WorkUnit` s (an ingest shard of clips, one scorer training job),
decides with the store's completion markers which units are still to do, and hands those to an
executor together with a per-item function. The executor only maps; it never writes. It yields each
unit with its items' results, in unit order, as soon as the unit is complete, and the stage writes
the unit's output and marker. So a local process pool, an array-job part or a cluster engine can
be swapped without the stage noticing, and a run killed at any point resumes from the markers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class WorkUnit(Generic[T]):
    """A named group of items whose results are written (and marked done) together."""

    key: str
    index: int
    items: tuple[T, ...]


def make_units(items: Sequence[T], size: int, key: Callable[[int], str]) -> list[WorkUnit[T]]:
    """Consecutive units of ``size`` items, keyed ``key(index)``."""
    return [WorkUnit(key(i // size), i // size, tuple(items[i : i + size])) for i in range(0, len(items), size)]


class Executor(ABC):
    """Maps a per-item function over work units (see the module docstring)."""

    #: how many items run at once (1: inline, in this process)
    workers: int = 1

    def owns(self, unit: WorkUnit[Any]) -> bool:
        """Whether this process is responsible for ``unit`` (array-job parts own a share)."""
        return True

    @abstractmethod
    def map_units(
        self,
        fn: Callable[[T], R],
        units: Sequence[WorkUnit[T]],
        *,
        initializer: Callable[..., None] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> Iterator[tuple[WorkUnit[T], list[R]]]:
        """Yield ``(unit, [fn(item) for item in unit.items])`` for every unit, in order.

        ``fn`` must be a pure function of its item (plus whatever it closes over, which must be
        picklable for executors that run it elsewhere); ``initializer(*initargs)`` runs once in
        each worker before its first item.
        """

    def prestart(self) -> None:
        """Start the workers now, before the stage builds its work list (a no-op where workers are
        not forked from this process); :meth:`close` stops them if no map used them."""
        return None

    def close(self) -> None:
        """Stop workers that :meth:`prestart` started and no map used."""
        return None

    def describe(self) -> str:
        return f"{self.workers} worker(s)"

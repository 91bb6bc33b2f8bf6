"""The local executor: a process pool on this machine (or inline, for one worker).

Items are submitted through a bounded window (a few per worker) and their results consumed in
order, so memory holds a window of results, not the whole run's: peak memory does not grow with
the number of inputs. The pool is forked before any progress-bar thread starts, and the per-item
function reaches the workers once (through the pool initializer), not once per item.

A forked worker starts with every page its driver holds. A stage whose driver builds a large work
list (ingest: about 300 bytes an input, 9 MB at 30k inputs) calls :meth:`LocalExecutor.prestart`
first, so the workers are forked while the driver is small and their memory does not grow with
the number of inputs; the function then travels with each item (a few hundred bytes).
"""

from __future__ import annotations

import functools
import importlib
import multiprocessing as mp
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from mmcurate.common.memory import release_free_memory
from mmcurate.execution.base import Executor, R, T, WorkUnit

#: items in flight per worker: enough to hide one slow item, small enough to bound memory
WINDOW_PER_WORKER = 8

#: what a job that trains a torch model imports at its first optimiser: ``torch.optim`` pulls in
#: ``torch._dynamo`` (about 800 modules, 0.8 CPU-s). Imported once in the driver before the fork, every worker
#: inherits it instead of importing it again at its first job.
TRAINING_IMPORTS = ("torch._dynamo",)

# the function a pool worker applies (set once per worker by the initializer)
_WORKER_FN: Callable[[Any], Any] | None = None


def _init_worker(fn: Callable[[Any], Any], initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    global _WORKER_FN
    _WORKER_FN = fn
    if initializer is not None:
        initializer(*initargs)


def _apply(item: Any) -> Any:
    assert _WORKER_FN is not None
    return _WORKER_FN(item)


# initializers a prestarted worker has run (by name and arguments)
_INITIALIZED: set[str] = set()


def _apply_carried(
    fn: Callable[[Any], Any], initializer: Callable[..., None] | None, initargs: tuple[Any, ...], item: Any
) -> Any:
    """``fn(item)`` in a prestarted worker, after ``initializer(*initargs)`` once per worker."""
    if initializer is not None:
        key = f"{initializer.__module__}.{initializer.__qualname__}{initargs!r}"
        if key not in _INITIALIZED:
            initializer(*initargs)
            _INITIALIZED.add(key)
    return fn(item)


def available_cores() -> int:
    """CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def processes_for(threads_per_job: int) -> int:
    """How many jobs of ``threads_per_job`` torch threads each the local engine runs at once on CPU:
    one per that many cores, at least one. Scoring's fold jobs and reeval's (method, seed) runs both
    use this rule, so ``--threads`` / ``--cpus-per-job`` mean the same on either command."""
    return max(1, available_cores() // max(1, threads_per_job))


class LocalExecutor(Executor):
    """A process pool of ``workers`` processes (0: one per core); inline when there is one worker.
    ``preload``: modules imported in this process before the workers are forked (:data:`TRAINING_IMPORTS`)."""

    def __init__(self, workers: int = 0, preload: Sequence[str] = ()) -> None:
        self.workers = workers if workers and workers > 0 else available_cores()
        self.preload = tuple(preload)
        self._pool: Any = None  # a prestarted pool, until a map takes it

    def _fork_ready(self) -> None:
        release_free_memory()
        for name in self.preload:
            importlib.import_module(name)

    def prestart(self) -> None:
        """Fork the workers now (see the module docstring); the next map uses them."""
        if self.workers > 1 and self._pool is None:
            self._fork_ready()
            self._pool = _context().Pool(self.workers)

    def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.terminate()
            pool.join()

    def map_units(
        self,
        fn: Callable[[T], R],
        units: Sequence[WorkUnit[T]],
        *,
        initializer: Callable[..., None] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> Iterator[tuple[WorkUnit[T], list[R]]]:
        items = [item for unit in units for item in unit.items]
        workers = min(self.workers, len(items))
        if workers <= 1:
            self.close()
            results: Iterator[R] = (fn(item) for item in items)
            yield from _regroup(units, results)
            return
        if self._pool is not None:  # prestarted: the function travels with each item
            pool, self._pool = self._pool, None
            task = functools.partial(_apply_carried, fn, initializer, initargs)
            with pool:
                yield from _regroup(units, _ordered(pool, items, self.workers * WINDOW_PER_WORKER, task))
            return
        self._fork_ready()
        with _context().Pool(workers, initializer=_init_worker, initargs=(fn, initializer, initargs)) as pool:
            yield from _regroup(units, _ordered(pool, items, workers * WINDOW_PER_WORKER))

    def describe(self) -> str:
        return f"local: {self.workers} process(es)"


def _context() -> Any:
    return mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()


def _ordered(pool: Any, items: list[Any], window: int, task: Callable[[Any], Any] = _apply) -> Iterator[Any]:
    """Results of ``items`` in order, at most ``window`` submitted but not yet consumed."""
    pending: deque[Any] = deque()
    next_item = 0
    while next_item < len(items) or pending:
        while next_item < len(items) and len(pending) < window:
            pending.append(pool.apply_async(task, (items[next_item],)))
            next_item += 1
        yield pending.popleft().get()


def _regroup(units: Sequence[WorkUnit[T]], results: Iterator[R]) -> Iterator[tuple[WorkUnit[T], list[R]]]:
    for unit in units:
        yield unit, [next(results) for _ in unit.items]

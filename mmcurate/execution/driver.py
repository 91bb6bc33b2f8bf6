"""The one loop around an executor: skip the finished units, map the rest, write and mark each as it completes.

Ingest (shards of clips), score (scorer training jobs), export (chunks of clips) and reeval (method x seed
runs) all cut their work into :class:`~mmcurate.execution.base.WorkUnit` s. What differs between them is
what a unit computes and writes; how a unit is skipped, written, marked and accounted for is the same, so it
lives here once (as datatrove keeps it in ``_run_for_rank``) and a fix to resume semantics is made once:

1. :class:`UnitDriver` (constructed from the units, their :class:`Completion` and the executor) finds the units
   this process owns (an array-job part owns a share) whose completion marker does not match: the *pending*
   ones. A unit is done when its marker names the current identity and its files are intact, by size or, with
   ``verify="sha256"``, by content (the one choice a stage makes about it);
2. :meth:`UnitDriver.run` maps the pending units through the executor; as each completes, the stage's
   ``write`` puts its outputs in place (atomically) and returns them with the marker's payload, and the
   driver records the marker naming those files: a unit is never marked before its files are there;
3. :meth:`UnitDriver.finish` says whether every unit (every array part's) is done, so the stage may write
   what needs them all; otherwise it says, in one line, what the other parts still owe.

Under ``--distributed`` every rank of a torchrun launch maps the same units together and only the writer
(rank 0) writes and marks; the ranks agree on what is pending before anything is written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic

from mmcurate.common.console import info
from mmcurate.common.memory import release_free_memory
from mmcurate.common.progress import progress_bar
from mmcurate.execution import distributed
from mmcurate.execution.base import Executor, R, T, WorkUnit
from mmcurate.execution.distributed import SINGLE, Ranks
from mmcurate.store.completion import UnitMarker, Verify


@dataclass(frozen=True)
class Written:
    """What ``write`` put in place for one unit: its files (recorded with their sizes and sha256) and the
    marker's payload (manifest rows, metrics) that later steps read back."""

    files: Sequence[Path]
    payload: Any = None


@dataclass(frozen=True)
class Completion(Generic[T]):
    """How a stage's units are judged done: each unit's marker, its identity (a hash of what its output
    depends on), whether files are checked by size or by sha256, and any further check of a done unit
    (``intact(unit, payload)``: the ingest shard must also open with the rows its marker lists)."""

    marker: Callable[[WorkUnit[T]], UnitMarker]
    identity: Callable[[WorkUnit[T]], str]
    verify: Verify = "size"
    intact: Callable[[WorkUnit[T], Any], bool] | None = None

    def payload(self, unit: WorkUnit[T]) -> Any:
        """The unit's recorded payload when it is done (never None then), else None."""
        payload = self.marker(unit).read(self.identity(unit), self.verify)
        if payload is not None and self.intact is not None and not self.intact(unit, payload):
            return None
        return payload

    def done(self, unit: WorkUnit[T]) -> bool:
        return self.payload(unit) is not None

    def record(self, unit: WorkUnit[T], written: Written) -> None:
        self.marker(unit).record(self.identity(unit), written.files, written.payload)


class UnitDriver(Generic[T]):
    """Runs one stage's units through an executor (see the module docstring).

    ``stage`` and ``unit_name`` word the messages (``"ingest"``, ``"shard"``); ``ranks`` is the torchrun
    launch under ``--distributed``.
    """

    def __init__(
        self,
        stage: str,
        unit_name: str,
        units: Sequence[WorkUnit[T]],
        completion: Completion[T],
        executor: Executor,
        ranks: Ranks = SINGLE,
    ) -> None:
        self.stage, self.unit_name, self.units, self.completion = stage, unit_name, list(units), completion
        self.executor, self.ranks = executor, ranks
        self.mine = [u for u in self.units if executor.owns(u)]
        self.pending = [u for u in self.mine if not completion.done(u)]
        self.written = 0
        distributed.barrier(ranks)  # every rank has decided what to run before rank 0 writes anything

    @property
    def done_before(self) -> int:
        """Units of this process that were already done when it started."""
        return len(self.mine) - len(self.pending)

    @property
    def pending_items(self) -> int:
        return sum(len(u.items) for u in self.pending)

    def announce(self, total: str, verb: str, item_name: str) -> None:
        """When anything is pending: ``stage: <total> in N units; D units already done, <verb> n <items> (...)``."""
        if self.pending:
            info(
                f"{self.stage}: {total} in {len(self.units)} {self.unit_name}s; {self.done_before} "
                f"{self.unit_name}s already done, {verb} {self.pending_items} {item_name} ({self.executor.describe()})"
            )

    def run(
        self,
        work: Callable[[], Callable[[T], R]],
        write: Callable[[WorkUnit[T], list[R]], Written | None],
        *,
        progress: str | None = None,
        count_items: bool = False,
        collect: Callable[[WorkUnit[T], list[R]], None] | None = None,
        initializer: Callable[..., None] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> int:
        """Map the pending units and write and mark each as it completes; return how many were written.

        ``work()`` builds the per-item function, only when something is pending (it may decode the
        inputs first). ``write(unit, results)`` runs on the writer rank only and returns the unit's
        :class:`Written` (None: nothing to mark, the unit was found done meanwhile); ``collect`` sees
        every unit's results on every rank. The ``progress`` bar counts units, or items with ``count_items``
        (no bar without a label: a unit that shows its own, such as a re-evaluation run).
        """
        if not self.pending:
            return 0
        fn = work()
        total = self.pending_items if count_items else len(self.pending)
        bar = progress_bar(progress, total) if progress is not None else contextlib.nullcontext(_no_progress)
        with bar as advance:
            for unit, results in self.executor.map_units(fn, self.pending, initializer=initializer, initargs=initargs):
                if collect is not None:
                    collect(unit, results)
                if not self.ranks.is_main:  # only rank 0 writes
                    continue
                written = write(unit, results)
                if written is not None:
                    self.completion.record(unit, written)
                del results
                release_free_memory()  # the unit's results are freed: keep the heap from creeping up
                self.written += 1
                advance(len(unit.items) if count_items else 1)
        return self.written

    def finish(self, final: str) -> bool:
        """Whether every unit, of every array part, is done (the stage then writes ``final``); if not, say
        what the other parts still owe, once."""
        missing = [u for u in self.units if not self.completion.done(u)]
        if missing:
            info(
                f"{self.stage}: this part is done; {len(missing)} of {len(self.units)} {self.unit_name}s belong to "
                f"other array parts and are not finished yet; the last part to finish writes {final} (or rerun "
                "outside the array job to finish them here)"
            )
        return not missing


def _no_progress(n: int = 1) -> None:
    return None

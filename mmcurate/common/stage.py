"""One shape for a stage: its settings, what it reads, what it writes, and ``run(workdir, config)``.

The command line (:mod:`mmcurate.cli`), a recipe (``mmcurate run``) and Python callers all reach a
stage the same way: build its config dataclass (from click options generated from that dataclass,
or from a recipe section with :func:`mmcurate.common.options.from_mapping`), then call ``run``.
Whether a stage's output is complete is the store's answer (:meth:`mmcurate.store.Workdir.is_complete`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:  # a type-only arrow: common stays below store
    from mmcurate.store import Workdir

C = TypeVar("C")
R = TypeVar("R")


@dataclass(frozen=True)
class Stage(Generic[C, R]):
    """A stage of the pipeline.

    ``reads``/``writes`` name the work-directory artefacts (``ingest/manifest.parquet``), for
    ``--help``, ``mmcurate run --dry-run`` and readers of the code; ``run`` does the work and
    ``summarize`` prints the end-of-run table.
    """

    name: str
    config: type[C]
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    run: Callable[[Workdir, C], R]
    summarize: Callable[[R], None] = lambda result: None

    def __call__(self, workdir: Workdir, config: C) -> R:
        return self.run(workdir, config)

    def describe(self) -> dict[str, Any]:
        return {"stage": self.name, "reads": list(self.reads), "writes": list(self.writes)}

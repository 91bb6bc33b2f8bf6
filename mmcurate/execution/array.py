"""Array jobs: the same run split into parts that separate processes (Slurm array tasks) do.

Part ``shard_index`` of ``num_shards`` owns the units whose index is congruent to it; it maps them
with an inner executor. Every part writes only its own units' outputs and markers, so parts may
start, die and restart in any order; the part that finds every unit done finalizes the stage.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from mmcurate.common.errors import MMCurateError
from mmcurate.common.options import opt
from mmcurate.execution.base import Executor, R, T, WorkUnit


def _env_int(*names: str) -> int | None:
    for name in names:
        value = os.environ.get(name)
        if value and value.isdigit():
            return int(value)
    return None


@dataclass(frozen=True)
class ArrayJobConfig:
    """``--num-shards/--shard-index``: which part of an array job this process is."""

    num_shards: int | None = opt(
        None, "Split the work into this many array-job parts (default 1, or $SLURM_ARRAY_TASK_COUNT)."
    )
    shard_index: int | None = opt(None, "Which part this process does (default 0, or $SLURM_ARRAY_TASK_ID).")

    def resolved(self) -> tuple[int, int]:
        """(num_shards, shard_index), from the options or the Slurm array variables, checked."""
        num = self.num_shards if self.num_shards is not None else (_env_int("SLURM_ARRAY_TASK_COUNT") or 1)
        index = self.shard_index if self.shard_index is not None else (_env_int("SLURM_ARRAY_TASK_ID") or 0)
        if num < 1 or not 0 <= index < num:
            raise MMCurateError(f"--shard-index must be in 0..{num - 1} for --num-shards {num} (got {index})")
        return num, index


class ArrayJobExecutor(Executor):
    """Part ``shard_index`` of ``num_shards``: owns every ``num_shards``-th unit, maps them with ``inner``."""

    def __init__(self, num_shards: int, shard_index: int, inner: Executor) -> None:
        self.num_shards, self.shard_index, self.inner = num_shards, shard_index, inner
        self.workers = inner.workers

    def owns(self, unit: WorkUnit[Any]) -> bool:
        return unit.index % self.num_shards == self.shard_index

    def map_units(
        self,
        fn: Callable[[T], R],
        units: Sequence[WorkUnit[T]],
        *,
        initializer: Callable[..., None] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> Iterator[tuple[WorkUnit[T], list[R]]]:
        mine = [u for u in units if self.owns(u)]
        return self.inner.map_units(fn, mine, initializer=initializer, initargs=initargs)

    def prestart(self) -> None:
        self.inner.prestart()

    def close(self) -> None:
        self.inner.close()

    def describe(self) -> str:
        return f"array part {self.shard_index + 1} of {self.num_shards}, {self.inner.describe()}"

"""Executors: how a stage's work units run (this machine's cores, an array-job part), apart from the work.

:func:`make_executor` turns a stage's execution settings into an :class:`Executor`.
"""

from __future__ import annotations

from mmcurate.execution.array import ArrayJobConfig, ArrayJobExecutor
from mmcurate.execution.base import Executor, WorkUnit, make_units
from mmcurate.execution.local import LocalExecutor, available_cores


def make_executor(workers: int = 0, array: ArrayJobConfig | None = None) -> Executor:
    """The local executor with ``workers`` processes (0: all cores), wrapped as an array-job part
    when ``array`` (or the Slurm array variables) says this process is one of several."""
    local = LocalExecutor(workers)
    num, index = (array or ArrayJobConfig()).resolved()
    if num == 1:
        return local
    return ArrayJobExecutor(num, index, local)


__all__ = [
    "ArrayJobConfig", "ArrayJobExecutor", "Executor", "LocalExecutor", "WorkUnit", "available_cores",
    "make_executor", "make_units",
]

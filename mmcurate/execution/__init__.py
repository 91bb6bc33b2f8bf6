"""Executors: how a stage's work units run (this machine's cores, an array-job part, a Ray cluster), apart from
the work.

:func:`make_executor` turns a stage's execution settings into an :class:`Executor`.
"""

from __future__ import annotations

from mmcurate.execution.array import ArrayJobConfig, ArrayJobExecutor
from mmcurate.execution.base import Executor, WorkUnit, make_units
from mmcurate.execution.config import ENGINES, ExecutionConfig
from mmcurate.execution.local import TRAINING_IMPORTS, LocalExecutor, available_cores


def make_executor(
    workers: int = 0,
    array: ArrayJobConfig | None = None,
    execution: ExecutionConfig | None = None,
    *,
    cpus: float = 1.0,
    threads: int | None = None,
    preload: tuple[str, ...] = (),
) -> Executor:
    """The executor of ``execution.engine``, wrapped as an array-job part when ``array`` (or the Slurm
    array variables) says this process is one of several.

    Local: ``workers`` processes (0: all cores). Ray: tasks of ``--cpus-per-job`` (default ``cpus``)
    and ``--gpus-per-job`` each; ``threads`` is the torch thread count each task sets (None: leave it).
    ``preload``: modules the local engine imports before forking its workers (stages that train pass
    :data:`mmcurate.execution.local.TRAINING_IMPORTS`).
    """
    execution = execution or ExecutionConfig()
    inner: Executor
    if execution.engine == "ray":
        from mmcurate.execution.ray import RayExecutor

        inner = RayExecutor(
            execution.ray_address,
            cpus=execution.cpus_per_job or cpus,
            gpus=execution.gpus_per_job,
            retries=execution.task_retries,
            threads=threads,
        )
    else:
        inner = LocalExecutor(workers, preload)
    num, index = (array or ArrayJobConfig()).resolved()
    if num == 1:
        return inner
    return ArrayJobExecutor(num, index, inner)


__all__ = [
    "ENGINES",
    "ArrayJobConfig",
    "ArrayJobExecutor",
    "ExecutionConfig",
    "Executor",
    "LocalExecutor",
    "TRAINING_IMPORTS",
    "WorkUnit",
    "available_cores",
    "make_executor",
    "make_units",
]

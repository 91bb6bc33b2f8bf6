"""How a stage's work is run (never what it produces): the engine, a Ray cluster's address, each job's resources.

Nested into the ingest, score and reeval configs, so ``--engine ray --ray-address auto`` is one set
of options for all three (and one set of recipe keys for ``mmcurate run``). ``--distributed`` is
here too: it changes how one training run uses the processes of a ``torchrun`` launch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mmcurate.common.errors import MMCurateError
from mmcurate.common.options import opt

ENGINES = ("local", "ray")


#: Bounds of the execution options: more than any machine has, less than what breaks a scheduler.
MAX_CPUS_PER_JOB = 4096
MAX_GPUS_PER_JOB = 64
MAX_TASK_RETRIES = 100


@dataclass(frozen=True)
class ExecutionConfig:
    """``--engine``, ``--ray-address``, ``--cpus-per-job``, ``--gpus-per-job``, ``--task-retries``,
    ``--distributed``."""

    engine: str = opt(
        "local",
        "local: this machine's processes; ray: tasks on a Ray cluster (pip install 'mmcurate[ray]'). Outputs are "
        "the same bytes either way.",
        choices=ENGINES,
    )
    ray_address: str | None = opt(
        None,
        "With --engine ray: auto (the running cluster: $RAY_ADDRESS or the last `ray start`), HOST:PORT of its head "
        "node, or unset: start a Ray instance on this machine (loopback only).",
        metavar="auto|HOST:PORT",
    )
    cpus_per_job: float | None = opt(
        None,
        "CPUs each job reserves (an ingest clip; a scorer training job or a reeval run, whose torch threads it also "
        "sets, with either engine). Default: 1 per clip; torch's thread count per training job (reeval: --threads).",
    )
    gpus_per_job: float = opt(
        0.0, "With --engine ray: GPUs each training job reserves (fractions share a GPU); 0 trains on CPU."
    )
    task_retries: int = opt(
        3, "With --engine ray: times a task is retried when its worker dies; then its unit is left for a rerun."
    )
    distributed: bool = opt(
        False,
        "Train each model data-parallel over the processes of a torchrun launch (DistributedDataParallel: gloo on "
        "CPU, nccl on CUDA); each rank takes a disjoint share of every batch; only rank 0 writes.",
    )

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise MMCurateError(f"--engine must be one of {', '.join(ENGINES)} (got {self.engine!r})")
        if self.cpus_per_job is not None and not 0 < self.cpus_per_job <= MAX_CPUS_PER_JOB:
            raise MMCurateError(
                f"--cpus-per-job must be above 0, at most {MAX_CPUS_PER_JOB} (got {self.cpus_per_job})"
            )
        if not 0 <= self.gpus_per_job <= MAX_GPUS_PER_JOB:
            raise MMCurateError(f"--gpus-per-job must be 0 to {MAX_GPUS_PER_JOB} (got {self.gpus_per_job})")
        if not 0 <= self.task_retries <= MAX_TASK_RETRIES:
            raise MMCurateError(f"--task-retries must be 0 to {MAX_TASK_RETRIES} (got {self.task_retries})")
        if self.engine == "ray" and self.distributed:
            raise MMCurateError(
                "--distributed runs one model over a torchrun launch's processes; it does not combine with "
                "--engine ray (use one or the other)"
            )
        if self.ray_address is not None and self.engine != "ray":
            raise MMCurateError(f"--ray-address {self.ray_address} needs --engine ray")

    def threads(self, default: int) -> int:
        """Torch threads of one training job: ``--cpus-per-job`` (rounded up), else ``default``.

        Torch's CPU kernels split work by thread count, so the same job trained with 1 or 2
        threads differs in the last bits; fixing the count per job makes the engines agree.
        """
        return max(1, math.ceil(self.cpus_per_job)) if self.cpus_per_job is not None else max(1, default)

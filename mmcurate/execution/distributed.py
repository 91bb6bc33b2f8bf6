"""One model on many processes: data-parallel training under ``torchrun`` (``--distributed``).

Every rank runs the same stage with the same seeds, so every rank draws the same epoch order, the
same batches and the same initial weights; each rank then trains on a disjoint share of every
batch (:meth:`Ranks.share`), the gradients are averaged so that the step equals the one a single
process takes on the whole batch (each rank's mean loss weighted by its share of the batch), and
BatchNorm running statistics are rank 0's (as DistributedDataParallel's ``broadcast_buffers``
does; on CUDA BatchNorm is synchronised across ranks instead). ``--batch-size`` stays the global
batch, so the learning-rate schedule and the number of steps do not change with the world size.
Only rank 0 writes outputs; the others train and wait.

Launch: ``torchrun --nproc-per-node N -m mmcurate score ... --distributed`` (gloo on CPU, nccl on
CUDA, one GPU per rank: ``LOCAL_RANK``).

The launch environment is checked before anything waits on it (``RANK`` below ``WORLD_SIZE``,
``MASTER_ADDR`` and a ``MASTER_PORT`` that is a port), and the rendezvous is bounded: a rank whose
peers never come (variables set by hand, a rank that died at start), or a ``MASTER_PORT`` another
program holds, ends in one line saying so within ``MMCURATE_RENDEZVOUS_TIMEOUT`` seconds (default
120) instead of waiting for the 30-minute collective timeout without a word.
"""

from __future__ import annotations

import datetime
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from mmcurate.common.console import info
from mmcurate.common.errors import MMCurateError

#: how long a rank waits for the others at a collective before the launch fails (not hangs)
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=30)
#: how long a rank waits for the others to join the launch (seconds; the variable overrides it)
RENDEZVOUS_TIMEOUT = 120.0
RENDEZVOUS_TIMEOUT_ENV = "MMCURATE_RENDEZVOUS_TIMEOUT"
_LAUNCH_HINT = "launch with torchrun, e.g. `torchrun --nproc-per-node 2 -m mmcurate score --distributed`"


@dataclass(frozen=True)
class Ranks:
    """This process's place in the launch."""

    rank: int
    world: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, idx: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous share of a batch's indices (shares differ by at most one sample)."""
        return idx.tensor_split(self.world)[self.rank]

    def min_batch(self, per_rank: int = 2) -> int:
        """The smallest batch every rank can train on (BatchNorm needs ``per_rank`` samples each)."""
        return per_rank * self.world


SINGLE = Ranks(0, 1, 0)


def start(device: torch.device) -> tuple[Ranks, torch.device]:
    """Join the torchrun launch this process belongs to; returns its ranks and its device
    (``cuda:LOCAL_RANK`` when ``device`` is CUDA)."""
    rank, world, local_rank = launch_environment()
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise MMCurateError(f"--distributed: LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPU(s)")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        _join("nccl" if device.type == "cuda" else "gloo", rank, world)
    if rank != 0:
        os.environ["MMCURATE_NO_PROGRESS"] = "1"  # one progress display per launch
    return Ranks(rank, world, local_rank), device


def launch_environment() -> tuple[int, int, int]:
    """(RANK, WORLD_SIZE, LOCAL_RANK) of a torchrun-like launch, checked: a one-line error naming the variable
    that is missing or wrong, before anything waits on them."""

    def number(name: str, default: str | None = None) -> int:
        value = os.environ.get(name, default)
        if value is None:
            raise MMCurateError(f"--distributed needs a torchrun launch ({name} is not set); {_LAUNCH_HINT}")
        try:
            return int(value.strip())
        except ValueError:
            raise MMCurateError(f"--distributed: {name}={value!r} is not a whole number; {_LAUNCH_HINT}") from None

    world, rank, local_rank = number("WORLD_SIZE"), number("RANK"), number("LOCAL_RANK", "0")
    if world < 1:
        raise MMCurateError(f"--distributed: WORLD_SIZE={world}; it must be 1 or more (the number of ranks)")
    if not 0 <= rank < world:
        raise MMCurateError(
            f"--distributed: RANK={rank} with WORLD_SIZE={world}; ranks are numbered 0 to {world - 1} "
            "(the environment was set by hand?)"
        )
    local_world = number("LOCAL_WORLD_SIZE", str(world))
    if not 0 <= local_rank < max(1, local_world) or local_rank > rank:
        raise MMCurateError(
            f"--distributed: LOCAL_RANK={local_rank} does not fit RANK={rank}, LOCAL_WORLD_SIZE={local_world}"
        )
    if not os.environ.get("MASTER_ADDR", "").strip():
        raise MMCurateError(f"--distributed: MASTER_ADDR is not set (where rank 0 listens); {_LAUNCH_HINT}")
    port = number("MASTER_PORT")
    if not 1 <= port <= 65535:
        raise MMCurateError(f"--distributed: MASTER_PORT={port} is not a port (1-65535)")
    return rank, world, local_rank


def rendezvous_timeout() -> float:
    """Seconds a rank waits for the others to join (``MMCURATE_RENDEZVOUS_TIMEOUT``, default 120)."""
    value = os.environ.get(RENDEZVOUS_TIMEOUT_ENV)
    if value is None or not value.strip():
        return RENDEZVOUS_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise MMCurateError(f"{RENDEZVOUS_TIMEOUT_ENV}={value!r}: give a number of seconds above 0")
    return seconds


def _join(backend: str, rank: int, world: int) -> None:
    """Meet the other ranks at MASTER_ADDR:MASTER_PORT within :func:`rendezvous_timeout`, then start the
    process group with the long collective timeout (``env://`` as torchrun sets it up, agent store included)."""
    seconds = rendezvous_timeout()
    where = f"{os.environ['MASTER_ADDR'].strip()}:{os.environ['MASTER_PORT'].strip()}"
    if rank == 0 and world > 1:
        info(f"--distributed: waiting up to {seconds:g} s for {world - 1} more rank(s) at {where}")
    try:
        store, _, _ = next(dist.rendezvous("env://", rank, world, timeout=datetime.timedelta(seconds=seconds)))
    except (RuntimeError, ValueError, OSError) as exc:  # torch's DistError types are RuntimeErrors
        raise MMCurateError(_rendezvous_failure(str(exc), rank, world, where, seconds)) from None
    store.set_timeout(COLLECTIVE_TIMEOUT)
    dist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=COLLECTIVE_TIMEOUT)


def _rendezvous_failure(message: str, rank: int, world: int, where: str, seconds: float) -> str:
    """One line for a rendezvous that failed: a busy port, peers that never came, a rank 0 never reached."""
    text = message.lower()
    if "eaddrinuse" in text or "address already in use" in text:
        return (
            f"--distributed: MASTER_PORT of {where} is already in use by another program; pick a free port "
            "(torchrun --master-port)"
        )
    if rank == 0:
        return (
            f"--distributed: rank 0 waited {seconds:g} s at {where} for the other {world - 1} rank(s) of "
            f"WORLD_SIZE={world}, and not all came; start every rank ({_LAUNCH_HINT}), or set "
            f"{RENDEZVOUS_TIMEOUT_ENV} longer for slow starts"
        )
    return (
        f"--distributed: rank {rank} of {world} could not meet rank 0 at {where} within {seconds:g} s; start rank 0 "
        f"with the same MASTER_ADDR and MASTER_PORT ({_LAUNCH_HINT})"
    )


def barrier(ranks: Ranks) -> None:
    if ranks.world > 1:
        dist.barrier()


def for_training(model: nn.Module, ranks: Ranks, device: torch.device) -> nn.Module:
    """The module to train: DistributedDataParallel around ``model`` (BatchNorm synchronised on CUDA)."""
    if ranks.world == 1:
        return model
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index])
    return nn.parallel.DistributedDataParallel(model)


def loss_weight(ranks: Ranks, local: int, total: int) -> float:
    """Factor on a rank's mean loss so that DDP's average of the ranks' gradients equals the
    gradient of the mean loss over the whole batch (shares may differ by one sample)."""
    return ranks.world * local / total


def average_gradients(params: Iterable[nn.Parameter], ranks: Ranks, weight: float) -> None:
    """Replace each gradient by the ranks' sum of ``weight * gradient`` (see :func:`loss_weight`).

    For training loops that change gradients after ``backward`` (gradient modulation), where
    DistributedDataParallel's averaging during ``backward`` would come too early: one flat
    all-reduce; a parameter gets a gradient when any rank gave it one.
    """
    if ranks.world == 1:
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.float32)
    flat = torch.cat([(p.grad * weight if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
    has = has.to(flat.device)
    dist.all_reduce(flat)
    dist.all_reduce(has, op=dist.ReduceOp.MAX)
    offset = 0
    for p, present in zip(params, has.tolist()):
        n = p.numel()
        if present:
            p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def broadcast_buffers(model: nn.Module, ranks: Ranks) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank, so evaluation agrees."""
    if ranks.world == 1:
        return
    for buf in model.buffers():
        dist.broadcast(buf, 0)

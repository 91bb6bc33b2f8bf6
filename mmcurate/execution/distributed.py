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
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from mmcurate.common.errors import MMCurateError

#: how long a rank waits for the others at a collective before the launch fails (not hangs)
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=30)


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
    try:
        world = int(os.environ["WORLD_SIZE"])
        rank = int(os.environ["RANK"])
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    except (KeyError, ValueError):
        raise MMCurateError(
            "--distributed needs a torchrun launch, e.g. `torchrun --nproc-per-node 2 -m mmcurate score "
            "--distributed` (WORLD_SIZE and RANK are not set)"
        ) from None
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise MMCurateError(f"--distributed: LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPU(s)")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT)
    if rank != 0:
        os.environ["MMCURATE_NO_PROGRESS"] = "1"  # one progress display per launch
    return Ranks(rank, world, local_rank), device


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

"""Run by pipeline/test_distributed.py under torchrun (2 gloo processes): one data-parallel step must equal the
single-process step on the whole batch, for DDP with :func:`loss_weight` and for :func:`average_gradients`.

Writes ``OUT/rank<k>.txt``: "ok" or what differed.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mmcurate.execution import distributed


def main(out: Path) -> None:
    ranks, device = distributed.start(torch.device("cpu"))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))
    x, y = torch.randn(7, 5), torch.randint(0, 3, (7,))  # 7: shares of 4 and 3 samples
    idx = torch.arange(7)
    problems = []

    single = copy.deepcopy(model)
    F.cross_entropy(single(x), y).backward()
    want = [p.grad.clone() for p in single.parameters()]

    mine = ranks.share(idx)
    if ranks.world != 2 or len(mine) != (4 if ranks.rank == 0 else 3):
        problems.append(f"share {mine.tolist()} of world {ranks.world}")

    ddp = distributed.for_training(copy.deepcopy(model), ranks, device)
    loss = F.cross_entropy(ddp(x[mine]), y[mine]) * distributed.loss_weight(ranks, len(mine), len(idx))
    loss.backward()
    for name, p, g in zip(("w1", "b1", "w2", "b2"), ddp.parameters(), want):
        if not torch.allclose(p.grad, g, atol=1e-6):
            problems.append(f"DDP gradient {name} differs by {(p.grad - g).abs().max():.2e}")

    manual = copy.deepcopy(model)
    F.cross_entropy(manual(x[mine]), y[mine]).backward()
    distributed.average_gradients(manual.parameters(), ranks, len(mine) / len(idx))
    for name, p, g in zip(("w1", "b1", "w2", "b2"), manual.parameters(), want):
        if not torch.allclose(p.grad, g, atol=1e-6):
            problems.append(f"averaged gradient {name} differs by {(p.grad - g).abs().max():.2e}")

    # a parameter only rank 0 used (a branch a method takes on some batches) gets a gradient on every rank,
    # and one no rank used keeps none (the optimiser must skip it, as in a single process)
    used, unused = nn.Linear(5, 3), nn.Linear(5, 3)
    if ranks.rank == 0:
        F.cross_entropy(used(x[mine]), y[mine]).backward()
    distributed.average_gradients([*used.parameters(), *unused.parameters()], ranks, 0.5)
    if any(p.grad is None for p in used.parameters()) or any(p.grad is not None for p in unused.parameters()):
        problems.append("gradient presence is not the union over ranks")
    grads = torch.cat([p.grad.reshape(-1) for p in [*manual.parameters(), *used.parameters()]])
    gathered = [torch.zeros_like(grads) for _ in range(ranks.world)]
    torch.distributed.all_gather(gathered, grads)
    if not torch.equal(gathered[0], gathered[1]):
        problems.append("averaged gradients differ between ranks")
    (out / f"rank{ranks.rank}.txt").write_text("ok" if not problems else "; ".join(problems))
    # both ranks past their last collective before either tears gloo down: a rank that destroys the
    # group while the other's all_gather is still in flight aborts it ("terminate called ...")
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))

"""Mini-batches from in-memory split tensors, normalised on the device.

Frames stay uint8 in memory (4x smaller) and are converted per batch; shuffling uses a generator
seeded from (run seed, epoch), so epoch e's order is the same whether a run went straight
through or resumed at epoch e.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from mmcurate.data import normalize_frames
from mmcurate.execution.distributed import SINGLE, Ranks
from mmcurate.reeval.data import ReevalData, SplitData


@dataclass
class Batch:
    """Model-ready inputs: (B,1,F,L) audio, (B,T,3,S,S) frames, (B,) labels, (B,) positions in the split."""

    audio: torch.Tensor
    frames: torch.Tensor
    labels: torch.Tensor
    index: torch.Tensor
    #: this rank's fraction of the whole batch (1 unless ``--distributed`` splits batches over ranks)
    share: float = 1.0

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled sample order of one training epoch (depends only on seed and epoch)."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=g)


def iter_batches(
    split: SplitData,
    data: ReevalData,
    batch_size: int,
    device: torch.device,
    order: torch.Tensor | None = None,
    drop_singleton: bool = False,
    ranks: Ranks = SINGLE,
) -> Iterator[Batch]:
    """Batches of ``split`` in ``order`` (default: stored order).

    ``drop_singleton`` skips a final batch of one sample: BatchNorm cannot train on it (under
    ``--distributed``, a final batch of fewer than two samples per rank). With ``ranks``, each
    rank gets its share of every batch.
    """
    idx_all = order if order is not None else torch.arange(len(split))
    for start in range(0, len(idx_all), batch_size):
        idx = idx_all[start : start + batch_size]
        if drop_singleton and len(idx) < ranks.min_batch() and len(idx_all) > 1:
            return
        if ranks.world == 1:
            yield make_batch(split, data, idx, device)
            continue
        mine = ranks.share(idx)
        batch = make_batch(split, data, mine, device)
        batch.share = len(mine) / len(idx)
        yield batch


def make_batch(split: SplitData, data: ReevalData, idx: torch.Tensor, device: torch.device) -> Batch:
    audio = (split.audio[idx].to(device=device, dtype=torch.float32) - data.audio_mean) / data.audio_std
    return Batch(
        audio=audio,
        frames=normalize_frames(split.frames[idx].to(device)),
        labels=split.labels[idx].to(device),
        index=idx.to(device),
    )


def num_batches(n: int, batch_size: int, drop_singleton: bool = False, ranks: Ranks = SINGLE) -> int:
    full, rest = divmod(n, batch_size)
    return full + (1 if rest and not (drop_singleton and rest < ranks.min_batch() and n > 1) else 0)

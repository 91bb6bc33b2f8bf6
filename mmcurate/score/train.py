"""Train one unimodal scorer on some folds and predict the held-out fold.

The held-out predictions are softmax distributions averaged over the last ``avg_last`` epochs'
weights: a cheap checkpoint ensemble that smooths the epoch-to-epoch noise of a single
checkpoint, which the confidence (and so the discrepancy) would otherwise inherit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmcurate.data import AVTensors, normalize_frames
from mmcurate.models import build_unimodal
from mmcurate.score.config import ScoreConfig


@dataclass
class ModalityInputs:
    """One modality's inputs for every sample, kept in memory (uint8 frames or float audio)."""

    modality: str
    data: torch.Tensor
    labels: torch.Tensor
    audio_mean: float = 0.0
    audio_std: float = 1.0

    @classmethod
    def from_tensors(cls, tensors: AVTensors, modality: str) -> ModalityInputs:
        data = tensors.audio if modality == "audio" else tensors.frames
        return cls(modality=modality, data=data, labels=tensors.labels)

    def batch(self, idx: torch.Tensor, device: torch.device, frames: slice | None = None) -> torch.Tensor:
        """Model-ready inputs of rows ``idx`` on ``device`` (frames normalised, audio standardised)."""
        x = self.data[idx]
        if self.modality == "visual":
            if frames is not None:
                x = x[:, frames]
            return normalize_frames(x.to(device, non_blocking=True))
        return ((x.to(device, non_blocking=True).float()) - self.audio_mean) / self.audio_std


def _batches(order: torch.Tensor, size: int, drop_small: bool) -> Iterator[torch.Tensor]:
    for i in range(0, len(order), size):
        chunk = order[i : i + size]
        if drop_small and len(chunk) < 2:  # BatchNorm cannot train on one sample
            continue
        yield chunk


def warmup_cosine(total_steps: int, warmup_fraction: float = 0.15) -> Callable[[int], float]:
    """LR multiplier: linear warm-up over the first steps, then cosine decay to zero.

    Short CPU runs (a few epochs) need both: warm-up keeps BatchNorm statistics sane early,
    the decay lets the last epochs (whose predictions are averaged) settle."""
    warmup = max(1, int(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch's global RNG (weight init) and return a generator for data order."""
    torch.manual_seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def fit_predict(
    inputs: ModalityInputs,
    train_idx: np.ndarray,
    held_idx: np.ndarray,
    num_classes: int,
    cfg: ScoreConfig,
    seed: int,
    device: torch.device,
    on_epoch: Callable[[int, float], None] | None = None,
) -> np.ndarray:
    """Train on ``train_idx`` and return held-out softmax probabilities (len(held_idx), C),
    averaged over the last ``cfg.avg_last`` epochs."""
    gen = seed_everything(seed)
    train_t = torch.as_tensor(train_idx, dtype=torch.int64)
    held_t = torch.as_tensor(held_idx, dtype=torch.int64)
    if inputs.modality == "audio":
        # standardise with the training folds' statistics only (no peeking at the held-out fold)
        sample = inputs.data[train_t].float()
        inputs = ModalityInputs(inputs.modality, inputs.data, inputs.labels, float(sample.mean()), float(sample.std()) or 1.0)
    model: nn.Module = build_unimodal(inputs.modality, num_classes, int(cfg.width or 8)).to(device)
    steps_per_epoch = max(1, sum(1 for _ in _batches(train_t, cfg.batch_size, True)))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(cfg.epochs * steps_per_epoch))
    n_frames = int(inputs.data.shape[1]) if inputs.modality == "visual" else 0
    prob_sum = torch.zeros(len(held_idx), num_classes, dtype=torch.float64)
    for epoch in range(cfg.epochs):
        model.train()
        order = train_t[torch.randperm(len(train_t), generator=gen)]
        total, count = 0.0, 0
        for idx in _batches(order, cfg.batch_size, True):
            frames = None
            if inputs.modality == "visual" and cfg.train_frames < n_frames:
                start = int(torch.randint(0, n_frames - cfg.train_frames + 1, (1,), generator=gen))
                frames = slice(start, start + cfg.train_frames)
            x = inputs.batch(idx, device, frames)
            y = inputs.labels[idx].to(device)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        if epoch >= cfg.epochs - cfg.avg_last:
            prob_sum += predict(model, inputs, held_t, device).double()
        if on_epoch is not None:
            on_epoch(epoch, total / max(count, 1))
    return (prob_sum / cfg.avg_last).numpy()


@torch.no_grad()
def predict(model: nn.Module, inputs: ModalityInputs, idx: torch.Tensor, device: torch.device, batch_size: int = 256) -> torch.Tensor:
    """Softmax probabilities for rows ``idx`` (all stored frames for the visual model)."""
    model.eval()
    out = []
    for chunk in _batches(idx, batch_size, False):
        out.append(F.softmax(model(inputs.batch(chunk, device)).float(), dim=-1).cpu())
    return torch.cat(out) if out else torch.zeros(0)

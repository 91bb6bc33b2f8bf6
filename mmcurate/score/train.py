"""Train one unimodal scorer on some folds and predict the held-out fold.

The held-out predictions are softmax distributions averaged over the last ``avg_last`` epochs'
weights: a cheap checkpoint ensemble that smooths the epoch-to-epoch noise of a single
checkpoint, which the confidence (and so the discrepancy) would otherwise inherit.

Inputs come from a :class:`BatchSource`: decoded tensors in memory (small and medium sets, the
CPU default) or per-item decoding through a ``DataLoader`` (sets too big for memory). Both
yield the same batches in the same order, so they give the same scores.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from mmcurate.data import AVDataset, AVTensors, normalize_frames
from mmcurate.execution import distributed
from mmcurate.execution.distributed import SINGLE, Ranks
from mmcurate.models import build_unimodal
from mmcurate.score.augment import augment
from mmcurate.score.config import ScoreConfig

#: Audio standardisation statistics come from at most this many training samples.
STATS_SAMPLES = 2048


class BatchSource:
    """Raw model inputs (uint8 frames or float audio) and labels for given row indices."""

    modality: str

    def labels(self) -> torch.Tensor:
        raise NotImplementedError

    def batches(self, chunks: Sequence[torch.Tensor]) -> Iterator[torch.Tensor]:
        """The raw inputs of each index chunk, in order."""
        raise NotImplementedError


class InMemorySource(BatchSource):
    """Slices of an :class:`AVTensors` (everything decoded once)."""

    def __init__(self, tensors: AVTensors, modality: str) -> None:
        self.modality = modality
        self.data = tensors.audio if modality == "audio" else tensors.frames
        self._labels = tensors.labels

    def labels(self) -> torch.Tensor:
        return self._labels

    def batches(self, chunks: Sequence[torch.Tensor]) -> Iterator[torch.Tensor]:
        for idx in chunks:
            yield self.data[idx]


class StreamingSource(BatchSource):
    """Per-item decoding with a ``DataLoader`` (``workers`` processes) for sets too big for memory."""

    def __init__(self, dataset: AVDataset, labels: torch.Tensor, modality: str, workers: int) -> None:
        self.modality = modality
        self.dataset = dataset
        self._labels = labels
        self.workers = workers
        self.key = "audio" if modality == "audio" else "frames"

    def labels(self) -> torch.Tensor:
        return self._labels

    def batches(self, chunks: Sequence[torch.Tensor]) -> Iterator[torch.Tensor]:
        loader = DataLoader(
            self.dataset,
            batch_sampler=[c.tolist() for c in chunks],
            num_workers=self.workers,
            persistent_workers=False,
            generator=torch.Generator().manual_seed(0),  # keep torch's global RNG (model init) untouched
        )
        for batch in loader:
            yield batch[self.key]


@dataclass
class Standardizer:
    """Audio standardisation with training-fold statistics (no peeking at the held-out fold)."""

    mean: float = 0.0
    std: float = 1.0

    @classmethod
    def fit(cls, source: BatchSource, train_idx: torch.Tensor) -> Standardizer:
        if source.modality != "audio":
            return cls()
        sample = torch.sort(train_idx).values[:STATS_SAMPLES]
        values = torch.cat([x.float().reshape(-1) for x in source.batches(list(sample.split(256)))])
        return cls(float(values.mean()), float(values.std()) or 1.0)


def prepare(
    x: torch.Tensor, modality: str, device: torch.device, stats: Standardizer, frames: slice | None = None
) -> torch.Tensor:
    """Raw inputs -> model inputs on ``device`` (frames normalised, audio standardised)."""
    if modality == "visual":
        if frames is not None:
            x = x[:, frames]
        return normalize_frames(x.to(device, non_blocking=True))
    return (x.to(device, non_blocking=True).float() - stats.mean) / stats.std


def chunks_of(order: torch.Tensor, size: int, drop_small: bool, min_size: int = 2) -> list[torch.Tensor]:
    """Index chunks of ``size``; a trailing chunk under ``min_size`` is dropped for training (BatchNorm
    needs two samples; under ``--distributed``, two per rank)."""
    out = [order[i : i + size] for i in range(0, len(order), size)]
    if drop_small and out and len(out[-1]) < min_size:
        out.pop()
    return out


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
    """Seed torch's global RNG (weight init) and return a generator for data order; on CUDA,
    pick deterministic cuDNN kernels (same seed and inputs give the same scores)."""
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


@dataclass(frozen=True)
class FitResult:
    """What one (repeat, fold, modality) job gives back: plain arrays, so the job can run anywhere.

    ``probs`` (n_held, C) float64: held-out softmax averaged over the last ``avg_last`` epochs;
    ``held_true`` (E, n_held) float32: the held-out true-class probability after each recorded
    epoch (the averaged ones, or every epoch with ``record_all_epochs``), whose spread is one part
    of a sample's uncertainty; ``epochs`` (E,) int: which epochs those rows are (0-based);
    ``train_true`` (epochs, n_train) float32: the true-class probability of each *training* sample
    in its training step, per epoch (training dynamics; in-sample, never used as a score by
    default); ``losses`` (epochs,) mean training loss per epoch.
    """

    probs: np.ndarray
    held_true: np.ndarray
    epochs: np.ndarray
    train_true: np.ndarray
    losses: np.ndarray
    #: with ``keep_window``: the weights after each averaged epoch (CPU state dicts) and the audio
    #: standardisation (mean, std), so the model can score other clips later (saved scorers)
    checkpoints: list[dict[str, torch.Tensor]] | None = None
    audio_stats: tuple[float, float] | None = None


def fit_predict(
    source: BatchSource,
    train_idx: np.ndarray,
    held_idx: np.ndarray,
    num_classes: int,
    cfg: ScoreConfig,
    seed: int,
    device: torch.device,
    n_frames: int,
    on_epoch: Callable[[int, float], None] | None = None,
    ranks: Ranks = SINGLE,
    record_all_epochs: bool = False,
    keep_window: bool = False,
) -> FitResult:
    """Train on ``train_idx`` only and predict ``held_idx``; a pure function of its inputs (the
    same arguments give the same arrays), so a scheduler may run it anywhere.

    Held-out samples are touched only by :func:`predict` (no gradient, eval mode), after each
    epoch of the averaging window (of every epoch with ``record_all_epochs``, for benchmarks).
    Under ``--distributed`` (``ranks.world`` > 1) the model trains as DistributedDataParallel,
    each rank on its share of every batch (:mod:`mmcurate.execution.distributed`); every rank
    returns the same probabilities. ``keep_window`` also returns the averaged epochs' weights
    (a whole-set scorer: ``held_idx`` may then be empty)."""
    gen = seed_everything(seed)
    train_t = torch.as_tensor(train_idx, dtype=torch.int64)
    held_t = torch.as_tensor(held_idx, dtype=torch.int64)
    stats = Standardizer.fit(source, train_t)
    labels = source.labels()
    held_labels = labels[held_t]
    model: nn.Module = build_unimodal(source.modality, num_classes, int(cfg.width or 8)).to(device)
    trained = distributed.for_training(model, ranks, device)
    model = getattr(trained, "module", trained)  # SyncBatchNorm (CUDA) replaces modules: predict with those
    min_batch = ranks.min_batch()
    steps_per_epoch = max(1, len(chunks_of(train_t, cfg.batch_size, True, min_batch)))
    opt = torch.optim.AdamW(trained.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(cfg.epochs * steps_per_epoch))
    avg_last = int(cfg.avg_last or 1)
    # ranks draw different-sized shares: their augmentation draws must not move the shared generator
    aug_gen = gen if ranks.world == 1 else torch.Generator().manual_seed(seed * 1009 + ranks.rank + 1)
    prob_sum = torch.zeros(len(held_idx), num_classes, dtype=torch.float64)
    held_true: list[torch.Tensor] = []
    recorded: list[int] = []
    checkpoints: list[dict[str, torch.Tensor]] = []
    position = torch.full((int(train_t.max()) + 1 if len(train_t) else 0,), -1, dtype=torch.int64)
    position[train_t] = torch.arange(len(train_t))
    train_true = torch.full((cfg.epochs, len(train_t)), float("nan"), dtype=torch.float32)
    losses = torch.zeros(cfg.epochs, dtype=torch.float64)
    for epoch in range(cfg.epochs):
        trained.train()
        chunks = chunks_of(train_t[torch.randperm(len(train_t), generator=gen)], cfg.batch_size, True, min_batch)
        # frame windows are drawn up front so the data order does not depend on the source
        windows: list[slice | None] = []
        for _ in chunks:
            if source.modality == "visual" and cfg.train_frames < n_frames:
                start = int(torch.randint(0, n_frames - cfg.train_frames + 1, (1,), generator=gen))
                windows.append(slice(start, start + cfg.train_frames))
            else:
                windows.append(None)
        total, count = 0.0, 0
        shares = chunks if ranks.world == 1 else [ranks.share(c) for c in chunks]
        for idx, batch, window, raw in zip(shares, chunks, windows, source.batches(shares)):
            if cfg.augment:
                raw = augment(raw if window is None else raw[:, window], source.modality, aug_gen)
                window = None
            x = prepare(raw, source.modality, device, stats, window)
            y = labels[idx].to(device)
            logits = trained(x)
            loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
            if ranks.world > 1:
                loss = loss * distributed.loss_weight(ranks, len(idx), len(batch))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                train_true[epoch, position[idx]] = (
                    F.softmax(logits.detach().float(), -1).gather(1, y[:, None])[:, 0].cpu()
                )
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        losses[epoch] = total / max(count, 1)
        in_window = epoch >= cfg.epochs - avg_last
        if in_window or record_all_epochs:
            distributed.broadcast_buffers(model, ranks)
            if keep_window and in_window:
                checkpoints.append({k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
            p = predict(model, source, held_t, device, stats) if len(held_idx) else torch.zeros(0, num_classes)
            if in_window:
                prob_sum += p.double()
            held_true.append(p.gather(1, held_labels[:, None])[:, 0] if len(held_idx) else torch.zeros(0))
            recorded.append(epoch)
        if on_epoch is not None:
            on_epoch(epoch, float(losses[epoch]))
    return FitResult(
        probs=(prob_sum / avg_last).numpy(),
        held_true=torch.stack(held_true).numpy().astype(np.float32),
        epochs=np.asarray(recorded, dtype=np.int64),
        train_true=train_true.numpy(),
        losses=losses.numpy(),
        checkpoints=checkpoints if keep_window else None,
        audio_stats=(stats.mean, stats.std) if keep_window else None,
    )


@torch.no_grad()
def predict(
    model: nn.Module,
    source: BatchSource,
    idx: torch.Tensor,
    device: torch.device,
    stats: Standardizer,
    batch_size: int = 256,
) -> torch.Tensor:
    """Softmax probabilities for rows ``idx`` (all stored frames for the visual model)."""
    model.eval()
    chunks = chunks_of(idx, batch_size, False)
    out = [
        F.softmax(model(prepare(raw, source.modality, device, stats)).float(), dim=-1).cpu()
        for raw in source.batches(chunks)
    ]
    return torch.cat(out) if out else torch.zeros(0)

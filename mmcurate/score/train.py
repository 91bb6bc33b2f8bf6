"""Train one unimodal scorer on some folds and predict the held-out fold.

By default a job trains to convergence (:mod:`mmcurate.score.schedule`): an inner validation
split carved from its own training rows decides when to stop searching, then the learning rate
anneals and the held-out predictions of the anneal epochs are averaged: a cheap checkpoint
ensemble that smooths the epoch-to-epoch noise of a single checkpoint, which the confidence (and
so the discrepancy) would otherwise inherit. A fixed ``--epochs N`` keeps the older schedule.

Inputs come from a :class:`BatchSource`: decoded tensors in memory (small and medium sets, the
CPU default) or per-item decoding through a ``DataLoader`` (sets too big for memory). Both
yield the same batches in the same order, so they give the same scores.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from mmcurate.common.memory import keep_heap_for_training
from mmcurate.common.scoring import ScoreConfig
from mmcurate.data import AVDataset, AVTensors, normalize_frames, standardize_frames
from mmcurate.execution import distributed
from mmcurate.execution.distributed import SINGLE, Ranks
from mmcurate.models import build_unimodal
from mmcurate.score.augment import augment
from mmcurate.score.folds import inner_split
from mmcurate.score.schedule import ConvergenceSettings, SearchState, anneal_factor, lr_factor

#: Audio standardisation statistics come from at most this many training samples.
STATS_SAMPLES = 2048


class BatchSource:
    """Raw model inputs (uint8 frames or float audio) and labels for given row indices."""

    modality: str

    def labels(self) -> torch.Tensor:
        raise NotImplementedError

    def batches(
        self, chunks: Sequence[torch.Tensor], windows: Sequence[slice | None] | None = None
    ) -> Iterator[torch.Tensor]:
        """The raw inputs of each index chunk, in order; with ``windows``, each chunk's frames cut to its
        window (visual; ``None`` keeps every stored frame)."""
        raise NotImplementedError


class InMemorySource(BatchSource):
    """Rows gathered by index from an :class:`AVTensors` (everything decoded once: in memory, or
    memory-mapped from the tensor cache, whose float16 audio is cast to ``audio_dtype`` per batch)."""

    def __init__(self, tensors: AVTensors, modality: str) -> None:
        self.modality = modality
        self.data = tensors.audio if modality == "audio" else tensors.frames
        self.dtype = getattr(torch, tensors.config.audio_dtype) if modality == "audio" else self.data.dtype
        self._labels = tensors.labels

    def labels(self) -> torch.Tensor:
        return self._labels

    def batches(
        self, chunks: Sequence[torch.Tensor], windows: Sequence[slice | None] | None = None
    ) -> Iterator[torch.Tensor]:
        for i, idx in enumerate(chunks):
            window = windows[i] if windows is not None else None
            # gather only the window's frames: a training step uses one of the three stored
            yield (self.data[idx] if window is None else self.data[idx, window]).to(self.dtype)


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

    def batches(
        self, chunks: Sequence[torch.Tensor], windows: Sequence[slice | None] | None = None
    ) -> Iterator[torch.Tensor]:
        loader = DataLoader(
            self.dataset,
            batch_sampler=[c.tolist() for c in chunks],
            num_workers=self.workers,
            persistent_workers=False,
            generator=torch.Generator().manual_seed(0),  # keep torch's global RNG (model init) untouched
        )
        for i, batch in enumerate(loader):
            window = windows[i] if windows is not None else None
            yield batch[self.key] if window is None else batch[self.key][:, window]


#: how a visual scorer's frames are normalised: ``frame`` standardises each frame's channels on their
#: own (:func:`mmcurate.data.standardize_frames`), ``imagenet`` uses the ImageNet statistics
FRAME_NORMS = ("frame", "imagenet")


@dataclass
class Standardizer:
    """Input normalisation: audio standardised with training-fold statistics (no peeking at the
    held-out fold), frames by ``frame_norm``."""

    mean: float = 0.0
    std: float = 1.0
    frame_norm: str = "frame"

    @classmethod
    def fit(cls, source: BatchSource, train_idx: torch.Tensor, frame_norm: str = "frame") -> Standardizer:
        if source.modality != "audio":
            return cls(frame_norm=frame_norm)
        sample = torch.sort(train_idx).values[:STATS_SAMPLES]
        values = torch.cat([x.float().reshape(-1) for x in source.batches(list(sample.split(256)))])
        return cls(float(values.mean()), float(values.std()) or 1.0, frame_norm)


def prepare(
    x: torch.Tensor, modality: str, device: torch.device, stats: Standardizer, frames: slice | None = None
) -> torch.Tensor:
    """Raw inputs -> model inputs on ``device`` (frames normalised, audio standardised)."""
    if modality == "visual":
        if frames is not None:
            x = x[:, frames]
        x = x.to(device, non_blocking=True)
        return standardize_frames(x) if stats.frame_norm == "frame" else normalize_frames(x)
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

    ``probs`` (n_held, C) float64: held-out softmax averaged over the averaged epochs (the anneal
    phase, or the last ``avg_last`` of a fixed schedule); ``held_true`` (E, n_held) float32: the
    held-out true-class probability after each recorded epoch, whose spread is one part of a
    sample's uncertainty; ``epochs`` (E,) int: which epochs those rows are (0-based);
    ``train_true`` (epochs, n_fit) float32: the true-class probability of each training sample in
    its training step, per epoch (training dynamics; in-sample, never used as a score);
    ``losses`` (epochs,) mean training loss per epoch. ``inner_idx`` and ``inner_probs``: the rows
    of the inner validation split and their softmax averaged like ``probs`` (out-of-sample for this
    job: a second opinion on samples another fold scores). ``report``: how the job trained
    (schedule, epochs, why it stopped, restarts, inner-validation loss and accuracy per epoch).
    """

    probs: np.ndarray
    held_true: np.ndarray
    epochs: np.ndarray
    train_true: np.ndarray
    losses: np.ndarray
    #: with ``keep_window``: the weights after each averaged epoch (state dicts as numpy arrays) and the
    #: audio standardisation (mean, std), so the model can score other clips later (saved scorers)
    checkpoints: list[dict[str, np.ndarray]] | None = None
    audio_stats: tuple[float, float] | None = None
    inner_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    inner_probs: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    report: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EpochProgress:
    """What a job reports after each epoch (for progress lines): phase, epoch, loss, attempt."""

    phase: str
    epoch: int
    loss: float
    inner_accuracy: float | None
    attempt: int
    planned: int
    #: why the search goes on (the convergence rule's reading), for the progress line
    note: str = ""


class _Attempt:
    """One model's training on the fit rows: the optimiser, one epoch, predictions."""

    def __init__(
        self,
        source: BatchSource,
        fit_t: torch.Tensor,
        num_classes: int,
        cfg: ScoreConfig,
        seed: int,
        device: torch.device,
        n_frames: int,
        ranks: Ranks,
        stats: Standardizer,
    ) -> None:
        self.source, self.fit_t, self.cfg, self.device = source, fit_t, cfg, device
        self.n_frames, self.ranks, self.stats = n_frames, ranks, stats
        self.gen = seed_everything(seed)
        model: nn.Module = build_unimodal(source.modality, num_classes, int(cfg.width or 8)).to(device)
        model = model.to(memory_format=torch.channels_last)  # 1.1-1.3x faster convolutions on CPU
        self.trained = distributed.for_training(model, ranks, device)
        self.model = getattr(self.trained, "module", self.trained)  # SyncBatchNorm (CUDA) replaces modules
        self.min_batch = ranks.min_batch()
        self.steps_per_epoch = max(1, len(chunks_of(fit_t, cfg.batch_size, True, self.min_batch)))
        # fused: one kernel for all parameters (the same AdamW update); the per-tensor loop of the default took
        # 1.7 ms of every CPU step of this small network, fused 0.5 ms
        self.opt = torch.optim.AdamW(
            self.trained.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=device.type in ("cpu", "cuda")
        )
        # ranks draw different-sized shares: their augmentation draws must not move the shared generator
        self.aug_gen = self.gen if ranks.world == 1 else torch.Generator().manual_seed(seed * 1009 + ranks.rank + 1)
        self.labels = source.labels()
        self.position = torch.full((int(fit_t.max()) + 1 if len(fit_t) else 0,), -1, dtype=torch.int64)
        self.position[fit_t] = torch.arange(len(fit_t))
        self.step = 0
        #: with ``truncation_after``: whether the job has gained enough to leave its high-loss share out (set by the
        #: converging schedule after each search epoch)
        self.truncating = False
        #: an exponential moving average of the weights (half-life about an epoch): evaluated on the inner
        #: split, it shows what the model would give once annealed, without the high learning rate's jitter
        self.ema = copy.deepcopy(self.model)
        self.ema_decay = 1.0 - 1.0 / self.steps_per_epoch
        self._params = [p for p in self.model.parameters()]
        self._ema_params = [p for p in self.ema.parameters()]
        self._buffers = [b for b in self.model.buffers()]
        self._ema_buffers = [b for b in self.ema.buffers()]

    def _update_ema(self) -> None:
        with torch.no_grad():
            torch._foreach_lerp_(self._ema_params, self._params, 1.0 - self.ema_decay)
            torch._foreach_copy_(self._ema_buffers, self._buffers)

    def epoch(self, factor: Callable[[int], float]) -> tuple[float, torch.Tensor]:
        """Train one epoch with the learning rate ``cfg.lr * factor(step)``; (mean loss, train_true row)."""
        cfg, source, ranks = self.cfg, self.source, self.ranks
        self.trained.train()
        order = self.fit_t[torch.randperm(len(self.fit_t), generator=self.gen)]
        chunks = chunks_of(order, cfg.batch_size, True, self.min_batch)
        # frame windows are drawn up front so the data order does not depend on the source
        windows: list[slice | None] = []
        for _ in chunks:
            if source.modality == "visual" and cfg.train_frames < self.n_frames:
                start = int(torch.randint(0, self.n_frames - cfg.train_frames + 1, (1,), generator=self.gen))
                windows.append(slice(start, start + cfg.train_frames))
            else:
                windows.append(None)
        row = torch.full((len(self.fit_t),), float("nan"), dtype=torch.float32)
        total, count = 0.0, 0
        shares = chunks if ranks.world == 1 else [ranks.share(c) for c in chunks]
        for idx, batch, raw in zip(shares, chunks, source.batches(shares, windows)):
            if cfg.augment:
                raw = augment(raw, source.modality, self.aug_gen)
            x = prepare(raw, source.modality, self.device, self.stats)
            y = self.labels[idx].to(self.device)
            logits = self.trained(x)
            loss = self._loss(logits, y)
            if ranks.world > 1:
                loss = loss * distributed.loss_weight(ranks, len(idx), len(batch))
            for group in self.opt.param_groups:
                group["lr"] = cfg.lr * factor(self.step)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self._update_ema()
            self.step += 1
            with torch.no_grad():
                row[self.position[idx]] = F.softmax(logits.detach().float(), -1).gather(1, y[:, None])[:, 0].cpu()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        return total / max(count, 1), row

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy, or with ``loss_truncation`` the mean over the batch's lowest-loss share: the share
        left out ramps from 0 to ``loss_truncation`` over the first two epochs (until the model has learned
        what typical evidence looks like, every sample's loss is high). With ``truncation_after``, the whole
        share is left out from the epoch after the job's best inner loss first gained that share of ln C, and
        none before."""
        q = float(self.cfg.loss_truncation)
        gated = float(self.cfg.truncation_after) > 0.0
        if q <= 0.0 or (gated and not self.truncating):
            return F.cross_entropy(logits, y, label_smoothing=self.cfg.label_smoothing)
        per = F.cross_entropy(logits, y, label_smoothing=self.cfg.label_smoothing, reduction="none")
        drop = q if gated else q * min(1.0, self.step / (2 * self.steps_per_epoch))
        keep = max(1, len(per) - int(drop * len(per)))
        return torch.topk(per, keep, largest=False, sorted=False).values.mean()

    def predict(self, idx: torch.Tensor, num_classes: int, ema: bool = False) -> torch.Tensor:
        distributed.broadcast_buffers(self.model, self.ranks)
        if len(idx) == 0:
            return torch.zeros(0, num_classes)
        if ema:
            self._update_ema()  # the buffers as they are now
        return predict(self.ema if ema else self.model, self.source, idx, self.device, self.stats)

    def state(self) -> dict[str, np.ndarray]:
        """The weights as plain arrays: a result crosses a forked pool's queue, where a torch tensor is
        shared through a file descriptor under a lock the fork can leave held (the worker then hangs)."""
        return {k: v.detach().cpu().numpy().copy() for k, v in self.model.state_dict().items()}


def fit_predict(
    source: BatchSource,
    train_idx: np.ndarray,
    held_idx: np.ndarray,
    num_classes: int,
    cfg: ScoreConfig,
    seed: int,
    device: torch.device,
    n_frames: int,
    on_epoch: Callable[[EpochProgress], None] | None = None,
    ranks: Ranks = SINGLE,
    record_all_epochs: bool = False,
    keep_window: bool = False,
) -> FitResult:
    """Train on ``train_idx`` only and predict ``held_idx``; a pure function of its inputs (the
    same arguments give the same arrays), so a scheduler may run it anywhere.

    By default (``cfg.epochs`` None) the job trains to convergence (:mod:`mmcurate.score.schedule`):
    an inner validation split carved from ``train_idx`` decides when the search ends, a stuck job
    restarts from another initialisation, and the anneal phase's predictions are averaged. With a
    fixed ``cfg.epochs`` it trains that many epochs on all of ``train_idx`` (warm-up and cosine
    decay) and averages the last ``cfg.avg_last``. Held-out samples are touched only by
    :func:`predict` (no gradient, eval mode). Under ``--distributed`` (``ranks.world`` > 1) the
    model trains as DistributedDataParallel, each rank on its share of every batch; every rank
    returns the same arrays. ``keep_window`` also returns the averaged epochs' weights (a whole-set
    scorer: ``held_idx`` may then be empty). ``record_all_epochs`` (fixed schedule, benchmarks)
    records held-out predictions after every epoch."""
    keep_heap_for_training()
    train_t = torch.as_tensor(train_idx, dtype=torch.int64)
    held_t = torch.as_tensor(held_idx, dtype=torch.int64)
    stats = Standardizer.fit(source, train_t, cfg.frame_norm)
    if cfg.epochs is not None:
        return _fit_fixed(
            source,
            train_t,
            held_t,
            num_classes,
            cfg,
            seed,
            device,
            n_frames,
            on_epoch,
            ranks,
            record_all_epochs,
            keep_window,
            stats,
        )
    return _fit_converge(
        source, train_t, held_t, num_classes, cfg, seed, device, n_frames, on_epoch, ranks, keep_window, stats
    )


def _fit_fixed(
    source: BatchSource,
    train_t: torch.Tensor,
    held_t: torch.Tensor,
    num_classes: int,
    cfg: ScoreConfig,
    seed: int,
    device: torch.device,
    n_frames: int,
    on_epoch: Callable[[EpochProgress], None] | None,
    ranks: Ranks,
    record_all_epochs: bool,
    keep_window: bool,
    stats: Standardizer,
) -> FitResult:
    """The fixed schedule: ``cfg.epochs`` epochs, warm-up and cosine decay, the last ``avg_last`` averaged."""
    epochs = int(cfg.epochs or 1)
    run = _Attempt(source, train_t, num_classes, cfg, seed, device, n_frames, ranks, stats)
    factor = warmup_cosine(epochs * run.steps_per_epoch)
    avg_last = int(cfg.avg_last or 1)
    held_labels = run.labels[held_t]
    prob_sum = torch.zeros(len(held_t), num_classes, dtype=torch.float64)
    held_true, recorded, checkpoints, rows, losses = [], [], [], [], []
    for epoch in range(epochs):
        loss, row = run.epoch(factor)
        rows.append(row)
        losses.append(loss)
        in_window = epoch >= epochs - avg_last
        if in_window or record_all_epochs:
            if keep_window and in_window:
                checkpoints.append(run.state())
            p = run.predict(held_t, num_classes)
            if in_window:
                prob_sum += p.double()
            held_true.append(p.gather(1, held_labels[:, None])[:, 0] if len(held_t) else torch.zeros(0))
            recorded.append(epoch)
        if on_epoch is not None:
            on_epoch(EpochProgress("fixed", epoch, loss, None, 0, epochs))
    return FitResult(
        probs=(prob_sum / avg_last).numpy(),
        held_true=torch.stack(held_true).numpy().astype(np.float32),
        epochs=np.asarray(recorded, dtype=np.int64),
        train_true=torch.stack(rows).numpy(),
        losses=np.asarray(losses, dtype=np.float64),
        checkpoints=checkpoints if keep_window else None,
        audio_stats=(stats.mean, stats.std) if keep_window else None,
        inner_probs=np.zeros((0, num_classes)),
        report={"schedule": "fixed", "epochs": epochs, "averaged": avg_last, "stop": "fixed", "restarts": 0},
    )


def _fit_converge(
    source: BatchSource,
    train_t: torch.Tensor,
    held_t: torch.Tensor,
    num_classes: int,
    cfg: ScoreConfig,
    seed: int,
    device: torch.device,
    n_frames: int,
    on_epoch: Callable[[EpochProgress], None] | None,
    ranks: Ranks,
    keep_window: bool,
    stats: Standardizer,
) -> FitResult:
    """Train to convergence (see :func:`fit_predict` and :mod:`mmcurate.score.schedule`)."""
    settings = ConvergenceSettings(max_epochs=cfg.max_epochs, patience=cfg.patience, restarts=cfg.restarts)
    labels = source.labels()
    fit_idx, inner_idx = inner_split(train_t.numpy(), labels.numpy(), cfg.inner_fraction, seed)
    fit_t, inner_t = torch.as_tensor(fit_idx), torch.as_tensor(inner_idx)
    attempts: list[dict[str, Any]] = []
    for attempt in range(settings.restarts + 1):
        run = _Attempt(source, fit_t, num_classes, cfg, seed + 104729 * attempt, device, n_frames, ranks, stats)
        warm = settings.warmup_epochs * run.steps_per_epoch
        state = SearchState(settings.for_steps(run.steps_per_epoch), num_classes)
        rows, losses = [], []
        while True:
            loss, row = run.epoch(functools.partial(_warm, warm=warm))
            rows.append(row)
            losses.append(loss)
            inner_loss, correct = _inner_eval(run, inner_t, labels, num_classes, ema=True)
            stop = state.after_epoch(loss, inner_loss, correct, len(inner_t))
            if cfg.truncation_after > 0 and state.gained >= cfg.truncation_after:
                run.truncating = True
            if on_epoch is not None:
                acc = correct / len(inner_t) if len(inner_t) else None
                on_epoch(
                    EpochProgress("search", state.epochs - 1, loss, acc, attempt, settings.search_cap, state.note())
                )
            if stop is not None:
                break
        attempts.append(
            {
                "attempt": attempt,
                "search_epochs": state.epochs,
                "stop": stop,
                "best_inner_loss": _round(state.best_loss),
                "learned": state.learned,
                "history": state.history,
            }
        )
        if stop != "stuck" or attempt == settings.restarts:
            break
    n_anneal = settings.anneal_epochs(state.epochs)
    anneal_steps = n_anneal * run.steps_per_epoch
    begin = run.step
    held_labels, inner_labels = labels[held_t], labels[inner_t]
    prob_sum = torch.zeros(len(held_t), num_classes, dtype=torch.float64)
    inner_sum = torch.zeros(len(inner_t), num_classes, dtype=torch.float64)
    held_true, recorded, checkpoints = [], [], []
    for k in range(n_anneal):
        loss, row = run.epoch(lambda step: anneal_factor(step - begin, anneal_steps))
        rows.append(row)
        losses.append(loss)
        if keep_window:
            checkpoints.append(run.state())
        p = run.predict(held_t, num_classes)
        prob_sum += p.double()
        held_true.append(p.gather(1, held_labels[:, None])[:, 0] if len(held_t) else torch.zeros(0))
        q = run.predict(inner_t, num_classes)
        inner_sum += q.double()
        recorded.append(state.epochs + k)
        if on_epoch is not None:
            acc = float((q.argmax(1) == inner_labels).float().mean()) if len(inner_t) else None
            on_epoch(EpochProgress("anneal", state.epochs + k, loss, acc, attempt, n_anneal))
    inner_probs = (inner_sum / n_anneal).numpy()
    final_acc = float((inner_probs.argmax(1) == inner_labels.numpy()).mean()) if len(inner_t) else None
    final_loss = _nll(inner_probs, inner_labels.numpy()) if len(inner_t) else None
    report = {
        "schedule": "converge",
        "epochs": state.epochs + n_anneal,
        "search_epochs": state.epochs,
        "anneal_epochs": n_anneal,
        "stop": attempts[-1]["stop"],
        "restarts": len(attempts) - 1,
        "learned": state.learned,
        "best_inner_loss": _round(state.best_loss),
        "best_inner_epoch": state.best_epoch,
        "inner_samples": int(len(inner_t)),
        "final_inner_loss": _round(final_loss),
        "final_inner_accuracy": _round(final_acc),
        "attempts": attempts,
    }
    return FitResult(
        probs=(prob_sum / n_anneal).numpy(),
        held_true=torch.stack(held_true).numpy().astype(np.float32),
        epochs=np.asarray(recorded, dtype=np.int64),
        train_true=torch.stack(rows).numpy(),
        losses=np.asarray(losses, dtype=np.float64),
        checkpoints=checkpoints if keep_window else None,
        audio_stats=(stats.mean, stats.std) if keep_window else None,
        inner_idx=inner_idx.astype(np.int64),
        inner_probs=inner_probs,
        report=report,
    )


def _warm(step: int, warm: int) -> float:
    return lr_factor(step, warm)


def _inner_eval(
    run: _Attempt, inner_t: torch.Tensor, labels: torch.Tensor, num_classes: int, ema: bool = False
) -> tuple[float, int]:
    """(mean cross-entropy, number correct) of the current model (or its moving average) on the inner split."""
    if len(inner_t) == 0:
        return math.nan, 0
    p = run.predict(inner_t, num_classes, ema).double()
    y = labels[inner_t]
    loss = float(-torch.log(p.gather(1, y[:, None])[:, 0].clamp_min(1e-12)).mean())
    return loss, int((p.argmax(1) == y).sum())


def _nll(probs: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None)).mean())


def _round(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else round(float(v), 4)


@torch.no_grad()
def predict(
    model: nn.Module,
    source: BatchSource,
    idx: torch.Tensor,
    device: torch.device,
    stats: Standardizer,
    batch_size: int = 128,
) -> torch.Tensor:
    """Softmax probabilities for rows ``idx`` (all stored frames for the visual model). Batches of 128: on
    CPU, 256 clips of three frames make float temporaries of tens of MB, fresh memory each batch (17 % slower
    on 600 visual clips)."""
    model.eval()
    chunks = chunks_of(idx, batch_size, False)
    out = [
        F.softmax(model(prepare(raw, source.modality, device, stats)).float(), dim=-1).cpu()
        for raw in source.batches(chunks)
    ]
    return torch.cat(out) if out else torch.zeros(0)

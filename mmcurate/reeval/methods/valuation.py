"""``valuation``: sample-level modality valuation, then re-sampling of the low-contribution modality.

Wei, Feng, Wang & Hu, "Enhancing Multimodal Cooperation via Sample-level Modality Valuation",
CVPR 2024; official code GeWu-Lab/Valuate-and-Enhance-Multimodal-Cooperation
(``code/sample_level.py``, ``code/modality_level.py``, ``code/datasets/dataloader.py``).

After every epoch from ``warmup_epochs - 1`` on, a no-gradient pass over the training split (model
in eval mode) records per sample whether three predictions are right: the fused one, audio only
and visual only, a modality being removed by zeroing its encoder features before the fusion
head (as the official ``exec_drop``). With values v_av = 2 (official: a right fused prediction
counts double), v_a, v_v in {0, 1}, each modality's contribution is
    phi_a = (v_a + v_av - v_v) / 2,   phi_v = (v_v + v_av - v_a) / 2.
``level=sample`` (the paper's main method): the next epoch trains on the training split plus,
per sample and modality m, extra copies in which only m is kept (the other's features zeroed):
1 copy if 0.4 < phi_m < 1, 2 if -0.1 < phi_m < 0.4, 3 if phi_m < -0.1, none otherwise.
``level=modality``: phi is averaged over a random ``part_ratio`` of the split (drawn with
replacement); with gap_m = 1 - mean phi_m, ``int(|gap_a - gap_v| * 2/3 * alpha * N)`` random
samples are appended with only the larger-gap modality kept. Originals and copies are shuffled
together, so an epoch has more steps than joint training's (up to 5x at sample level).
Inference is the plain fused prediction.

BalanceMM's ``Sample`` trainer differs: v_av = 1 (exact two-player Shapley values; here
``full_value=1``), zeroed raw inputs instead of features, modality level as its default, and
its valuation reuses the first batch's correctness for every batch (a cache bug).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from mmcurate.common.errors import MMCurateError
from mmcurate.reeval.batches import Batch, epoch_order, iter_batches, make_batch
from mmcurate.reeval.methods.base import Method, TrainContext, epochs_where, head_without

#: what a training sample keeps: both modalities, or only one (the other's features zeroed)
KEEP_BOTH, KEEP_AUDIO, KEEP_VISUAL = 0, 1, 2
LEVELS: tuple[str, ...] = ("sample", "modality")


def shapley_contributions(
    correct_full: np.ndarray, correct_audio: np.ndarray, correct_visual: np.ndarray, full_value: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """(phi_audio, phi_visual) per sample from the correctness of the three predictions."""
    v_av = full_value * np.asarray(correct_full, dtype=np.float64)
    v_a = np.asarray(correct_audio, dtype=np.float64)
    v_v = np.asarray(correct_visual, dtype=np.float64)
    return (v_a + v_av - v_v) / 2.0, (v_v + v_av - v_a) / 2.0


def copies_for(phi: np.ndarray) -> np.ndarray:
    """Extra single-modality copies per sample: 1 in (0.4, 1), 2 in (-0.1, 0.4), 3 below -0.1, else 0."""
    phi = np.asarray(phi, dtype=np.float64)
    out = np.zeros(phi.shape, dtype=np.int64)
    out[(phi > 0.4) & (phi < 1)] = 1
    out[(phi > -0.1) & (phi < 0.4)] = 2
    out[phi < -0.1] = 3
    return out


def sample_level_extras(phi_audio: np.ndarray, phi_visual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sample indices, keep codes) of the extra copies: audio-only copies for low phi_audio, and so on."""
    index, keep = [], []
    for phi, code in ((phi_audio, KEEP_AUDIO), (phi_visual, KEEP_VISUAL)):
        n = copies_for(phi)
        index.append(np.repeat(np.arange(len(n)), n))
        keep.append(np.full(int(n.sum()), code))
    return np.concatenate(index).astype(np.int64), np.concatenate(keep).astype(np.int64)


def resampling_fraction(mean_audio: float, mean_visual: float, alpha: float) -> float:
    """Modality level: |gap_a - gap_v| * 2/3 * alpha, with gap_m = 1 - mean phi_m."""
    return abs((1.0 - mean_audio) - (1.0 - mean_visual)) / 3 * 2 * alpha


def modality_level_extras(
    mean_audio: float, mean_visual: float, n: int, alpha: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(indices drawn with replacement, keep codes): the larger-gap modality alone, on a fraction of n."""
    count = int(resampling_fraction(mean_audio, mean_visual, alpha) * n)
    index = rng.choice(n, count) if count > 0 else np.zeros(0, dtype=np.int64)
    code = KEEP_AUDIO if (1.0 - mean_audio) > (1.0 - mean_visual) else KEEP_VISUAL
    return index.astype(np.int64), np.full(count, code, dtype=np.int64)


@dataclass
class ValuedBatch(Batch):
    """A training batch whose samples may keep only one modality (``keep``: KEEP_* codes)."""

    keep: torch.Tensor | None = None


class Valuation(Method):
    name = "valuation"
    title = "Modality valuation"
    reference = "Wei et al., CVPR 2024"
    category = "data"
    paper = "Enhancing Multimodal Cooperation via Sample-level Modality Valuation"
    aliases = ("sample", "modality_valuation")
    #: official: sample level, v_av = 2, part_ratio 0.2, alpha 1; warm-up None: 5 of 60 epochs, scaled
    defaults = {"level": "sample", "warmup_epochs": None, "full_value": 2.0, "part_ratio": 0.2, "alpha": 1.0}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.params["level"] not in LEVELS:
            level = self.params["level"]
            raise MMCurateError(f"method valuation: level must be one of {', '.join(LEVELS)}, got {level!r}")
        self.extra_index: np.ndarray | None = None
        self.extra_keep: np.ndarray | None = None

    @property
    def warmup(self) -> int:
        w = self.params["warmup_epochs"]
        return max(1, round(self.epochs * 5 / 60)) if w is None else int(w)

    def forward(self, model: nn.Module, batch: Batch, ctx: TrainContext) -> Any:
        a, v = model.encode(batch.audio, batch.frames)
        keep = getattr(batch, "keep", None)
        if keep is not None:
            a = a * (keep != KEEP_VISUAL).to(a.dtype)[:, None]
            v = v * (keep != KEEP_AUDIO).to(v.dtype)[:, None]
        return model.classify(a, v)

    def train_batches(self, ctx: TrainContext) -> Iterator[Batch] | None:
        if self.extra_index is None:
            return None
        n = len(ctx.data.train)
        index = torch.cat([torch.arange(n), torch.from_numpy(self.extra_index)])
        keep = torch.cat([torch.full((n,), KEEP_BOTH), torch.from_numpy(self.extra_keep)])
        order = epoch_order(len(index), self.seed, ctx.epoch)
        return self._batches(ctx, index[order], keep[order])

    def _batches(self, ctx: TrainContext, index: torch.Tensor, keep: torch.Tensor) -> Iterator[Batch]:
        for start in range(0, len(index), ctx.batch_size):
            idx = index[start : start + ctx.batch_size]
            if len(idx) == 1 and len(index) > 1:
                return  # BatchNorm cannot train on one sample (the trainer's drop_singleton)
            b = make_batch(ctx.data.train, ctx.data, idx, ctx.device)
            codes = keep[start : start + ctx.batch_size].to(ctx.device)
            yield ValuedBatch(b.audio, b.frames, b.labels, b.index, keep=codes)

    def on_epoch_end(self, model: nn.Module, ctx: TrainContext) -> dict[str, float]:
        if ctx.epoch < self.warmup - 1 or ctx.epoch >= ctx.num_epochs - 1:
            return {}  # before the last warm-up epoch, or no epoch left to re-sample for
        n = len(ctx.data.train)
        if self.params["level"] == "sample":
            subset = np.arange(n)
        else:
            rng = np.random.default_rng([self.seed, ctx.epoch, 2_024])
            subset = rng.choice(n, max(1, int(n * float(self.params["part_ratio"]))))
        unique, inverse = np.unique(subset, return_inverse=True)
        correct = self._correctness(model, ctx, unique)
        full_value = float(self.params["full_value"])
        phi_a, phi_v = shapley_contributions(*(c[inverse] for c in correct), full_value=full_value)
        if self.params["level"] == "sample":
            self.extra_index, self.extra_keep = sample_level_extras(phi_a, phi_v)
        else:
            rng = np.random.default_rng([self.seed, ctx.epoch, 4_048])
            self.extra_index, self.extra_keep = modality_level_extras(
                float(phi_a.mean()), float(phi_v.mean()), n, float(self.params["alpha"]), rng
            )
        return {
            "phi_audio": float(phi_a.mean()),
            "phi_visual": float(phi_v.mean()),
            "extra_audio_only": int((self.extra_keep == KEEP_AUDIO).sum()),
            "extra_visual_only": int((self.extra_keep == KEEP_VISUAL).sum()),
        }

    @torch.no_grad()
    def _correctness(self, model: nn.Module, ctx: TrainContext, indices: np.ndarray) -> tuple[np.ndarray, ...]:
        """(fused, audio-only, visual-only) correctness of the train samples at ``indices``, in eval mode."""
        model.eval()
        parts: list[list[np.ndarray]] = [[], [], []]
        try:
            order = torch.from_numpy(indices)
            for batch in iter_batches(ctx.data.train, ctx.data, ctx.batch_size, ctx.device, order=order):
                a, v = model.encode(batch.audio, batch.frames)
                logits = (
                    model.head(a, v).logits,
                    head_without(model, a, v, "audio"),
                    head_without(model, a, v, "visual"),
                )
                for part, lg in zip(parts, logits):
                    part.append((lg.argmax(1) == batch.labels).cpu().numpy())
        finally:
            model.train()
        return tuple(np.concatenate(p) for p in parts)

    def schedule(self) -> dict[str, list[int]]:
        valued = epochs_where(self.epochs, lambda e: self.warmup - 1 <= e < self.epochs - 1)
        return {"valuation": valued, "resampled_epoch": [e + 1 for e in valued]}

    def state_dict(self) -> dict[str, Any]:
        if self.extra_index is None:
            return {"extra_index": None, "extra_keep": None}
        return {"extra_index": self.extra_index.tolist(), "extra_keep": self.extra_keep.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        idx, keep = state.get("extra_index"), state.get("extra_keep")
        self.extra_index = None if idx is None else np.asarray(idx, dtype=np.int64)
        self.extra_keep = None if keep is None else np.asarray(keep, dtype=np.int64)

    def on_train_start(self, model: nn.Module, ctx: TrainContext) -> None:
        self.extra_index, self.extra_keep = None, None

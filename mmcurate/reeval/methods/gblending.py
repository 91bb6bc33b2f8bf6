"""``gblending``: Gradient-Blending, loss weights from the overfitting-to-generalisation ratio.

Wang, Tran & Feiszli, "What Makes Training Multi-modal Classification Networks Hard?", CVPR 2020.
The model has three heads: the fused head and one linear head per modality; the loss is
sum_k w_k CE_k. Every super-epoch (online G-Blending) the weights are re-estimated from how each
head's losses moved over that super-epoch, measured on the **validation** split (public
toolkits measure on test):

    dG_k = val_loss_k(before) - val_loss_k(after)              (generalisation gained)
    dO_k = gap_k(after) - gap_k(before), gap = val - train      (overfitting gained)
    w_k  proportional to max(dG_k, 0) / dO_k^2, normalised to sum to 1.

Train losses are measured in eval mode over the whole train split. Weights start uniform.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mmcurate.models import AVClassifier
from mmcurate.reeval.batches import Batch, iter_batches
from mmcurate.reeval.methods.base import Method, TrainContext

#: the heads, in weight order
HEADS: tuple[str, ...] = ("fused", "audio", "visual")


def gblending_weights(
    train_before: np.ndarray,
    val_before: np.ndarray,
    train_after: np.ndarray,
    val_after: np.ndarray,
    eps: float = 1e-6,
) -> np.ndarray | None:
    """Normalised OGR weights per head, or None when no head generalised better (keep the old ones)."""
    d_gen = np.asarray(val_before, float) - np.asarray(val_after, float)
    d_over = (np.asarray(val_after, float) - np.asarray(train_after, float)) - (
        np.asarray(val_before, float) - np.asarray(train_before, float)
    )
    raw = np.maximum(d_gen, 0.0) / np.maximum(d_over**2, eps)
    total = raw.sum()
    if not np.isfinite(total) or total <= 0:
        return None
    return raw / total


class GBlending(Method):
    name = "gblending"
    title = "G-Blending"
    reference = "Wang et al., CVPR 2020"
    category = "objective"
    paper = "What Makes Training Multi-modal Classification Networks Hard?"
    #: super_epoch None: a quarter of the run (BalanceMM: 10 of 30 epochs)
    defaults = {"super_epoch": None}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.weights = np.full(len(HEADS), 1.0 / len(HEADS))
        self._snapshot: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def super_epoch(self) -> int:
        se = self.params["super_epoch"]
        return max(1, round(self.epochs / 4)) if se is None else max(1, int(se))

    def build_model(self, num_classes: int) -> nn.Module:
        return AVClassifier(num_classes, self.width, self.fusion, unimodal_heads=True)

    def loss(self, model: nn.Module, batch: Batch, out: Any, ctx: TrainContext) -> tuple[torch.Tensor, dict[str, float]]:
        losses = [F.cross_entropy(x, batch.labels) for x in (out.logits, out.audio_head_logits, out.visual_head_logits)]
        total = sum(float(w) * loss for w, loss in zip(self.weights, losses))
        return total, {f"w_{h}": float(w) for h, w in zip(HEADS, self.weights)}

    def on_train_start(self, model: nn.Module, ctx: TrainContext) -> None:
        self._snapshot = self._measure(model, ctx)

    def on_epoch_end(self, model: nn.Module, ctx: TrainContext) -> dict[str, float]:
        if (ctx.epoch + 1) % self.super_epoch != 0:
            return {}
        now = self._measure(model, ctx)
        if self._snapshot is not None:
            new = gblending_weights(self._snapshot[0], self._snapshot[1], now[0], now[1])
            if new is not None:
                self.weights = new
        self._snapshot = now
        return {f"w_{h}": float(w) for h, w in zip(HEADS, self.weights)}

    @torch.no_grad()
    def _measure(self, model: nn.Module, ctx: TrainContext) -> tuple[np.ndarray, np.ndarray]:
        """Mean per-head cross-entropy on (train, val), in eval mode."""
        was_training = model.training
        model.eval()
        result = []
        for split in (ctx.data.train, ctx.data.val):
            sums, n = np.zeros(len(HEADS)), 0
            for batch in iter_batches(split, ctx.data, ctx.batch_size, ctx.device):
                out = model(batch.audio, batch.frames)
                for k, logits in enumerate((out.logits, out.audio_head_logits, out.visual_head_logits)):
                    sums[k] += float(F.cross_entropy(logits, batch.labels, reduction="sum"))
                n += len(batch)
            result.append(sums / max(n, 1))
        model.train(was_training)
        return result[0], result[1]

    def state_dict(self) -> dict[str, Any]:
        snap = None if self._snapshot is None else [s.tolist() for s in self._snapshot]
        return {"weights": self.weights.tolist(), "snapshot": snap}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.weights = np.asarray(state["weights"], dtype=float)
        snap = state.get("snapshot")
        self._snapshot = None if snap is None else (np.asarray(snap[0]), np.asarray(snap[1]))

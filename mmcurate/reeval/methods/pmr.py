"""``pmr``: prototypical modal rebalance.

Fan et al., "PMR: Prototypical Modal Rebalance for Multimodal Learning", CVPR 2023. Each modality
keeps class prototypes c_k^m, the mean encoder feature of class k, recomputed at the start of
every epoch on a fixed-seed sample of the training split and blended with the previous ones by
momentum. The prototype classifier is q_m(k|x) = softmax_k(-||phi_m(x) - c_k^m||) (Euclidean
distance, as the reference code). Per batch, rho = sum_i q_a(y_i|x_i) / sum_i q_v(y_i|x_i); the
weaker modality gets a prototypical cross-entropy with weight alpha * clip(rho - 1, 0, 1)
(visual when rho > 1) or alpha * clip(1/rho - 1, 0, 1) (audio when rho < 1), which speeds up
its encoder without slowing the other.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from mmcurate.reeval.batches import Batch, epoch_order, iter_batches
from mmcurate.reeval.methods.base import Method, TrainContext, in_window


def prototype_logits(features: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """(B, K) logits -||phi(x) - c_k|| of the prototype classifier."""
    return -torch.cdist(features, prototypes, p=2)


def pmr_ratio(proto_logits_audio: torch.Tensor, proto_logits_visual: torch.Tensor, labels: torch.Tensor) -> float:
    """rho = sum of audio prototype probabilities of the true class / the same for visual."""
    s_a = F.softmax(proto_logits_audio.detach(), 1).gather(1, labels[:, None]).sum()
    s_v = F.softmax(proto_logits_visual.detach(), 1).gather(1, labels[:, None]).sum()
    return float(s_a) / max(float(s_v), 1e-12)


def pmr_coefficients(rho: float) -> tuple[float, float]:
    """(beta_audio, beta_visual): the prototype-loss weight (before alpha) of each modality."""
    if rho >= 1:
        return 0.0, min(max(rho - 1.0, 0.0), 1.0)
    return min(max(1.0 / rho - 1.0, 0.0), 1.0), 0.0


def class_means(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, D) per-class mean features and (K,) counts (a class without samples has a zero mean)."""
    sums = torch.zeros(num_classes, features.shape[1], dtype=features.dtype, device=features.device)
    sums.index_add_(0, labels, features)
    counts = torch.bincount(labels, minlength=num_classes).to(features.dtype)
    return sums / counts.clamp(min=1)[:, None], counts


def update_prototypes(
    old: torch.Tensor | None, means: torch.Tensor, counts: torch.Tensor, momentum: float
) -> torch.Tensor:
    """momentum * old + (1 - momentum) * new; classes absent from this sample keep the old prototype."""
    if old is None:
        return means.clone()
    old = old.to(means.device)
    seen = (counts > 0)[:, None]
    return torch.where(seen, momentum * old + (1 - momentum) * means, old)


class PMR(Method):
    name = "pmr"
    title = "PMR"
    reference = "Fan et al., CVPR 2023"
    category = "optimisation"
    paper = "PMR: Prototypical Modal Rebalance for Multimodal Learning"
    #: alpha 0.6 and momentum 0.5 as BalanceMM; a quarter of train per prototype refresh
    defaults = {"alpha": 0.6, "momentum": 0.5, "proto_fraction": 0.25, "modulation_start": 0, "modulation_end": None}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prototypes: dict[str, torch.Tensor | None] = {"audio": None, "visual": None}

    @torch.no_grad()
    def on_epoch_start(self, model: nn.Module, ctx: TrainContext) -> None:
        train = ctx.data.train
        n = max(1, math.ceil(float(self.params["proto_fraction"]) * len(train)))
        subset = epoch_order(len(train), self.seed + 7_919, ctx.epoch)[:n]
        model.eval()
        feats: dict[str, list[torch.Tensor]] = {"audio": [], "visual": []}
        labels: list[torch.Tensor] = []
        for batch in iter_batches(train, ctx.data, ctx.batch_size, ctx.device, order=subset):
            a, v = model.encode(batch.audio, batch.frames)
            feats["audio"].append(a)
            feats["visual"].append(v)
            labels.append(batch.labels)
        model.train()
        y = torch.cat(labels)
        k = len(ctx.data.classes)
        for m in ("audio", "visual"):
            means, counts = class_means(torch.cat(feats[m]), y, k)
            self.prototypes[m] = update_prototypes(self.prototypes[m], means, counts, float(self.params["momentum"]))

    def loss(self, model: nn.Module, batch: Batch, out: Any, ctx: TrainContext) -> tuple[torch.Tensor, dict[str, float]]:
        loss = F.cross_entropy(out.logits, batch.labels)
        if not in_window(ctx.epoch, int(self.params["modulation_start"]), self.params["modulation_end"]):
            return loss, {}
        q_a = prototype_logits(out.audio_features, self.prototypes["audio"])
        q_v = prototype_logits(out.visual_features, self.prototypes["visual"])
        rho = pmr_ratio(q_a, q_v, batch.labels)
        beta_a, beta_v = pmr_coefficients(rho)
        alpha = float(self.params["alpha"])
        if beta_a > 0:
            loss = loss + alpha * beta_a * F.cross_entropy(q_a, batch.labels)
        if beta_v > 0:
            loss = loss + alpha * beta_v * F.cross_entropy(q_v, batch.labels)
        return loss, {"rho": rho, "beta_audio": beta_a, "beta_visual": beta_v}

    def state_dict(self) -> dict[str, Any]:
        return {m: (None if p is None else p.cpu()) for m, p in self.prototypes.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.prototypes = {m: state.get(m) for m in ("audio", "visual")}

    def on_train_start(self, model: nn.Module, ctx: TrainContext) -> None:
        self.prototypes = {"audio": None, "visual": None}

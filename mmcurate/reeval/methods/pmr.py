"""``pmr``: prototypical modal rebalance.

Fan et al., "PMR: Prototypical Modal Rebalance for Multimodal Learning", CVPR 2023; official code
``fanyunfeng-bit/Modal-Imbalance-PMR`` ``main_Prototype_grad.py``. Each modality keeps class
prototypes c_k^m, the mean encoder feature of class k, computed in eval mode from the **training**
split only (a fixed-seed sample per epoch) and blended with the previous ones by momentum. The
prototype classifier is q_m(k|x) = softmax_k(-||phi_m(x) - c_k^m||) (Euclidean distance, as the
official ``EU_dist``). Per batch, rho = sum_i q_a(y_i|x_i) / sum_i q_v(y_i|x_i); the loss is

    L = CE(fused) + alpha * PCE_weak + mu * sum_k q_dom(k|x) log q_dom(k|x)      (batch means)

where PCE_weak = CE(q_weak, y) is the prototypical cross-entropy of the slower modality (visual
when rho > 1, audio when rho < 1, none when rho = 1) with the **hard** weight alpha, as the
official code and BalanceMM's current trainer. The last term is the paper's prototypical entropy
regulariser (PER): it raises the entropy of the *dominant* modality's prototype distribution
during the early training stage (the first ``per_epochs``) to slow its premature convergence.
The official repository does not contain PER (``bash.sh`` names a ``main_Proto_PER.py`` that is
not in it; issues #4, #7, #9 ask where it is), so mu and the length of the early stage are
mmcurate's choices (``per_weight`` 0.1, ``per_epochs`` a tenth of the run), stated in the README.

Options: ``coefficient=clipped`` replaces the hard alpha by alpha * clip(rho - 1, 0, 1) (visual)
or alpha * clip(1/rho - 1, 0, 1) (audio), an older BalanceMM reading; ``per_weight=0`` turns
PER off.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from mmcurate.common.errors import MMCurateError
from mmcurate.reeval.batches import Batch, epoch_order, iter_batches
from mmcurate.reeval.methods.base import Method, TrainContext, epochs_where, in_window


def prototype_logits(features: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """(B, K) logits -||phi(x) - c_k|| of the prototype classifier."""
    return -torch.cdist(features, prototypes, p=2)


def pmr_ratio(proto_logits_audio: torch.Tensor, proto_logits_visual: torch.Tensor, labels: torch.Tensor) -> float:
    """rho = sum of audio prototype probabilities of the true class / the same for visual."""
    s_a = F.softmax(proto_logits_audio.detach(), 1).gather(1, labels[:, None]).sum()
    s_v = F.softmax(proto_logits_visual.detach(), 1).gather(1, labels[:, None]).sum()
    return float(s_a) / max(float(s_v), 1e-12)


#: how the prototype-loss weight is set: the official hard alpha, or BalanceMM's older clipped ratio
COEFFICIENTS: tuple[str, ...] = ("hard", "clipped")


def pmr_coefficients(rho: float, alpha: float, coefficient: str = "hard") -> tuple[float, float]:
    """(beta_audio, beta_visual): the prototype cross-entropy weight of each modality (alpha included)."""
    if coefficient not in COEFFICIENTS:
        raise MMCurateError(f"pmr: coefficient must be one of {', '.join(COEFFICIENTS)}, got {coefficient!r}")
    if rho > 1:
        return 0.0, alpha if coefficient == "hard" else alpha * min(max(rho - 1.0, 0.0), 1.0)
    if rho < 1:
        return (alpha if coefficient == "hard" else alpha * min(max(1.0 / rho - 1.0, 0.0), 1.0)), 0.0
    return 0.0, 0.0


def negative_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Batch mean of sum_k p_k log p_k (the PER term; minimising it raises the entropy)."""
    logp = F.log_softmax(logits, dim=1)
    return (logp.exp() * logp).sum(dim=1).mean()


def pmr_loss(
    fused_logits: torch.Tensor,
    proto_audio: torch.Tensor,
    proto_visual: torch.Tensor,
    labels: torch.Tensor,
    alpha: float,
    coefficient: str = "hard",
    per_weight: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """CE(fused) + beta_a PCE_a + beta_v PCE_v + per_weight * negative entropy of the dominant modality."""
    loss = F.cross_entropy(fused_logits, labels)
    rho = pmr_ratio(proto_audio, proto_visual, labels)
    beta_a, beta_v = pmr_coefficients(rho, alpha, coefficient)
    if beta_a > 0:
        loss = loss + beta_a * F.cross_entropy(proto_audio, labels)
    if beta_v > 0:
        loss = loss + beta_v * F.cross_entropy(proto_visual, labels)
    dominant = "audio" if rho > 1 else "visual" if rho < 1 else None
    per = {"audio": 0.0, "visual": 0.0}
    if per_weight and dominant is not None:
        per[dominant] = per_weight
        loss = loss + per_weight * negative_entropy(proto_audio if dominant == "audio" else proto_visual)
    return loss, {
        "rho": rho,
        "beta_audio": beta_a,
        "beta_visual": beta_v,
        "per_audio": per["audio"],
        "per_visual": per["visual"],
    }


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
    #: alpha 0.6 and momentum 0.5 as BalanceMM (official argparse: 1.0 and 0.2); a quarter of train per
    #: prototype refresh (official and BalanceMM: a tenth of the batches, which at CPU scale leaves classes
    #: without a sample); PER: mmcurate's mu and early stage (the official code has none)
    defaults = {
        "alpha": 0.6,
        "coefficient": "hard",
        "momentum": 0.5,
        "proto_fraction": 0.25,
        "per_weight": 0.1,
        "per_epochs": None,
        "modulation_start": 0,
        "modulation_end": None,
    }
    diagnostics = {
        "rho": "rho = prototype score audio / visual",
        "beta_audio": "prototype CE weight, audio",
        "beta_visual": "prototype CE weight, visual",
        "per_audio": "PER weight, audio (dominant)",
        "per_visual": "PER weight, visual (dominant)",
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.params["coefficient"] not in COEFFICIENTS:
            raise MMCurateError(
                f"method pmr: coefficient must be one of {', '.join(COEFFICIENTS)}, got {self.params['coefficient']!r}"
            )
        self.prototypes: dict[str, torch.Tensor | None] = {"audio": None, "visual": None}

    @property
    def per_epochs(self) -> int:
        """Length of the early stage in which PER is on."""
        pe = self.params["per_epochs"]
        return max(1, round(self.epochs / 10)) if pe is None else max(0, int(pe))

    @torch.no_grad()
    def on_epoch_start(self, model: nn.Module, ctx: TrainContext) -> None:
        """Refresh the prototypes from a seeded sample of the **training** split (eval mode)."""
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

    def loss(
        self, model: nn.Module, batch: Batch, out: Any, ctx: TrainContext
    ) -> tuple[torch.Tensor, dict[str, float]]:
        if not in_window(ctx.epoch, int(self.params["modulation_start"]), self.params["modulation_end"]):
            return F.cross_entropy(out.logits, batch.labels), {}
        q_a = prototype_logits(out.audio_features, self.prototypes["audio"])
        q_v = prototype_logits(out.visual_features, self.prototypes["visual"])
        per = float(self.params["per_weight"]) if ctx.epoch < self.per_epochs else 0.0
        alpha, coefficient = float(self.params["alpha"]), str(self.params["coefficient"])
        return pmr_loss(out.logits, q_a, q_v, batch.labels, alpha, coefficient, per)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "per_epochs_resolved": self.per_epochs}

    def schedule(self) -> dict[str, list[int]]:
        start, end = int(self.params["modulation_start"]), self.params["modulation_end"]
        return {
            "prototypes": list(range(self.epochs)),
            "per": epochs_where(self.epochs, lambda e: e < self.per_epochs),
            "modulation": epochs_where(self.epochs, lambda e: in_window(e, start, end)),
        }

    def state_dict(self) -> dict[str, Any]:
        return {m: (None if p is None else p.cpu()) for m, p in self.prototypes.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.prototypes = {m: state.get(m) for m in ("audio", "visual")}

    def on_train_start(self, model: nn.Module, ctx: TrainContext) -> None:
        self.prototypes = {"audio": None, "visual": None}

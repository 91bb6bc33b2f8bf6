"""``opm``: on-the-fly prediction modulation (dropping the dominant modality's features).

Wei, Hu, Du & Wen, "On-the-fly Modulation for Balanced Multimodal Learning", T-PAMI 2024 (the
journal extension of OGM-GE); official code GeWu-Lab/BML_TPAMI2024 (``code/models/Classifier.py``
``Modality_drop``, ``calcu_q``, ``custom_autograd``; ``code/main.py`` ``train``;
``code/scripts/train_opm.sh``).

Per step, s_m is the batch sum of the true-class probability under modality m's split logits
(as OGM-GE; no gradient flows through it). Only the modality ahead gets a drop probability:
    rho_a = tanh(relu(s_a / s_v - 1)),  rho_v = tanh(relu(s_v / s_a - 1)),
    q_m = clip(q_base * (1 + lambda * rho_m), 0, 1) if rho_m > 0 else 0.
With probability ``p_exe`` the step drops: every sample keeps modality m's features with
probability 1 - q_m (independently), and all features are scaled by 1 / (1 - theta), theta =
sum_m d_m q_m / sum_m d_m (d_m: feature widths). Samples left with no modality are removed from
the cross-entropy of the fused head. The first ``warmup_epochs`` epochs do not drop (official:
epochs 0-5 of 100). Inference is unchanged.

Defaults are the official training script's (q_base 0.5, lambda 0.5, p_exe 0.7; its config file
says q_base 0.4, which the script's argument overrides). BalanceMM uses q_base 0.4 and no warm-up
(``--method-param opm.q_base=0.4 opm.warmup_epochs=0``). Drop draws use the method's own
seeded generator, saved with the run, so resumed runs draw the same masks.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from mmcurate.reeval.batches import Batch
from mmcurate.reeval.methods.base import (
    Method,
    TrainContext,
    cpu_generator,
    epochs_where,
    label_probability_sum,
)


def opm_drop_probabilities(score_audio: float, score_visual: float, q_base: float, lam: float) -> tuple[float, float]:
    """(q_audio, q_visual): q_base (1 + lambda rho) for the modality ahead, 0 for the other."""
    eps = 1e-12
    rho_a = math.tanh(max(score_audio / max(score_visual, eps) - 1.0, 0.0))
    rho_v = math.tanh(max(score_visual / max(score_audio, eps) - 1.0, 0.0))
    q = [q_base * (1 + lam * rho) if rho > 0 else 0.0 for rho in (rho_a, rho_v)]
    return min(max(q[0], 0.0), 1.0), min(max(q[1], 0.0), 1.0)


def opm_scale(q: tuple[float, float], dims: tuple[int, int]) -> float:
    """1 / (1 - theta), theta = sum d_m q_m / sum d_m: the rescaling of the kept features."""
    theta = sum(d * qm for d, qm in zip(dims, q)) / sum(dims)
    return 1.0 / (1.0 - theta)


def opm_drop(
    a: torch.Tensor, v: torch.Tensor, q: tuple[float, float], gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(a', v', kept): features kept per sample with probability 1 - q_m, rescaled; kept: any modality left."""
    n = a.shape[0]
    keep = torch.rand(2, n, generator=gen) >= torch.tensor(q)[:, None]  # P(keep) = 1 - q_m
    keep = keep.to(a.device)
    scale = opm_scale(q, (a.shape[1], v.shape[1]))
    a2 = a * keep[0].to(a.dtype)[:, None] * scale
    v2 = v * keep[1].to(v.dtype)[:, None] * scale
    return a2, v2, keep.any(dim=0)


class OPM(Method):
    name = "opm"
    title = "OPM"
    reference = "Wei et al., TPAMI 2024"
    category = "feed-forward"
    paper = "On-the-fly Modulation for Balanced Multimodal Learning"
    needs_modality_logits = True
    #: warmup_epochs None: 6 of 100 epochs as the official code, scaled to the run
    defaults = {"q_base": 0.5, "lam": 0.5, "p_exe": 0.7, "warmup_epochs": None}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._gen = cpu_generator(self.seed, 31_337)

    @property
    def warmup(self) -> int:
        w = self.params["warmup_epochs"]
        return round(self.epochs * 6 / 100) if w is None else int(w)

    def forward(self, model: nn.Module, batch: Batch, ctx: TrainContext) -> Any:
        a, v = model.encode(batch.audio, batch.frames)
        out = model.classify(a, v)
        if ctx.epoch < self.warmup:
            return out, None, {}
        s_a = label_probability_sum(out.audio_logits, batch.labels)
        s_v = label_probability_sum(out.visual_logits, batch.labels)
        q = opm_drop_probabilities(s_a, s_v, float(self.params["q_base"]), float(self.params["lam"]))
        logs = {"q_audio": q[0], "q_visual": q[1]}
        execute = float(torch.rand((), generator=self._gen)) < float(self.params["p_exe"])
        if not execute or q == (0.0, 0.0):
            return out, None, {**logs, "dropped": 0.0}
        a2, v2, kept = opm_drop(a, v, q, self._gen)
        dropped = model.head(a2[kept], v2[kept]).logits
        return out, (dropped, kept), {**logs, "dropped": 1.0}

    def loss(
        self, model: nn.Module, batch: Batch, out: Any, ctx: TrainContext
    ) -> tuple[torch.Tensor, dict[str, float]]:
        full, dropped, logs = out
        if dropped is None:
            return F.cross_entropy(full.logits, batch.labels), logs
        logits, kept = dropped
        if not bool(kept.any()):  # every sample lost every modality (the official code skips the step)
            return full.logits.sum() * 0.0, logs
        return F.cross_entropy(logits, batch.labels[kept]), logs

    def schedule(self) -> dict[str, list[int]]:
        return {"drop": epochs_where(self.epochs, lambda e: e >= self.warmup)}

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self._gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._gen.set_state(state["generator"])

"""``mbsd``: self-distillation from the dominant to the weaker modality.

Liu, Li, Song, Yang & Zeng, "Multimodal Pre-Training with Self-Distillation for Product
Understanding in E-Commerce", WSDM 2023. The paper is a vision-language pre-training model whose
abstract states the idea used here: "a self-distillation strategy to transfer the knowledge in
dominated modality to weaker modality". No code was released; the audio-visual adaptation is
BalanceMM's (``balancemm/trainer/MBSD_trainer.py``), with the split logits z_m of the fusion head
and p_m = softmax(z_m):

    L = CE(fused) + CE(z_a) + CE(z_v) + mean_i w_i RS_i + mean_i w_i KD_i,
    w_i = |p_a(y_i) - p_v(y_i)| if either modality's prediction is right, else 0,
    RS_i = (1/C) sum_k (z_a,ik - z_v,ik)^2.

Per sample the "strong" modality is the one with the larger true-class probability.
BalanceMM's KD term is ``F.kl_div(ps, pw)`` on the two true-class probabilities, which computes
pw (log pw - ps): not a divergence (it can be negative and ps is used as a log-probability), and
nothing is detached, so the strong side is pulled towards the weak one as much as the reverse.

Default ``variant=balancemm``: BalanceMM's arithmetic exactly, because it is the only public code
of this method (the paper is about vision-language pre-training and publishes none), and a method
named after a paper must not silently be mmcurate's own construction. ``variant=distill`` is
mmcurate's reading of the stated strong-to-weak transfer: KD_i = KL(p_strong || p_weak) over the
class distributions, and in RS and KD the strong modality's logits are detached (the teacher), as
is w_i (a weight, not a target).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from mmcurate.common.errors import MMCurateError
from mmcurate.reeval.batches import Batch
from mmcurate.reeval.methods.base import Method, TrainContext

VARIANTS: tuple[str, ...] = ("balancemm", "distill")


def mbsd_weights(
    p_audio_y: torch.Tensor, p_visual_y: torch.Tensor, audio_right: torch.Tensor, visual_right: torch.Tensor
) -> torch.Tensor:
    """w_i = |p_a(y_i) - p_v(y_i)| where either modality predicts y_i, else 0."""
    return (p_audio_y - p_visual_y).abs() * (audio_right | visual_right).to(p_audio_y.dtype)


def logit_alignment(z_a: torch.Tensor, z_v: torch.Tensor) -> torch.Tensor:
    """RS_i = mean over classes of the squared difference of the two modalities' logits."""
    return ((z_a - z_v) ** 2).mean(dim=1)


def balancemm_kd(p_strong_y: torch.Tensor, p_weak_y: torch.Tensor) -> torch.Tensor:
    """BalanceMM's ``F.kl_div(ps, pw, reduction='none')``: pw * (log pw - ps) per sample."""
    return F.kl_div(p_strong_y, p_weak_y, reduction="none")


def strong_to_weak_kd(z_strong: torch.Tensor, z_weak: torch.Tensor) -> torch.Tensor:
    """KL(p_strong || p_weak) per sample, the strong (teacher) distribution detached."""
    p_s = F.softmax(z_strong.detach(), dim=1)
    return (p_s * (F.log_softmax(z_strong.detach(), dim=1) - F.log_softmax(z_weak, dim=1))).sum(dim=1)


class MBSD(Method):
    name = "mbsd"
    title = "MBSD"
    reference = "Liu et al., WSDM 2023"
    category = "objective"
    paper = "Multimodal Pre-Training with Self-Distillation for Product Understanding in E-Commerce"
    needs_modality_logits = True
    #: the only public code's arithmetic by default (see the module docstring)
    defaults = {"variant": "balancemm"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.params["variant"] not in VARIANTS:
            raise MMCurateError(f"method mbsd: variant must be one of {', '.join(VARIANTS)}")

    def loss(
        self, model: nn.Module, batch: Batch, out: Any, ctx: TrainContext
    ) -> tuple[torch.Tensor, dict[str, float]]:
        y = batch.labels
        z_a, z_v = out.audio_logits, out.visual_logits
        base = F.cross_entropy(out.logits, y) + F.cross_entropy(z_a, y) + F.cross_entropy(z_v, y)
        p_a = F.softmax(z_a, dim=1)
        p_v = F.softmax(z_v, dim=1)
        p_a_y, p_v_y = p_a.gather(1, y[:, None])[:, 0], p_v.gather(1, y[:, None])[:, 0]
        right_a, right_v = p_a.argmax(1) == y, p_v.argmax(1) == y
        audio_strong = p_a_y >= p_v_y
        if self.params["variant"] == "balancemm":
            w = mbsd_weights(p_a_y, p_v_y, right_a, right_v)
            rs = logit_alignment(z_a, z_v)
            kd = balancemm_kd(torch.maximum(p_a_y, p_v_y), torch.minimum(p_a_y, p_v_y))
        else:
            w = mbsd_weights(p_a_y.detach(), p_v_y.detach(), right_a, right_v)
            z_strong = torch.where(audio_strong[:, None], z_a, z_v)
            z_weak = torch.where(audio_strong[:, None], z_v, z_a)
            rs = logit_alignment(z_strong.detach(), z_weak)
            kd = strong_to_weak_kd(z_strong, z_weak)
        rs_term, kd_term = (w * rs).mean(), (w * kd).mean()
        logs = {"rs": float(rs_term.detach()), "kd": float(kd_term.detach())}
        logs["audio_strong"] = float(audio_strong.float().mean())
        return base + rs_term + kd_term, logs

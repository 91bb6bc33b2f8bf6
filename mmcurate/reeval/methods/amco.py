"""``amco``: adaptive mask co-optimisation of the dependent (dominant) modality.

Zhou, Liang, Zheng, Xuan & Kumada, "Adaptive Mask Co-Optimization for Modal Dependence in
Multimodal Learning", ICASSP 2023. The authors released no code; the only public implementation
is BalanceMM's (``balancemm/trainer/AMCo_trainer.py``, ``BaseClassifierAMCoModel`` in
``balancemm/models/avclassify_model.py``), which mmcurate follows, with its two crashes fixed.

Model: the late-fusion model's split logits z_a, z_v (concat: W_m m + b/2; sum: each branch),
fused = L*(z_a' + z_v') with an extra C x C linear layer L*, where z_m' is z_m multiplied by a
random 0/1 class mask when modality m is "dependent", else z_m. Loss: CE(fused) + CE(z_a') +
CE(z_v'). Dependence is measured after every step for the next one: softmax over the 2C
concatenated split logits, sft_m = batch mean of the mass on m's C entries; m is dependent when
sft_m > sigma. The mask zeroes N = floor(p_t C) of the C entries (chosen at random), with
p_t = sin(pi/2 * min(eps, l_t) / eps); l_t starts every epoch at 0 and grows by epoch/10 after
every batch, so epoch 0 never masks and from epoch e >= 1 the mask is full after ceil(3/e)
batches (BalanceMM's schedule, kept as published). Dependence also resets every epoch.
Inference: no mask, fused = L*(z_a + z_v).

Fixed BalanceMM defects: its mask is expanded to shape (2, C) and multiplied with (B, C) logits,
which only runs under 2-GPU DataParallel (each replica gets (1, C)); here one (C,) mask is
broadcast over the batch. Its gradient-accumulation branch calls the step without arguments.
``mask_on=features`` masks the dependent modality's encoder features instead (N of D feature
entries, kept ones scaled by 1/(1-p_t) unless p_t ~ 1), the variant BalanceMM shipped first
(``U`` = feature width) and removed in commit c1ce5a8; whether the paper masks logits or
features could not be checked.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from mmcurate.common.errors import MMCurateError
from mmcurate.models import AVClassifier, AVOutput
from mmcurate.reeval.batches import Batch
from mmcurate.reeval.methods.base import Method, Prediction, TrainContext, cpu_generator, epochs_where

MASK_TARGETS: tuple[str, ...] = ("logits", "features")


def amco_mask_fraction(l_t: float, eps: float) -> float:
    """p_t = sin(pi/2 * min(eps, l_t) / eps)."""
    return math.sin(math.pi / 2 * min(eps, l_t) / eps)


def amco_mask(size: int, p_t: float, gen: torch.Generator) -> torch.Tensor:
    """A 0/1 float vector of ``size`` with floor(p_t * size) zeros at random positions."""
    zeros = int(p_t * size)
    mask = torch.ones(size)
    mask[torch.randperm(size, generator=gen)[:zeros]] = 0.0
    return mask


def amco_dependence(z_audio: torch.Tensor, z_visual: torch.Tensor) -> tuple[float, float]:
    """(sft_audio, sft_visual): batch mean of each modality's share of a softmax over both split logits."""
    probs = F.softmax(torch.cat([z_audio, z_visual], dim=1).detach(), dim=1)
    c = z_audio.shape[1]
    return float(probs[:, :c].sum(1).mean()), float(probs[:, c:].sum(1).mean())


class AMCoClassifier(AVClassifier):
    """The late-fusion model plus AMCo's C x C layer on the summed split logits."""

    def __init__(self, num_classes: int, width: int, fusion: str) -> None:
        super().__init__(num_classes, width, fusion)
        self.linear_star = nn.Linear(num_classes, num_classes)

    def forward_masked(
        self,
        audio: torch.Tensor,
        frames: torch.Tensor,
        masks: dict[str, torch.Tensor] | None = None,
        on: str = "logits",
    ) -> AVOutput:
        """``masks``: modality -> mask, applied to that modality's split logits (or features)."""
        masks = masks or {}
        a, v = self.encode(audio, frames)
        if on == "features":
            a = a * masks["audio"] if "audio" in masks else a
            v = v * masks["visual"] if "visual" in masks else v
        out = self.head(a, v)
        z_a, z_v = out.audio_logits, out.visual_logits
        if on == "logits":
            z_a = z_a * masks["audio"] if "audio" in masks else z_a
            z_v = z_v * masks["visual"] if "visual" in masks else z_v
        return AVOutput(self.linear_star(z_a + z_v), a, v, z_a, z_v)

    def forward(self, audio: torch.Tensor, frames: torch.Tensor) -> AVOutput:
        return self.forward_masked(audio, frames)


class AMCo(Method):
    name = "amco"
    title = "AMCo"
    reference = "Zhou et al., ICASSP 2023"
    category = "feed-forward"
    paper = "Adaptive Mask Co-Optimization for Modal Dependence in Multimodal Learning"
    needs_modality_logits = True
    #: BalanceMM: sigma 0.5, eps 0.3 (its U and alpha are unused)
    defaults = {"sigma": 0.5, "eps": 0.3, "mask_on": "logits"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.params["mask_on"] not in MASK_TARGETS:
            raise MMCurateError(f"method amco: mask_on must be one of {', '.join(MASK_TARGETS)}")
        self._gen = cpu_generator(self.seed, 27_182)
        self.l_t = 0.0
        self.dependent = {"audio": False, "visual": False}

    def build_model(self, num_classes: int) -> nn.Module:
        return AMCoClassifier(num_classes, self.width, self.fusion)

    def on_epoch_start(self, model: nn.Module, ctx: TrainContext) -> None:
        self.l_t = 0.0
        self.dependent = {"audio": False, "visual": False}

    def forward(self, model: nn.Module, batch: Batch, ctx: TrainContext) -> Any:
        p_t = amco_mask_fraction(self.l_t, float(self.params["eps"]))
        on = str(self.params["mask_on"])
        size = model.num_classes if on == "logits" else model.audio_encoder.out_dim
        mask = amco_mask(size, p_t, self._gen).to(ctx.device)
        if on == "features" and abs(p_t - 1) > 0.1:
            mask = mask / (1 - p_t)
        self.l_t += ctx.epoch / 10
        masks = {m: mask for m, dep in self.dependent.items() if dep}
        out = model.forward_masked(batch.audio, batch.frames, masks, on)
        return out, p_t

    def loss(
        self, model: nn.Module, batch: Batch, out: Any, ctx: TrainContext
    ) -> tuple[torch.Tensor, dict[str, float]]:
        out, p_t = out
        y = batch.labels
        loss = sum(F.cross_entropy(z, y) for z in (out.logits, out.audio_logits, out.visual_logits))
        logs = {"mask_fraction": p_t, **{f"{m}_dependent": float(d) for m, d in self.dependent.items()}}
        sft_a, sft_v = amco_dependence(out.audio_logits, out.visual_logits)
        sigma = float(self.params["sigma"])
        self.dependent = {"audio": sft_a > sigma, "visual": sft_v > sigma}  # for the next step
        return loss, logs

    @torch.no_grad()
    def predict(self, model: nn.Module, batch: Batch) -> Prediction:
        out = model(batch.audio, batch.frames)
        return Prediction(out.logits, out.audio_logits, out.visual_logits)

    def schedule(self) -> dict[str, list[int]]:
        return {"masking": epochs_where(self.epochs, lambda e: e >= 1)}  # l_t grows by epoch/10: epoch 0 never masks

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self._gen.get_state(), "l_t": self.l_t, "dependent": dict(self.dependent)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._gen.set_state(state["generator"])
        self.l_t = float(state["l_t"])
        self.dependent = dict(state["dependent"])

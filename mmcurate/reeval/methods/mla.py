"""``mla``: multimodal learning by alternating unimodal adaptation.

Zhang, Yoon, Bansal & Yao, "Multimodal Representation Learning by Alternating Unimodal
Adaptation", CVPR 2024; official code Cecile-hi/Multimodal-Learning-with-Alternating-Unimodal-
Adaptation (``main.py`` train branch ``gs_flag``, ``utils/utils.py`` ``GSPlugin``).

The model is the two encoders and **one linear head shared by both modalities** (the encoders'
features have the same width). Each batch takes one optimiser step per modality, audio then
visual: forward that modality's encoder into the shared head, cross-entropy, backward, modify
the head weight's gradient, step. So an encoder only ever gets gradient from its own modality.

Gradient modification (OWM-style, so the shared head does not forget the other modality): a
D x D matrix P starts as the identity; before every update except the run's very first, with
r the batch-mean feature of the modality just seen and alpha = 0.1 ** (1 + batch / batches),
    k = P r^T,  P <- P - k k^T / (alpha + r k),  P <- P / ||P||_F,  G <- G P^T.
Inference fuses the two heads' logits by uncertainty: per sample, w_m = softmax_m(-H_m) with
H_m the entropy of modality m's prediction, logits = sum_m w_m z_m.

Where the code departs from the paper, mmcurate follows the paper by default:

* The official projection is a no-op: ``GSPlugin`` only touches a parameter named
  ``module.weight`` but is handed a bare ``nn.Linear`` (weight named ``weight``), so the release
  trains without it. ``projection=none`` reproduces that; ``projection=additive`` is BalanceMM's
  G <- G + G P^T; the default ``replace`` is the paper's G <- G P^T.
* The official gating takes softmax over the *batch* dimension and one entropy per modality per
  batch (``gate=batch``); the paper and BalanceMM gate per sample (default ``gate=sample``).

Cost: two optimiser steps per batch, each with one encoder: about joint training's compute.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from mmcurate.common.errors import MMCurateError
from mmcurate.models import AVOutput
from mmcurate.models.encoders import AudioEncoder, VisualEncoder
from mmcurate.reeval.batches import Batch
from mmcurate.reeval.methods.base import Method, Prediction, TrainContext

PROJECTIONS: tuple[str, ...] = ("replace", "additive", "none")
GATES: tuple[str, ...] = ("sample", "batch")


def owm_alpha(batch_index: int, batches_per_epoch: int) -> float:
    """alpha = 0.1 ** (1 + batch_index / batches_per_epoch): the projector's regulariser."""
    return 0.1 ** (1 + batch_index / max(1, batches_per_epoch))


def update_projector(p: torch.Tensor, features: torch.Tensor, alpha: float) -> torch.Tensor:
    """One recursive-least-squares step of the projector, then Frobenius normalisation."""
    r = features.mean(dim=0, keepdim=True)  # (1, D)
    k = p @ r.t()  # (D, 1)
    p = p - (k @ k.t()) / (alpha + r @ k)
    return p / torch.linalg.matrix_norm(p, ord="fro")


def project_gradient(grad: torch.Tensor, p: torch.Tensor, mode: str) -> torch.Tensor:
    """The head weight's new gradient: G P^T (paper), G + G P^T (BalanceMM) or G (official release)."""
    if mode == "replace":
        return grad @ p.t()
    if mode == "additive":
        return grad + grad @ p.t()
    return grad


def entropy_gate(
    z_audio: torch.Tensor, z_visual: torch.Tensor, level: str = "sample"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fusion weights (w_audio, w_visual) = softmax(-H) over the modalities, per sample or per batch."""
    if level == "sample":
        h = [-(F.softmax(z, 1) * F.log_softmax(z, 1)).sum(1) for z in (z_audio, z_visual)]  # (B,) each
    else:  # the official code: softmax over the batch dimension, one entropy per modality
        h = [-(F.softmax(z, 0) * F.log_softmax(z, 0)).sum() for z in (z_audio, z_visual)]
    w = torch.softmax(-torch.stack(h), dim=0)
    w_a, w_v = w[0], w[1]
    if level == "sample":
        return w_a[:, None], w_v[:, None]
    return w_a, w_v


class SharedHeadClassifier(nn.Module):
    """Audio and visual encoders and one linear classifier applied to each modality's features."""

    def __init__(self, num_classes: int, width: int) -> None:
        super().__init__()
        self.audio_encoder = AudioEncoder(width)
        self.visual_encoder = VisualEncoder(width)
        if self.audio_encoder.out_dim != self.visual_encoder.out_dim:
            raise ValueError("a shared head needs encoders of equal feature width")
        self.head = nn.Linear(self.audio_encoder.out_dim, num_classes)
        nn.init.xavier_normal_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def encode(self, audio: torch.Tensor, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.audio_encoder(audio), self.visual_encoder(frames)

    def forward(self, audio: torch.Tensor, frames: torch.Tensor) -> AVOutput:
        """Entropy-gated (per sample) fused logits and both modalities' logits."""
        a, v = self.encode(audio, frames)
        z_a, z_v = self.head(a), self.head(v)
        w_a, w_v = entropy_gate(z_a, z_v)
        return AVOutput(w_a * z_a + w_v * z_v, a, v, z_a, z_v)


@dataclass
class _MLAStep:
    """The visual pass of a step (the audio pass has already been stepped)."""

    visual_logits: torch.Tensor
    visual_features: torch.Tensor
    audio_loss: float


class MLA(Method):
    name = "mla"
    title = "MLA"
    reference = "Zhang et al., CVPR 2024"
    category = "feed-forward"
    paper = "Multimodal Representation Learning by Alternating Unimodal Adaptation"
    defaults = {"projection": "replace", "gate": "sample"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.params["projection"] not in PROJECTIONS:
            raise MMCurateError(f"method mla: projection must be one of {', '.join(PROJECTIONS)}")
        if self.params["gate"] not in GATES:
            raise MMCurateError(f"method mla: gate must be one of {', '.join(GATES)}")
        self.projector: torch.Tensor | None = None
        self.updates = 0  # optimiser updates taken so far (the very first is not projected)

    def build_model(self, num_classes: int) -> nn.Module:
        return SharedHeadClassifier(num_classes, self.width)

    def forward(self, model: nn.Module, batch: Batch, ctx: TrainContext) -> Any:
        """Audio pass and its optimiser step; returns the visual pass, which the trainer steps."""
        if ctx.optimizer is None:
            raise MMCurateError("method mla takes one optimiser step per modality and needs ctx.optimizer")
        a = model.audio_encoder(batch.audio)
        z_a = model.head(a)
        loss_a = F.cross_entropy(z_a, batch.labels)
        if not torch.isfinite(loss_a):
            value = float(loss_a.detach())
            raise MMCurateError(f"mla: the audio loss became {value} at epoch {ctx.epoch}; lower --lr")
        loss_a.backward()
        self._modify_head_gradient(model, a.detach(), ctx)
        ctx.optimizer.step()
        ctx.optimizer.zero_grad(set_to_none=True)
        v = model.visual_encoder(batch.frames)
        return _MLAStep(model.head(v), v, float(loss_a.detach()))

    def loss(
        self, model: nn.Module, batch: Batch, out: Any, ctx: TrainContext
    ) -> tuple[torch.Tensor, dict[str, float]]:
        loss_v = F.cross_entropy(out.visual_logits, batch.labels)
        return loss_v, {"loss_audio": out.audio_loss, "loss_visual": float(loss_v.detach())}

    def after_backward(self, model: nn.Module, batch: Batch, out: Any, ctx: TrainContext) -> dict[str, float]:
        self._modify_head_gradient(model, out.visual_features.detach(), ctx)
        return {}

    def _modify_head_gradient(self, model: nn.Module, features: torch.Tensor, ctx: TrainContext) -> None:
        if self.updates > 0 and self.params["projection"] != "none" and model.head.weight.grad is not None:
            if self.projector is None:
                self.projector = torch.eye(features.shape[1], device=features.device)
            batch_index = ctx.step - ctx.epoch * ctx.steps_per_epoch
            alpha = owm_alpha(batch_index, ctx.steps_per_epoch)
            self.projector = update_projector(self.projector.to(features.device), features, alpha)
            g = model.head.weight.grad
            model.head.weight.grad = project_gradient(g, self.projector, str(self.params["projection"]))
        self.updates += 1

    @torch.no_grad()
    def predict(self, model: nn.Module, batch: Batch) -> Prediction:
        a, v = model.encode(batch.audio, batch.frames)
        z_a, z_v = model.head(a), model.head(v)
        w_a, w_v = entropy_gate(z_a, z_v, str(self.params["gate"]))
        return Prediction(w_a * z_a + w_v * z_v, z_a, z_v)

    def schedule(self) -> dict[str, list[int]]:
        return {"projection": list(range(self.epochs))}  # per step from the run's second update on

    def state_dict(self) -> dict[str, Any]:
        return {"projector": None if self.projector is None else self.projector.cpu(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.projector = state.get("projector")
        self.updates = int(state.get("updates", 0))

    def on_train_start(self, model: nn.Module, ctx: TrainContext) -> None:
        self.projector, self.updates = None, 0

"""``mmpareto``: Pareto integration of multimodal and unimodal gradients.

Wei & Hu, "MMPareto: Boosting Multimodal Learning with Innocent Unimodal Assistance", ICML 2024.
Losses: L_mm on the fused head, L_a and L_v on separate linear heads per modality. For each
encoder m, g_mm = grad of L_mm and g_m = grad of L_m with respect to its parameters (flattened
over the whole encoder). If cos(g_mm, g_m) > 0 the weights are (1/2, 1/2); otherwise they are the
two-vector min-norm (MGDA) solution. Per parameter tensor, d = 2 (w_mm g_mm + w_m g_m); if the
plain sum g_mm + g_m has the larger norm, d is rescaled to it; then d is multiplied by gamma
(1.5). Heads keep the gradient of L_mm + L_a + L_v. (BalanceMM's version assigns the min-norm
weights to a loop variable, so on conflict its weights stay (0, 0); the official code, and this
one, use them.)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from mmcurate.models import AVClassifier
from mmcurate.reeval.batches import Batch
from mmcurate.reeval.methods.base import Method, TrainContext, encoder_parameters


def mgda_two(g1: torch.Tensor, g2: torch.Tensor) -> tuple[float, float]:
    """Weights (w, 1 - w) minimising ||w g1 + (1 - w) g2|| over w in [0, 1]."""
    diff = g1 - g2
    denom = float(diff.dot(diff))
    if denom <= 1e-20:
        return 0.5, 0.5
    w = float((g2 - g1).dot(g2)) / denom
    w = min(max(w, 0.0), 1.0)
    return w, 1.0 - w


def pareto_weights(g_mm: torch.Tensor, g_uni: torch.Tensor) -> tuple[float, float]:
    """(w_mm, w_uni): equal when the gradients agree (cosine > 0), min-norm when they conflict."""
    cos = float(F.cosine_similarity(g_mm, g_uni, dim=0))
    return (0.5, 0.5) if cos > 0 else mgda_two(g_mm, g_uni)


def pareto_direction(
    g_mm: torch.Tensor, g_uni: torch.Tensor, weights: tuple[float, float], gamma: float
) -> torch.Tensor:
    """One tensor's new gradient: 2 (w g_mm + w' g_uni), lifted to the plain sum's norm, times gamma."""
    d = 2 * (weights[0] * g_mm + weights[1] * g_uni)
    plain = float((g_mm + g_uni).norm())
    norm = float(d.norm())
    if norm > 0 and plain > norm:
        d = d * (plain / norm)
    return d * gamma


class MMPareto(Method):
    name = "mmpareto"
    title = "MMPareto"
    reference = "Wei & Hu, ICML 2024"
    category = "objective"
    paper = "MMPareto: Boosting Multimodal Learning with Innocent Unimodal Assistance"
    defaults = {"gamma": 1.5}
    diagnostics = {
        "w_mm_audio": "multimodal-gradient weight, audio encoder",
        "w_mm_visual": "multimodal-gradient weight, visual encoder",
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._grads: dict[str, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}

    def build_model(self, num_classes: int) -> nn.Module:
        return AVClassifier(num_classes, self.width, self.fusion, unimodal_heads=True)

    def loss(
        self, model: nn.Module, batch: Batch, out: Any, ctx: TrainContext
    ) -> tuple[torch.Tensor, dict[str, float]]:
        l_mm = F.cross_entropy(out.logits, batch.labels)
        l_uni = {
            "audio": F.cross_entropy(out.audio_head_logits, batch.labels),
            "visual": F.cross_entropy(out.visual_head_logits, batch.labels),
        }
        params = {m: encoder_parameters(model, m) for m in ("audio", "visual")}
        g_mm_all = _grads(l_mm, params["audio"] + params["visual"])
        n_a = len(params["audio"])
        g_mm = {"audio": g_mm_all[:n_a], "visual": g_mm_all[n_a:]}
        self._grads = {m: (g_mm[m], _grads(l_uni[m], params[m])) for m in ("audio", "visual")}
        total = l_mm + l_uni["audio"] + l_uni["visual"]
        return total, {
            "loss_mm": float(l_mm.detach()),
            "loss_audio": float(l_uni["audio"].detach()),
            "loss_visual": float(l_uni["visual"].detach()),
        }

    def after_backward(self, model: nn.Module, batch: Batch, out: Any, ctx: TrainContext) -> dict[str, float]:
        logs: dict[str, float] = {}
        gamma = float(self.params["gamma"])
        for m, (g_mm, g_uni) in self._grads.items():
            w = pareto_weights(_flat(g_mm), _flat(g_uni))
            logs[f"w_mm_{m}"] = w[0]
            for p, gm, gu in zip(encoder_parameters(model, m), g_mm, g_uni):
                p.grad = pareto_direction(gm, gu, w, gamma)
        self._grads = {}
        return logs


def _grads(loss: torch.Tensor, params: list[nn.Parameter]) -> list[torch.Tensor]:
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def _flat(grads: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in grads])

"""``agm``: adaptive gradient modulation.

Li et al., "Boosting Multi-modal Model Performance with Adaptive Gradient Modulation", ICCV 2023.
Each step, each modality's response is measured by zeroing the other modality's input: with f
the fused logits (eval mode, no gradient), the Shapley values of the two inputs are

    o_a = 1/2 [(f(a, v) - f(0, v)) + (f(a, 0) - f(0, 0))],  o_v likewise.

The score s_m = mean_i log softmax(o_m)_{y_i} (clamped at log 1e-8) gives the imbalance ratio
r_m = exp(M/(M-1) (s_m - mean_k s_k)) (> 1 for the modality ahead); the same ratio from running
averages of the scores gives the reference r_bar_m, and the encoder-m gradients are scaled by
kappa_m = exp(alpha * min(r_bar_m - r_m, 7)): a modality further ahead than usual is slowed, one
further behind is sped up. Then, as the reference, gradients are clipped to norm 5 when the
head's gradient has an entry beyond +-5. (The reference two-modality code scores with losses
and flips the sign in the ratio; BalanceMM's M-modality rewrite drops that sign, which makes it
speed up the modality that is ahead. Here scores are log-likelihoods, so the sign is explicit.)
Late fusion makes f(a, 0) cheap: the encoders are run once each, plus once on a zero input.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from mmcurate.reeval.batches import Batch
from mmcurate.reeval.methods.base import Method, TrainContext, in_window

CAP = 7.0
GRAD_CLIP = 5.0


def shapley_responses(
    f_av: torch.Tensor, f_a0: torch.Tensor, f_0v: torch.Tensor, f_00: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(o_audio, o_visual): two-player Shapley values of the fused logits."""
    o_a = 0.5 * ((f_av - f_0v) + (f_a0 - f_00))
    o_v = 0.5 * ((f_av - f_a0) + (f_0v - f_00))
    return o_a, o_v


def agm_score(response: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean log-probability of the true class under a response's softmax (floor log 1e-8)."""
    logp = F.log_softmax(response, dim=1).gather(1, labels[:, None]).clamp(min=math.log(1e-8))
    return float(logp.mean())


def agm_ratios(scores: tuple[float, ...]) -> list[float]:
    """r_m = exp(M/(M-1) (s_m - mean s)) for M modalities."""
    m = len(scores)
    mean = sum(scores) / m
    return [math.exp(m / (m - 1) * (s - mean)) for s in scores]


def agm_coefficients(scores: tuple[float, float], running: tuple[float, float], alpha: float) -> tuple[float, float]:
    """(kappa_audio, kappa_visual) = exp(alpha * min(r_bar - r, 7))."""
    r = agm_ratios(scores)
    r_bar = agm_ratios(running)
    return tuple(math.exp(alpha * min(rb - rr, CAP)) for rb, rr in zip(r_bar, r))  # type: ignore[return-value]


class AGM(Method):
    name = "agm"
    title = "AGM"
    reference = "Li et al., ICCV 2023"
    category = "optimisation"
    paper = "Boosting Multi-modal Model Performance with Adaptive Gradient Modulation"
    #: alpha 0.1 as BalanceMM; modulation all run long
    defaults = {"alpha": 0.1, "modulation_start": 0, "modulation_end": None}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.running = (0.0, 0.0)
        self.iterations = 0
        self._coeffs = (1.0, 1.0)

    def loss(self, model: nn.Module, batch: Batch, out: Any, ctx: TrainContext) -> tuple[torch.Tensor, dict[str, float]]:
        loss = F.cross_entropy(out.logits, batch.labels)
        o_a, o_v = self._responses(model, batch)
        scores = (agm_score(o_a, batch.labels), agm_score(o_v, batch.labels))
        self._coeffs = agm_coefficients(scores, self.running, float(self.params["alpha"]))
        self.iterations += 1
        it = self.iterations
        self.running = tuple(r * (it - 1) / it + s / it for r, s in zip(self.running, scores))  # type: ignore[assignment]
        return loss, {"kappa_audio": self._coeffs[0], "kappa_visual": self._coeffs[1]}

    @torch.no_grad()
    def _responses(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        model.eval()
        try:
            a, v = model.encode(batch.audio, batch.frames)
            a0 = model.audio_encoder(torch.zeros_like(batch.audio[:1])).expand_as(a)
            v0 = model.visual_encoder(torch.zeros_like(batch.frames[:1])).expand_as(v)
            f = {k: model.head(x, y).logits for k, (x, y) in {"av": (a, v), "a0": (a, v0), "0v": (a0, v), "00": (a0, v0)}.items()}
        finally:
            model.train()
        return shapley_responses(f["av"], f["a0"], f["0v"], f["00"])

    def after_backward(self, model: nn.Module, batch: Batch, out: Any, ctx: TrainContext) -> dict[str, float]:
        if not in_window(ctx.epoch, int(self.params["modulation_start"]), self.params["modulation_end"]):
            return {}
        for modality, k in zip(("audio", "visual"), self._coeffs):
            for p in getattr(model, f"{modality}_encoder").parameters():
                if p.grad is not None:
                    p.grad.mul_(k)
        head_grads = [p.grad for p in model.head.parameters() if p.grad is not None and p.dim() > 1]
        if head_grads and max(float(g.abs().max()) for g in head_grads) > GRAD_CLIP:
            nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"running": list(self.running), "iterations": self.iterations}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.running = tuple(state["running"])  # type: ignore[assignment]
        self.iterations = int(state["iterations"])

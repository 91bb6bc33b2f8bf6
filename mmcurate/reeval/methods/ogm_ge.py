"""``ogm_ge``: on-the-fly gradient modulation with generalisation enhancement.

Peng et al., "Balanced Multimodal Learning via On-the-fly Gradient Modulation", CVPR 2022.
Per batch, each modality's confidence is s_m = sum over the batch of the softmax probability of
the true class under its split logits (audio: W_a a + b/2, visual: W_v v + b/2). The modality
whose ratio rho = s_m / s_other exceeds 1 is learning faster; its encoder's gradients are scaled
by k = 1 - tanh(alpha * rho). GE then adds Gaussian noise with the gradient's own standard
deviation to every modulated gradient (both encoders; the non-dominant one has k = 1), as the
official code does. Like the official code, only 4-D convolution weights are touched.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from mmcurate.reeval.batches import Batch
from mmcurate.reeval.methods.base import (
    Method,
    TrainContext,
    epochs_where,
    in_window,
    label_probability_sum,
)


def ogm_coefficients(score_audio: float, score_visual: float, alpha: float) -> tuple[float, float]:
    """(k_audio, k_visual): 1 - tanh(alpha * rho) for the modality with rho > 1, 1 for the other."""
    eps = 1e-12
    ratio_audio = (score_audio + eps) / (score_visual + eps)
    if ratio_audio > 1:
        return 1.0 - math.tanh(alpha * ratio_audio), 1.0
    if ratio_audio < 1:
        return 1.0, 1.0 - math.tanh(alpha / ratio_audio)
    return 1.0, 1.0


class OGMGE(Method):
    name = "ogm_ge"
    title = "OGM-GE"
    reference = "Peng et al., CVPR 2022"
    category = "optimisation"
    paper = "Balanced Multimodal Learning via On-the-fly Gradient Modulation"
    aliases = ("ogm",)
    needs_modality_logits = True
    #: alpha 0.3 (BalanceMM); modulation from epoch 0 to half the run, as OGM-GE's 0-50 of 100
    defaults = {"alpha": 0.3, "modulation_start": 0, "modulation_end": None, "ge": True}
    diagnostics = {"k_audio": "k audio (1 - tanh(alpha rho), 1 when behind)", "k_visual": "k visual"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._noise: torch.Generator | None = None
        self._noise_state: torch.Tensor | None = None
        self._coeffs = (1.0, 1.0)

    @property
    def window_end(self) -> int:
        end = self.params["modulation_end"]
        return max(0, self.epochs // 2 - 1) if end is None else int(end)

    def loss(
        self, model: nn.Module, batch: Batch, out: Any, ctx: TrainContext
    ) -> tuple[torch.Tensor, dict[str, float]]:
        loss, _ = super().loss(model, batch, out, ctx)
        s_a = label_probability_sum(out.audio_logits, batch.labels)
        s_v = label_probability_sum(out.visual_logits, batch.labels)
        self._coeffs = ogm_coefficients(s_a, s_v, float(self.params["alpha"]))
        return loss, {"k_audio": self._coeffs[0], "k_visual": self._coeffs[1]}

    def after_backward(self, model: nn.Module, batch: Batch, out: Any, ctx: TrainContext) -> dict[str, float]:
        if not in_window(ctx.epoch, int(self.params["modulation_start"]), self.window_end):
            return {}
        gen = self._generator(ctx.device)
        for modality, k in zip(("audio", "visual"), self._coeffs):
            for p in getattr(model, f"{modality}_encoder").parameters():
                if p.grad is None or p.grad.dim() != 4:
                    continue
                grad = p.grad * k
                if self.params["ge"]:
                    noise = torch.randn(p.grad.shape, generator=gen, device=p.grad.device, dtype=p.grad.dtype)
                    grad = grad + noise * (p.grad.std() + 1e-8)
                p.grad = grad
        return {}

    def _generator(self, device: torch.device) -> torch.Generator:
        if self._noise is None:
            self._noise = torch.Generator(device=device)
            self._noise.manual_seed(10_007 + self.seed)
            if self._noise_state is not None:
                self._noise.set_state(self._noise_state)
        return self._noise

    def schedule(self) -> dict[str, list[int]]:
        start = int(self.params["modulation_start"])
        return {"modulation": epochs_where(self.epochs, lambda e: in_window(e, start, self.window_end))}

    def state_dict(self) -> dict[str, Any]:
        return {"noise_state": self._noise.get_state() if self._noise is not None else self._noise_state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._noise_state = state.get("noise_state")
        self._noise = None

"""Late-fusion heads: two feature vectors -> class logits (+ per-modality logits where they exist).

What "per-modality logits" means depends on the head, and several imbalance methods (OGM-GE's
confidence ratio, per-modality accuracy) need them:

* ``concat`` (default): logits = W [a; v] + b. Per-modality logits are OGM-GE's split of the same
  layer: ``audio_logits = W_a a + b/2`` and ``visual_logits = W_v v + b/2`` (the weight columns
  that read each modality, plus half the bias), so ``audio_logits + visual_logits == logits``.
* ``sum``: logits = (W_a a + b_a) + (W_v v + b_v). Each branch's own linear output is its
  per-modality logit; they also sum to the fused logits exactly.
* ``film``: one modality produces a feature-wise affine (gamma, beta) that modulates the other's
  features before a linear classifier. The modalities interact multiplicatively, so there is no
  per-modality logit: per-modality accuracy is reported as N/A and methods that need split logits
  (OGM-GE) refuse this head.
* ``gated``: sigmoid(Linear(x)) gates Linear(y) before the classifier: likewise no per-modality logit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

#: names accepted by :func:`build_fusion`
FUSIONS: tuple[str, ...] = ("concat", "sum", "film", "gated")
#: heads whose per-modality logits are defined
FUSIONS_WITH_MODALITY_LOGITS: tuple[str, ...] = ("concat", "sum")


@dataclass
class FusionOutput:
    """A fusion head's output; per-modality logits are None where the head has none."""

    logits: torch.Tensor
    audio_logits: torch.Tensor | None = None
    visual_logits: torch.Tensor | None = None


class ConcatFusion(nn.Module):
    """One linear layer on the concatenated features; split logits per OGM-GE."""

    def __init__(self, audio_dim: int, visual_dim: int, num_classes: int) -> None:
        super().__init__()
        self.audio_dim = audio_dim
        self.fc = nn.Linear(audio_dim + visual_dim, num_classes)
        _init_linear(self)

    def forward(self, a: torch.Tensor, v: torch.Tensor) -> FusionOutput:
        logits = self.fc(torch.cat([a, v], dim=1))
        w_a, w_v = self.split_weights()
        half_bias = self.fc.bias / 2
        return FusionOutput(logits, a @ w_a.t() + half_bias, v @ w_v.t() + half_bias)

    def split_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(W_a, W_v): the weight columns that read the audio and the visual features."""
        return self.fc.weight[:, : self.audio_dim], self.fc.weight[:, self.audio_dim :]


class SumFusion(nn.Module):
    """A linear layer per modality; fused logits are their sum."""

    def __init__(self, audio_dim: int, visual_dim: int, num_classes: int) -> None:
        super().__init__()
        self.fc_audio = nn.Linear(audio_dim, num_classes)
        self.fc_visual = nn.Linear(visual_dim, num_classes)
        _init_linear(self)

    def forward(self, a: torch.Tensor, v: torch.Tensor) -> FusionOutput:
        la, lv = self.fc_audio(a), self.fc_visual(v)
        return FusionOutput(la + lv, la, lv)


class FiLMFusion(nn.Module):
    """FiLM: (gamma, beta) = Linear(cond); logits = Linear(gamma * target + beta).

    ``condition="audio"`` (OGM-GE's default ``x_film``) lets audio modulate the visual features.
    """

    def __init__(self, audio_dim: int, visual_dim: int, num_classes: int, condition: str = "audio") -> None:
        super().__init__()
        if condition not in ("audio", "visual"):
            raise ValueError(f"condition must be 'audio' or 'visual', got {condition!r}")
        self.condition = condition
        cond_dim, target_dim = (audio_dim, visual_dim) if condition == "audio" else (visual_dim, audio_dim)
        self.film = nn.Linear(cond_dim, 2 * target_dim)
        self.fc = nn.Linear(target_dim, num_classes)
        _init_linear(self)

    def forward(self, a: torch.Tensor, v: torch.Tensor) -> FusionOutput:
        cond, target = (a, v) if self.condition == "audio" else (v, a)
        gamma, beta = self.film(cond).chunk(2, dim=1)
        return FusionOutput(self.fc(gamma * target + beta))


class GatedFusion(nn.Module):
    """Gated fusion: logits = Linear(sigmoid(Linear(gate_src)) * Linear(target)).

    ``gate="audio"`` (OGM-GE's default ``x_gate``) lets audio gate the visual projection.
    """

    def __init__(
        self, audio_dim: int, visual_dim: int, num_classes: int, gate: str = "audio", hidden: int | None = None
    ) -> None:
        super().__init__()
        if gate not in ("audio", "visual"):
            raise ValueError(f"gate must be 'audio' or 'visual', got {gate!r}")
        self.gate = gate
        hidden = hidden or max(audio_dim, visual_dim)
        gate_dim, target_dim = (audio_dim, visual_dim) if gate == "audio" else (visual_dim, audio_dim)
        self.fc_gate = nn.Linear(gate_dim, hidden)
        self.fc_target = nn.Linear(target_dim, hidden)
        self.fc = nn.Linear(hidden, num_classes)
        _init_linear(self)

    def forward(self, a: torch.Tensor, v: torch.Tensor) -> FusionOutput:
        gate_src, target = (a, v) if self.gate == "audio" else (v, a)
        g = torch.sigmoid(self.fc_gate(gate_src))
        return FusionOutput(self.fc(g * self.fc_target(target)))


def build_fusion(name: str, audio_dim: int, visual_dim: int, num_classes: int) -> nn.Module:
    """The fusion head called ``name`` (one of :data:`FUSIONS`)."""
    heads = {"concat": ConcatFusion, "sum": SumFusion, "film": FiLMFusion, "gated": GatedFusion}
    if name not in heads:
        raise ValueError(f"unknown fusion {name!r}; choose one of {', '.join(FUSIONS)}")
    return heads[name](audio_dim, visual_dim, num_classes)


def _init_linear(module: nn.Module) -> None:
    """Xavier-normal weights and zero biases for the head, as OGM-GE initialises linear layers."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight)
            nn.init.zeros_(m.bias)

"""The audio-visual late-fusion classifier every joint method trains.

Two separate ResNet-18 encoders (see :mod:`mmcurate.models.encoders`) and one fusion head (see
:mod:`mmcurate.models.fusion`). The forward pass returns the features as well as the logits,
because imbalance methods read them: PMR builds class prototypes from the features, OGM-GE
compares the per-modality split logits, G-Blending and MMPareto add unimodal heads on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mmcurate.models.encoders import AudioEncoder, VisualEncoder
from mmcurate.models.fusion import FUSIONS, FUSIONS_WITH_MODALITY_LOGITS, build_fusion


@dataclass
class AVOutput:
    """What one forward pass of an audio-visual model gives.

    ``audio_logits``/``visual_logits`` are the fusion head's per-modality logits (the OGM-GE split
    for concat, each branch for sum, None for FiLM/gated). ``audio_head_logits`` and
    ``visual_head_logits`` come from separate unimodal classifiers on the features, present only
    when the model was built with ``unimodal_heads=True`` (G-Blending, MMPareto).
    """

    logits: torch.Tensor
    audio_features: torch.Tensor
    visual_features: torch.Tensor
    audio_logits: torch.Tensor | None = None
    visual_logits: torch.Tensor | None = None
    audio_head_logits: torch.Tensor | None = None
    visual_head_logits: torch.Tensor | None = None


class AVClassifier(nn.Module):
    """Audio encoder + visual encoder + fusion head.

    Args:
        num_classes: number of classes.
        width: base channels of both ResNet-18s (64 = standard; 8-16 for a CPU).
        fusion: ``concat`` (default), ``sum``, ``film`` or ``gated``.
        unimodal_heads: also build one linear classifier per modality on its features.

    ``forward(audio, frames)`` takes (B, 1, F, T) spectrograms and (B, T, 3, H, W) normalised frames.
    """

    def __init__(
        self, num_classes: int, width: int = 16, fusion: str = "concat", unimodal_heads: bool = False
    ) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}; choose one of {', '.join(FUSIONS)}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.num_classes = num_classes
        self.width = width
        self.fusion = fusion
        self.audio_encoder = AudioEncoder(width)
        self.visual_encoder = VisualEncoder(width)
        self.head = build_fusion(fusion, self.audio_encoder.out_dim, self.visual_encoder.out_dim, num_classes)
        self.audio_head: nn.Linear | None = None
        self.visual_head: nn.Linear | None = None
        if unimodal_heads:
            self.audio_head = nn.Linear(self.audio_encoder.out_dim, num_classes)
            self.visual_head = nn.Linear(self.visual_encoder.out_dim, num_classes)

    @property
    def has_modality_logits(self) -> bool:
        """Whether the fusion head defines per-modality logits (concat and sum do)."""
        return self.fusion in FUSIONS_WITH_MODALITY_LOGITS

    def encode(self, audio: torch.Tensor, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(audio features, visual features), each (B, 8*width)."""
        return self.audio_encoder(audio), self.visual_encoder(frames)

    def classify(self, a: torch.Tensor, v: torch.Tensor) -> AVOutput:
        """Run the heads on already computed features."""
        out = self.head(a, v)
        return AVOutput(
            logits=out.logits,
            audio_features=a,
            visual_features=v,
            audio_logits=out.audio_logits,
            visual_logits=out.visual_logits,
            audio_head_logits=self.audio_head(a) if self.audio_head is not None else None,
            visual_head_logits=self.visual_head(v) if self.visual_head is not None else None,
        )

    def forward(self, audio: torch.Tensor, frames: torch.Tensor) -> AVOutput:
        a, v = self.encode(audio, frames)
        return self.classify(a, v)

"""Single-modality classifiers: the scorers of ``mmcurate score`` and the unimodal reeval rows.

The same encoders as the joint model, so a unimodal model and the matching branch of a joint
model have the same capacity, and their accuracies are comparable.
"""

from __future__ import annotations

import torch
from torch import nn

from mmcurate.models.encoders import AudioEncoder, VisualEncoder

#: the modalities a unimodal classifier can take
MODALITIES: tuple[str, ...] = ("audio", "visual")


class UnimodalClassifier(nn.Module):
    """Encoder + linear classifier for one modality.

    ``modality="audio"`` takes (B, 1, F, T) spectrograms; ``"visual"`` takes (B, T, 3, H, W)
    normalised frames. ``forward`` returns (B, num_classes) logits; ``features`` the (B, D) vector.
    """

    def __init__(self, modality: str, num_classes: int, width: int = 16) -> None:
        super().__init__()
        if modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.modality = modality
        self.num_classes = num_classes
        self.width = width
        self.encoder: nn.Module = AudioEncoder(width) if modality == "audio" else VisualEncoder(width)
        self.fc = nn.Linear(self.encoder.out_dim, num_classes)
        nn.init.xavier_normal_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 8*width) features of the modality's input."""
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.encoder(x))


def build_unimodal(modality: str, num_classes: int, width: int = 16) -> nn.Module:
    """A fresh, randomly initialised :class:`UnimodalClassifier` (seed torch first for determinism)."""
    return UnimodalClassifier(modality, num_classes, width)

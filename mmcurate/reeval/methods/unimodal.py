"""``audio_only`` and ``visual_only``: the unimodal reference rows.

The same encoder as the joint model's branch, with its own linear classifier, trained with
cross-entropy on one modality only.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from mmcurate.models import UnimodalClassifier
from mmcurate.reeval.batches import Batch
from mmcurate.reeval.methods.base import Method, Prediction, TrainContext


class _Unimodal(Method):
    kind: ClassVar[str] = "unimodal"
    category: ClassVar[str] = "baseline"
    modality: ClassVar[str] = ""

    def build_model(self, num_classes: int) -> nn.Module:
        return UnimodalClassifier(self.modality, num_classes, self.width)

    def _input(self, batch: Batch) -> torch.Tensor:
        return batch.audio if self.modality == "audio" else batch.frames

    def forward(self, model: nn.Module, batch: Batch, ctx: TrainContext) -> Any:
        return model(self._input(batch))

    def loss(
        self, model: nn.Module, batch: Batch, out: Any, ctx: TrainContext
    ) -> tuple[torch.Tensor, dict[str, float]]:
        return F.cross_entropy(out, batch.labels), {}

    @torch.no_grad()
    def predict(self, model: nn.Module, batch: Batch) -> Prediction:
        logits = model(self._input(batch))
        if self.modality == "audio":
            return Prediction(logits, audio_logits=logits)
        return Prediction(logits, visual_logits=logits)


class AudioOnly(_Unimodal):
    name = "audio_only"
    title = "Audio only"
    reference = "unimodal reference"
    modality = "audio"


class VisualOnly(_Unimodal):
    name = "visual_only"
    title = "Visual only"
    reference = "unimodal reference"
    modality = "visual"

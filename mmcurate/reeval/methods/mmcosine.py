"""``mmcosine``: multi-modal cosine loss.

Xu, Feng, Zhang & Hu, "MMCosine: Multi-Modal Cosine Loss Towards Balanced Audio-Visual
Fine-Grained Learning", ICASSP 2023; official code GeWu-Lab/MMCosine_ICASSP23 (``main_CD.py``
``train_epoch``, ``valid``).

Each modality's logits are cosines between its feature and its class weight vectors (the fusion
head's weight columns that read the modality; the bias is not used), times a scale s:
    z_m,k = s * cos(phi_m, w_m,k),   fused = z_a + z_v,   loss = CE(fused).
Weight and feature norms, through which one modality can dominate the sum, no longer count.

The official ``valid`` predicts the fused class from the raw linear head (``out``, with its
untrained bias) and uses cosine logits only for the per-modality accuracies. mmcurate predicts
with the cosine sum the model was trained on, as the paper and BalanceMM do; ``eval_logits=raw``
reproduces the official evaluation. s = 10 (official default; BalanceMM 15). The optional
supervised-NCE term of the official code (``--lam``, default 0, supplementary only) is not
implemented.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from mmcurate.common.errors import MMCurateError
from mmcurate.models.fusion import ConcatFusion, SumFusion
from mmcurate.reeval.batches import Batch
from mmcurate.reeval.methods.base import Method, Prediction, TrainContext


def cosine_logits(features: torch.Tensor, weight: torch.Tensor, scaling: float) -> torch.Tensor:
    """(B, C) = s * normalize(features) @ normalize(weight rows)^T."""
    return scaling * F.normalize(features, dim=1) @ F.normalize(weight, dim=1).t()


def modality_weights(head: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(W_audio, W_visual): the class weight vectors that read each modality's features."""
    if isinstance(head, ConcatFusion):
        return head.split_weights()
    if isinstance(head, SumFusion):
        return head.fc_audio.weight, head.fc_visual.weight
    raise MMCurateError(f"mmcosine needs a concat or sum head, not {type(head).__name__}")


class MMCosine(Method):
    name = "mmcosine"
    title = "MMCosine"
    reference = "Xu et al., ICASSP 2023"
    category = "objective"
    paper = "MMCosine: Multi-Modal Cosine Loss Towards Balanced Audio-Visual Fine-Grained Learning"
    needs_modality_logits = True
    defaults = {"scaling": 10.0, "eval_logits": "cosine"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.params["eval_logits"] not in ("cosine", "raw"):
            raise MMCurateError("method mmcosine: eval_logits must be cosine or raw")

    def forward(self, model: nn.Module, batch: Batch, ctx: TrainContext) -> Any:
        return self._cosine(model, batch)

    def _cosine(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        a, v = model.encode(batch.audio, batch.frames)
        w_a, w_v = modality_weights(model.head)
        s = float(self.params["scaling"])
        return cosine_logits(a, w_a, s), cosine_logits(v, w_v, s)

    def loss(
        self, model: nn.Module, batch: Batch, out: Any, ctx: TrainContext
    ) -> tuple[torch.Tensor, dict[str, float]]:
        z_a, z_v = out
        return F.cross_entropy(z_a + z_v, batch.labels), {}

    @torch.no_grad()
    def predict(self, model: nn.Module, batch: Batch) -> Prediction:
        z_a, z_v = self._cosine(model, batch)
        if self.params["eval_logits"] == "raw":
            return Prediction(model(batch.audio, batch.frames).logits, z_a, z_v)
        return Prediction(z_a + z_v, z_a, z_v)

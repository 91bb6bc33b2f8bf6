"""``umt``: uni-modal teachers distilled into the multimodal encoders.

Du, Teng, Li, Liu, Yuan, Wang, Yuan & Zhao, "On Uni-Modal Feature Learning in Supervised
Multi-Modal Learning", ICML 2023 (first as "Improving Multi-Modal Learning with Uni-Modal
Teachers", arXiv 2106.11059). No official code was released; mmcurate follows BalanceMM
(``balancemm/trainer/UMT_trainer.py``), the public implementation:
    L = CE(fused) + s * sum_m MSE(phi_m^teacher, phi_m),
the mean squared error over the pooled encoder features, s = 10. The student is the ordinary
late-fusion model; inference uses the student only.

Teachers: per modality, this comparison's own ``audio_only`` / ``visual_only`` run with the same
seed and settings, i.e. a unimodal model trained under the same budget and chosen on validation.
If that run is already in the results directory (it comes first in ``--methods all``) it is
reused, otherwise it is trained there first, and UMT's wall time then includes it. Teachers run
in eval mode with frozen weights; BalanceMM leaves them in train mode, so BatchNorm normalises
with batch statistics and keeps moving its running averages. (BalanceMM also loads the first
checkpoint file of the newest unimodal run directory, selected on test.)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from mmcurate.common.console import info
from mmcurate.common.errors import MMCurateError
from mmcurate.models import UnimodalClassifier
from mmcurate.reeval.batches import Batch
from mmcurate.reeval.methods.base import Method, TrainContext

MODALITIES: tuple[str, str] = ("audio", "visual")


def umt_distillation(
    student: tuple[torch.Tensor, torch.Tensor], teacher: tuple[torch.Tensor, torch.Tensor], scaling: float
) -> torch.Tensor:
    """s * sum over modalities of the mean squared error between teacher and student features."""
    return scaling * sum(F.mse_loss(s, t) for s, t in zip(student, teacher))


class UMT(Method):
    name = "umt"
    title = "UMT"
    reference = "Du et al., ICML 2023"
    category = "objective"
    paper = "On Uni-Modal Feature Learning in Supervised Multi-Modal Learning"
    defaults = {"scaling": 10.0}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.teachers: dict[str, UnimodalClassifier] = {}

    def on_train_start(self, model: nn.Module, ctx: TrainContext) -> None:
        """Train (or reuse) the two unimodal runs of this comparison and load them as teachers."""
        if ctx.run_of is None:
            raise MMCurateError("method umt trains its teachers as runs of the comparison: needs ctx.run_of")
        rng = torch.get_rng_state()  # teacher training must not shift the student's random stream
        for m in MODALITIES:
            run, best = ctx.run_of(f"{m}_only")
            info(f"umt seed {ctx.seed}: {m} teacher = {m}_only run ({run.status}, val acc {run.best_val_acc:.4f})")
            state = torch.load(best, map_location=ctx.device, weights_only=True)  # weights only: never run a pickle
            self.teachers[m] = self._teacher(m, len(ctx.data.classes), state["model"], ctx.device)
        torch.set_rng_state(rng)

    def _teacher(
        self, modality: str, num_classes: int, weights: dict[str, torch.Tensor], device: torch.device
    ) -> UnimodalClassifier:
        teacher = UnimodalClassifier(modality, num_classes, self.width)
        teacher.load_state_dict(weights)
        teacher.to(device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        return teacher

    def schedule(self) -> dict[str, list[int]]:
        return {"teachers": [0]}

    def loss(
        self, model: nn.Module, batch: Batch, out: Any, ctx: TrainContext
    ) -> tuple[torch.Tensor, dict[str, float]]:
        ce = F.cross_entropy(out.logits, batch.labels)
        if not self.teachers:
            raise MMCurateError("method umt: no teachers loaded (on_train_start was not run)")
        with torch.no_grad():
            teacher = (self.teachers["audio"].features(batch.audio), self.teachers["visual"].features(batch.frames))
        distill = umt_distillation((out.audio_features, out.visual_features), teacher, float(self.params["scaling"]))
        return ce + distill, {"loss_ce": float(ce.detach()), "loss_distill": float(distill.detach())}

    def state_dict(self) -> dict[str, Any]:
        return {m: {k: v.cpu() for k, v in t.state_dict().items()} for m, t in self.teachers.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Rebuild the teachers from their saved weights (on the device the checkpoint was mapped to)."""
        self.teachers = {}
        for m, weights in state.items():
            fc = weights["fc.weight"]
            self.teachers[m] = self._teacher(m, int(fc.shape[0]), weights, fc.device)

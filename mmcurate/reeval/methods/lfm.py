"""``lfm``: learning the modality gap by balancing classification against alignment.

"Facilitating Multimodal Classification via Dynamically Learning Modality Gap", NeurIPS 2024;
official code njustkmg/NeurIPS24-LFM (``Crema_epoch_learnable.py``: learned weights,
``Crema_epoch.py``: a fitted schedule, ``model/AudioVideo.py``).

With z_a, z_v the per-modality logits (the official model has one linear head per modality, i.e.
``--fusion sum``; with the default concat head they are its OGM-GE split) and p_m = softmax(z_m):
    L = 2 * (alpha_0 * CE((z_a + z_v) / 2) + alpha_1 * Align),
    Align = (KL(m || p_a) + KL(m || p_v)) / 2,  m = (p_a + p_v) / 2
(the code's ``F.kl_div(p.log(), m)`` is KL(m || p), so this is not quite the Jensen-Shannon
divergence its name suggests).

``schedule=fitted`` (the default: what the official README runs, ``python Crema_epoch.py``):
alpha_0(e) is the official degree-5 polynomial fitted to the learned weights of one 200-epoch
CREMA-D run, rising from CE 0.20 at epoch 0 to about 0.92 at epoch 199 (it peaks at 1.01 near
epoch 183, a slightly negative alignment weight the official code uses as well). Every other scaled
schedule here is read in the fraction of the run, so this one is too: epoch e of a run of E epochs
reads the polynomial at e * ``fitted_epochs`` / E (``fitted_epochs`` = 200, the official run);
``fitted_epochs=null`` reads it at the raw epoch (the official code's own run length only).

``schedule=learnable`` (``Crema_epoch_learnable.py``): at the start of every epoch, on a fixed
held-out batch, h = mean of the first parameter tensor's entries of the Hessian-vector product
grad(grad L_total) . grad CE (L_total = alpha_0 CE + alpha_1 Align), then alpha_1 <- clip(alpha_1 -
eta h, 0.05, 0.95), alpha_0 = 1 - alpha_1, with eta = 1e-4 halved every 20 epochs; alpha starts at
(CE 0.05, Align 0.95). In a run of tens of epochs at that step size the weights barely move from
their start (CE weight about 0.05: the fused head hardly learns to classify), which is why it is
not the default here. The held-out batch: as the official code, ``holdout_removed`` (16) training
samples are taken out of training (group-aware, :func:`mmcurate.reeval.holdout.holdout_split`) and
``holdout`` (8) of them form the batch; the validation split is never read in training (it
selects the checkpoint) and the test split is never touched. BalanceMM takes a quarter of its
first *test* batch, and starts from the reversed weights (CE 0.95, Align 0.05:
``--method-param lfm.init_align=0.05``). The probe runs in eval mode (the official code's model is
in eval mode there from epoch 1 on, left so by validation). Cost: one double-backward on the
held-out batch per epoch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mmcurate.common.errors import MMCurateError
from mmcurate.reeval.batches import Batch, make_batch
from mmcurate.reeval.data import ReevalData
from mmcurate.reeval.holdout import holdout_split
from mmcurate.reeval.methods.base import Method, TrainContext, cpu_generator

SCHEDULES: tuple[str, ...] = ("fitted", "learnable")
#: length of the official run the fitted schedule was fitted to (data/crema.json: 200 epochs)
FITTED_EPOCHS = 200
#: the official fitted schedule: CE weight alpha_0(epoch) = sum_i c_i epoch^i
FITTED_CE: tuple[float, ...] = (
    2.04623704e-01,
    3.35472727e-03,
    1.22989557e-04,
    -2.92947416e-06,
    2.23835486e-08,
    -5.39717505e-11,
)
ALIGN_BOUNDS: tuple[float, float] = (0.05, 0.95)


def lfm_alignment(z_a: torch.Tensor, z_v: torch.Tensor) -> torch.Tensor:
    """(KL(m || p_a) + KL(m || p_v)) / 2 with m = (p_a + p_v) / 2, averaged over the batch."""
    p, q = F.softmax(z_a, dim=-1), F.softmax(z_v, dim=-1)
    m = 0.5 * p + 0.5 * q
    return 0.5 * (F.kl_div(p.log(), m, reduction="batchmean") + F.kl_div(q.log(), m, reduction="batchmean"))


def lfm_fused(z_a: torch.Tensor, z_v: torch.Tensor) -> torch.Tensor:
    return 0.5 * z_a + 0.5 * z_v


def lfm_fitted_weights(epoch: float) -> tuple[float, float]:
    """(alpha_CE, alpha_align) of the official fitted schedule at (official-run) epoch ``epoch``."""
    ce = sum(c * epoch**i for i, c in enumerate(FITTED_CE))
    return ce, 1.0 - ce


def lfm_step_size(base: float, epoch: int) -> float:
    """eta halved at every epoch that is a positive multiple of 20 (cumulatively)."""
    return base / 2 ** (epoch // 20)


def lfm_update_alignment(alpha_align: float, hypergradient: float, step: float) -> float:
    """alpha_1 - eta h, clipped to [0.05, 0.95]."""
    return min(max(alpha_align - step * hypergradient, ALIGN_BOUNDS[0]), ALIGN_BOUNDS[1])


def lfm_hypergradient(model: nn.Module, batch: Batch, alpha: tuple[float, float]) -> float:
    """Mean of the first parameter tensor of H(L_total) . grad CE on ``batch`` (the official estimate)."""
    params = [p for p in model.parameters() if p.requires_grad]
    out = model(batch.audio, batch.frames)
    ce = F.cross_entropy(lfm_fused(out.audio_logits, out.visual_logits), batch.labels)
    total = alpha[0] * ce + alpha[1] * lfm_alignment(out.audio_logits, out.visual_logits)
    theta_grads = torch.autograd.grad(total, params, create_graph=True, allow_unused=True)
    ce_grads = torch.autograd.grad(ce, params, retain_graph=True, create_graph=True, allow_unused=True)
    pairs = [(t, c) for t, c in zip(theta_grads, ce_grads) if t is not None and c is not None]
    hvp = torch.autograd.grad([t for t, _ in pairs], params, grad_outputs=[c for _, c in pairs], allow_unused=True)
    first = hvp[0] if hvp[0] is not None else torch.zeros(())
    return float(first.mean())


class LFM(Method):
    name = "lfm"
    title = "LFM"
    reference = "NeurIPS 2024 (njustkmg)"
    category = "objective"
    paper = "Facilitating Multimodal Classification via Dynamically Learning Modality Gap"
    needs_modality_logits = True
    defaults = {
        "schedule": "fitted",
        "fitted_epochs": FITTED_EPOCHS,
        "init_align": 0.95,
        "lr_alpha": 1e-4,
        "holdout": 8,
        "holdout_removed": 16,
    }
    diagnostics = {"alpha_ce": "CE weight alpha_0", "hypergradient": "hypergradient h (learnable)"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.params["schedule"] not in SCHEDULES:
            raise MMCurateError(f"method lfm: schedule must be one of {', '.join(SCHEDULES)}")
        align = float(self.params["init_align"])
        self.alpha = (1.0 - align, align)
        self.hypergradient = 0.0

    def fitted_epoch(self, epoch: int) -> float:
        """Where epoch ``epoch`` of this run reads the fitted schedule: the same fraction of the official run."""
        span = self.params["fitted_epochs"]
        return float(epoch) if span is None else epoch * float(span) / max(1, self.epochs)

    def schedule(self) -> dict[str, list[int]]:
        event = "fitted_weights" if self.params["schedule"] == "fitted" else "alpha_update"
        return {event: list(range(self.epochs))}

    def on_epoch_start(self, model: nn.Module, ctx: TrainContext) -> None:
        if self.params["schedule"] == "fitted":
            self.alpha = lfm_fitted_weights(self.fitted_epoch(ctx.epoch))
            return
        batch = self._holdout(ctx)
        model.eval()
        try:
            h = lfm_hypergradient(model, batch, self.alpha)
        finally:
            model.train()
        model.zero_grad(set_to_none=True)
        align = lfm_update_alignment(self.alpha[1], h, lfm_step_size(float(self.params["lr_alpha"]), ctx.epoch))
        self.alpha, self.hypergradient = (1.0 - align, align), h

    def _split(self, data: ReevalData) -> tuple[np.ndarray, np.ndarray]:
        """(kept, removed) positions of train: ``holdout_removed`` samples out of training, as the official code."""
        n = len(data.train)
        fraction = min(0.5, max(2, int(self.params["holdout_removed"])) / max(n, 1))
        return holdout_split(data.train.labels.tolist(), data.train.groups, fraction, self.seed)

    def train_subset(self, data: ReevalData) -> torch.Tensor | None:
        if self.params["schedule"] == "fitted":
            return None
        return torch.as_tensor(self._split(data)[0], dtype=torch.long)

    def _holdout(self, ctx: TrainContext) -> Batch:
        """``holdout`` of the removed training samples, fixed for the run (never validation or test)."""
        removed = self._split(ctx.data)[1]
        order = torch.randperm(len(removed), generator=cpu_generator(self.seed, 8_128))
        pick = torch.as_tensor(removed)[order[: max(2, int(self.params["holdout"]))]]
        return make_batch(ctx.data.train, ctx.data, pick, ctx.device)

    def loss(
        self, model: nn.Module, batch: Batch, out: Any, ctx: TrainContext
    ) -> tuple[torch.Tensor, dict[str, float]]:
        ce = F.cross_entropy(lfm_fused(out.audio_logits, out.visual_logits), batch.labels)
        align = lfm_alignment(out.audio_logits, out.visual_logits)
        loss = 2 * (self.alpha[0] * ce + self.alpha[1] * align)
        logs = {"alpha_ce": self.alpha[0], "alpha_align": self.alpha[1]}
        if self.params["schedule"] == "learnable":
            logs["hypergradient"] = self.hypergradient
        return loss, logs

    def state_dict(self) -> dict[str, Any]:
        return {"alpha": list(self.alpha), "hypergradient": self.hypergradient}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.alpha = tuple(state["alpha"])  # type: ignore[assignment]
        self.hypergradient = float(state["hypergradient"])

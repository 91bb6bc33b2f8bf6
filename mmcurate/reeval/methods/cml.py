"""``cml``: calibrating multimodal learning (confidence must not rise when a modality is removed).

Ma, Zhang, Zhang, Wu, Fu, Zhou & Hu, "Calibrating Multimodal Learning", ICML 2023; official code
QingyangZhang/CML (``miwae/train.py``, stage 2 of the training loop).

Per step every sample is forwarded twice: with both modalities, and with one modality removed,
chosen at random per sample (official: a random removal order per sample; with two modalities
one of them). conf = max softmax probability, pred its class. Loss:
    alpha * [CE(full) + CE(removed)] / 2 + (beta / 100) * R,
    R = sum_i relu((conf_removed,i - conf_full,i) * [pred_full,i = y_i] - eps)            (trick 1)
      + sum_i relu((conf_removed,i - sg(conf_full,i)) * [both predictions wrong] - eps)  (trick 2)
with sg = stop-gradient, a per-sample penalty summed over the batch. Defaults are the README's
run: alpha 1, beta 10 (weight 0.1), eps 0.

Removing a modality: the official code is for tabular views and fills a removed view's raw input
with the training mean; for learned encoders mmcurate zeroes the removed modality's encoder
features before the fusion head (the late-fusion convention also used by BalanceMM and the
valuation code). ``variant=balancemm`` is BalanceMM's CML: one modality removed for the whole
epoch, and the penalty lambda * max(0, sum_i (conf_removed,i - conf_full,i)) clipped once per
batch (so samples cancel), without the correctness masks; lambda = beta / 100.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from mmcurate.common.errors import MMCurateError
from mmcurate.reeval.batches import Batch
from mmcurate.reeval.methods.base import Method, TrainContext, cpu_generator, head_without

VARIANTS: tuple[str, ...] = ("official", "balancemm")


def cml_penalty(
    conf_full: torch.Tensor,
    pred_full: torch.Tensor,
    conf_removed: torch.Tensor,
    pred_removed: torch.Tensor,
    labels: torch.Tensor,
    eps: float = 0.0,
) -> torch.Tensor:
    """The official ranking penalty R (tricks 1 and 2), summed over the batch."""
    full_right = (pred_full == labels).to(conf_full.dtype)
    both_wrong = ((pred_full != labels) & (pred_removed != labels)).to(conf_full.dtype)
    trick1 = F.relu((conf_removed - conf_full) * full_right - eps).sum()
    trick2 = F.relu((conf_removed - conf_full.detach()) * both_wrong - eps).sum()
    return trick1 + trick2


def balancemm_penalty(conf_full: torch.Tensor, conf_removed: torch.Tensor) -> torch.Tensor:
    """BalanceMM's max(0, sum_i (conf_removed - conf_full)): clipped after summing the batch."""
    return F.relu((conf_removed - conf_full).sum())


class CML(Method):
    name = "cml"
    title = "CML"
    reference = "Ma et al., ICML 2023"
    category = "objective"
    paper = "Calibrating Multimodal Learning"
    defaults = {"alpha": 1.0, "beta": 10.0, "eps": 0.0, "variant": "official"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.params["variant"] not in VARIANTS:
            raise MMCurateError(f"method cml: variant must be one of {', '.join(VARIANTS)}")
        self._gen = cpu_generator(self.seed, 16_180)
        self._epoch_removed = "visual"

    def on_epoch_start(self, model: nn.Module, ctx: TrainContext) -> None:
        if self.params["variant"] == "balancemm":  # one random modality removed for the whole epoch
            self._epoch_removed = ("audio", "visual")[int(torch.randint(2, (), generator=self._gen))]

    def forward(self, model: nn.Module, batch: Batch, ctx: TrainContext) -> Any:
        a, v = model.encode(batch.audio, batch.frames)
        full = model.head(a, v).logits
        if self.params["variant"] == "balancemm":
            keep = "audio" if self._epoch_removed == "visual" else "visual"
            return full, head_without(model, a, v, keep)
        remove_visual = (torch.rand(len(batch), generator=self._gen) < 0.5).to(full.device)
        only_audio, only_visual = head_without(model, a, v, "audio"), head_without(model, a, v, "visual")
        removed = torch.where(remove_visual[:, None], only_audio, only_visual)
        return full, removed

    def loss(
        self, model: nn.Module, batch: Batch, out: Any, ctx: TrainContext
    ) -> tuple[torch.Tensor, dict[str, float]]:
        full, removed = out
        y = batch.labels
        ce = (F.cross_entropy(full, y) + F.cross_entropy(removed, y)) / 2
        conf_f, pred_f = F.softmax(full, dim=1).max(dim=1)
        conf_r, pred_r = F.softmax(removed, dim=1).max(dim=1)
        if self.params["variant"] == "balancemm":
            penalty = balancemm_penalty(conf_f, conf_r)
        else:
            penalty = cml_penalty(conf_f, pred_f, conf_r, pred_r, y, float(self.params["eps"]))
        loss = float(self.params["alpha"]) * ce + float(self.params["beta"]) / 100 * penalty
        return loss, {"loss_ce": float(ce.detach()), "penalty": float(penalty.detach())}

    def schedule(self) -> dict[str, list[int]]:
        return {"removal_draw": list(range(self.epochs))}

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self._gen.get_state(), "epoch_removed": self._epoch_removed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._gen.set_state(state["generator"])
        self._epoch_removed = state["epoch_removed"]

"""``gblending``: online Gradient-Blending, loss weights from per-head look-ahead on a train hold-out.

Wang, Tran & Feiszli, "What Makes Training Multi-modal Classification Networks Hard?", CVPR 2020
(online G-Blend). The model has three heads: the fused head and one linear head per modality;
the loss is sum_k w_k CE_k. At the start of every super-epoch of n epochs, from the **current**
checkpoint, each head is trained *alone* on a copy of the model for n epochs (the fused head with
both encoders, a unimodal head with its own encoder), and its overfitting-to-generalisation
behaviour is measured on a hold-out V carved from the **training** split, against the loss on
the samples it trains on (T):

    O      = L_V - L_T                             (overfitting)
    dG_k   = L_V(before) - L_V(after)              (generalisation gained over the look-ahead)
    dO_k   = O(after) - O(before)                  (overfitting gained)
    w_k    = max(dG_k, 0) / dO_k^2, normalised to sum to 1 (the paper's constraint sum w = 1)

then the main model trains n epochs with those weights. The validation split is never read:
it only selects the tested checkpoint. Losses are means over the whole set, in eval mode.

Choices (named parameters): ``super_epoch`` (n; default a quarter of the run), ``holdout_fraction``
(0.1 of train, group-aware, seeded, see :mod:`mmcurate.reeval.holdout`), ``train_on_holdout``
(False: the main model never trains on V either, so from the second super-epoch on V is still
unseen by the checkpoint the look-ahead starts from). A look-ahead copy gets a fresh optimiser of
the run's kind at the current learning rate. A head that did not generalise (dG <= 0) gets no
weight; when none did, the previous weights stay (uniform before the first estimate).
The weights are only as good as the hold-out's loss estimates: at each estimate the standard error
of every head's dG (from the per-clip loss changes on V, paired) is recorded, a hold-out smaller
than ``min_holdout`` (100) clips is warned about at the start of the run, and ``results.md``
reports the weights per estimate and how many estimates had no head whose dG exceeded 2 SE (whose
weights then follow noise).
The official code (``facebookresearch/VMZ``, Caffe2, ``c2/tutorials/gradient_blending.md``) trains
with given audio/visual/AV weights, which sum to 1, and does not release the estimate.
BalanceMM's ``GBlending_trainer.py`` differs: it measures on the loader it validates with (the
test set for its audio-visual datasets), pads the other modality instead of using unimodal heads,
sums batch losses (train and validation sums over different batch counts) and takes |dG|.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mmcurate.common.console import warn
from mmcurate.common.errors import MMCurateError
from mmcurate.models import AVClassifier
from mmcurate.reeval.batches import Batch, epoch_order, iter_batches
from mmcurate.reeval.data import ReevalData
from mmcurate.reeval.holdout import holdout_split
from mmcurate.reeval.methods.base import Method, TrainContext
from mmcurate.reeval.optim import make_optimizer

#: the heads, in weight order
HEADS: tuple[str, ...] = ("fused", "audio", "visual")
#: seed of the hold-out draw (fixed: every seed of a comparison holds out the same samples)
HOLDOUT_SEED = 0


def gblending_weights(delta_g: np.ndarray, delta_o: np.ndarray, eps: float = 1e-12) -> np.ndarray | None:
    """w_k proportional to max(dG_k, 0) / dO_k^2, summing to 1; None when no head generalised."""
    d_gen = np.maximum(np.asarray(delta_g, dtype=float), 0.0)
    raw = d_gen / np.maximum(np.asarray(delta_o, dtype=float) ** 2, eps)
    total = raw.sum()
    if not np.isfinite(total) or total <= 0:
        return None
    return raw / total


def head_logits(model: AVClassifier, batch: Batch, head: str) -> torch.Tensor:
    """Logits of one head; a unimodal head runs its own encoder only."""
    if head == "fused":
        return model(batch.audio, batch.frames).logits
    if head == "audio":
        return model.audio_head(model.audio_encoder(batch.audio))
    if head == "visual":
        return model.visual_head(model.visual_encoder(batch.frames))
    raise ValueError(f"unknown head {head!r}")


@torch.no_grad()
def sample_losses(
    model: AVClassifier, data: ReevalData, positions: torch.Tensor, batch_size: int, device: torch.device
) -> np.ndarray:
    """Cross-entropy of every head (HEADS order) for each of ``positions`` of the train split, eval mode: (n, 3)."""
    was_training = model.training
    model.eval()
    parts: list[np.ndarray] = []
    for batch in iter_batches(data.train, data, batch_size, device, order=positions):
        out = model(batch.audio, batch.frames)
        per_head = [
            F.cross_entropy(logits, batch.labels, reduction="none").cpu().numpy()
            for logits in (out.logits, out.audio_head_logits, out.visual_head_logits)
        ]
        parts.append(np.stack(per_head, axis=1))
    model.train(was_training)
    return np.concatenate(parts) if parts else np.zeros((0, len(HEADS)))


def mean_losses(
    model: AVClassifier, data: ReevalData, positions: torch.Tensor, batch_size: int, device: torch.device
) -> np.ndarray:
    """Mean cross-entropy of every head (HEADS order) over ``positions`` of the train split, eval mode."""
    losses = sample_losses(model, data, positions, batch_size, device)
    return losses.mean(axis=0) if len(losses) else np.zeros(len(HEADS))


def look_ahead(
    model: AVClassifier,
    head: str,
    ctx: TrainContext,
    train_pos: torch.Tensor,
    holdout_pos: torch.Tensor,
    epochs: int,
    seed: int,
) -> tuple[float, float, np.ndarray]:
    """Train a copy of ``model`` on ``head``'s loss alone for ``epochs``; its (L_T, L_V, per-clip L_V) afterwards."""
    if ctx.cfg is None or ctx.lr is None:
        raise MMCurateError("gblending needs the run's settings (TrainContext.cfg and .lr) for its look-ahead")
    k = HEADS.index(head)
    probe = copy.deepcopy(model)
    probe.train()
    opt = make_optimizer(probe, ctx.cfg, lr=ctx.lr)
    for e in range(epochs):
        order = train_pos[epoch_order(len(train_pos), seed, e)]
        batches = iter_batches(ctx.data.train, ctx.data, ctx.batch_size, ctx.device, order=order, drop_singleton=True)
        for batch in batches:
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(head_logits(probe, batch, head), batch.labels)
            loss.backward()
            opt.step()
    l_t = mean_losses(probe, ctx.data, train_pos, ctx.batch_size, ctx.device)[k]
    v = sample_losses(probe, ctx.data, holdout_pos, ctx.batch_size, ctx.device)[:, k]
    return float(l_t), float(v.mean()), v


def paired_se(before: np.ndarray, after: np.ndarray) -> float:
    """Standard error of the mean of ``before - after`` (per-clip losses of one head); inf for fewer than 2 clips."""
    diff = np.asarray(before, dtype=float) - np.asarray(after, dtype=float)
    if diff.size < 2:
        return float("inf")
    return float(diff.std(ddof=1) / np.sqrt(diff.size))


class GBlending(Method):
    name = "gblending"
    title = "G-Blending"
    reference = "Wang et al., CVPR 2020"
    category = "objective"
    paper = "What Makes Training Multi-modal Classification Networks Hard?"
    #: super_epoch None: a quarter of the run (BalanceMM: 10 of 30 epochs)
    defaults = {"super_epoch": None, "holdout_fraction": 0.1, "train_on_holdout": False, "min_holdout": 100}
    diagnostics = {
        **{f"epoch_end_w_{h}": f"weight {h}" for h in HEADS},
        **{f"epoch_end_ogr_{h}": f"OGR {h} (|dO/dG| at estimates)" for h in HEADS},
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.weights = np.full(len(HEADS), 1.0 / len(HEADS))
        self.estimates: list[dict[str, Any]] = []  # one per super-epoch: epoch, losses, dG, dO, weights
        self._split: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def super_epoch(self) -> int:
        se = self.params["super_epoch"]
        return max(1, round(self.epochs / 4)) if se is None else max(1, int(se))

    def build_model(self, num_classes: int) -> nn.Module:
        return AVClassifier(num_classes, self.width, self.fusion, unimodal_heads=True)

    def holdout(self, data: ReevalData) -> tuple[torch.Tensor, torch.Tensor]:
        """(look-ahead training positions, hold-out positions) in ``data.train``."""
        if self._split is None:
            labels = data.train.labels.tolist()
            kept, held = holdout_split(labels, data.train.groups, float(self.params["holdout_fraction"]), HOLDOUT_SEED)
            self._split = (torch.from_numpy(kept), torch.from_numpy(held))
        return self._split

    def train_subset(self, data: ReevalData) -> torch.Tensor | None:
        return None if self.params["train_on_holdout"] else self.holdout(data)[0]

    def is_estimate_epoch(self, epoch: int) -> bool:
        return epoch % self.super_epoch == 0

    def schedule(self) -> dict[str, list[int]]:
        estimates = [e for e in range(self.epochs) if self.is_estimate_epoch(e)]
        return {"first_estimate": estimates[:1], "re_estimate": estimates[1:2]}

    def on_train_start(self, model: nn.Module, ctx: TrainContext) -> None:
        held = len(self.holdout(ctx.data)[1])
        if held < int(self.params["min_holdout"]):
            warn(
                f"gblending: its hold-out holds {held} training clips (holdout_fraction "
                f"{self.params['holdout_fraction']}); below {self.params['min_holdout']} the hold-out loss changes "
                "behind its weights are mostly noise (results.md reports them); use more data or a larger "
                "gblending.holdout_fraction"
            )

    def on_epoch_start(self, model: nn.Module, ctx: TrainContext) -> None:
        if not self.is_estimate_epoch(ctx.epoch):
            return
        train_pos, hold_pos = self.holdout(ctx.data)
        t_before = mean_losses(model, ctx.data, train_pos, ctx.batch_size, ctx.device)
        v_before_clips = sample_losses(model, ctx.data, hold_pos, ctx.batch_size, ctx.device)
        v_before = v_before_clips.mean(axis=0)
        t_after, v_after, se = np.zeros(len(HEADS)), np.zeros(len(HEADS)), np.zeros(len(HEADS))
        for k, head in enumerate(HEADS):
            seed = (self.seed * 1_009 + ctx.epoch) * 7 + k + 1
            t_after[k], v_after[k], v_clips = look_ahead(model, head, ctx, train_pos, hold_pos, self.super_epoch, seed)
            se[k] = paired_se(v_before_clips[:, k], v_clips)
        d_gen = v_before - v_after
        d_over = (v_after - t_after) - (v_before - t_before)
        new = gblending_weights(d_gen, d_over)
        if new is not None:
            self.weights = new
        self.estimates.append(
            {
                "epoch": ctx.epoch,
                "holdout_size": len(hold_pos),
                "train_before": t_before.tolist(),
                "holdout_before": v_before.tolist(),
                "train_after": t_after.tolist(),
                "holdout_after": v_after.tolist(),
                "delta_g": d_gen.tolist(),
                "delta_g_se": se.tolist(),
                "delta_o": d_over.tolist(),
                "weights": self.weights.tolist(),
            }
        )
        model.train()

    def loss(
        self, model: nn.Module, batch: Batch, out: Any, ctx: TrainContext
    ) -> tuple[torch.Tensor, dict[str, float]]:
        losses = [
            F.cross_entropy(x, batch.labels) for x in (out.logits, out.audio_head_logits, out.visual_head_logits)
        ]
        total = sum(float(w) * loss for w, loss in zip(self.weights, losses))
        return total, {f"loss_{h}": float(loss.detach()) for h, loss in zip(HEADS, losses)}

    def on_epoch_end(self, model: nn.Module, ctx: TrainContext) -> dict[str, float]:
        logs = {f"w_{h}": float(w) for h, w in zip(HEADS, self.weights)}
        if self.estimates and self.estimates[-1]["epoch"] == ctx.epoch:
            est = self.estimates[-1]
            logs["holdout_size"] = float(est["holdout_size"])
            for h, dg, do, se in zip(HEADS, est["delta_g"], est["delta_o"], est["delta_g_se"]):
                logs[f"dG_{h}"], logs[f"dO_{h}"] = dg, do
                if math.isfinite(se):
                    logs[f"dG_se_{h}"] = se
                if dg != 0:
                    logs[f"ogr_{h}"] = abs(do / dg)
        return logs

    @classmethod
    def run_notes(cls, histories: list[list[dict[str, Any]]]) -> list[str]:
        estimates = [h for hist in histories for h in hist if "epoch_end_dG_fused" in h]
        if not estimates:
            return []
        sizes = sorted({int(h.get("epoch_end_holdout_size", 0)) for h in estimates})
        weights = np.array([[h[f"epoch_end_w_{k}"] for k in HEADS] for h in estimates])
        noisy = sum(
            all(h.get(f"epoch_end_dG_{k}", 0.0) <= 2 * h.get(f"epoch_end_dG_se_{k}", float("inf")) for k in HEADS)
            for h in estimates
        )
        mean = ", ".join(f"{k} {w:.2f}" for k, w in zip(HEADS, weights.mean(axis=0)))
        low = int((weights[:, 0] < 0.1).sum())
        notes = [
            f"{len(estimates)} weight estimate(s) over all seeds, on a hold-out of {sizes[0]} training clips; "
            f"mean weights {mean}; fused-head weight below 0.1 at {low} of them "
            "(per estimate: diagnostics_gblending.png, results.json → diagnostics)"
        ]
        if noisy:
            notes.append(
                f"at {noisy} of {len(estimates)} estimates no head's hold-out loss fell by more than 2 standard "
                "errors: those weights follow noise, not generalisation (a larger hold-out would fix it)"
            )
        return notes

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "super_epoch_resolved": self.super_epoch}

    def state_dict(self) -> dict[str, Any]:
        return {"weights": self.weights.tolist(), "estimates": list(self.estimates)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.weights = np.asarray(state["weights"], dtype=float)
        self.estimates = list(state.get("estimates", []))

"""``greedy``: balanced multimodal learning by conditional learning speed.

Wu, Jastrzebski, Cho & Geras, "Characterizing and Overcoming the Greedy Nature of Learning in
Multi-modal Deep Neural Networks", ICML 2022; official code ``nyukat/greedy_multimodal_learning``
(``src/callbacks.py`` ``Bias_Mitigation_Strong``, ``configs/training_guided.gin``). The model has
MMTM blocks between the encoders (:class:`mmcurate.models.MMTMClassifier`). After every normal
step the relative gradient norm sum ||grad||^2 / sum ||theta||^2 is accumulated per modality for
its MMTM "bypass" parameters (the layers feeding cross-modal information into it, shared ones
counted for both) and for its own encoder ("main"). The conditional learning speed is
BDR_m = log10(A_bypass / A_main). From the second epoch on (the reference's ``starting_epoch=2``
counts epochs from 1: the first epoch only accumulates), when |BDR_audio - BDR_visual| > alpha
(``epsilon=0.01``), a re-balancing window of ``window`` steps (``curation_windowsize=5``) starts
in which the branch with the larger BDR is the "caring" modality: its MMTM gates are replaced by
their running averages, so it gets no sample-specific cross-modal input and must learn from its
own. Steps inside a window accumulate nothing, as in the reference.

Deviations, both corrections of the reference: the frames-per-clip grouping uses the clip
tensor's shape (the reference hard-codes a batch of 64 there), and each branch's gate average
is its own (the reference's ``MMTM_mitigate`` averages the visual gate into both). BalanceMM's
defaults (alpha 0.001, re-balancing from step 0) are ``alpha=0.001 warmup_epochs=0``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from mmcurate.models import MMTMClassifier
from mmcurate.reeval.batches import Batch
from mmcurate.reeval.methods.base import Method, Prediction, TrainContext

MODALITIES: tuple[str, str] = ("audio", "visual")


def greedy_bdr(bypass_speed: float, main_speed: float) -> float:
    """BDR = log10(accumulated bypass speed / accumulated main speed)."""
    return math.log10(max(bypass_speed, 1e-30) / max(main_speed, 1e-30))


def greedy_caring_modality(bdr_audio: float, bdr_visual: float, alpha: float) -> str | None:
    """The modality to re-balance (the one with the larger BDR) when the gap exceeds alpha, else None."""
    gap = bdr_audio - bdr_visual
    if abs(gap) <= alpha:
        return None
    return "audio" if gap > 0 else "visual"


def relative_grad_norms(model: MMTMClassifier) -> dict[str, tuple[float, float]]:
    """Per modality, (bypass, main) = sum ||grad||^2 / sum ||theta||^2 over its parameter groups."""
    zero = torch.zeros((), device=next(model.parameters()).device)
    acc = {f"{m}_{part}_{q}": zero.clone() for m in MODALITIES for part in ("bypass", "main") for q in ("g", "w")}
    for name, p in model.named_parameters():
        if p.grad is None:
            continue
        g2, w2 = p.grad.detach().pow(2).sum(), p.detach().pow(2).sum()
        if name.startswith("mmtm."):
            owners = [m for m in MODALITIES if f".fc_{m}." in name] or list(MODALITIES)
            part = "bypass"
        elif name.startswith("audio_encoder."):
            owners, part = ["audio"], "main"
        elif name.startswith("visual_encoder."):
            owners, part = ["visual"], "main"
        else:
            continue  # the fusion head belongs to neither branch
        for m in owners:
            acc[f"{m}_{part}_g"] += g2
            acc[f"{m}_{part}_w"] += w2
    values = {k: float(v) for k, v in acc.items()}
    return {
        m: (
            values[f"{m}_bypass_g"] / max(values[f"{m}_bypass_w"], 1e-30),
            values[f"{m}_main_g"] / max(values[f"{m}_main_w"], 1e-30),
        )
        for m in MODALITIES
    }


class Greedy(Method):
    name = "greedy"
    title = "Greedy"
    reference = "Wu et al., ICML 2022"
    category = "feed-forward"
    paper = "Characterizing and Overcoming the Greedy Nature of Learning in Multi-modal Deep Neural Networks"
    #: the reference's guided configuration: epsilon 0.01, window 5 steps, unlocked from the 2nd epoch
    defaults = {"alpha": 0.01, "window": 5, "warmup_epochs": 1}
    diagnostics = {
        "epoch_end_rebalancing_share": "share of steps re-balancing",
        "bdr_gap": "BDR audio - BDR visual (measuring steps)",
        "threshold_exceeded": "share of unlocked measuring steps with |BDR gap| > alpha",
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.speed = {f"{m}_{part}": 0.0 for m in MODALITIES for part in ("bypass", "main")}
        self.caring: str | None = None
        self.window_step = 0
        self.rebalancing_steps = 0

    def build_model(self, num_classes: int) -> nn.Module:
        return MMTMClassifier(num_classes, self.width, self.fusion)

    def forward(self, model: nn.Module, batch: Batch, ctx: TrainContext) -> Any:
        return model(batch.audio, batch.frames, caring_modality=self.caring)

    def after_backward(self, model: nn.Module, batch: Batch, out: Any, ctx: TrainContext) -> dict[str, float]:
        if self.caring is not None:  # inside a re-balancing window: count it down
            self.rebalancing_steps += 1
            self.window_step += 1
            if self.window_step >= int(self.params["window"]):
                self.caring = None
            return {}
        for m, (bypass, main) in relative_grad_norms(model).items():
            self.speed[f"{m}_bypass"] += bypass
            self.speed[f"{m}_main"] += main
        bdr = {m: greedy_bdr(self.speed[f"{m}_bypass"], self.speed[f"{m}_main"]) for m in MODALITIES}
        unlocked = ctx.epoch >= int(self.params["warmup_epochs"])
        alpha = float(self.params["alpha"])
        self.caring = greedy_caring_modality(bdr["audio"], bdr["visual"], alpha) if unlocked else None
        self.window_step = 0
        logs = {"bdr_audio": bdr["audio"], "bdr_visual": bdr["visual"], "bdr_gap": bdr["audio"] - bdr["visual"]}
        if unlocked:
            logs["threshold_exceeded"] = 0.0 if self.caring is None else 1.0
        return logs

    def schedule(self) -> dict[str, list[int]]:
        warmup = int(self.params["warmup_epochs"])
        return {"measuring": list(range(self.epochs)), "rebalancing": list(range(warmup, self.epochs))}

    @classmethod
    def run_notes(cls, histories: list[list[dict[str, Any]]]) -> list[str]:
        shares = [h["epoch_end_rebalancing_share"] for hist in histories for h in hist if "threshold_exceeded" in h]
        binds = [h["threshold_exceeded"] for hist in histories for h in hist if "threshold_exceeded" in h]
        if not shares:
            return []
        share, bind = float(np.mean(shares)), float(np.mean(binds))
        note = (
            f"after the warm-up, {100 * share:.0f} % of steps re-balanced; the BDR gap exceeded alpha at "
            f"{100 * bind:.0f} % of measuring steps"
        )
        if bind > 0.95:
            note += (
                " (the threshold almost never holds re-balancing back: a window follows nearly every measuring step, "
                "and the share sits near its ceiling window/(window+1))"
            )
        return [note]

    def on_epoch_end(self, model: nn.Module, ctx: TrainContext) -> dict[str, float]:
        share = self.rebalancing_steps / max(1, ctx.steps_per_epoch)
        self.rebalancing_steps = 0
        return {"rebalancing_share": share}

    @torch.no_grad()
    def predict(self, model: nn.Module, batch: Batch) -> Prediction:
        out = model(batch.audio, batch.frames)
        return Prediction(out.logits, out.audio_logits, out.visual_logits)

    def state_dict(self) -> dict[str, Any]:
        return {
            "speed": dict(self.speed),
            "caring": self.caring,
            "window_step": self.window_step,
            "rebalancing_steps": self.rebalancing_steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.speed = dict(state["speed"])
        self.caring = state["caring"]
        self.window_step = int(state["window_step"])
        self.rebalancing_steps = int(state.get("rebalancing_steps", 0))

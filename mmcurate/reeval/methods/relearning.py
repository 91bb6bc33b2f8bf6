"""``relearning``: diagnose each encoder's learning state, softly re-initialise it accordingly.

Wei, Li, Feng & Hu, "Diagnosing and Re-learning for Balanced Multimodal Learning", ECCV 2024;
official code GeWu-Lab/Diagnosing_Relearning_ECCV2024 (``code/ours.py``: ``purity_score``,
``reinit_score``, ``reinit``, the training loop; ``code/script/ours.sh``).

Plain joint training, plus a diagnosis after epoch e whenever e > 0 and e % R == 0, at most N
times: the encoder features of the training split and of a held-out split are extracted (eval
mode); per modality and split they are min-max scaled to [-1, 1] per dimension and clustered
with k-means (K = number of classes); purity is the share of samples whose label is their
cluster's majority label. With gap_m = |purity_train - purity_heldout| (a modality that fits
train much better than held-out data is over-trained), every parameter of encoder m is pulled
back towards its initial value:
    w_m = tanh(lambda * gap_m),   theta <- w_m theta_init + (1 - w_m) theta.
The fusion head, BatchNorm buffers and the optimiser state are left as they are.

Schedule: official lambda 3, R 20, N 3 in a 90-epoch run (resets at epochs 20, 40, 60);
``every=None`` scales R to the run (R = round(20/90 of the epochs)); the diagnosis follows that
epoch's validation, as the official code (BalanceMM diagnoses before it, with R 15 and N 2).

Held-out data: as the official code, which splits CREMA-D's training list into ``my_train.csv``
(5,954) and ``val.csv`` (744, 11 %) and trains on the first only, a hold-out of ``holdout_fraction``
(0.11) of *train* is carved out (group-aware, stratified, seed 0: the same for every seed; see
:mod:`mmcurate.reeval.holdout`); the model trains on the rest, and the diagnosis compares purity on
that rest with purity on the hold-out. mmcurate's validation split is never read while training (it
selects the checkpoint; BalanceMM diagnoses on its test set). k-means: scipy's k-means++ with a
fixed seed (the official code calls scikit-learn's KMeans with random_state 0).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from scipy.cluster.vq import kmeans2
from torch import nn

from mmcurate.common.errors import MMCurateError
from mmcurate.reeval.batches import iter_batches
from mmcurate.reeval.data import ReevalData
from mmcurate.reeval.holdout import holdout_split
from mmcurate.reeval.methods.base import Method, TrainContext

MODALITIES: tuple[str, str] = ("audio", "visual")
#: seed of the hold-out draw (fixed: every seed of a comparison holds out the same samples)
HOLDOUT_SEED = 0


def purity(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Share of samples whose label is the most frequent label of their cluster."""
    labels, clusters = np.asarray(labels), np.asarray(clusters)
    hits = 0
    for c in np.unique(clusters):
        hits += int(np.bincount(labels[clusters == c]).max())
    return hits / max(1, len(labels))


def minmax_scale(x: np.ndarray) -> np.ndarray:
    """Each column mapped linearly onto [-1, 1]; a constant column becomes -1 (scikit-learn's rule)."""
    lo, hi = x.min(axis=0), x.max(axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    return (x - lo) / span * 2 - 1


def cluster_purity(features: np.ndarray, labels: np.ndarray, k: int, seed: int = 0) -> float:
    """Purity of a k-means (k-means++, fixed seed) clustering of the min-max scaled features."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # empty clusters on tiny sets
        k = max(1, min(k, len(features)))
        _, assign = kmeans2(minmax_scale(features.astype(np.float64)), k, iter=100, minit="++", seed=seed)
    return purity(labels, assign)


def reinit_weight(purity_train: float, purity_heldout: float, lam: float) -> float:
    """w = tanh(lambda * |purity_train - purity_heldout|)."""
    return math.tanh(lam * abs(purity_train - purity_heldout))


@torch.no_grad()
def soft_reset(params: list[nn.Parameter], initial: list[torch.Tensor], weight: float) -> None:
    """theta <- w theta_init + (1 - w) theta, in place."""
    for p, p0 in zip(params, initial):
        p.mul_(1 - weight).add_(p0.to(p.device), alpha=weight)


class ReLearning(Method):
    name = "relearning"
    title = "ReLearning"
    reference = "Wei et al., ECCV 2024"
    category = "optimisation"
    paper = "Diagnosing and Re-learning for Balanced Multimodal Learning"
    aliases = ("diagnosing_relearning",)
    #: official: lambda 3, R 20 of 90 epochs (None: scaled to the run), N 3, hold-out 744 of 6,698 training clips
    defaults = {"lam": 3.0, "every": None, "max_resets": 3, "holdout_fraction": 0.11}
    diagnostics = {
        **{f"epoch_end_reinit_{m}": f"re-init strength {m}" for m in MODALITIES},
        **{f"epoch_end_purity_gap_{m}": f"purity gap {m} (train - hold-out)" for m in MODALITIES},
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial: dict[str, list[torch.Tensor]] = {}
        self.resets = 0
        self._logs: dict[str, float] = {}
        self._split: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def every(self) -> int:
        r = self.params["every"]
        return max(1, round(self.epochs * 20 / 90)) if r is None else max(1, int(r))

    def diagnosis_epochs(self, epochs: int) -> list[int]:
        """Epochs at whose start a diagnosis runs (after epoch e with e > 0, e % R == 0, at most N, one left)."""
        done = [e for e in range(1, epochs - 1) if e % self.every == 0]
        return [e + 1 for e in done[: int(self.params["max_resets"])]]

    def schedule(self) -> dict[str, list[int]]:
        return {"diagnosis": self.diagnosis_epochs(self.epochs)}

    def holdout(self, data: ReevalData) -> tuple[torch.Tensor, torch.Tensor]:
        """(training positions, hold-out positions) in ``data.train``: the hold-out is never trained on."""
        if self._split is None:
            labels = data.train.labels.tolist()
            kept, held = holdout_split(labels, data.train.groups, float(self.params["holdout_fraction"]), HOLDOUT_SEED)
            self._split = (torch.from_numpy(kept), torch.from_numpy(held))
        return self._split

    def train_subset(self, data: ReevalData) -> torch.Tensor | None:
        return self.holdout(data)[0]

    def on_train_start(self, model: nn.Module, ctx: TrainContext) -> None:
        self.initial = {
            m: [p.detach().cpu().clone() for p in getattr(model, f"{m}_encoder").parameters()] for m in MODALITIES
        }
        self.resets = 0

    def on_epoch_start(self, model: nn.Module, ctx: TrainContext) -> None:
        """Diagnose after the previous epoch (and its validation) when it is a diagnosis epoch."""
        done = ctx.epoch - 1
        self._logs = {}
        if done <= 0 or done % self.every != 0 or self.resets >= int(self.params["max_resets"]):
            return
        self.resets += 1
        k = len(ctx.data.classes)
        kept, held = self.holdout(ctx.data)
        train = self._features(model, ctx, kept)
        hold = self._features(model, ctx, held)
        self._logs["holdout_size"] = float(len(held))
        for i, m in enumerate(MODALITIES):
            p_train = cluster_purity(train[0][i], train[1], k)
            p_held = cluster_purity(hold[0][i], hold[1], k)
            w = reinit_weight(p_train, p_held, float(self.params["lam"]))
            soft_reset(list(getattr(model, f"{m}_encoder").parameters()), self.initial[m], w)
            self._logs.update(
                {
                    f"purity_train_{m}": p_train,
                    f"purity_heldout_{m}": p_held,
                    f"purity_gap_{m}": p_train - p_held,
                    f"reinit_{m}": w,
                }
            )

    @torch.no_grad()
    def _features(
        self, model: nn.Module, ctx: TrainContext, positions: torch.Tensor
    ) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
        """Encoder features (eval mode) and labels of ``positions`` of the training split."""
        model.eval()
        feats: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
        labels: list[np.ndarray] = []
        try:
            for batch in iter_batches(ctx.data.train, ctx.data, ctx.batch_size, ctx.device, order=positions):
                a, v = model.encode(batch.audio, batch.frames)
                feats[0].append(a.cpu().numpy())
                feats[1].append(v.cpu().numpy())
                labels.append(batch.labels.cpu().numpy())
        finally:
            model.train()
        a, v = np.concatenate(feats[0]), np.concatenate(feats[1])
        if not (np.isfinite(a).all() and np.isfinite(v).all()):
            raise MMCurateError(
                f"relearning: the encoder features became non-finite before the diagnosis at epoch {ctx.epoch} "
                "(the training diverged); lower --lr"
            )
        return (a, v), np.concatenate(labels)

    @classmethod
    def run_notes(cls, histories: list[list[dict[str, Any]]]) -> list[str]:
        sizes = {int(h["epoch_end_holdout_size"]) for hist in histories for h in hist if "epoch_end_holdout_size" in h}
        resets = [sum("epoch_end_reinit_audio" in h for h in hist) for hist in histories]
        if not sizes:
            return ["no diagnosis ran in this budget (the run is shorter than its first re-learning period)"]
        note = f"{max(resets)} diagnosis(es) per run on a hold-out of {min(sizes)} training clips"
        if min(sizes) < 100:
            note += (
                "; purity on so few clips is noisy (small sets reach high purity by chance), and so is the reset "
                "strength"
            )
        return [note]

    def on_epoch_end(self, model: nn.Module, ctx: TrainContext) -> dict[str, float]:
        return dict(self._logs)

    def state_dict(self) -> dict[str, Any]:
        return {"initial": self.initial, "resets": self.resets}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.initial = {m: [t.cpu() for t in ts] for m, ts in state["initial"].items()}
        self.resets = int(state["resets"])

"""Saved scorers: the out-of-fold models kept as a fold ensemble, so that new clips can be scored later.

Why: the uniform set is limited by its smallest bin; filling a bin means collecting more clips
and knowing their discrepancy *before* they join. Out-of-fold scores exist only for clips that
were cross-fitted, so ``mmcurate score`` keeps the models that made them: each fold's scorer of
the first repeat (a few of its averaged epochs' weights, :data:`KEEP_PER_MEMBER`), per modality
one file in ``INGEST/scorers/<scorer_id>/``::

    audio.pt, visual.pt   per kept checkpoint: the weights and the audio standardisation of the
                          fold model it belongs to; a new clip's confidence is the softmax
                          averaged over all of them (the fold ensemble)
    members/              one file per fold job, written as it finishes (a resumed run keeps them)
    scorer.json           config, class list, tensor config, calibration parameters, fingerprint

The ensemble costs no training: before, two more scorers trained on every sample (about 20 % of
the scoring time at 5 folds). It also matches the calibration: one temperature (and floor) per
modality fitted on *every* out-of-fold prediction of the scored set, each from a model trained on
(K-1)/K of the samples that had not seen the sample, as the ensemble's models have not seen a
candidate; a whole-set model trained on a fifth more data was more confident than the models
its calibration was fitted on.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmcurate.common.atomic import atomic_path, atomic_write_json
from mmcurate.common.errors import MMCurateError
from mmcurate.data import TensorConfig
from mmcurate.models import build_unimodal
from mmcurate.score.calibration import (
    METHODS,
    apply_floor,
    apply_temperature,
    fit_temperature,
    fit_temperature_floor,
    why_not_calibratable,
)
from mmcurate.score.train import FitResult, InMemorySource, Standardizer, predict
from mmcurate.store.io import read_json

MODALITIES = ("audio", "visual")
SCORER_META = "scorer.json"
#: what to run when the saved scorers are missing or unusable
FIX = "rerun `mmcurate score` on that folder with --save-scorers (the default)"


#: averaged epochs kept per fold model (evenly spaced, the last included): the ensemble's spread
#: comes mostly from its K models; more checkpoints add disk (0.7 MB each at width 8), not accuracy
KEEP_PER_MEMBER = 2


def model_file(folder: Path, modality: str) -> Path:
    return folder / f"{modality}.pt"


def member_file(folder: Path, modality: str, fold: int) -> Path:
    return folder / "members" / f"{modality}-fold{fold}.pt"


def save_member(path: Path, res: FitResult, modality: str, num_classes: int, width: int, seed: int) -> None:
    """One fold job's models (up to :data:`KEEP_PER_MEMBER` of its averaged epochs), atomically."""
    if res.checkpoints is None or res.audio_stats is None:
        raise ValueError("save_member needs a FitResult trained with keep_window=True")
    n = len(res.checkpoints)
    keep = sorted({round(i * (n - 1) / max(1, KEEP_PER_MEMBER - 1)) for i in range(min(n, KEEP_PER_MEMBER))})
    payload = {
        "modality": modality,
        "num_classes": num_classes,
        "width": width,
        "seed": seed,
        "epochs": [int(res.epochs[i]) for i in keep],
        "audio_stats": [float(res.audio_stats[0]), float(res.audio_stats[1])],
        "checkpoints": [{k: torch.from_numpy(v) for k, v in res.checkpoints[i].items()} for i in keep],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # through a file object: given a path, torch.save names the archive's folder after the (random)
    # temporary file, and two identical runs would write different bytes
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(payload, fh)


def merge_members(folder: Path, modality: str, folds: Any) -> None:
    """Join the fold files of one modality into ``<modality>.pt`` (the ensemble :func:`load_scorer` reads)."""
    members = [torch.load(member_file(folder, modality, k), map_location="cpu", weights_only=True) for k in folds]
    payload = {
        "modality": modality,
        "num_classes": members[0]["num_classes"],
        "width": members[0]["width"],
        "seeds": [m["seed"] for m in members],
        "checkpoints": [c for m in members for c in m["checkpoints"]],
        "audio_stats": [m["audio_stats"] for m in members for _ in m["checkpoints"]],
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    target = model_file(folder, modality)
    if target.is_file() and target.read_bytes() == buf.getvalue():
        return  # a resumed run: the ensemble is already there, untouched
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        fh.write(buf.getvalue())


def calibration_params(raw: np.ndarray, y: np.ndarray, method: str) -> dict[str, Any]:
    """Temperature (and floor) fitted on every out-of-fold prediction of one modality: the
    calibration new clips get. ``{"method": "none", "reason": ...}`` when none can be fitted."""
    if method == "none":
        return {"method": "none", "reason": "calibration switched off (--calibration none)"}
    why = why_not_calibratable(raw, y)
    if why is not None:
        return {"method": "none", "reason": why}
    if method == "floor":
        t, a = fit_temperature_floor(raw, y)
        return {"method": method, "temperature": t, "floor": a}
    return {"method": method, "temperature": fit_temperature(raw, y), "floor": 0.0}


def apply_calibration(probs: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """The calibration of :func:`calibration_params` applied to (n, C) probabilities."""
    if params.get("method") == "none":
        return np.asarray(probs, dtype=np.float64)
    if params.get("method") not in METHODS:
        raise MMCurateError(f"unknown calibration method {params.get('method')!r} in {SCORER_META}; {FIX}")
    return apply_floor(apply_temperature(probs, float(params["temperature"])), float(params.get("floor", 0.0)))


def write_scorer_meta(folder: Path, meta: dict[str, Any]) -> None:
    atomic_write_json(folder / SCORER_META, meta)


@dataclass
class SavedScorer:
    """A scorer folder read back: its ``scorer.json`` and one loaded model state per modality."""

    folder: Path
    meta: dict[str, Any]
    models: dict[str, dict[str, Any]]

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def tensor_config(self) -> TensorConfig:
        return TensorConfig.from_dict(dict(self.meta["tensor_config"]))

    def predict(
        self, source: InMemorySource, device: torch.device, frame_norm: str = "frame"
    ) -> tuple[np.ndarray, np.ndarray]:
        """(probs (n, C) averaged over the saved checkpoints of every fold model, per-checkpoint
        softmax (W, n, C)) of one modality's ensemble on every row of ``source``."""
        saved = self.models[source.modality]
        model = build_unimodal(source.modality, int(saved["num_classes"]), int(saved["width"])).to(device)
        idx = torch.arange(len(source.labels()), dtype=torch.int64)
        per_checkpoint = []
        for state, (mean, std) in zip(saved["checkpoints"], saved["audio_stats"]):
            model.load_state_dict(state)
            stats = Standardizer(float(mean), float(std), frame_norm)
            per_checkpoint.append(predict(model, source, idx, device, stats).double().numpy())
        stacked = np.stack(per_checkpoint)
        return stacked.mean(axis=0), stacked


def load_scorer(folder: Path) -> SavedScorer:
    """The saved scorer in ``folder`` (one-line errors naming the file when missing or damaged)."""
    meta = read_json(folder / SCORER_META, what="the saved scorer's description", fix=FIX)
    if not isinstance(meta, dict) or not all(k in meta for k in ("classes", "tensor_config", "calibration")):
        raise MMCurateError(
            f"{folder / SCORER_META}: not a saved-scorer description (classes, tensor_config, "
            f"calibration missing); {FIX}"
        )
    models: dict[str, dict[str, Any]] = {}
    for m in MODALITIES:
        path = model_file(folder, m)
        try:  # weights only: tensors, numbers, strings, lists, dicts; a pickle that would run code is refused
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise MMCurateError(f"{path}: saved scorer missing; {FIX}") from None
        except pickle.UnpicklingError:
            raise MMCurateError(
                f"{path}: not a plain weights file (it holds objects that loading would execute); refusing to load "
                f"it; {FIX}"
            ) from None
        except Exception as exc:  # torch raises many types for a damaged file
            raise MMCurateError(f"{path}: unreadable saved scorer ({type(exc).__name__}); {FIX}") from None
        if not _is_scorer_file(loaded, len(meta["classes"])):
            raise MMCurateError(
                f"{path}: not a saved scorer for {len(meta['classes'])} classes (checkpoints of weights, width, "
                f"audio statistics); {FIX}"
            )
        models[m] = loaded
    return SavedScorer(folder, meta, models)


def _is_scorer_file(doc: Any, num_classes: int) -> bool:
    """Whether a loaded scorer file has the shape :func:`merge_members` writes (a crafted file of the right types
    must not reach model building with absurd sizes)."""
    if not isinstance(doc, dict) or doc.get("num_classes") != num_classes:
        return False
    width, stats, checkpoints = doc.get("width"), doc.get("audio_stats"), doc.get("checkpoints")
    return (
        isinstance(width, int)
        and 1 <= width <= 4096
        and isinstance(checkpoints, list)
        and bool(checkpoints)
        and isinstance(stats, (list, tuple))
        and len(stats) == len(checkpoints)  # one (mean, std) per checkpoint: its fold model's standardisation
        and all(
            isinstance(s, (list, tuple)) and len(s) == 2 and all(isinstance(x, (int, float)) for x in s) for s in stats
        )
        and all(
            isinstance(c, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in c.items())
            for c in checkpoints
        )
    )

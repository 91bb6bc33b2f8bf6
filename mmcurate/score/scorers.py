"""Whole-set scorers: models trained on every sample, saved so that new clips can be scored later.

Why: the uniform set is limited by its smallest bin; filling a bin means collecting more clips
and knowing their discrepancy *before* they join. Out-of-fold scores exist only for clips that
were cross-fitted, so ``mmcurate score`` also trains one scorer per modality on all samples (same
settings, a seed derived from the config seed) and keeps it in ``INGEST/scorers/<scorer_id>/``::

    audio.pt, visual.pt   the weights after each averaged epoch (the confidence is the softmax
                          averaged over them, as for the out-of-fold scores), the audio
                          standardisation, the resolved tensor config
    scorer.json           config, class list, tensor config, calibration parameters, fingerprint

The calibration of new clips is fitted out-of-fold: one temperature (and floor) per modality on
*every* out-of-fold prediction of the scored set, with the method the scores used. Every one of
those predictions came from a model that had not seen the sample, as a candidate's prediction
comes from a model that has not seen the candidate. (The whole-set model trains on all folds, a
fifth more data than each out-of-fold model at 5 folds, so it may be a little more confident than
the models the calibration was fitted on; the parameters are kept as fitted rather than guessed.)
"""

from __future__ import annotations

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


def model_file(folder: Path, modality: str) -> Path:
    return folder / f"{modality}.pt"


def save_model(
    path: Path, res: FitResult, modality: str, num_classes: int, width: int, tensor_config: TensorConfig, seed: int
) -> None:
    """One modality's whole-set scorer (the averaged epochs' weights) as a torch file, atomically."""
    if res.checkpoints is None or res.audio_stats is None:
        raise ValueError("save_model needs a FitResult trained with keep_window=True")
    payload = {
        "modality": modality,
        "num_classes": num_classes,
        "width": width,
        "seed": seed,
        "epochs": [int(e) for e in res.epochs],
        "audio_stats": [float(res.audio_stats[0]), float(res.audio_stats[1])],
        "tensor_config": tensor_config.to_dict(),
        "checkpoints": res.checkpoints,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # through a file object: given a path, torch.save names the archive's folder after the (random)
    # temporary file, and two identical runs would write different bytes
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(payload, fh)


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

    def predict(self, source: InMemorySource, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
        """(probs (n, C) averaged over the saved checkpoints, per-checkpoint softmax (W, n, C))
        of one modality's model on every row of ``source``."""
        saved = self.models[source.modality]
        model = build_unimodal(source.modality, int(saved["num_classes"]), int(saved["width"])).to(device)
        stats = Standardizer(*saved["audio_stats"])
        idx = torch.arange(len(source.labels()), dtype=torch.int64)
        per_checkpoint = []
        for state in saved["checkpoints"]:
            model.load_state_dict(state)
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
    """Whether a loaded scorer file has the shape :func:`save_model` writes (a crafted file of the right types
    must not reach model building with absurd sizes)."""
    if not isinstance(doc, dict) or doc.get("num_classes") != num_classes:
        return False
    width, stats, checkpoints = doc.get("width"), doc.get("audio_stats"), doc.get("checkpoints")
    return (
        isinstance(width, int)
        and 1 <= width <= 4096
        and isinstance(stats, (list, tuple))
        and len(stats) == 2
        and all(isinstance(x, (int, float)) for x in stats)
        and isinstance(checkpoints, list)
        and bool(checkpoints)
        and all(
            isinstance(c, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in c.items())
            for c in checkpoints
        )
    )

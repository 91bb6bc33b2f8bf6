"""``mmcurate score INGEST_DIR --candidates NEW_INGEST_DIR``: new clips scored by the saved fold ensemble.

The candidates' confidences come from the scorers ``mmcurate score`` trained on every sample of
INGEST_DIR (:mod:`mmcurate.score.scorers`), averaged over the same checkpoints, calibrated with
the parameters fitted on INGEST_DIR's out-of-fold predictions, so their ``d`` is on the scale of
the out-of-fold ``d`` they will be balanced with. They are *not* out-of-fold scores of the
candidates' own set (no model was cross-fitted on them): scores.json says so (``source:
"candidates"``, ``out_of_fold: false``), and so do the summary and the card of a balanced set
that uses them. Per-sample uncertainty is the spread across the saved checkpoints, computed as
for one out-of-fold repeat (scaled by the source's fitted run-to-epoch variance ratio).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from mmcurate import __version__
from mmcurate.common.console import info
from mmcurate.common.errors import MMCurateError
from mmcurate.data import build_av_tensors, read_shards
from mmcurate.execution.device import resolve_device
from mmcurate.score.assemble import DEFAULT_EDGES, Assembled
from mmcurate.score.calibration import apply_temperature, calibration_slope
from mmcurate.score.config import ScoreConfig
from mmcurate.score.scorers import FIX, SCORER_META, SavedScorer, apply_calibration, load_scorer
from mmcurate.score.table import MODALITIES, ScoreResult, check_modalities, scores_table
from mmcurate.score.train import InMemorySource
from mmcurate.score.uncertainty import bin_probability, confidence_std, discrepancy_std
from mmcurate.store import IngestDir

#: what scores.json, the summary and the card say about these scores
NOT_OUT_OF_FOLD = (
    "not out-of-fold: scored by the fold ensemble of another ingest folder's scoring, models that never saw these "
    "clips, with that folder's out-of-fold calibration"
)


def saved_scorer_for(source: IngestDir) -> SavedScorer:
    """The saved fold ensemble that belongs to ``source``'s current out-of-fold scores."""
    meta = source.read_scores_meta()
    if meta.get("source") != "oof" or not meta.get("scorer_id"):
        raise MMCurateError(
            f"{source.path}: --candidates needs out-of-fold scores made by the built-in scorer there "
            f"(scores.json source is {meta.get('source')!r}); {FIX}"
        )
    folder = source.scorers(str(meta["scorer_id"]))
    if not (folder / SCORER_META).is_file():
        raise MMCurateError(f"{folder}: no saved scorers for the scores of {source.path}; {FIX}")
    saved = load_scorer(folder)
    if saved.meta.get("manifest_fingerprint") != source.fingerprint():
        raise MMCurateError(
            f"{folder / SCORER_META}: these scorers were trained on other data than {source.path} holds "
            f"now (its manifest changed); {FIX}"
        )
    return saved


def check_classes(candidates: IngestDir, saved: SavedScorer) -> list[str]:
    """The candidates' class list, which must equal the scorer's exactly (same names, same order)."""
    classes = candidates.read_classes()
    if classes != saved.classes:
        extra = sorted(set(classes) - set(saved.classes))
        missing = sorted(set(saved.classes) - set(classes))
        why = (f"not in the scorer's: {extra[:5]}; " if extra else "") + (
            f"missing: {missing[:5]}; " if missing else ""
        ) or "same names in another order; "
        raise MMCurateError(
            f"{candidates.file(IngestDir.CLASSES)}: class list differs from the saved scorer's "
            f"({saved.folder / SCORER_META}): {why}candidates must have exactly the scorer's classes, in order "
            "(ingest them with --classes)"
        )
    return classes


def candidate_columns(
    probs: dict[str, np.ndarray],
    per_checkpoint: dict[str, np.ndarray],
    y: np.ndarray,
    calibration: dict[str, dict[str, Any]],
    epoch_ratio: dict[str, float],
) -> Assembled:
    """The score columns of new clips (as :func:`mmcurate.score.assemble.assemble_scores` gives for
    out-of-fold ones), from each modality's checkpoint-averaged softmax ``probs`` (n, C) and the
    per-checkpoint softmax (W, n, C). Pure function of arrays."""
    rows = np.arange(len(y))
    cols: dict[str, np.ndarray] = {}
    metrics: dict[str, Any] = {"calibration": {}, "uncertainty": {}}
    for m in MODALITIES:
        params = calibration[m]
        raw, window = probs[m], per_checkpoint[m][:, rows, y]
        cal = apply_calibration(raw, params)
        raw_true, cal_true = raw[rows, y], cal[rows, y]
        if len(window) > 1:
            std = confidence_std(window.mean(axis=0)[None], window.var(axis=0, ddof=1)[None], float(epoch_ratio[m]))
        else:
            std = np.full(len(y), np.nan)  # one checkpoint: no spread to measure
        if params["method"] != "none":
            t, a = float(params["temperature"]), float(params.get("floor", 0.0))
            std = std * calibration_slope(raw_true, apply_temperature(raw, t)[rows, y], np.full(len(y), t), a)
        cols[f"p_{m}"], cols[f"p_{m}_uncalibrated"], cols[f"p_{m}_std"], cols[f"probs_{m}"] = (
            cal_true,
            raw_true,
            std,
            cal,
        )
        metrics["calibration"][m] = {**params, "from": SCORER_META}
        metrics[f"accuracy_{m}"] = round(float((raw.argmax(1) == y).mean()), 4) if len(y) else None
    d = cols["p_audio"] - cols["p_visual"]
    d_std = discrepancy_std(cols["p_audio_std"], cols["p_visual_std"])
    cols["discrepancy"], cols["discrepancy_std"] = d, d_std
    cols["bin_probability"] = bin_probability(d, d_std, DEFAULT_EDGES)
    return Assembled(cols, metrics)


def score_candidates(
    source: IngestDir, candidates: IngestDir, cfg: ScoreConfig, allow_missing: bool = False
) -> ScoreResult:
    """Score every clip of ``candidates`` with ``source``'s saved scorers; write the candidates' scores."""
    t0 = time.monotonic()
    if candidates.path.resolve() == source.path.resolve():
        raise MMCurateError(f"{candidates.path}: --candidates must be another ingest folder than the scored one")
    saved = saved_scorer_for(source)
    classes = check_classes(candidates, saved)
    manifest = candidates.read_manifest()
    check_modalities(manifest, allow_missing)
    sample_ids = manifest.column("sample_id").to_pylist()
    labels = manifest.column("label").to_pylist()
    index = {c: i for i, c in enumerate(classes)}
    y = np.asarray([index[label] for label in labels], dtype=np.int64)
    device = resolve_device(cfg.device)
    scorer_id = str(saved.meta["scorer_id"])
    info(
        f"score: {len(sample_ids)} candidates from {candidates.path} with the saved fold ensemble {saved.folder} "
        f"on {device} ({NOT_OUT_OF_FOLD})"
    )
    tensors = build_av_tensors(
        read_shards(candidates.path, sample_ids),
        classes,
        saved.tensor_config,
        workers=max(1, cfg.workers or torch.get_num_threads()),
    )
    probs, per_checkpoint = {}, {}
    for m in MODALITIES:
        frame_norm = str((saved.meta.get("config") or {}).get("frame_norm", "frame"))
        probs[m], per_checkpoint[m] = saved.predict(InMemorySource(tensors, m), device, frame_norm)
    assembled = candidate_columns(
        probs,
        per_checkpoint,
        y,
        saved.meta["calibration"],
        saved.meta.get("epoch_ratio") or {m: 1.0 for m in MODALITIES},
    )
    table, metrics = scores_table(sample_ids, labels, classes, y, np.full(len(y), -1), assembled, scorer_id)
    metrics["candidates"] = "candidates, not out-of-fold: a fold ensemble that never saw these clips"
    elapsed = time.monotonic() - t0
    candidates.write_scores(
        table,
        {
            "source": "candidates",
            "out_of_fold": False,
            "note": NOT_OUT_OF_FOLD,
            "scorer_id": scorer_id,
            "scorer_dir": str(saved.folder.resolve()),
            "scored_ingest": str(source.path.resolve()),
            "scored_manifest_fingerprint": saved.meta.get("manifest_fingerprint"),
            "calibration": saved.meta["calibration"],
            "config": saved.meta.get("config"),
            "tensor_config": saved.meta["tensor_config"],
            "device": str(device),
            "manifest_fingerprint": candidates.fingerprint(),
            "mmcurate_version": __version__,
            "torch_version": torch.__version__,
            "metrics": metrics,
            "elapsed_seconds": round(elapsed, 2),
        },
    )
    return ScoreResult(candidates.path, scorer_id, str(device), elapsed, metrics)

"""``mmcurate score``: out-of-fold unimodal confidences and the per-sample discrepancy.

For each of K stratified folds, an audio-only and a visual-only classifier train on the other
folds and score the held-out one. With ``repeats`` > 1 the whole cross-fitting is repeated
with other fold assignments and seeds and the held-out probabilities are averaged (repeated
cross-fitting): every confidence is still out-of-fold, with less model-to-model noise. Each (fold, modality) result is saved as soon as it exists
(``score_runs/<scorer>/``), so an interrupted run resumes where it stopped, and the final
``scores.parquet`` is written atomically once every sample has both confidences. Calibration,
per-sample uncertainty and bin probability are assembled from the jobs' arrays by the pure
functions of :mod:`mmcurate.score.assemble`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from mmcurate import __version__
from mmcurate.common.atomic import atomic_path, atomic_write_json
from mmcurate.common.console import info, progress_bar, summary_table
from mmcurate.common.errors import MMCurateError
from mmcurate.common.hashing import config_hash
from mmcurate.data import AVDataset, TensorConfig, build_av_tensors, read_shards
from mmcurate.ingest import read_classes, read_manifest, require_ingest
from mmcurate.schemas import SCORES_SCHEMA
from mmcurate.score.assemble import Assembled, ModalityRuns, assemble_scores
from mmcurate.score.config import ScoreConfig
from mmcurate.score.folds import check_fold_feasible, group_folds, stratified_folds
from mmcurate.score.train import FitResult, InMemorySource, StreamingSource, fit_predict

SCORES = "scores.parquet"
SCORES_META = "scores.json"
RUNS = "score_runs"
MODALITIES = ("audio", "visual")


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when present, else CPU; an explicit CUDA request without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise MMCurateError(f"--device {name} requested but no CUDA GPU is available; use --device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise MMCurateError(f"--device {name!r} is not a device torch knows (use auto, cpu, cuda, cuda:1)") from None


def manifest_fingerprint(ingest_dir: Path) -> str:
    """Identity of the ingested data that scores belong to: ingest settings + every sample's id,
    source hash and label. Scores are stale when it changes."""
    table = read_manifest(ingest_dir).select(["sample_id", "sha256", "label"])
    try:
        ingest_identity = json.loads((ingest_dir / "config.json").read_text())["identity_hash"]
    except (OSError, KeyError, json.JSONDecodeError):
        ingest_identity = None
    return config_hash([ingest_identity, table.to_pydict()], length=16)


def scores_state(ingest_dir: Path, cfg: ScoreConfig | None = None) -> str:
    """``"fresh"``, ``"missing"`` or ``"stale: <why>"`` for the scores in ``ingest_dir``.

    With ``cfg``, scores made by another scorer config count as stale; imported scores are fresh
    as long as the data is unchanged.
    """
    meta_path = ingest_dir / SCORES_META
    if not (ingest_dir / SCORES).is_file() or not meta_path.is_file():
        return "missing"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError):
        return "stale: scores.json is unreadable"
    if meta.get("manifest_fingerprint") != manifest_fingerprint(ingest_dir):
        return "stale: the ingested data changed since scoring"
    if cfg is not None and meta.get("source") == "oof":
        on_gpu = meta.get("device", "cpu").startswith("cuda")
        want = cfg.resolved(on_gpu).content_hash()
        if meta.get("config_hash") != want:
            return "stale: scored with different scorer settings"
    return "fresh"


@dataclass
class ScoreResult:
    ingest_dir: Path
    scorer_id: str
    device: str
    elapsed: float
    metrics: dict[str, Any] = field(default_factory=dict)


def run_score(ingest_dir: Path, cfg: ScoreConfig, overwrite: bool = False, allow_missing: bool = False) -> ScoreResult:
    """Score every sample of a finished ingest out-of-fold; write scores.parquet + scores.json."""
    t0 = time.monotonic()
    require_ingest(ingest_dir)
    device = resolve_device(cfg.device)
    cfg = cfg.resolved(device.type == "cuda")
    manifest = read_manifest(ingest_dir)
    classes = read_classes(ingest_dir)
    labels = manifest.column("label").to_pylist()
    sample_ids = manifest.column("sample_id").to_pylist()
    _check_modalities(manifest, allow_missing)
    check_fold_feasible(labels, cfg.folds)
    repeats = int(cfg.repeats or 1)
    fold_sets = [_folds(cfg, labels, manifest.column("group").to_pylist(), r) for r in range(repeats)]
    folds = fold_sets[0]

    scorer_id = cfg.scorer_id()
    run_dir = ingest_dir / RUNS / scorer_id
    fingerprint = manifest_fingerprint(ingest_dir)
    if overwrite and run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    why = "GPU found" if device.type == "cuda" else "no GPU found: CPU-sized models"
    info(
        f"score: {len(sample_ids)} samples, {len(classes)} classes, {cfg.folds} folds x 2 modalities"
        f"{f' x {repeats} repeats' if repeats > 1 else ''} on {device} "
        f"({why}: ResNet-18 width {cfg.width}, {cfg.image_size} px frames, {cfg.epochs} epochs, "
        f"confidence averaged over the last {cfg.avg_last})"
    )
    table = read_shards(ingest_dir, sample_ids)
    tcfg = TensorConfig(
        image_size=int(cfg.image_size or 32), num_frames=cfg.num_frames, audio=cfg.audio_features, audio_frames=cfg.audio_frames
    )
    workers = max(1, cfg.workers or torch.get_num_threads())
    need_gb = decoded_size_gb(len(sample_ids), tcfg)
    sources = {}
    if need_gb <= cfg.memory_budget_gb:
        tensors = build_av_tensors(table, classes, tcfg, workers=workers)
        label_idx = tensors.labels
        n_frames = int(tensors.frames.shape[1])
        for m in MODALITIES:
            sources[m] = InMemorySource(tensors, m)
        del table
    else:
        info(
            f"score: decoded inputs would take about {need_gb:.1f} GB (> --memory-budget-gb {cfg.memory_budget_gb:g}); "
            f"decoding per batch with {workers} loader worker(s) instead"
        )
        dataset = AVDataset(table, classes, tcfg)
        index = {c: i for i, c in enumerate(classes)}
        label_idx = torch.tensor([index[lbl] for lbl in labels], dtype=torch.int64)
        n_frames = tcfg.num_frames
        for m in MODALITIES:
            sources[m] = StreamingSource(dataset, label_idx, m, workers)
    n, window = len(sample_ids), int(cfg.avg_last or 1)
    runs = {m: ModalityRuns([np.zeros((n, len(classes))) for _ in range(repeats)],
                            [np.zeros((window, n)) for _ in range(repeats)]) for m in MODALITIES}
    fold_stats: list[dict[str, Any]] = []
    jobs = [(r, k, m) for r in range(repeats) for k in range(cfg.folds) for m in MODALITIES]
    with progress_bar("training scorers (repeat x fold x modality)", len(jobs)) as advance:
        for r, k, modality in jobs:
            held = np.flatnonzero(fold_sets[r] == k)
            train = np.flatnonzero(fold_sets[r] != k)
            part = run_dir / (f"fold{k}-{modality}.npz" if r == 0 else f"repeat{r}-fold{k}-{modality}.npz")
            cached = _load_part(part, fingerprint, held)
            started = time.monotonic()
            if cached is None:
                seed = cfg.seed * 1000 + r * 100 + k * 10 + MODALITIES.index(modality)
                res = fit_predict(sources[modality], train, held, len(classes), cfg, seed, device, n_frames)
                _save_part(part, res, held, fingerprint)
            else:
                res = cached
            runs[modality].probs[r][held] = res.probs
            runs[modality].window_true[r][:, held] = res.held_true
            acc = float((res.probs.argmax(1) == label_idx.numpy()[held]).mean())
            fold_stats.append(
                {"repeat": r, "fold": k, "modality": modality, "held_out": int(len(held)), "accuracy": round(acc, 4),
                 "seconds": round(time.monotonic() - started, 2), "resumed": cached is not None}
            )
            advance()

    y = label_idx.numpy()
    assembled = assemble_scores(y, folds, runs, cfg.calibration)
    table_out, metrics = _scores_table(sample_ids, labels, classes, y, folds, assembled, scorer_id)
    for m, cal in metrics["calibration"].items():
        if cal["method"] == "none":
            info(f"score: {m} confidences are written uncalibrated: {cal['reason']}")
    with atomic_path(ingest_dir / SCORES) as tmp:
        pq.write_table(table_out, tmp, compression="zstd")
    elapsed = time.monotonic() - t0
    metrics["folds"] = fold_stats
    atomic_write_json(
        ingest_dir / SCORES_META,
        {
            "source": "oof",
            "scorer_id": scorer_id,
            "config": cfg.content_dict(),
            "config_hash": cfg.content_hash(),
            "tensor_config": tcfg.to_dict(),
            "device": str(device),
            "manifest_fingerprint": fingerprint,
            "mmcurate_version": __version__,
            "torch_version": torch.__version__,
            "metrics": metrics,
            "elapsed_seconds": round(elapsed, 2),
        },
    )
    return ScoreResult(ingest_dir, scorer_id, str(device), elapsed, metrics)


def _folds(cfg: ScoreConfig, labels: list[str], groups: list[str | None], repeat: int) -> np.ndarray:
    """Fold assignment of one cross-fitting repeat (repeat 0 uses the seed itself)."""
    seed = cfg.seed + 7919 * repeat
    if cfg.group_folds:
        return group_folds(labels, groups, cfg.folds, seed)
    return stratified_folds(labels, cfg.folds, seed)


def _check_modalities(manifest: pa.Table, allow_missing: bool) -> None:
    for col, name in (("has_audio", "audio"), ("has_video", "video")):
        missing = [sid for sid, ok in zip(manifest.column("sample_id").to_pylist(), manifest.column(col).to_pylist()) if not ok]
        if missing and not allow_missing:
            raise MMCurateError(
                f"{len(missing)} samples have no {name} (e.g. {missing[0]}); their confidence would score the "
                "zero-fill, not the data. Re-ingest with --missing-modality reject, or pass --allow-missing to score them anyway"
            )


def decoded_size_gb(n: int, tcfg: TensorConfig) -> float:
    """Upper bound of the memory the decoded set takes (frames uint8, audio float32)."""
    frame_bytes = tcfg.num_frames * 3 * tcfg.image_size**2
    audio_bytes = 4 * tcfg.audio.num_bins * (tcfg.audio_frames or tcfg.max_audio_frames)
    return n * (frame_bytes + audio_bytes) / 1e9


def _load_part(path: Path, fingerprint: str, held: np.ndarray) -> FitResult | None:
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            if str(z["fingerprint"]) != fingerprint or not np.array_equal(z["held"], held):
                return None
            return FitResult(np.array(z["probs"]), np.array(z["held_true"]), np.array(z["epochs"]),
                             np.array(z["train_true"]), np.array(z["losses"]))
    except (OSError, KeyError, ValueError):
        return None


def _save_part(path: Path, res: FitResult, held: np.ndarray, fingerprint: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, probs=res.probs, held_true=res.held_true, epochs=res.epochs, train_true=res.train_true,
                     losses=res.losses, held=held, fingerprint=np.array(fingerprint))


def _entropy(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-12, 1.0)
    return -(p * np.log(q)).sum(axis=1)


def _scores_table(
    sample_ids: list[str], labels: list[str], classes: list[str], y: np.ndarray, folds: np.ndarray,
    assembled: Assembled, scorer_id: str,
) -> tuple[pa.Table, dict[str, Any]]:
    c = assembled.columns
    probs = {m: c[f"probs_{m}"] for m in MODALITIES}
    pa_, pv, d = c["p_audio"], c["p_visual"], c["discrepancy"]
    preferred = np.where(d > 0, "audio", np.where(d < 0, "visual", "tie"))
    cls = np.asarray(classes, dtype=object)
    table = pa.Table.from_pydict(
        {
            "sample_id": sample_ids,
            "label": labels,
            "fold": folds.astype(np.int32),
            "p_audio": pa_,
            "p_visual": pv,
            "discrepancy": d,
            "preferred": preferred.tolist(),
            "pred_audio": cls[probs["audio"].argmax(1)].tolist(),
            "pred_visual": cls[probs["visual"].argmax(1)].tolist(),
            "entropy_audio": _entropy(probs["audio"]),
            "entropy_visual": _entropy(probs["visual"]),
            "scorer_id": [scorer_id] * len(y),
            **{k: pa.array(c[k], pa.float64(), from_pandas=True)  # NaN (no uncertainty) -> null
               for k in ("p_audio_uncalibrated", "p_visual_uncalibrated", "p_audio_std", "p_visual_std",
                         "discrepancy_std", "bin_probability")},
        },
        schema=SCORES_SCHEMA,
    )
    metrics = {**summarize(table), **assembled.metrics}
    return table, metrics


def summarize(scores: pa.Table) -> dict[str, Any]:
    """Headline numbers of a scores table (shared with ``mmcurate report``)."""
    d = np.asarray(scores.column("discrepancy").to_numpy(zero_copy_only=False), dtype=float)
    return {
        "samples": int(len(d)),
        "share_audio_preferred": round(float((d > 0).mean()), 4) if len(d) else None,
        "share_visual_preferred": round(float((d < 0).mean()), 4) if len(d) else None,
        "mean_discrepancy": round(float(d.mean()), 4) if len(d) else None,
        "mean_abs_discrepancy": round(float(np.abs(d).mean()), 4) if len(d) else None,
        "mean_p_audio": round(float(np.mean(scores.column("p_audio").to_numpy())), 4) if len(d) else None,
        "mean_p_visual": round(float(np.mean(scores.column("p_visual").to_numpy())), 4) if len(d) else None,
    }


def read_scores(ingest_dir: Path) -> pa.Table:
    """The scores of an ingest folder (error naming the command to run when missing)."""
    path = ingest_dir / SCORES
    if not path.is_file():
        raise MMCurateError(f"no scores in {ingest_dir}; run `mmcurate score` first")
    return pq.read_table(path)


def print_summary(result: ScoreResult) -> None:
    m = result.metrics
    rows = [
        ["scorer", result.scorer_id],
        ["device", result.device],
        ["samples", m.get("samples")],
        ["out-of-fold accuracy, audio", m.get("oof_accuracy_audio")],
        ["out-of-fold accuracy, visual", m.get("oof_accuracy_visual")],
        ["mean p_audio / p_visual", f"{m.get('mean_p_audio')} / {m.get('mean_p_visual')}"],
        ["audio-preferred share", m.get("share_audio_preferred")],
        ["mean |d|", m.get("mean_abs_discrepancy")],
        ["wall time (s)", round(result.elapsed, 1)],
    ]
    summary_table(f"score -> {result.ingest_dir / SCORES}", ["", "value"], rows)


def write_external_scores(ingest_dir: Path, table: pa.Table, scorer_id: str, source: str, details: dict[str, Any]) -> ScoreResult:
    """Write validated external scores (``--scores-from`` or a registered scorer) with provenance."""
    with atomic_path(ingest_dir / SCORES) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    metrics = summarize(table)
    atomic_write_json(
        ingest_dir / SCORES_META,
        {
            "source": source,
            "scorer_id": scorer_id,
            "manifest_fingerprint": manifest_fingerprint(ingest_dir),
            "mmcurate_version": __version__,
            "metrics": metrics,
            **details,
        },
    )
    return ScoreResult(ingest_dir, scorer_id, "n/a", 0.0, metrics)

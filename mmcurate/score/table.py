"""The scores table: its columns (one documented schema, :data:`mmcurate.store.schemas.SCORES_SCHEMA`), its
headline numbers and end-of-run summary, shared by the out-of-fold scores (:mod:`mmcurate.score.runner`), the
candidates' (:mod:`mmcurate.score.candidates`) and imported or plugin scores.

Kept apart from the runner so that :mod:`~mmcurate.score.candidates`, which the runner calls for
``--candidates``, takes nothing from the runner: the two would otherwise import each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mmcurate import __version__
from mmcurate.common.console import summary_table
from mmcurate.common.errors import MMCurateError
from mmcurate.score.assemble import Assembled, both_weak_threshold
from mmcurate.store import IngestDir
from mmcurate.store.schemas import SCORES_SCHEMA

MODALITIES = ("audio", "visual")


@dataclass
class ScoreResult:
    ingest_dir: Path
    scorer_id: str
    device: str
    elapsed: float
    metrics: dict[str, Any] = field(default_factory=dict)
    finished: bool = True
    #: the scores' self-check (:func:`mmcurate.score.health.check_scores`); None when not checked
    health: dict[str, Any] | None = None

    @property
    def scores_path(self) -> Path:
        return self.ingest_dir / IngestDir.SCORES


def check_modalities(manifest: pa.Table, allow_missing: bool) -> None:
    for col, name in (("has_audio", "audio"), ("has_video", "video")):
        missing = [
            sid
            for sid, ok in zip(manifest.column("sample_id").to_pylist(), manifest.column(col).to_pylist())
            if not ok
        ]
        if missing and not allow_missing:
            raise MMCurateError(
                f"{len(missing)} samples have no {name} (e.g. {missing[0]}); their confidence would score the "
                "zero-fill, not the data. Re-ingest with --missing-modality reject, "
                "or pass --allow-missing to score them anyway"
            )


def _entropy(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-12, 1.0)
    return -(p * np.log(q)).sum(axis=1)


def scores_table(
    sample_ids: list[str],
    labels: list[str],
    classes: list[str],
    y: np.ndarray,
    folds: np.ndarray,
    assembled: Assembled,
    scorer_id: str,
) -> tuple[pa.Table, dict[str, Any]]:
    c = assembled.columns
    probs = {m: c[f"probs_{m}"] for m in MODALITIES}
    pa_, pv, d = c["p_audio"], c["p_visual"], c["discrepancy"]
    preferred = np.where(d > 0, "audio", np.where(d < 0, "visual", "tie"))
    cls = np.asarray(classes, dtype=object)
    weak = both_weak_threshold(len(classes))
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
            **{
                k: pa.array(c[k], pa.float64(), from_pandas=True)  # NaN (no uncertainty) -> null
                for k in (
                    "p_audio_uncalibrated",
                    "p_visual_uncalibrated",
                    "p_audio_std",
                    "p_visual_std",
                    "discrepancy_std",
                    "bin_probability",
                )
            },
            "both_weak": (pa_ < weak) & (pv < weak),
        },
        schema=SCORES_SCHEMA,
    )
    metrics = {**summarize(table), **assembled.metrics}
    metrics["both_weak"] = {"threshold": round(weak, 4), "count": int(((pa_ < weak) & (pv < weak)).sum())}
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
    return IngestDir(ingest_dir).read_scores()


def print_summary(result: ScoreResult) -> None:
    m = result.metrics
    kind = "out-of-fold" if "candidates" not in m else "fold ensemble"
    rows = [
        ["scorer", result.scorer_id],
        ["device", result.device],
        ["samples", m.get("samples")],
        *([["scores", m["candidates"]]] if "candidates" in m else []),
        [f"{kind} accuracy, audio", m.get("oof_accuracy_audio", m.get("accuracy_audio"))],
        [f"{kind} accuracy, visual", m.get("oof_accuracy_visual", m.get("accuracy_visual"))],
        *_health_rows(result.health),
        ["mean p_audio / p_visual", f"{m.get('mean_p_audio')} / {m.get('mean_p_visual')}"],
        *([["both weak (d means little)", m["both_weak"]["count"]]] if "both_weak" in m else []),
        ["audio-preferred share", m.get("share_audio_preferred")],
        ["mean |d|", m.get("mean_abs_discrepancy")],
        ["wall time (s)", round(result.elapsed, 1)],
    ]
    summary_table(f"score -> {result.scores_path}", ["", "value"], rows)


def _health_rows(health: dict[str, Any] | None) -> list[list[Any]]:
    """Per modality: accuracy (95 % interval) against chance, and the self-check's verdict."""
    if not health:
        return []
    rows = []
    for m, f in health["modalities"].items():
        lo, hi = f["interval"]
        rows.append([f"{m}: accuracy vs chance", f"{f['accuracy']:.3f} ({lo:.2f}-{hi:.2f}) vs {f['chance']:.3f}"])
    rows.append(["self-check", health["status"]])
    return rows


def write_external_scores(
    ingest: IngestDir, table: pa.Table, scorer_id: str, source: str, details: dict[str, Any]
) -> ScoreResult:
    """Write validated external scores (``--scores-from`` or a registered scorer) with provenance."""
    metrics = summarize(table)
    ingest.write_scores(
        table,
        {
            "source": source,
            "scorer_id": scorer_id,
            "manifest_fingerprint": ingest.fingerprint(),
            "mmcurate_version": __version__,
            "metrics": metrics,
            **details,
        },
    )
    return ScoreResult(ingest.path, scorer_id, "n/a", 0.0, metrics)

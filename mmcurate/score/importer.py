"""``--scores-from FILE``: confidences computed elsewhere (e.g. by a user's pretrained encoders).

The file (Parquet or CSV) needs ``sample_id``, ``p_audio`` and ``p_visual``; it must cover
every sample of the ingest exactly once with probabilities in [0, 1]. Optional columns
``pred_audio``, ``pred_visual``, ``entropy_audio``, ``entropy_visual``, ``fold`` are kept.
"""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mmcurate.common.errors import MMCurateError
from mmcurate.common.hashing import file_sha256
from mmcurate.score.assemble import both_weak_threshold
from mmcurate.store import IngestDir
from mmcurate.store.schemas import SCORES_SCHEMA

REQUIRED = ("sample_id", "p_audio", "p_visual")
#: Score columns only the built-in scorer can fill (calibration, uncertainty): null for imported scores.
UNKNOWN_FOR_IMPORTED = (
    "p_audio_uncalibrated",
    "p_visual_uncalibrated",
    "p_audio_std",
    "p_visual_std",
    "discrepancy_std",
    "bin_probability",
)


def read_external(path: Path) -> pa.Table:
    if not path.is_file():
        raise MMCurateError(f"--scores-from {path}: file not found")
    try:
        if path.suffix.lower() == ".parquet":
            return pq.read_table(path)
        if path.suffix.lower() in (".csv", ".tsv"):
            opts = pacsv.ParseOptions(delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
            conv = pacsv.ConvertOptions(column_types={"sample_id": pa.string()})
            return pacsv.read_csv(path, parse_options=opts, convert_options=conv)
    except (pa.ArrowInvalid, OSError) as exc:
        raise MMCurateError(f"--scores-from {path}: cannot read it ({str(exc).splitlines()[0]})") from None
    raise MMCurateError(f"--scores-from {path}: expected a .parquet or .csv file")


def import_scores(ingest: IngestDir, path: Path) -> tuple[pa.Table, str]:
    """Validate an external scores file against the ingest manifest; return (scores table, scorer id)."""
    return validate_scores(
        ingest, read_external(path), f"--scores-from {path}", f"imported:{path.name}:{file_sha256(path)[:10]}"
    )


def validate_scores(ingest: IngestDir, ext: pa.Table, origin: str, scorer_id: str) -> tuple[pa.Table, str]:
    """Check external confidences against the manifest (every sample once, probabilities in
    [0, 1]) and complete them into SCORES_SCHEMA; ``origin`` names the source in errors."""
    path = origin
    missing_cols = [c for c in REQUIRED if c not in ext.column_names]
    if missing_cols:
        raise MMCurateError(f"{path}: missing column(s) {', '.join(missing_cols)} (has {', '.join(ext.column_names)})")
    manifest = ingest.read_manifest(["sample_id", "label"])
    labels = dict(zip(manifest.column("sample_id").to_pylist(), manifest.column("label").to_pylist()))
    rows = ext.to_pylist()
    seen: dict[str, dict] = {}
    for i, row in enumerate(rows):
        sid = str(row["sample_id"])
        if sid in seen:
            raise MMCurateError(f"{path}: sample_id {sid!r} appears more than once")
        if sid not in labels:
            raise MMCurateError(f"{path}: row {i + 1} names sample_id {sid!r}, which is not in the ingest manifest")
        for col in ("p_audio", "p_visual"):
            v = row[col]
            if v is None or not isinstance(v, (int, float)) or math.isnan(v) or not 0.0 <= v <= 1.0:
                raise MMCurateError(f"{path}: {col} of {sid!r} is {v!r}; confidences must be probabilities in [0, 1]")
        seen[sid] = row
    absent = [sid for sid in labels if sid not in seen]
    if absent:
        raise MMCurateError(
            f"{path}: {len(absent)} ingested samples have no scores (e.g. {absent[0]!r}); "
            "every sample needs p_audio and p_visual"
        )
    ordered = [seen[sid] for sid in labels]
    weak = both_weak_threshold(len(ingest.read_classes()))
    d = [float(r["p_audio"]) - float(r["p_visual"]) for r in ordered]
    table = pa.Table.from_pydict(
        {
            "sample_id": list(labels),
            "label": list(labels.values()),
            "fold": [int(r.get("fold", -1) if r.get("fold") is not None else -1) for r in ordered],
            "p_audio": [float(r["p_audio"]) for r in ordered],
            "p_visual": [float(r["p_visual"]) for r in ordered],
            "discrepancy": d,
            "preferred": ["audio" if x > 0 else "visual" if x < 0 else "tie" for x in d],
            "pred_audio": [_opt_str(r.get("pred_audio")) for r in ordered],
            "pred_visual": [_opt_str(r.get("pred_visual")) for r in ordered],
            "entropy_audio": [_opt_float(r.get("entropy_audio")) for r in ordered],
            "entropy_visual": [_opt_float(r.get("entropy_visual")) for r in ordered],
            "scorer_id": [scorer_id] * len(ordered),
            **{k: [None] * len(ordered) for k in UNKNOWN_FOR_IMPORTED},
            "both_weak": [float(r["p_audio"]) < weak and float(r["p_visual"]) < weak for r in ordered],
        },
        schema=SCORES_SCHEMA,
    )
    return table, scorer_id


def _opt_str(v: object) -> str | None:
    return None if v is None else str(v)


def _opt_float(v: object) -> float | None:
    return None if v is None else float(v)  # type: ignore[arg-type]

"""The on-disk contract between stages: every table's columns, in one place.

Stages talk only through these files (lhotse-style manifests keyed by a stable ``sample_id``),
so any stage can be rerun, resumed or replaced alone. ``manifests/schemas/*.json`` are rendered
from this module (``python -m mmcurate.store.schemas``) and a test keeps them in sync.

Work directory layout (``./mmcurate-work`` by default)::

    ingest/                       mmcurate ingest
      manifest.parquet            one row per ingested sample (MANIFEST_SCHEMA)
      shards/shard-00000.arrow    decoded media, Arrow IPC files (SHARD_SCHEMA)
      failures.jsonl              one JSON object per input that failed (FAILURE_FIELDS)
      classes.json                the class list, in ClassLabel order
      config.json, stats.json     resolved config and run statistics
      scores.parquet, scores.json mmcurate score (SCORES_SCHEMA)
      report/                     mmcurate report
    balanced/                     mmcurate balance
      selection.parquet           the balanced sample with bins and splits (SELECTION_SCHEMA)
      data/{split}-00000-of-00001.parquet   Hub layout (EXPORT columns)
      README.md                   the dataset card
      hf/                         datasets.DatasetDict.save_to_disk
      report/                     balance report
    reeval/                       mmcurate reeval results
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow as pa


def _f(name: str, type_: pa.DataType, doc: str, nullable: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={"doc": doc})


#: ``ingest/manifest.parquet``: one row per sample that decoded; sorted by ``sample_id``.
MANIFEST_SCHEMA = pa.schema(
    [
        _f(
            "sample_id",
            pa.string(),
            "stable id: the POSIX path relative to RAW_DIR, plus '#start-end' for a segment",
            False,
        ),
        _f("path", pa.string(), "source file, relative to the raw directory recorded in config.json", False),
        _f("size_bytes", pa.int64(), "source file size in bytes", False),
        _f("sha256", pa.string(), "hex sha256 of the source file", False),
        _f("label", pa.string(), "class name (from the label folder or the manifest)", False),
        _f("split", pa.string(), "split given by the input manifest (train/val/test), else null"),
        _f(
            "group",
            pa.string(),
            "grouping key that must not cross splits (speaker, source video, YouTube id), else null",
        ),
        _f("start", pa.float64(), "segment start in seconds, null for the whole file"),
        _f("end", pa.float64(), "segment end in seconds, null for the whole file"),
        _f("duration", pa.float64(), "seconds of media used (the segment, or the whole file)"),
        _f("container", pa.string(), "container format name as FFmpeg reports it"),
        _f("video_codec", pa.string(), "codec of the video stream used, null without video"),
        _f("audio_codec", pa.string(), "codec of the audio stream used, null without audio"),
        _f("fps", pa.float64(), "native average frame rate, null without video"),
        _f("width", pa.int32(), "native frame width, null without video"),
        _f("height", pa.int32(), "native frame height, null without video"),
        _f("native_frame_count", pa.int64(), "video frames decoded in the segment"),
        _f("native_sample_rate", pa.int32(), "native audio sample rate, null without audio"),
        _f("native_channels", pa.int32(), "native audio channel count, null without audio"),
        _f("native_audio_samples", pa.int64(), "audio samples per channel decoded in the segment, at the native rate"),
        _f("num_frames", pa.int32(), "frames stored in the shard", False),
        _f(
            "num_audio_samples",
            pa.int64(),
            "mono samples stored in the shard, at the target rate (0 with features only)",
            False,
        ),
        _f(
            "has_audio",
            pa.bool_(),
            "the source had a decodable audio stream, or its spectrogram "
            "(then num_audio_samples is 0 and the shard's audio_features holds it)",
            False,
        ),
        _f("has_video", pa.bool_(), "the source had a decodable video stream", False),
        _f("shard", pa.string(), "shard file name under shards/", False),
        _f("shard_row", pa.int32(), "row index of this sample inside its shard", False),
    ]
)

#: ``ingest/shards/shard-NNNNN.arrow``: the decoded media (Arrow IPC file format).
SHARD_SCHEMA = pa.schema(
    [
        _f("sample_id", pa.string(), "joins with manifest.parquet", False),
        _f("label", pa.string(), "class name", False),
        _f(
            "frames",
            pa.list_(pa.binary()),
            "JPEG-encoded RGB frames, short side resized then centre-cropped to a square",
            False,
        ),
        _f(
            "frame_times",
            pa.list_(pa.float64()),
            "timestamp of each stored frame, seconds from the segment start",
            False,
        ),
        _f(
            "audio",
            pa.binary(),
            "mono audio as FLAC bytes (16-bit) at audio_sample_rate; null when absent and kept, "
            "or when the source held only a spectrogram (audio_features then holds it)",
        ),
        _f("audio_sample_rate", pa.int32(), "sample rate of the stored audio", False),
        _f("audio_num_samples", pa.int64(), "number of stored mono samples", False),
        _f(
            "audio_features",
            pa.list_(pa.list_(pa.float16())),
            "optional cached audio features (config.json names the preset), bins x time, float16",
        ),
    ]
)

#: ``ingest/failures.jsonl``: one object per input that did not make it into the manifest.
FAILURE_FIELDS = {
    "file": "input path relative to RAW_DIR (or as written in the input manifest)",
    "sample_id": "the id the sample would have had, or null when none could be formed",
    "stage": "discover | probe | decode | encode | label (where it failed)",
    "reason": "one-line, human-readable reason",
}

#: ``ingest/scores.parquet``: per-sample out-of-fold confidences and discrepancy.
SCORES_SCHEMA = pa.schema(
    [
        _f("sample_id", pa.string(), "joins with manifest.parquet", False),
        _f("label", pa.string(), "ground-truth class name", False),
        _f(
            "fold",
            pa.int32(),
            "cross-fitting fold whose held-out models scored this sample (-1 for imported scores and for candidates "
            "scored by a saved fold ensemble, scores.json source 'candidates')",
            False,
        ),
        _f(
            "p_audio",
            pa.float64(),
            "audio-only probability of the ground-truth class, out-of-fold, calibrated (cross-fitted temperature) "
            "unless scores.json says otherwise",
            False,
        ),
        _f(
            "p_visual",
            pa.float64(),
            "visual-only probability of the ground-truth class, out-of-fold, calibrated (cross-fitted temperature) "
            "unless scores.json says otherwise",
            False,
        ),
        _f("discrepancy", pa.float64(), "p_audio - p_visual, in [-1, 1]", False),
        _f("preferred", pa.string(), "'audio' if discrepancy > 0, 'visual' if < 0, 'tie' if == 0", False),
        _f("pred_audio", pa.string(), "audio model's predicted class"),
        _f("pred_visual", pa.string(), "visual model's predicted class"),
        _f("entropy_audio", pa.float64(), "entropy (nats) of the audio model's predictive distribution"),
        _f("entropy_visual", pa.float64(), "entropy (nats) of the visual model's predictive distribution"),
        _f(
            "p_audio_uncalibrated",
            pa.float64(),
            "p_audio before calibration (softmax averaged over epochs and repeats); null for imported scores",
        ),
        _f("p_visual_uncalibrated", pa.float64(), "p_visual before calibration; null for imported scores"),
        _f(
            "p_audio_std",
            pa.float64(),
            "standard error of p_audio from the spread across repeats and averaged epochs; null for imported scores",
        ),
        _f("p_visual_std", pa.float64(), "standard error of p_visual, as p_audio_std; null for imported scores"),
        _f(
            "discrepancy_std",
            pa.float64(),
            "standard error of the discrepancy: each modality's spread scaled so that its confidence moves by less "
            "than 1 / 2 of it on about 68 % / 95 % of clips when scored by other models, moderated by the clip's "
            "own second opinion where it has one, the two added as variances "
            "(scores.json uncertainty.discrepancy_coverage); null for imported scores",
        ),
        _f(
            "bin_probability",
            pa.float64(),
            "probability that the true discrepancy lies in the bin of d among 10 equal bins over [-1, 1], "
            "under a normal error of discrepancy_std; null for imported scores",
        ),
        _f("scorer_id", pa.string(), "architecture + config hash + seed of the scorer", False),
        _f(
            "both_weak",
            pa.bool_(),
            "both confidences low (p_audio and p_visual below scores.json's both_weak.threshold, min(0.5, "
            "max(0.2, 2 / classes))): d near 0 here means 'both scorers wrong', not 'balanced'",
        ),
    ]
)

#: ``balanced/selection.parquet``: the balanced sample, its bins and splits.
SELECTION_SCHEMA = pa.schema(
    [
        _f("sample_id", pa.string(), "joins with the ingest manifest and scores", False),
        _f("label", pa.string(), "class name", False),
        _f("bin", pa.int32(), "discrepancy bin index, 0 = most visual-preferred", False),
        _f("split", pa.string(), "train / val / test", False),
        _f("p_audio", pa.float64(), "from scores.parquet", False),
        _f("p_visual", pa.float64(), "from scores.parquet", False),
        _f("discrepancy", pa.float64(), "from scores.parquet", False),
        _f("group", pa.string(), "group key kept out of two splits, null where none"),
        _f(
            "pool",
            pa.string(),
            "name of the scored ingest folder (pool) the sample was drawn from; "
            "with several pools, balance.json pool_dirs maps names to folders",
        ),
    ]
)

#: Columns of the exported Hugging Face dataset (``balanced/data/*.parquet`` and ``balanced/hf``).
EXPORT_COLUMNS = {
    "sample_id": "string",
    "label": "ClassLabel over classes.json",
    "frames": "list of Image (JPEG bytes)",
    "audio": "Audio (FLAC bytes) where encodable, else bytes + audio_sample_rate",
    "audio_sample_rate": "int32",
    "audio_features": "optional, list of list of float16 (the ingest feature preset)",
    "p_audio": "float64",
    "p_visual": "float64",
    "discrepancy": "float64",
    "bin": "int32",
    "split": "string",
    "path": "source path relative to the raw directory",
    "sha256": "source file sha256",
    "pool": "only when several pools were balanced together (balance --pool): the pool the row came from",
}

SCHEMAS: dict[str, pa.Schema] = {
    "ingest_manifest": MANIFEST_SCHEMA,
    "ingest_shard": SHARD_SCHEMA,
    "scores": SCORES_SCHEMA,
    "balanced_selection": SELECTION_SCHEMA,
}


def schema_as_json(schema: pa.Schema) -> list[dict[str, object]]:
    """A schema as a list of {name, type, nullable, doc}, for the rendered copies in manifests/."""
    return [
        {
            "name": f.name,
            "type": str(f.type),
            "nullable": f.nullable,
            "doc": (f.metadata or {}).get(b"doc", b"").decode(),
        }
        for f in schema
    ]


def render_all() -> dict[str, object]:
    """Every schema, rendered; the content of ``manifests/schemas/``."""
    out: dict[str, object] = {name: schema_as_json(s) for name, s in SCHEMAS.items()}
    out["ingest_failures"] = FAILURE_FIELDS
    out["export_columns"] = EXPORT_COLUMNS
    return out


def write_rendered(folder: Path) -> None:
    """Write ``manifests/schemas/<name>.json`` for every schema."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in render_all().items():
        (folder / f"{name}.json").write_text(json.dumps(content, indent=2) + "\n")


if __name__ == "__main__":  # pragma: no cover
    write_rendered(Path(sys.argv[1] if len(sys.argv) > 1 else "manifests/schemas"))

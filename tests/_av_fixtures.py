"""Real shard rows for the data tests, built from av_digits clips with PyAV.

Each clip is decoded for real (PyAV's bundled FFmpeg), its frames resized to 224 px and
JPEG-encoded, its audio resampled to 16 kHz mono and FLAC-encoded (16-bit) with libsndfile:
the same media an ingest shard holds (``mmcurate.store.schemas.SHARD_SCHEMA``). The shard and
manifest files are written here by hand so these tests do not depend on the ingest stage.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.ipc
import soundfile
from PIL import Image

from mmcurate.store import IngestDir
from mmcurate.store.ingest_dir import shard_name
from mmcurate.store.schemas import SHARD_SCHEMA

CLASSES = [str(d) for d in range(10)]
FAMILIES = (
    "mp4_h264_aac",
    "mkv_h264_flac",
    "webm_vp9_opus",
    "avi_mpeg4_pcm",
    "flv_flv1_mp3",
    "mov_mjpeg_pcm",
    "ts_mpeg2_mp2",
)


def pick_clips(av_digits: Path, per_family: int) -> list[dict[str, str]]:
    """The first ``per_family`` clips of each container family in labels.csv order."""
    with open(av_digits / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    picked: list[dict[str, str]] = []
    for fam in FAMILIES:
        picked += [r for r in rows if r["format"] == fam][:per_family]
    return picked


def decode_clip(path: Path, size: int = 224, frames: int = 3, rate: int = 16000) -> tuple[list[bytes], bytes, int]:
    """``(jpeg_frames, flac_bytes, num_samples)`` of one clip, decoded with PyAV."""
    with av.open(str(path)) as container:
        images = [f.to_image() for f in container.decode(video=0)]
    n = len(images)
    chosen = [images[min(n - 1, (2 * t + 1) * n // (2 * frames))] for t in range(frames)]
    jpegs = []
    for img in chosen:
        buf = io.BytesIO()
        img.convert("RGB").resize((size, size), Image.Resampling.BICUBIC).save(buf, format="JPEG", quality=90)
        jpegs.append(buf.getvalue())
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    chunks = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            chunks += [g.to_ndarray()[0] for g in resampler.resample(frame)]
    chunks += [g.to_ndarray()[0] for g in resampler.resample(None)]
    wave = np.clip(np.concatenate(chunks), -1.0, 1.0)
    buf = io.BytesIO()
    soundfile.write(buf, wave, rate, format="FLAC", subtype="PCM_16")
    return jpegs, buf.getvalue(), len(wave)


def build_rows(av_digits: Path, per_family: int, rate: int = 16000) -> list[dict[str, Any]]:
    """Shard rows (SHARD_SCHEMA, no cached features) for ``per_family`` clips per family."""
    rows = []
    for clip in pick_clips(av_digits, per_family):
        jpegs, flac, n = decode_clip(av_digits / clip["path"], rate=rate)
        rows.append(
            {
                "sample_id": clip["path"],
                "label": clip["label"],
                "frames": jpegs,
                "frame_times": [0.0, 0.1, 0.2],
                "audio": flac,
                "audio_sample_rate": rate,
                "audio_num_samples": n,
                "audio_features": None,
            }
        )
    return rows


def replicate(rows: list[dict[str, Any]], total: int) -> list[dict[str, Any]]:
    """``total`` rows cycling through ``rows``, each with its own sample_id (for timing at scale)."""
    out = []
    for k in range(total):
        row = dict(rows[k % len(rows)])
        row["sample_id"] = f"{row['sample_id']}#copy{k // len(rows)}"
        out.append(row)
    return out


def write_ingest_dir(
    out: Path, rows: list[dict[str, Any]], shard_size: int, config: dict[str, Any] | None = None
) -> Path:
    """An ingest-shaped folder: shards/shard-NNNNN.arrow, manifest.parquet (sorted by sample_id,
    shard rows in a different order to exercise the lookup), classes.json, config.json."""
    store = IngestDir(out)
    manifest_rows = []
    # shards hold rows in reverse order so manifest order != shard order
    ordered = list(reversed(rows))
    for s, start in enumerate(range(0, len(ordered), shard_size)):
        part = ordered[start : start + shard_size]
        name = shard_name(s)
        store.write_shard(s, pa.Table.from_pylist(part, schema=SHARD_SCHEMA))
        for r, row in enumerate(part):
            manifest_rows.append(_manifest_row(row, name, r))
    store.write_manifest(manifest_rows)
    store.write_classes(list(CLASSES))
    store.write_config(config or {"features": None})
    return out


def _manifest_row(row: dict[str, Any], shard: str, shard_row: int) -> dict[str, Any]:
    return {
        "sample_id": row["sample_id"],
        "path": row["sample_id"],
        "size_bytes": len(row["audio"] or b"") + sum(len(f) for f in row["frames"]),
        "sha256": "0" * 64,
        "label": row["label"],
        "split": None,
        "group": None,
        "start": None,
        "end": None,
        "duration": (row["audio_num_samples"] or 0) / row["audio_sample_rate"],
        "container": None,
        "video_codec": None,
        "audio_codec": None,
        "fps": None,
        "width": None,
        "height": None,
        "native_frame_count": len(row["frames"]),
        "native_sample_rate": row["audio_sample_rate"],
        "native_channels": 1,
        "native_audio_samples": row["audio_num_samples"],
        "num_frames": len(row["frames"]),
        "num_audio_samples": row["audio_num_samples"] or 0,
        "has_audio": row["audio"] is not None,
        "has_video": bool(row["frames"]),
        "shard": shard,
        "shard_row": shard_row,
    }

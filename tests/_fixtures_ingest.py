"""A small but real ingest directory and selection, built per ``mmcurate.store.schemas``.

The export and push tests (and any other stage's tests) need an ingest output without running
the real decoder on video files: this writes the same on-disk format the ingest stage writes
(JPEG frames via PIL, FLAC audio via soundfile, Arrow IPC shards via pyarrow, a Parquet
manifest), with random-but-seeded pixels and tones so that files have realistic entropy and the
bytes are identical for equal arguments.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf
from PIL import Image

from mmcurate.store import IngestDir
from mmcurate.store.ingest_dir import shard_name
from mmcurate.store.schemas import SELECTION_SCHEMA, SHARD_SCHEMA

DEFAULT_CLASSES = ("zero", "one", "two")
SAMPLE_RATE = 16000


def _jpeg(rng: np.random.Generator, size: int, shade: int) -> bytes:
    pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8) // 2 + np.uint8(shade // 2)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _flac(rng: np.random.Generator, seconds: float, freq: float) -> tuple[bytes, int]:
    n = int(SAMPLE_RATE * seconds)
    t = np.arange(n) / SAMPLE_RATE
    wave = 0.4 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(n)
    buf = io.BytesIO()
    sf.write(buf, wave.astype(np.float32), SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return buf.getvalue(), n


def make_ingest_dir(
    path: Path,
    n: int = 30,
    classes: Sequence[str] = DEFAULT_CLASSES,
    *,
    frames_per_clip: int = 4,
    frame_size: int = 48,
    audio_seconds: float = 0.25,
    rows_per_shard: int = 16,
    with_features: bool = True,
    missing_audio: Sequence[int] = (),
    seed: int = 0,
    source: dict | None = None,
) -> Path:
    """Write an ingest directory with ``n`` clips spread round-robin over ``classes``.

    ``missing_audio`` lists clip indices stored without audio (null, as ingest keeps silent
    videos); ``source`` goes into config.json as the ingest's ``source`` block.
    """
    path = Path(path)
    (path / "shards").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    manifest_rows: list[dict] = []
    shard_rows: list[dict] = []
    for i in range(n):
        label = classes[i % len(classes)]
        rel = f"{label}/clip_{i:03d}.mp4"
        frames = [_jpeg(rng, frame_size, 40 * (i % len(classes))) for _ in range(frames_per_clip)]
        audio, n_samples = _flac(rng, audio_seconds, 220.0 * (1 + i % len(classes)))
        if i in missing_audio:
            audio, n_samples = None, 0
        feats = None
        if with_features:
            feats = rng.standard_normal((8, 5)).astype(np.float16).tolist()
        shard_rows.append(
            {
                "sample_id": rel,
                "label": label,
                "frames": frames,
                "frame_times": [k * 0.1 for k in range(frames_per_clip)],
                "audio": audio,
                "audio_sample_rate": SAMPLE_RATE,
                "audio_num_samples": n_samples,
                "audio_features": feats,
            }
        )
        fake_source = f"{rel}:{seed}".encode()
        manifest_rows.append(
            {
                "sample_id": rel,
                "path": rel,
                "size_bytes": 1000 + i,
                "sha256": hashlib.sha256(fake_source).hexdigest(),
                "label": label,
                "split": None,
                "group": f"speaker{i % 4}",
                "start": None,
                "end": None,
                "duration": audio_seconds,
                "container": "mov,mp4,m4a,3gp,3g2,mj2",
                "video_codec": "h264",
                "audio_codec": None if i in missing_audio else "aac",
                "fps": 10.0,
                "width": frame_size,
                "height": frame_size,
                "native_frame_count": frames_per_clip,
                "native_sample_rate": None if i in missing_audio else 44100,
                "native_channels": None if i in missing_audio else 2,
                "native_audio_samples": None if i in missing_audio else int(44100 * audio_seconds),
                "num_frames": frames_per_clip,
                "num_audio_samples": n_samples,
                "has_audio": i not in missing_audio,
                "has_video": True,
                "shard": "",
                "shard_row": 0,
            }
        )
    # Shards hold rows in sample_id order, like the real ingest; the manifest points into them.
    order = sorted(range(n), key=lambda k: shard_rows[k]["sample_id"])
    store = IngestDir(path)
    for shard_idx, start in enumerate(range(0, n, rows_per_shard)):
        idx = order[start : start + rows_per_shard]
        for row_in_shard, k in enumerate(idx):
            manifest_rows[k]["shard"] = shard_name(shard_idx)
            manifest_rows[k]["shard_row"] = row_in_shard
        store.write_shard(shard_idx, pa.Table.from_pylist([shard_rows[k] for k in idx], schema=SHARD_SCHEMA))
    store.write_manifest(manifest_rows)
    store.write_classes(list(classes))
    store.write_config(
        {
            "raw_dir": "/data/raw",
            "frames_per_clip": frames_per_clip,
            "frame_size": frame_size,
            "audio_sample_rate": SAMPLE_RATE,
            "features": "logmel-8" if with_features else None,
            "source": source or {"name": "synthetic-fixture", "license": "CC BY-SA 4.0", "url": None},
        }
    )
    return path


def make_selection(
    ingest_dir: Path,
    bins: int = 3,
    splits: Sequence[str] = ("train", "val", "test"),
    split_weights: Sequence[int] = (6, 2, 2),
    drop_every: int = 0,
    seed: int = 0,
) -> pa.Table:
    """A selection table (SELECTION_SCHEMA) over the fixture's samples, with bins and splits.

    Rows come out shuffled (seeded) so that tests check the export orders them itself.
    ``drop_every=k`` leaves out every k-th sample, as a real balanced subset does.
    """
    manifest = pq.read_table(Path(ingest_dir) / "manifest.parquet")
    rng = np.random.default_rng(seed)
    cycle = [s for s, w in zip(splits, split_weights, strict=True) for _ in range(w)]
    rows = []
    for i, (sid, label) in enumerate(
        zip(manifest["sample_id"].to_pylist(), manifest["label"].to_pylist(), strict=True)
    ):
        if drop_every and i % drop_every == drop_every - 1:
            continue
        p_a, p_v = float(rng.uniform()), float(rng.uniform())
        d = p_a - p_v
        rows.append(
            {
                "sample_id": sid,
                "label": label,
                "bin": min(bins - 1, int((d + 1) / 2 * bins)),
                "split": cycle[i % len(cycle)],
                "p_audio": p_a,
                "p_visual": p_v,
                "discrepancy": d,
                "group": None,
            }
        )
    perm = rng.permutation(len(rows))
    return pa.Table.from_pylist([rows[k] for k in perm], schema=SELECTION_SCHEMA)


def fixture_provenance(bins: int = 3) -> dict:
    """A provenance dict shaped like the one the balance stage passes to the export."""
    return {
        "scorer_id": "mlp-logmel+cnn-frames-abc123def456-s0",
        "bin_edges": [round(-1 + 2 * k / bins, 6) for k in range(bins + 1)],
        "targets": [10] * bins,
        "seed": 0,
        "balance_config": {"bins": bins, "splits": {"train": 0.6, "val": 0.2, "test": 0.2}},
        "source": {"name": "synthetic-fixture", "license": "CC BY-SA 4.0", "url": "https://example.org/fixture"},
        "notes": "fixture export for tests",
    }

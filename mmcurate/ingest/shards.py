"""Arrow shards and their completion markers.

A shard is written atomically, then its marker (``chunks/shard-NNNNN.json``: which inputs it
covers, their manifest rows and failures). A chunk counts as done only when its marker exists,
matches the current config and input fingerprints, and its shard file is present; so a run
killed at any instant (SIGKILL included) resumes by redoing only unfinished chunks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mmcurate.common.atomic import atomic_path, atomic_write_json
from mmcurate.schemas import SHARD_SCHEMA

SHARDS_DIR = "shards"
CHUNKS_DIR = "chunks"


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.arrow"


def marker_path(out_dir: Path, index: int) -> Path:
    return out_dir / CHUNKS_DIR / f"shard-{index:05d}.json"


def _nested_float16(arrays: Sequence[np.ndarray | None]) -> pa.Array:
    """``list<list<float16>>`` column from 2-D float16 arrays (bins x frames), nulls allowed."""
    inner_offsets = [0]
    outer_offsets = [0]
    values: list[np.ndarray] = []
    mask = []
    for arr in arrays:
        if arr is None:
            outer_offsets.append(outer_offsets[-1])
            mask.append(True)
            continue
        arr = np.asarray(arr, dtype=np.float16)
        for row in arr:
            values.append(row)
            inner_offsets.append(inner_offsets[-1] + row.size)
        outer_offsets.append(outer_offsets[-1] + arr.shape[0])
        mask.append(False)
    flat = pa.array(np.concatenate(values) if values else np.zeros(0, np.float16), type=pa.float16())
    inner = pa.ListArray.from_arrays(pa.array(inner_offsets, pa.int32()), flat)
    outer = pa.ListArray.from_arrays(
        pa.array(outer_offsets, pa.int32()), inner, mask=pa.array(mask, pa.bool_()) if any(mask) else None
    )
    return outer


def media_table(media: Sequence[dict[str, Any]]) -> pa.Table:
    """The shard table for a chunk's decoded media, in SHARD_SCHEMA."""
    cols = {
        "sample_id": pa.array([m["sample_id"] for m in media], pa.string()),
        "label": pa.array([m["label"] for m in media], pa.string()),
        "frames": pa.array([m["frames"] for m in media], pa.list_(pa.binary())),
        "frame_times": pa.array([m["frame_times"] for m in media], pa.list_(pa.float64())),
        "audio": pa.array([m["audio"] for m in media], pa.binary()),
        "audio_sample_rate": pa.array([m["audio_sample_rate"] for m in media], pa.int32()),
        "audio_num_samples": pa.array([m["audio_num_samples"] for m in media], pa.int64()),
        "audio_features": _nested_float16([m.get("audio_features") for m in media]),
    }
    return pa.Table.from_arrays([cols[f.name] for f in SHARD_SCHEMA], schema=SHARD_SCHEMA)


def write_shard(path: Path, table: pa.Table) -> None:
    """Write an Arrow IPC file atomically (no compression: shards are memory-mapped by readers)."""
    with atomic_path(path) as tmp:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)


def read_shard(path: Path) -> pa.Table:
    """Memory-map a shard (zero-copy)."""
    with pa.memory_map(str(path), "r") as source:
        return pa.ipc.open_file(source).read_all()


def write_marker(out_dir: Path, index: int, marker: dict[str, Any]) -> None:
    atomic_write_json(marker_path(out_dir, index), marker)


def read_marker(out_dir: Path, index: int) -> dict[str, Any] | None:
    path = marker_path(out_dir, index)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None

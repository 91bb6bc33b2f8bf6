"""The per-clip step of a BalanceMM export, and the annotation file and card around it.

:func:`encode_clip` is a pure function of a :class:`ClipJob` (where the clip's shard row is, and
the export settings): it reads the row from the memory-mapped ingest shard and returns the bytes
of the clip's HDF5 and ``.pkl`` files, so any executor can run it and the stage alone writes.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mmcurate.common.errors import MMCurateError
from mmcurate.formats.balancemm import (
    ANNOTATIONS,
    AUDIO_DIR,
    FORMAT_VERSION,
    LOADER_MAX_INDEX,
    SUBSETS,
    VISUAL_DIR,
    annotation_doc,
    export_frame_indices,
    frames_to_hdf5,
)
from mmcurate.formats.safe_pickle import dump_array
from mmcurate.store import IngestDir

#: where a clip's spectrogram came from
AUDIO_SOURCES = ("cache", "waveform", "silence")
#: the side of the black frames written for a clip stored without video
BLANK_SIZE = 224


@dataclass(frozen=True)
class ClipJob:
    """One clip to export: its shard row, and the settings every clip shares."""

    ingest_dir: str
    sample_id: str
    shard: str
    row: int
    duration: float | None
    features: str  # the resolved feature config, canonical JSON
    use_cache: bool
    max_frames: int


@dataclass(frozen=True)
class EncodedClip:
    """The two files of one clip, and what the card counts."""

    sample_id: str
    hdf5: bytes
    pkl: bytes
    frames_stored: int
    frames_written: int
    audio_from: str
    shape: tuple[int, int]

    def stats(self) -> dict[str, Any]:
        return {
            "frames_stored": self.frames_stored,
            "frames_written": self.frames_written,
            "audio_from": self.audio_from,
            "shape": list(self.shape),
        }


def clip_files(clip_id: str) -> tuple[str, str]:
    """The HDF5 and ``.pkl`` paths of a clip, relative to the export folder."""
    return f"{VISUAL_DIR}/{clip_id}.hdf5", f"{AUDIO_DIR}/{clip_id}.pkl"


def check_clip_id(sample_id: str) -> None:
    """A sample id is the clip id: the loader joins it to folder paths, so it must be a plain relative name."""
    parts = sample_id.split("/")
    if (
        not sample_id
        or sample_id.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
        or any(c in sample_id for c in ("\\", "\x00", "\n", "\r"))
    ):
        raise MMCurateError(
            f"sample id {sample_id!r} cannot name BalanceMM files (<visual_path><id>.hdf5): "
            "it is not a plain relative name"
        )


@lru_cache(maxsize=4)
def _shard(ingest_dir: str, name: str) -> Any:
    return IngestDir(Path(ingest_dir)).open_shard(name)


def release_shards() -> None:
    """Forget the shards this process has memory-mapped (called when a run ends)."""
    _shard.cache_clear()


@lru_cache(maxsize=4)
def _feature_config(features: str) -> Any:
    from mmcurate.features import resolve_feature_config

    return resolve_feature_config(json.loads(features))


def encode_clip(job: ClipJob) -> EncodedClip:
    """The HDF5 and ``.pkl`` bytes of one clip (see the module docstring)."""
    shard = _shard(job.ingest_dir, job.shard)
    if job.row >= shard.num_rows:
        raise MMCurateError(
            f"{job.ingest_dir}/shards/{job.shard}: has no row {job.row} for {job.sample_id!r}; rerun ingest"
        )
    cols = [c for c in ("sample_id", "frames", "frame_times", "audio", "audio_features") if c in shard.column_names]
    row = shard.select(cols).slice(job.row, 1).to_pylist()[0]
    if row["sample_id"] != job.sample_id:
        raise MMCurateError(
            f"{job.ingest_dir}/shards/{job.shard}: row {job.row} holds {row['sample_id']!r}, "
            f"not {job.sample_id!r}; rerun ingest"
        )
    stored = list(row.get("frames") or [])
    times = list(row.get("frame_times") or [])
    picks = export_frame_indices(len(stored), job.max_frames)
    if picks:
        frames = [stored[i] for i in picks]
        frame_times = [float(times[i]) for i in picks] if len(times) == len(stored) else None
    else:  # stored without video (--missing-modality keep): black frames, as the field zero-fills
        frames = [_blank_jpeg()] * 2
        frame_times = None
    hdf5 = frames_to_hdf5(frames, frame_times, job.duration)
    spectrogram, source = _spectrogram(row, job)
    return EncodedClip(
        sample_id=job.sample_id,
        hdf5=hdf5,
        pkl=dump_array(spectrogram.astype(np.float32)),
        frames_stored=len(stored),
        frames_written=len(frames),
        audio_from=source,
        shape=(int(spectrogram.shape[0]), int(spectrogram.shape[1])),
    )


def _spectrogram(row: dict[str, Any], job: ClipJob) -> tuple[np.ndarray, str]:
    """(bins x time float16 features, where they came from): the ingest cache when it was made with
    this config, else computed from the stored FLAC; silence for a clip stored without audio."""
    from mmcurate.data.audio import audio_features_from_flac, decode_flac, waveform_features

    cfg = _feature_config(job.features)
    cached = row.get("audio_features")
    if job.use_cache and cached is not None:
        return np.asarray(cached, dtype=np.float16), "cache"
    if row.get("audio") is not None:
        _, rate = decode_flac(row["audio"])
        if rate != cfg.sample_rate:
            raise MMCurateError(
                f"{job.sample_id!r}: audio is stored at {rate} Hz but the audio preset needs {cfg.sample_rate} Hz; "
                f"ingest again with --sample-rate {cfg.sample_rate}, or pick a preset made for {rate} Hz"
            )
        return audio_features_from_flac(row["audio"], cfg), "waveform"
    if cached is not None:
        raise MMCurateError(
            f"{job.sample_id!r}: the ingest holds no waveform for this clip, only audio features made with other "
            "settings; export with the audio preset they were made with (another preset needs the waveform)"
        )
    samples = max(cfg.n_fft, round((job.duration or 0.0) * cfg.sample_rate))
    return waveform_features(np.zeros(samples, dtype=np.float32), cfg.sample_rate, cfg), "silence"


@lru_cache(maxsize=1)
def _blank_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (BLANK_SIZE, BLANK_SIZE)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


# ----------------------------------------------------------------------------- annotations and card


def annotation_entries(selection: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Clip id -> its entry: BalanceMM's ``subset`` and ``label``, and mmcurate's bin, discrepancy,
    confidences and group (extra keys the loader ignores)."""
    entries: dict[str, dict[str, Any]] = {}
    for r in selection:
        entry: dict[str, Any] = {
            "subset": SUBSETS[r["split"]],
            "label": r["label"],
            "bin": int(r["bin"]),
            "discrepancy": float(r["discrepancy"]),
            "p_audio": float(r["p_audio"]),
            "p_visual": float(r["p_visual"]),
        }
        if r.get("group") is not None:
            entry["group"] = str(r["group"])
        entries[r["sample_id"]] = entry
    return entries


def build_annotations(
    classes: Sequence[str], selection: Sequence[dict[str, Any]], provenance: dict[str, Any]
) -> dict[str, Any]:
    return annotation_doc(classes, annotation_entries(selection), provenance)


def render_card(
    *,
    name: str,
    classes: Sequence[str],
    split_counts: dict[str, int],
    clip_stats: Sequence[dict[str, Any]],
    preset: str | None,
    features: dict[str, Any],
    max_frames: int,
    provenance: dict[str, Any],
) -> str:
    """README.md of the export: how to load it with BalanceMM, and what the loader will see."""
    written = Counter(s["frames_written"] for s in clip_stats)
    few = sum(n for k, n in written.items() if k <= 6)
    doubled = sum(1 for s in clip_stats if s["frames_stored"] == 1)
    blank = sum(1 for s in clip_stats if s["frames_stored"] == 0)
    shapes = Counter(tuple(s["shape"]) for s in clip_stats)
    sources = Counter(s["audio_from"] for s in clip_stats)
    recipe = preset or "custom settings (see annotations.json, mmcurate.audio_features)"
    lines = [
        f"# {name}: BalanceMM / BML layout",
        "",
        "The balanced dataset written by `mmcurate export --format balancemm`, laid out as BalanceMM's `Balance` "
        "dataset (GeWu-Lab/BalanceBenchmark, `balancemm/datasets/balance_dataset.py`) and GeWu-Lab/BML_TPAMI2024's "
        "release read it:",
        "",
        "```",
        f"{ANNOTATIONS}         labels (class order = class index) and database: clip id -> subset, label",
        f"{VISUAL_DIR}/<clip_id>.hdf5    dataset 'video': JPEG-encoded frames (+ 'frame_times', attribute 'duration')",
        f"{AUDIO_DIR}/<clip_id>.pkl      a pickled 2-D float32 numpy array: the clip's spectrogram, bins x time",
        "```",
        "",
        "A clip id is the mmcurate sample id (the source path relative to the raw folder), so a `/` in it is a "
        "sub-folder of `visual/` and `audio/`.",
        "",
        "## Loading it with BalanceMM",
        "",
        "In `configs/dataset_config.yaml` (the loader joins paths by string concatenation: keep the trailing `/`):",
        "",
        "```yaml",
        "Balance:",
        f"  csv_path: <this folder>/{ANNOTATIONS}",
        f"  visual_path: <this folder>/{VISUAL_DIR}/",
        f"  audio_path: <this folder>/{AUDIO_DIR}/",
        "  validation: false",
        f"  classes: {len(classes)}",
        "```",
        "",
        "| subset | clips |",
        "|---|---|",
        *[f"| {SUBSETS[s]} | {split_counts.get(s, 0)} |" for s in SUBSETS],
        "",
        "BalanceMM reads the subset named after its mode plus `ing`: `train` -> `training`, `test` -> `testing`. "
        "With `validation: true` it would look for `validing`, which no release has, so leave it false (BalanceMM "
        "then validates on `testing`, as it does for every audio-visual set); the `validation` subset is for "
        "BML's loader (`mode='validation'`) and for mmcurate.",
        "",
        "## Frames: what the loader sees",
        "",
        f"Each HDF5 holds the frames ingest stored, at most {max_frames} of them (spread evenly when ingest stored "
        "more), as the same JPEG bytes. The loader picks 3 frames by the frame count N: with N > 6 one per third "
        f"(training: at random within each third, capped at index {LOADER_MAX_INDEX}; test: each third's centre); "
        "with N <= 6 it reads frame index 1 three times. So for the loader to see three different moments, ingest "
        "at about one frame per second (`mmcurate ingest --fps 1` on 10-s clips gives the 10 frames it expects).",
        "",
        "| frames per clip | clips |",
        "|---|---|",
        *[f"| {k} | {n} |" for k, n in sorted(written.items())],
        "",
        f"Clips the loader reads only frame index 1 of (N <= 6): {few} of {len(clip_stats)}.",
    ]
    if doubled:
        lines.append(f"Clips with a single stored frame, written twice (the loader needs index 1): {doubled}.")
    if blank:
        lines.append(f"Clips stored without video, written as two black {BLANK_SIZE}x{BLANK_SIZE} frames: {blank}.")
    lines += [
        "",
        "## Audio",
        "",
        f"Spectrogram recipe: {recipe} (the settings are in `{ANNOTATIONS}` under `mmcurate.audio_features`). "
        "Values are float16-exact, stored as float32. Shapes (bins x time):",
        "",
        *[f"* {b} x {t}: {n} clips" for (b, t), n in sorted(shapes.items())],
        "",
        "Computed from: "
        + ", ".join(f"{src} {sources[src]}" for src in AUDIO_SOURCES if sources.get(src))
        + " (cache = ingest's cached features, waveform = the stored FLAC, silence = a clip stored without audio).",
        "",
        "The pickles name only `numpy.ndarray`, `numpy.dtype` and `builtins.bytearray`, so numpy 1.x and 2.x both "
        "read them. mmcurate reads `.pkl` files with an unpickler that accepts numpy arrays and nothing else.",
        "",
        "## Provenance",
        "",
        "Each database entry also carries mmcurate's `bin`, `discrepancy` (p_audio - p_visual), `p_audio`, "
        "`p_visual` and `group` (keys the loaders ignore). `mmcurate ingest <this folder> --layout balancemm` reads "
        "the folder back.",
        "",
        "```json",
        json.dumps({k: v for k, v in provenance.items() if k != "audio_features"}, indent=2, sort_keys=True),
        "```",
        "",
    ]
    return "\n".join(lines)


def provenance_block(
    *,
    toolkit_version: str,
    preset: str | None,
    features: dict[str, Any],
    max_frames: int,
    balance_meta: dict[str, Any],
) -> dict[str, Any]:
    """The annotation file's ``mmcurate`` block (BalanceMM ignores it; the import reads the features)."""
    return {
        "format": FORMAT_VERSION,
        "toolkit_version": toolkit_version,
        "audio_preset": preset,
        "audio_features": features,
        "spectrogram_layout": "bins x time, float32",
        "max_frames": max_frames,
        "bin_edges": balance_meta.get("bin_edges"),
        "scorer_id": balance_meta.get("scorer_id"),
        "seed": balance_meta.get("seed"),
    }

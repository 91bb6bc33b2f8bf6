"""The per-file unit of work: one input item in, one manifest row + shard row (or a failure) out.

:func:`process_clip` is a pure function of (file, item, config): it touches no shared state and
writes nothing, so any executor can run it: the local process pool here, or a distributed
engine such as Ray Data (``ds.map(lambda row: process_clip(...))``) across machines.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from PIL import Image

from mmcurate.common.files import os_reason, regular_file_problem
from mmcurate.common.hashing import file_sha256
from mmcurate.ingest.budget import clip_budget_problem
from mmcurate.ingest.config import DecodeConfig
from mmcurate.ingest.decode import DecodedClip, DecodeError, decode_clip
from mmcurate.store.items import ClipResult, Failure, InputItem


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of an RGB uint8 array (baseline, no metadata: identical input gives identical bytes)."""
    buf = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buf, format="JPEG", quality=quality, optimize=False)
    return buf.getvalue()


def quantize_pcm16(audio: np.ndarray) -> np.ndarray:
    """Float audio to int16 the way readers undo it (``x / 32768``), clipping out-of-range peaks."""
    return np.clip(np.round(audio.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def encode_flac(pcm16: np.ndarray, sample_rate: int) -> bytes:
    """Lossless FLAC bytes of mono int16 audio."""
    buf = io.BytesIO()
    sf.write(buf, pcm16, sample_rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def _apply_missing_policy(
    clip: DecodedClip, item: InputItem, cfg: DecodeConfig, has_video: bool, has_audio: bool
) -> Failure | None:
    missing = [name for name, present in (("video", has_video), ("audio", has_audio)) if not present]
    if not missing:
        return None
    if cfg.missing_modality == "reject":
        what = " and ".join(missing)
        hint = "audio-only file" if missing == ["video"] else ("video without sound" if missing == ["audio"] else "")
        reason = (
            f"no {what} stream"
            + (f" ({hint})" if hint else "")
            + "; use --missing-modality keep or zero-fill to ingest it"
        )
        return Failure(item.path, "probe", reason, item.sample_id)
    if cfg.missing_modality == "zero-fill":
        if not has_video:
            size = cfg.size or 224
            n = len(_zero_targets(clip, cfg))
            clip.frames = [np.zeros((size, size, 3), np.uint8) for _ in range(n)]
            clip.frame_times = _zero_targets(clip, cfg)
        if not has_audio:
            clip.audio = np.zeros(max(1, round(clip.duration * cfg.sample_rate)), np.float32)
    return None


def _zero_targets(clip: DecodedClip, cfg: DecodeConfig) -> list[float]:
    from mmcurate.ingest.decode import target_times

    return target_times(0.0, clip.duration, cfg)


def process_clip(raw_dir: str | os.PathLike[str], item: InputItem, cfg: DecodeConfig, threads: int = 1) -> ClipResult:
    """Decode, encode and describe one input. Never raises for bad input: returns a failure."""
    sid = item.sample_id
    path = Path(raw_dir) / item.path
    problem = regular_file_problem(path)  # a FIFO or device is never opened: reading it could wait forever
    if problem is not None:
        return ClipResult(sid, failure=Failure(item.path, "probe", f"cannot read file ({problem})", sid))
    try:
        size = path.stat().st_size
    except OSError as exc:
        return ClipResult(sid, failure=Failure(item.path, "probe", f"cannot read file ({os_reason(exc)})", sid))
    if size == 0:
        return ClipResult(sid, failure=Failure(item.path, "probe", "empty file (0 bytes)", sid))
    try:
        sha = file_sha256(path)
    except OSError as exc:
        return ClipResult(sid, failure=Failure(item.path, "probe", f"cannot read file ({os_reason(exc)})", sid))
    too_much = clip_budget_problem(path, cfg, item.start, item.end)  # before a frame is decoded
    if too_much is not None:
        return ClipResult(sid, failure=Failure(item.path, "probe", too_much, sid))
    try:
        clip = _decode(path, item, cfg, threads)
    except DecodeError as exc:
        return ClipResult(sid, failure=Failure(item.path, exc.stage, exc.reason, sid))
    has_video, has_audio = clip.has_video, clip.has_audio
    failure = _apply_missing_policy(clip, item, cfg, has_video, has_audio)
    if failure is not None:
        return ClipResult(sid, failure=failure)
    try:
        media = _encode(clip, item, cfg)
    except Exception as exc:  # an encoder failure is about this file, not the run
        return ClipResult(sid, failure=Failure(item.path, "encode", f"{type(exc).__name__}: {exc}", sid))
    row = {
        "sample_id": sid,
        "path": item.path,
        "size_bytes": size,
        "sha256": sha,
        "label": item.label,
        "split": item.split,
        "group": item.group,
        "start": item.start,
        "end": item.end,
        "duration": float(clip.duration),
        "container": clip.container,
        "video_codec": clip.video_codec,
        "audio_codec": clip.audio_codec,
        "fps": clip.fps,
        "width": clip.width,
        "height": clip.height,
        "native_frame_count": clip.native_frame_count,
        "native_sample_rate": clip.native_sample_rate,
        "native_channels": clip.native_channels,
        "native_audio_samples": clip.native_audio_samples,
        "num_frames": len(media["frames"]),
        "num_audio_samples": media["audio_num_samples"],
        "has_audio": has_audio,
        "has_video": has_video,
        **item.extra_dict(),
    }
    return ClipResult(sid, row=row, media=media)


def _decode(path: Path, item: InputItem, cfg: DecodeConfig, threads: int) -> DecodedClip:
    if cfg.decoder == "decord":
        from mmcurate.ingest.decord_backend import decode_with_decord

        return decode_with_decord(path, cfg, item.start, item.end, threads)
    return decode_clip(path, cfg, item.start, item.end, threads)


def _encode(clip: DecodedClip, item: InputItem, cfg: DecodeConfig) -> dict[str, Any]:
    frames = [encode_jpeg(f, cfg.jpeg_quality) for f in clip.frames]
    audio_bytes = None
    n_samples = 0
    features = None
    if clip.audio is not None and clip.audio.size:
        pcm = quantize_pcm16(clip.audio)
        n_samples = int(pcm.size)
        audio_bytes = encode_flac(pcm, cfg.sample_rate)
        if cfg.features:
            from mmcurate.ingest.features_cache import features_for

            features = features_for(pcm, cfg)
    return {
        "sample_id": item.sample_id,
        "label": item.label,
        "frames": frames,
        "frame_times": [float(t) for t in clip.frame_times],
        "audio": audio_bytes,
        "audio_sample_rate": cfg.sample_rate,
        "audio_num_samples": n_samples,
        "audio_features": features,
    }

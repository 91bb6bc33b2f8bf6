"""Optional decord fast path for video frames (``--decoder decord``).

decord reads frames by index from the container's index, which can be faster than decoding
every frame. It has no AV1 support, fails on VP9 unless ``num_threads=1`` and has been
unmaintained since 2021, so it is only a fast path: any decord error, or decord missing, falls
back to the PyAV decoder for that file. Audio always comes from PyAV.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image

from mmcurate.common.console import warn
from mmcurate.ingest.config import DecodeConfig
from mmcurate.ingest.decode import DecodedClip, decode_clip, target_times


@functools.lru_cache(maxsize=1)
def _decord():  # type: ignore[no-untyped-def]
    try:
        import decord

        return decord
    except ImportError:
        warn("--decoder decord: decord is not installed (pip install 'mmcurate[decord]'); using PyAV")
        return None


def scale_and_crop_array(rgb: np.ndarray, size: int) -> np.ndarray:
    """The PIL equivalent of :func:`mmcurate.ingest.decode.scale_and_crop` for RGB arrays."""
    if size == 0:
        return rgb
    h, w = rgb.shape[:2]
    nw, nh = (size, max(size, round(h * size / w))) if w <= h else (max(size, round(w * size / h)), size)
    img = Image.fromarray(rgb).resize((nw, nh), Image.Resampling.BILINEAR if nw >= w else Image.Resampling.BOX)
    top, left = (nh - size) // 2, (nw - size) // 2
    return np.ascontiguousarray(np.asarray(img)[top : top + size, left : left + size])


def decode_with_decord(
    path: Path, cfg: DecodeConfig, start: float | None, end: float | None, threads: int = 1
) -> DecodedClip:
    """Frames via decord, audio and properties via PyAV; PyAV alone on any decord problem."""
    decord = _decord()
    if decord is None:
        return decode_clip(path, cfg, start, end, threads)
    clip = decode_clip(path, cfg, start, end, threads, video=False)
    if clip.video_codec is None:
        return clip
    try:
        vr = decord.VideoReader(str(path), num_threads=1)
        n = len(vr)
        if n == 0:
            raise ValueError("no frames")
        stamps = vr.get_frame_timestamp(range(n))  # (n, 2): start, end seconds
        mids = stamps.mean(axis=1)
        seg_start = start or 0.0
        seg_end = seg_start + clip.duration  # the same segment length PyAV's probe found

        inside = np.nonzero((stamps[:, 0] >= seg_start - 1e-6) & (stamps[:, 0] < seg_end - 1e-6))[0]
        if inside.size == 0:
            raise ValueError("no frames in the segment")
        targets = target_times(seg_start, seg_end - seg_start, cfg)
        picks = [int(inside[np.argmin(np.abs(mids[inside] - t))]) for t in targets]
        batch = vr.get_batch(picks).asnumpy()
    except Exception:  # decord's errors are untyped (DECORDError, RuntimeError...): fall back
        return decode_clip(path, cfg, start, end, threads)
    clip.frames = [scale_and_crop_array(f, cfg.size) for f in batch]
    clip.frame_times = [float(stamps[i, 0]) - (start or 0.0) for i in picks]
    clip.native_frame_count = int(inside.size)
    return clip

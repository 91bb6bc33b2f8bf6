"""What one clip would hold, from what its file declares: :func:`clip_budget_problem` opens the file
(PyAV) before a frame is decoded and names the option to lower when the clip would exceed
:data:`~mmcurate.ingest.limits.MAX_FRAMES_PER_CLIP` or :data:`~mmcurate.ingest.limits.MAX_FRAME_BYTES_PER_CLIP`.

Apart from :mod:`mmcurate.ingest.limits` (the bounds of the options, which the decode settings check
when they are made) because it reads files with the decoder's helpers, which take the decode settings:
together they would import each other.
"""

from __future__ import annotations

import math
from pathlib import Path

from mmcurate.ingest.limits import (
    MAX_FRAME_BYTES_PER_CLIP,
    MAX_FRAMES_PER_CLIP,
    DecodeConfig,
    frames_to_keep,
    gib,
    needs_probe,
)


def clip_budget_problem(path: Path, cfg: DecodeConfig, start: float | None, end: float | None) -> str | None:
    """Why decoding ``path`` (the segment ``start``..``end``) with ``cfg`` would hold more than one
    clip may, from what the file declares; None when it fits, when the options cannot exceed the
    limits, or when the file cannot be opened (the decoder then says why)."""
    if not needs_probe(cfg):
        return None
    import av

    from mmcurate.ingest.decode import declared_end, scan_end

    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            usable = [s for s in container.streams.video if not _attached_picture(s)]
            vstream = usable[cfg.video_stream] if cfg.video_stream < len(usable) else None
            audio = list(container.streams.audio)
            astream = audio[cfg.audio_stream] if cfg.audio_stream < len(audio) else None
            if vstream is None and (astream is None or cfg.missing_modality != "zero-fill"):
                return None  # no frames to keep
            streams = [s for s in (vstream, astream) if s is not None]
            t0 = (container.start_time or 0) / av.time_base
            media_end = declared_end(container, streams)
            if vstream is not None:  # what the decoder holds: native frames, in their pixel format
                width, height = vstream.codec_context.width or 0, vstream.codec_context.height or 0
                fmt = vstream.codec_context.format
                bits = fmt.padded_bits_per_pixel if fmt is not None and fmt.padded_bits_per_pixel else 24
                rate = vstream.average_rate or vstream.guessed_rate
                native_fps = float(rate) if rate else None
            else:  # zero-fill: black frames of the output size only
                width = height = bits = 0
                native_fps = None
            indexes = [s.index for s in streams]
    except (av.error.FFmpegError, OSError, UnicodeDecodeError, ValueError):
        return None
    if media_end is None:
        try:
            media_end = scan_end(path, indexes)
        except (av.error.FFmpegError, OSError):
            return None
    if media_end is None:
        return None
    seg_start = t0 + (start or 0.0)
    seg_end = min(media_end, t0 + end) if end is not None else media_end
    seg_len = seg_end - seg_start
    if not math.isfinite(seg_len) or seg_len <= 0:
        return None  # the decoder reports a segment outside the media
    n = frames_to_keep(seg_len, cfg)
    how = f"--fps {cfg.fps:g} over {seg_len:.0f} s" if cfg.fps is not None else f"--frames {cfg.frames}"
    if n > MAX_FRAMES_PER_CLIP:
        return (
            f"{how} would keep {n} frames, more than the {MAX_FRAMES_PER_CLIP} one clip may; lower --fps, or cut the "
            "clip into segments (start/end in an input manifest)"
        )
    native = width * height * bits / 8
    out = cfg.size * cfg.size * 3 if cfg.size > 0 else (width * height or 224 * 224) * 3
    if not width:
        width = height = cfg.size or 224
    distinct = n if native_fps is None else min(n, int(math.ceil(seg_len * native_fps)) + 1)
    held = distinct * native + n * out
    if held > MAX_FRAME_BYTES_PER_CLIP:
        return (
            f"{how} would hold {n} frames of {width}x{height} ({held / 1e9:.1f} GB decoded), more than the "
            f"{gib(MAX_FRAME_BYTES_PER_CLIP)} one clip may; lower --fps/--frames or --size, or cut the clip into "
            "segments (start/end in an input manifest)"
        )
    return None


def _attached_picture(stream: object) -> bool:
    import av

    try:
        return bool(stream.disposition & av.stream.Disposition.attached_pic)  # type: ignore[attr-defined]
    except (AttributeError, TypeError):
        return False

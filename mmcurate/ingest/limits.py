"""How much one clip may make ingest hold, checked before anything is decoded.

A file declares its duration and frame size; the options say how many frames to keep of it. What
decoding then holds in memory follows from those numbers alone (each sampled frame is kept at its
native size until the end of the clip, then scaled), so a clip whose numbers exceed the limits
below is refused with one failure line before a frame is decoded, instead of taking the machine's
memory (``--frames 100000`` on two clips once peaked at 17.2 GB).

The limits are generous for real work: a 10-minute clip at ``--fps 1`` keeps 600 frames, at
1080p about 2.0 GB at once (600 native frames of 3.1 MB, plus the 224-px output). An hour at
``--fps 1`` is 3600 frames, the most one clip may keep; longer recordings are cut into segments
(``start``/``end`` in an input manifest), which is also how they are best sampled.

Options are bounded up front (:func:`decode_option_problem`, called by ``DecodeConfig``), so an
absurd value is a one-line error before any clip is read. Per clip, the declared duration and
frame size are read (:func:`clip_budget_problem`) only when the options make them matter
(``--fps``, or more than :data:`FRAMES_WITHOUT_PROBE` frames): with the default ``--frames 3``
nothing is opened twice.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from mmcurate.common.limits import MAX_FRAME_BYTES_PER_CLIP, MAX_FRAMES_PER_CLIP, MAX_SAMPLE_RATE

if TYPE_CHECKING:
    from mmcurate.ingest.config import DecodeConfig

__all__ = ["MAX_FRAMES_PER_CLIP", "MAX_FRAME_BYTES_PER_CLIP", "clip_budget_problem", "decode_option_problem"]

#: Largest ``--size`` (8K).
MAX_SIZE = 8192
#: Highest ``--fps``: no camera records faster than this.
MAX_FPS = 1000.0
#: Largest ``--shard-size``: a shard is held in memory while it is written.
MAX_SHARD_SIZE = 100_000
#: Highest ``--video-stream``/``--audio-stream`` index.
MAX_STREAM_INDEX = 1000
#: With at most this many frames per clip (``--frames``), even 8K video stays far within
#: :data:`MAX_FRAME_BYTES_PER_CLIP`, so no clip is opened to check it.
FRAMES_WITHOUT_PROBE = 8
#: Tolerance (seconds) of the frame count at a rate, as ``mmcurate.ingest.decode.target_times`` uses.
_EPS = 1e-6


def decode_option_problem(cfg: DecodeConfig) -> str | None:
    """Why the decode options are out of bounds (one line), or None."""
    if cfg.fps is None and cfg.frames > MAX_FRAMES_PER_CLIP:
        return (
            f"--frames {cfg.frames} is more than the {MAX_FRAMES_PER_CLIP} frames one clip may keep (an hour at "
            "--fps 1); ask for fewer"
        )
    if cfg.fps is not None and cfg.fps > MAX_FPS:
        return f"--fps {cfg.fps:g} is above {MAX_FPS:g} frames a second"
    if cfg.size > MAX_SIZE:
        return f"--size {cfg.size} is above {MAX_SIZE} pixels (8K)"
    if cfg.sample_rate > MAX_SAMPLE_RATE:
        return f"--sample-rate {cfg.sample_rate} is above {MAX_SAMPLE_RATE} Hz, the highest rate audio is recorded at"
    if cfg.shard_size > MAX_SHARD_SIZE:
        return f"--shard-size {cfg.shard_size} is above {MAX_SHARD_SIZE} (a shard is held in memory while written)"
    for name, index in (("--video-stream", cfg.video_stream), ("--audio-stream", cfg.audio_stream)):
        if index > MAX_STREAM_INDEX:
            return f"{name} {index} is above {MAX_STREAM_INDEX}"
    if cfg.fps is None and cfg.size > 0:
        held = cfg.frames * cfg.size * cfg.size * 3
        if held > MAX_FRAME_BYTES_PER_CLIP:
            return (
                f"--frames {cfg.frames} at --size {cfg.size} would hold {held / 1e9:.1f} GB of frames per clip, "
                f"more than the {_gib(MAX_FRAME_BYTES_PER_CLIP)} allowed; lower --frames or --size"
            )
    return None


def needs_probe(cfg: DecodeConfig) -> bool:
    """Whether a clip's declared duration and frame size decide if it fits the limits."""
    return cfg.fps is not None or cfg.frames > FRAMES_WITHOUT_PROBE


def frames_to_keep(seg_len: float, cfg: DecodeConfig) -> int:
    """How many frames decoding keeps of a segment of ``seg_len`` seconds (the count of
    ``mmcurate.ingest.decode.target_times``, computed without building the list)."""
    if cfg.fps is not None:
        return max(1, int(math.floor(seg_len * cfg.fps + _EPS)))
    return cfg.frames


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
            f"{_gib(MAX_FRAME_BYTES_PER_CLIP)} one clip may; lower --fps/--frames or --size, or cut the clip into "
            "segments (start/end in an input manifest)"
        )
    return None


def _attached_picture(stream: object) -> bool:
    import av

    try:
        return bool(stream.disposition & av.stream.Disposition.attached_pic)  # type: ignore[attr-defined]
    except (AttributeError, TypeError):
        return False


def _gib(n: int) -> str:
    return f"{n / (1 << 30):g} GiB"

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
frame size are read (:func:`mmcurate.ingest.budget.clip_budget_problem`) only when the options make them matter
(``--fps``, or more than :data:`FRAMES_WITHOUT_PROBE` frames): with the default ``--frames 3``
nothing is opened twice.
"""

from __future__ import annotations

import math
from typing import Protocol

from mmcurate.common.limits import MAX_FRAME_BYTES_PER_CLIP, MAX_FRAMES_PER_CLIP, MAX_SAMPLE_RATE


class DecodeConfig(Protocol):
    """The decode settings these bounds read (:class:`mmcurate.ingest.config.DecodeConfig`, which calls
    :func:`decode_option_problem`: named by their fields here, so the two modules do not import each other)."""

    fps: float | None
    frames: int
    size: int
    sample_rate: int
    shard_size: int
    video_stream: int
    audio_stream: int
    missing_modality: str


__all__ = ["MAX_FRAMES_PER_CLIP", "MAX_FRAME_BYTES_PER_CLIP", "decode_option_problem"]

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
                f"more than the {gib(MAX_FRAME_BYTES_PER_CLIP)} allowed; lower --frames or --size"
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


def gib(n: int) -> str:
    """``n`` bytes in GiB, as the messages say it."""
    return f"{n / (1 << 30):g} GiB"

"""Synthetic clips of any length, size, codec and container FFmpeg can write (for benchmarks and tests).

Decoding cost depends on what a codec has to reconstruct, so the pictures move: a scrolling
gradient, shapes crossing the frame and per-frame noise give realistic P/B-frames and
bitrates (a still image would make every inter frame nearly free). The audio is a tone sweep with
noise. Encoded by PyAV's bundled FFmpeg with one thread, so a given seed gives the same picture
and sound content; the bytes are stable for one FFmpeg build.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


@dataclass(frozen=True)
class ClipSpec:
    """What to write. ``gop`` is the keyframe interval in frames (None: the encoder's default)."""

    container: str = "mp4"
    video_codec: str = "libx264"
    audio_codec: str | None = "aac"
    seconds: float = 10.0
    width: int = 640
    height: int = 360
    fps: int = 30
    gop: int | None = 60
    sample_rate: int = 48000
    channels: int = 2
    pix_fmt: str = "yuv420p"
    video_options: tuple[tuple[str, str], ...] = ()
    #: timestamps of the first frames become negative (an MP4 then gets an edit list that starts
    #: after them, so the demuxer marks their packets "discard": a cut made without re-encoding)
    lead_in_frames: int = 0

    @property
    def extension(self) -> str:
        """The usual file extension of ``container`` (an FFmpeg muxer name)."""
        return {"matroska": "mkv", "mpegts": "ts", "mpeg": "mpg"}.get(self.container, self.container)


#: The real-length corpus of issue 14: 10 s at 640x360 30 fps, H.264/AAC in MP4, VP9/Opus in WebM.
REAL_LENGTH_SPECS = (
    ClipSpec("mp4", "libx264", "aac", video_options=(("preset", "veryfast"),)),
    ClipSpec("webm", "libvpx-vp9", "libopus", video_options=(("deadline", "realtime"), ("cpu-used", "8"))),
)

#: Long clips (issue 26): 60 s at 1280x720 30 fps, about 12 Mbit/s of video (a phone or camera
#: recording's rate), so one clip holds more compressed video than sparse decoding keeps at once.
LONG_SPECS = (
    ClipSpec(
        "mp4", "libx264", "aac", seconds=60, width=1280, height=720,
        video_options=(("preset", "veryfast"), ("crf", "12")),
    ),
    ClipSpec(
        "webm", "libvpx-vp9", "libopus", seconds=60, width=1280, height=720,
        video_options=(("deadline", "realtime"), ("cpu-used", "8"), ("b", "16M")),
    ),
)  # fmt: skip


def _frame(rng: np.random.Generator, i: int, spec: ClipSpec, base: np.ndarray) -> np.ndarray:
    h, w = spec.height, spec.width
    shift = (i * 4) % w
    img = np.roll(base, shift, axis=1).copy()
    for k in range(3):  # three squares crossing the frame at different speeds
        side = max(2, h // 6)
        x = int((i * (3 + 2 * k) + k * w // 3) % max(1, w - side))
        y = int((h - side) * (0.5 + 0.4 * np.sin(i / (15.0 + 7 * k) + k)))
        img[y : y + side, x : x + side] = (60 * k + 80, 255 - 70 * k, 40 + 90 * k)
    # grain at 1/8 resolution: changes every frame like sensor noise, at a camera-like bitrate
    grain = rng.integers(-6, 7, size=(h // 8 + 1, w // 8 + 1, 1), dtype=np.int16)
    grain = np.repeat(np.repeat(grain, 8, axis=0), 8, axis=1)[:h, :w]
    return np.clip(img.astype(np.int16) + grain, 0, 255).astype(np.uint8)


def write_clip(path: Path, spec: ClipSpec = ClipSpec(), seed: int = 0) -> Path:
    """Encode one synthetic clip per ``spec`` to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : spec.height, 0 : spec.width]
    hue = rng.uniform(0, 2 * np.pi)
    base = np.stack(
        [127 + 100 * np.sin(xx / 37.0 + hue + c) * np.cos(yy / 53.0 - c) for c in (0.0, 2.1, 4.2)], axis=-1
    ).astype(np.uint8)
    n_frames = round(spec.seconds * spec.fps)
    with av.open(str(path), "w", format=spec.container) as out:
        v = out.add_stream(spec.video_codec, rate=spec.fps, options=dict(spec.video_options))
        v.width, v.height, v.pix_fmt = spec.width, spec.height, spec.pix_fmt
        v.codec_context.thread_count = 1
        if spec.gop is not None:
            v.codec_context.gop_size = spec.gop
        a = None
        if spec.audio_codec is not None:
            layout = "stereo" if spec.channels == 2 else "mono"
            a = out.add_stream(spec.audio_codec, rate=spec.sample_rate, layout=layout)
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(_frame(rng, i, spec, base), format="rgb24")
            frame.pts, frame.time_base = i - spec.lead_in_frames, Fraction(1, spec.fps)
            for packet in v.encode(frame):
                out.mux(packet)
        for packet in v.encode():
            out.mux(packet)
        if a is not None:
            _write_audio(out, a, spec, rng)
    return path


def _write_audio(
    out: av.container.OutputContainer, a: av.audio.stream.AudioStream, spec: ClipSpec, rng: np.random.Generator
) -> None:
    rate = spec.sample_rate
    n = round(spec.seconds * rate)
    t = np.arange(n) / rate
    f0 = rng.uniform(200, 600)
    tone = 0.3 * np.sin(2 * np.pi * (f0 * t + 40 * t * t)) + 0.02 * rng.standard_normal(n)
    pcm = np.repeat(tone.astype(np.float32)[None, :], spec.channels, axis=0)
    fmt = a.codec_context.format.name if a.codec_context.format else "fltp"
    step = a.codec_context.frame_size or 1024
    lead = round(spec.lead_in_frames / spec.fps * rate)
    for s in range(0, n, step):
        block = np.ascontiguousarray(pcm[:, s : s + step])
        frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo" if spec.channels == 2 else "mono")
        frame.sample_rate, frame.pts, frame.time_base = rate, s - lead, Fraction(1, rate)
        if fmt != "fltp":
            frame = _convert(frame, fmt, spec)
        for packet in a.encode(frame):
            out.mux(packet)
    for packet in a.encode():
        out.mux(packet)


def _convert(frame: av.AudioFrame, fmt: str, spec: ClipSpec) -> av.AudioFrame:
    """The encoder's sample format (e.g. s16 for PCM and the RealAudio encoder)."""
    resampler = av.AudioResampler(format=fmt, layout=frame.layout.name, rate=spec.sample_rate)
    out = resampler.resample(frame)
    merged = out[0] if len(out) == 1 else None
    if merged is None:
        raise ValueError("audio conversion split a frame")
    merged.pts, merged.time_base = frame.pts, frame.time_base
    return merged


def write_corpus(folder: Path, n: int, specs: tuple[ClipSpec, ...] = REAL_LENGTH_SPECS, seed: int = 0) -> list[Path]:
    """``n`` clips cycling through ``specs`` as ``folder/<container>_<codec>/clip_<i>.<ext>``; files that
    already exist are kept (the corpus is expensive to encode and deterministic in content)."""
    paths = []
    for i in range(n):
        spec = specs[i % len(specs)]
        label = f"{spec.container}_{spec.video_codec.replace('lib', '')}"
        path = Path(folder) / label / f"clip_{i:03d}.{spec.extension}"
        if not path.is_file():
            tmp = path.with_name(path.stem + ".part" + path.suffix)
            write_clip(tmp, spec, seed=seed + i)
            tmp.replace(path)
        paths.append(path)
    return paths


__all__ = ["LONG_SPECS", "REAL_LENGTH_SPECS", "ClipSpec", "write_clip", "write_corpus"]

"""Decode one clip with PyAV: a few frames (scaled, centre-cropped RGB) and mono resampled audio.

PyAV bundles FFmpeg, so every container and codec the field meets (H.264, HEVC, VP9, AV1,
MPEG-2, MJPEG, FLV1, AAC, Opus, MP3, FLAC, PCM...) decodes in-process, and FFmpeg's resampler
mixes and resamples the audio. The file is demuxed once, front to back; audio is decoded on the
way. Video is decoded whole, in presentation order (exact frame counts; the frames nearest the
target timestamps are kept by reference and converted only at the end), or, for a whole clip
in a container with reliable packet timestamps, only from the keyframe before each sampled
frame (:mod:`mmcurate.ingest.sparse`): the same frames and counts, a fraction of the decoding.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import av
import av.error
import numpy as np
from av.video.reformatter import VideoReformatter

from mmcurate.common.media_probe import media_problem
from mmcurate.ingest.config import DecodeConfig
from mmcurate.ingest.sparse import SparseVideo, sparse_eligible
from mmcurate.ingest.truncation import DURATIONLESS_FORMATS, StreamSpan

#: Tolerance (seconds) when comparing timestamps against segment bounds.
_EPS = 1e-6
#: Seconds of native audio gathered before one resampler call.
_RESAMPLE_BATCH = 10.0
#: How video is decoded: "auto" (sparse where the file allows it), "all" (every frame; for
#: tests and benchmarks: the results are the same).
VIDEO_MODES = ("auto", "all")
#: Below this many pixels of video (frames x width x height, from the header) a clip is decoded
#: whole: sparse decoding's bookkeeping (about 0.3 ms a clip) outweighs the little decoding it
#: could skip (8 frames of 64 x 64 take about 0.1 ms to decode; 10 s of 360p take 500 ms).
MIN_SPARSE_PIXELS = 1_000_000


class DecodeError(Exception):
    """A clip that cannot be ingested; ``stage`` and a one-line ``reason`` go to failures.jsonl."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(reason)
        self.stage = stage
        self.reason = reason


@dataclass
class DecodedClip:
    """What the decoder found and kept for one clip (before JPEG/FLAC encoding)."""

    container: str
    duration: float
    video_codec: str | None = None
    audio_codec: str | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    native_frame_count: int = 0
    frames: list[np.ndarray] = field(default_factory=list)  # (S, S, 3) uint8 RGB
    frame_times: list[float] = field(default_factory=list)  # seconds from the segment start
    native_sample_rate: int | None = None
    native_channels: int | None = None
    native_audio_samples: int = 0
    audio: np.ndarray | None = None  # float32 mono at the target rate
    #: how the video was decoded: "whole" (every frame) or "sparse" (keyframe..sample ranges), and
    #: why not sparse; diagnostics only, not part of the output
    video_decoding: str = "whole"
    video_whole_reason: str | None = None
    video_packets_decoded: int | None = None

    @property
    def has_video(self) -> bool:
        return self.video_codec is not None and bool(self.frames)

    @property
    def has_audio(self) -> bool:
        return self.audio_codec is not None and self.audio is not None and self.audio.size > 0


@dataclass
class SampledFrame:
    """A sampled frame already scaled and cropped (sparse decoding converts each as it is decoded,
    so a long clip holds its samples at the output size, not as full-size decoded pictures)."""

    time: float | None
    rgb: np.ndarray


def ffmpeg_message(exc: BaseException) -> str:
    """FFmpeg's own words for an error, without errno noise or the file path."""
    msg = getattr(exc, "strerror", None) or str(exc)
    return str(msg).strip().rstrip(":")


def target_times(seg_start: float, seg_len: float, cfg: DecodeConfig) -> list[float]:
    """Absolute timestamps to sample: ``--frames N`` at the centres of N equal parts of the
    segment, or ``--fps F`` at the centre of every 1/F-second step (at least one frame)."""
    if cfg.fps is not None:
        n = max(1, int(math.floor(seg_len * cfg.fps + _EPS)))
        step = 1.0 / cfg.fps
        return [seg_start + (i + 0.5) * step for i in range(n)]
    n = cfg.frames
    return [seg_start + (i + 0.5) * seg_len / n for i in range(n)]


#: One reformatter per process: it keeps its swscale context between calls with the same
#: geometry, which makes scaling 10x cheaper than ``VideoFrame.reformat`` (a new context per
#: frame). Keyed by pid: a context made before a fork is never used in the child, and it runs
#: single-threaded (swscale's own worker threads do not survive a fork).
_REFORMATTERS: dict[int, VideoReformatter] = {}


def _reformatter() -> VideoReformatter:
    pid = os.getpid()
    r = _REFORMATTERS.get(pid)
    if r is None:
        _REFORMATTERS.clear()
        r = _REFORMATTERS[pid] = VideoReformatter()
    return r


def scale_and_crop(frame: av.VideoFrame, size: int) -> np.ndarray:
    """RGB array with the short side scaled to ``size`` and the centre ``size x size`` cut out.

    Scaling and colour conversion happen in one swscale pass (area filter when shrinking,
    bilinear when enlarging: twice as fast as bicubic, and enlarged frames hold no detail to keep).
    ``size == 0`` keeps the native resolution.
    """
    w, h = frame.width, frame.height
    if size == 0:
        return frame.to_ndarray(format="rgb24")
    if w <= h:
        nw, nh = size, max(size, round(h * size / w))
    else:
        nw, nh = max(size, round(w * size / h)), size
    interp = "AREA" if nw < w else "BILINEAR"
    rgb = (
        _reformatter()
        .reformat(frame, width=nw, height=nh, format="rgb24", interpolation=interp, threads=1)
        .to_ndarray()
    )
    top, left = (nh - size) // 2, (nw - size) // 2
    return np.ascontiguousarray(rgb[top : top + size, left : left + size])


def _pick_stream(streams: tuple, index: int, skip_attached: bool = False):  # type: ignore[no-untyped-def]
    usable = [s for s in streams if not (skip_attached and _is_attached_picture(s))]
    return usable[index] if index < len(usable) else None


def _is_attached_picture(stream: av.stream.Stream) -> bool:
    try:
        return bool(stream.disposition & av.stream.Disposition.attached_pic)
    except (AttributeError, TypeError):
        return False


def _stream_end(stream: av.stream.Stream | None) -> float | None:
    if stream is None or stream.duration is None or stream.time_base is None:
        return None
    start = stream.start_time or 0
    return float((start + stream.duration) * stream.time_base)


def declared_end(container: av.container.InputContainer, streams: list) -> float | None:  # type: ignore[type-arg]
    """End time (absolute seconds) the file declares, from the container or its streams."""
    if container.duration is not None and container.duration > 0:
        return (container.start_time or 0) / av.time_base + container.duration / av.time_base
    ends = [e for e in (_stream_end(s) for s in streams) if e is not None]
    return max(ends) if ends else None


def scan_end(path: Path, streams_idx: list[int]) -> float | None:
    """End time found by demuxing packets without decoding (for files that declare no duration)."""
    end = None
    with av.open(str(path)) as c:
        streams = [c.streams[i] for i in streams_idx]
        for pkt in c.demux(streams):
            if pkt.pts is None or pkt.time_base is None:
                continue
            t = float((pkt.pts + (pkt.duration or 0)) * pkt.time_base)
            end = t if end is None else max(end, t)
    return end


def decode_clip(
    path: Path,
    cfg: DecodeConfig,
    start: float | None = None,
    end: float | None = None,
    threads: int = 1,
    video: bool = True,
    video_mode: str = "auto",
) -> DecodedClip:
    """Decode ``path`` (optionally the segment ``start``..``end`` seconds) per ``cfg``.

    Raises :class:`DecodeError` with a one-line reason for unreadable files, missing streams
    (when the policy rejects them) and corrupt streams. ``video=False`` reads the video
    stream's properties but decodes only the audio (another decoder supplies the frames).
    ``video_mode`` (:data:`VIDEO_MODES`) changes how much video is decoded, never the result.
    """
    if video_mode not in VIDEO_MODES:
        raise ValueError(f"video_mode must be one of {VIDEO_MODES}")
    problem = media_problem(path)
    if problem is not None:
        raise DecodeError("probe", f"not a readable media file ({problem})")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise DecodeError("probe", f"not a readable media file ({ffmpeg_message(exc)})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DecodeError("probe", f"cannot open file ({exc})") from None
    with container:
        return _decode_open(path, container, cfg, start, end, threads, video, video_mode)


def _decode_open(path, container, cfg, start, end, threads, video=True, video_mode="auto"):  # type: ignore[no-untyped-def]
    vstream = _pick_stream(container.streams.video, cfg.video_stream, skip_attached=True)
    astream = _pick_stream(container.streams.audio, cfg.audio_stream)
    if vstream is None and astream is None:
        raise DecodeError("probe", "no audio or video stream")
    for s in (vstream, astream):
        if s is not None:
            s.thread_type = "AUTO" if threads != 1 else "SLICE"
            s.codec_context.thread_count = threads
    streams = [s for s in (vstream, astream) if s is not None]
    t0 = (container.start_time or 0) / av.time_base
    seg_start = t0 + (start or 0.0)
    media_end = declared_end(container, streams)
    if media_end is None:
        media_end = scan_end(path, [s.index for s in streams])
    if media_end is None:
        raise DecodeError("probe", "cannot determine the clip duration (no timestamps)")
    seg_end = min(media_end, t0 + end) if end is not None else media_end
    if seg_end <= seg_start + _EPS:
        raise DecodeError("probe", f"segment starts at {start or 0:g} s but the media ends at {media_end - t0:.3f} s")
    if start:
        # Jump near the segment start (to the keyframe before it); frames are then filtered by time.
        try:
            container.seek(int(seg_start * av.time_base), backward=True, any_frame=False)
        except av.error.FFmpegError:
            pass
    whole = start is None and end is None
    state = _ClipDecoder(container, vstream, astream, cfg, t0, seg_start, seg_end, whole=whole)
    tolerate = cfg.tolerate_decode_errors
    if whole and container.format.name in DURATIONLESS_FORMATS:
        state.span = StreamSpan(path, container.format.name)
    refusal = _sparse_refusal(container, vstream, video, whole, video_mode, tolerate, state.clip)
    sparse = None
    if refusal is None:
        sparse = SparseVideo(
            vstream,
            state.targets,
            state.frame_dt,
            lambda p, sink=state.on_video: _decode_packet(p, "video", sink, tolerate),
            convert=lambda f: SampledFrame(f.time, scale_and_crop(f, cfg.size)),
        )
    elif video and vstream is not None:
        state.clip.video_whole_reason = refusal
    decode_streams = streams if video else [s for s in streams if s is not vstream]
    if decode_streams:
        _demux_and_decode(
            container,
            decode_streams,
            vstream,
            state.on_video,
            state.on_audio,
            tolerate,
            state.keep_end,
            video_packets=sparse.add if sparse is not None else None,
            span=state.span,
        )
    if sparse is not None:
        result = sparse.finish()
        if result is not None:
            state.take_sparse(result.frames, result.frame_count, result.last_time)
            state.clip.video_decoding, state.clip.video_packets_decoded = "sparse", result.packets_decoded
        else:
            state.clip.video_whole_reason = sparse.why_whole
            if sparse.mode == "reread":
                _decode_video_again(path, vstream.index, threads, state.on_video, tolerate)
    return state.finish(video=video)


def _sparse_refusal(
    container, vstream, video: bool, whole: bool, video_mode: str, tolerate: bool, clip: DecodedClip
) -> str | None:  # type: ignore[no-untyped-def]
    """Why this clip's video is decoded whole without trying sparse decoding, or None to try it."""
    if not video or vstream is None:
        return "no video decoding"
    if not whole:
        return "segment"  # a segment is reached by a seek and decoded to its end already
    if video_mode == "all":
        return "all"
    if tolerate:
        return "tolerated decode errors"  # skipped packets would make the packet count inexact
    why = sparse_eligible(container, vstream)
    if why is None and clip.duration * (clip.fps or 0.0) * (clip.width or 0) * (clip.height or 0) < MIN_SPARSE_PIXELS:
        why = "small clip"
    return why


def _decode_video_again(path: Path, index: int, threads: int, on_video, tolerate: bool) -> None:  # type: ignore[no-untyped-def]
    """Decode every frame of stream ``index`` in a second pass (sparse decoding gave up after
    dropping packets it turned out to need)."""
    with av.open(str(path), metadata_errors="ignore") as container:
        vstream = container.streams[index]
        vstream.thread_type = "AUTO" if threads != 1 else "SLICE"
        vstream.codec_context.thread_count = threads
        _demux_and_decode(container, [vstream], vstream, on_video, None, tolerate, math.inf)


class _ClipDecoder:
    """Receives decoded frames in presentation order and keeps what the clip needs."""

    def __init__(
        self, container, vstream, astream, cfg: DecodeConfig, t0: float, seg_start: float, seg_end: float, whole: bool
    ):  # type: ignore[no-untyped-def]
        self.cfg = cfg
        self.t0, self.seg_start, self.seg_end, self.whole = t0, seg_start, seg_end, whole
        # A whole file keeps every frame and sample, even past a header duration that is too short.
        self.keep_start = -math.inf if whole else seg_start
        self.keep_end = math.inf if whole else seg_end
        clip = DecodedClip(container=container.format.name, duration=seg_end - seg_start)
        if vstream is not None:
            clip.video_codec = vstream.codec_context.name
            rate = vstream.average_rate or vstream.guessed_rate
            clip.fps = float(rate) if rate else None
            clip.width, clip.height = vstream.codec_context.width, vstream.codec_context.height
        if astream is not None:
            clip.audio_codec = astream.codec_context.name
            clip.native_sample_rate = astream.codec_context.sample_rate or None
            clip.native_channels = astream.codec_context.channels or None
        self.clip = clip
        self.declared_duration = container.duration / av.time_base if container.duration else None
        self.targets = target_times(seg_start, seg_end - seg_start, cfg) if vstream is not None else []
        self.best: list[tuple[float, av.VideoFrame | None]] = [(math.inf, None)] * len(self.targets)
        self.resampler = (
            av.AudioResampler(format="flt", layout="mono", rate=cfg.sample_rate) if astream is not None else None
        )
        self.audio_chunks: list[np.ndarray] = []
        # native frames are batched (up to _RESAMPLE_BATCH seconds) before resampling: one
        # resampler call per batch instead of one per codec frame (often 20 ms of audio each)
        self.pending = av.AudioFifo()  # copies samples in C: no per-frame arrays
        self.pending_samples = 0
        self.pending_meta: tuple[str, str, int] | None = None
        self.frame_dt = 1.0 / clip.fps if clip.fps else 0.0
        self.video_index = 0
        self.video_last: float | None = None
        self.audio_first: float | None = None
        self.audio_end: float | None = None
        self.span: StreamSpan | None = None  # for streams that declare no duration

    def on_video(self, frame: av.VideoFrame) -> None:
        t = frame.time if frame.time is not None else self.t0 + self.video_index * self.frame_dt
        self.video_index += 1
        if t < self.keep_start - _EPS or t >= self.keep_end - _EPS:
            return
        self.clip.native_frame_count += 1
        self.video_last = t
        # the frame's midpoint decides which target it serves best; frames are kept by reference
        mid = t + self.frame_dt / 2
        for i, target in enumerate(self.targets):
            d = abs(mid - target)
            if d < self.best[i][0]:
                self.best[i] = (d, frame)

    def take_sparse(self, frames: list[SampledFrame], frame_count: int, last_time: float) -> None:
        """Results of sparse decoding, in place of :meth:`on_video` for every frame of a whole clip
        (the frames for the targets, the frame count and the last frame's time)."""
        self.clip.native_frame_count = frame_count
        self.video_index = frame_count
        self.video_last = last_time
        self.best = [(abs(f.time + self.frame_dt / 2 - t), f) for t, f in zip(self.targets, frames, strict=True)]

    def on_audio(self, frame: av.AudioFrame) -> None:
        rate = frame.sample_rate or self.clip.native_sample_rate or self.cfg.sample_rate
        n = frame.samples
        t = frame.time
        if t is None:
            t = self.audio_end if self.audio_end is not None else self.t0
        f_end = t + n / rate
        if f_end <= self.keep_start + _EPS or t >= self.keep_end - _EPS:
            return
        lo, hi = max(t, self.keep_start), min(f_end, self.keep_end)
        self.clip.native_audio_samples += n if (lo == t and hi == f_end) else max(0, round((hi - lo) * rate))
        if self.audio_first is None:
            self.audio_first = t
        self.audio_end = f_end
        meta = (frame.format.name, frame.layout.name, rate)
        if self.pending_meta is not None and meta != self.pending_meta:
            self._flush_pending()  # format change mid-stream: resample what we have first
        self.pending_meta = meta
        frame.pts = None  # the fifo checks timestamps for gaps; the batch is resampled as one block
        self.pending.write(frame)
        self.pending_samples += n
        if self.pending_samples >= _RESAMPLE_BATCH * rate:
            self._flush_pending()

    def _flush_pending(self) -> None:
        if not self.pending_samples or self.pending_meta is None:
            return
        block = self.pending.read()
        block.sample_rate = self.pending_meta[2]
        for out in self.resampler.resample(block):  # type: ignore[union-attr]
            self.audio_chunks.append(out.to_ndarray().reshape(-1))
        self.pending = av.AudioFifo()
        self.pending_samples = 0

    def finish(self, video: bool = True) -> DecodedClip:
        clip, cfg = self.clip, self.cfg
        if clip.video_codec is not None and video:
            if clip.native_frame_count == 0:
                raise DecodeError(
                    "decode", f"video stream ({clip.video_codec}) has no decodable frames in the segment"
                )
            clip.frames = [
                f.rgb if isinstance(f, SampledFrame) else scale_and_crop(f, cfg.size)  # type: ignore[arg-type]
                for _, f in self.best
            ]
            clip.frame_times = [
                float(f.time) - self.seg_start if f.time is not None else 0.0
                for _, f in self.best  # type: ignore[union-attr]
            ]
        if clip.audio_codec is not None:
            if self.audio_first is not None:
                self._flush_pending()
                for out in self.resampler.resample(None):  # type: ignore[union-attr]
                    self.audio_chunks.append(out.to_ndarray().reshape(-1))
            if self.audio_first is None or clip.native_audio_samples == 0 or not self.audio_chunks:
                raise DecodeError(
                    "decode", f"audio stream ({clip.audio_codec}) has no decodable samples in the segment"
                )
            audio = np.concatenate(self.audio_chunks).astype(np.float32, copy=False)
            audio = audio[max(0, round((self.seg_start - self.audio_first) * cfg.sample_rate)) :]
            if not self.whole:
                audio = audio[: max(1, round((self.seg_end - self.seg_start) * cfg.sample_rate))]
            clip.audio = np.ascontiguousarray(audio)
        if video:
            self._check_coverage()
        if self.whole and video:
            # the duration is what actually decoded, not what the header claims
            ends = [self.video_last + self.frame_dt if self.video_last is not None else None, self.audio_end]
            known = [e for e in ends if e is not None]
            if known:
                clip.duration = max(known) - self.seg_start
        return clip

    def _check_coverage(self) -> None:
        """Fail a whole clip that decodes much shorter than its container declares.

        Truncated downloads often decode "successfully" into a fraction of the clip, and a
        sample built from 1 of 11 frames is worse than no sample. Truncation cuts all
        interleaved streams at about the same point, so the longest decoded stream is compared
        with the container's duration; per-stream durations are absent or estimated in many
        containers and unequal stream lengths are normal, so they are not used. The threshold
        is ``--min-coverage`` (0 disables the check); on the 3000 clean av_digits clips the
        ratio is at least 0.949.
        """
        floor = self.cfg.min_coverage
        if floor <= 0 or not self.whole:
            return
        if self.span is not None:
            self._check_durationless(floor)
            return
        if not self.declared_duration:
            return
        ends = [self.video_last + self.frame_dt if self.video_last is not None else None, self.audio_end]
        known = [e for e in ends if e is not None]
        if not known:
            return
        decoded = max(known) - self.seg_start
        if decoded < floor * self.declared_duration:
            raise DecodeError(
                "decode",
                f"decodes {decoded:.2f} s of the {self.declared_duration:.2f} s the container declares: "
                "truncated or corrupt",
            )

    def _check_durationless(self, floor: float) -> None:
        """The coverage check for streams that declare no duration (:mod:`mmcurate.ingest.truncation`)."""
        assert self.span is not None
        cut = self.span.cut_inside_packet()
        if cut is not None:
            raise DecodeError("decode", f"{cut}; truncated")
        expected_end = self.span.expected_end()
        ends = [self.video_last + self.frame_dt if self.video_last is not None else None, self.audio_end]
        known = [e for e in ends if e is not None]
        if expected_end is None or not known:
            return
        decoded = max(known) - self.seg_start
        expected = expected_end - self.seg_start
        if decoded < floor * expected:
            raise DecodeError(
                "decode",
                f"decodes {decoded:.2f} s, but its size at its bitrate implies {expected:.2f} s "
                "(a stream without a declared duration): truncated or corrupt",
            )


#: Packets this far (seconds) past a segment's end are not needed even with B-frame reordering.
_REORDER_MARGIN = 2.0


def _demux_and_decode(  # type: ignore[no-untyped-def]
    container, streams, vstream, on_video, on_audio, tolerate: bool, keep_end: float, video_packets=None, span=None
) -> None:
    """Feed every packet to its decoder; a corrupt packet fails the clip unless tolerated.

    For a segment, demuxing stops once every stream is safely past the segment's end, so a
    2-second event in a 10-minute video costs a seek and two seconds of decoding.
    ``video_packets`` receives the video packets instead of the decoder (sparse decoding);
    ``span`` records where packets lie (truncation of streams without a declared duration)."""
    packets = container.demux(streams)
    finished: set[int] = set()
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except av.error.FFmpegError as exc:
            if tolerate:
                break
            raise DecodeError("decode", f"file is truncated or corrupt ({ffmpeg_message(exc)})") from None
        is_video = packet.stream is vstream
        if keep_end != math.inf and packet.pts is not None and packet.time_base is not None:
            if float(packet.pts * packet.time_base) > keep_end + _REORDER_MARGIN:
                finished.add(packet.stream.index)
                if len(finished) == len(streams):
                    break
                continue
        if span is not None:
            span.add(packet)
        if is_video:
            if video_packets is not None:
                video_packets(packet)
            else:
                _decode_packet(packet, "video", on_video, tolerate)
        else:
            _decode_packet(packet, "audio", on_audio, tolerate)


def _decode_packet(packet, kind: str, sink, tolerate: bool) -> None:  # type: ignore[no-untyped-def]
    """Decode one packet into ``sink``; a decoding error fails the clip unless tolerated."""
    try:
        frames = packet.decode()
    except av.error.FFmpegError as exc:
        if tolerate:
            return
        t = float(packet.pts * packet.time_base) if packet.pts is not None and packet.time_base else None
        at = f" at {t:.2f} s" if t is not None else ""
        raise DecodeError("decode", f"corrupt {kind} stream{at} ({ffmpeg_message(exc)})") from None
    for frame in frames:
        sink(frame)


__all__ = ["DecodeError", "DecodedClip", "decode_clip", "target_times", "scale_and_crop"]

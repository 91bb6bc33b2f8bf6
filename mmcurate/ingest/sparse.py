"""Decode only the video a whole clip's samples need: from the keyframe before each sampled frame.

Ingest keeps 3 frames (or 1 per second) of a clip; a 10-second 30 fps clip has 300. Decoding
all of them costs most of ingest's time, while a frame only needs the packets from the keyframe
before it. Seeking in the container is the usual way there, but how a seek lands differs by
demuxer (Matroska seeks to its sparse cue points, MP4 by decode timestamps...). This module does
not seek: while the file is demuxed once, front to back (audio is decoded on the way), video
packets are kept, compressed, only for the GOPs near a sampled time, together with every
packet's timestamp and flags. From that timeline it picks, for every target time, the same frame
decoding everything would pick (each target's nearest frame by midpoint, ties to the earlier),
and decodes the packets from that frame's keyframe up to it, and nothing else. On the way, frames
no other frame refers to (most B-frames) are skipped unless sampled (FFmpeg's
``skip_frame=NONREF``): nothing depends on them, so the sampled frames are unchanged.

The manifest fields stay exact because they come from the timeline, not from decoded frames:
in the containers and codecs admitted here every packet decodes to exactly one frame with the
packet's timestamp (a packet marked discard, e.g. before an MP4 edit list's start, to none), so
the frame count is the number of packets and the last frame is the latest packet. Files where
that is not known to hold (other containers, MPEG-TS/PS in particular, hidden VP8/VP9 frames,
MPEG-4 "not coded" frames, packets without timestamps, a stream that does not start on a
keyframe or shows frames before it) are decoded whole. Dense sampling needs no special case:
its ranges merge into one, which still skips the unsampled non-reference frames and stops at
the last sample. Packets outside the ranges, and skipped frames, are demuxed but not decoded,
so a decoding error there goes unnoticed; demuxing errors and truncation are still caught.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import av
import numpy as np

#: Containers whose video packets carry timestamps and keyframe flags from the container itself
#: (sample tables, block headers, index flags); MPEG-TS/PS and raw streams derive them by parsing.
TRUSTED_FORMATS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi", "flv"})
#: Video codecs whose packets are whole frames (one picture per access unit) in those containers.
#: vp8/vp9 and mpeg4 are admitted with a per-packet check (hidden or "not coded" frames).
ONE_FRAME_CODECS = frozenset(
    {
        "h264",
        "hevc",
        "av1",
        "libdav1d",
        "libaom-av1",
        "vp8",
        "vp9",
        "libvpx",
        "libvpx-vp9",
        "mpeg4",
        "mpeg1video",
        "mpeg2video",
        "flv",
        "h263",
        "vp6",
        "vp6f",
        "vp6a",
        "mjpeg",
        "prores",
        "dnxhd",
        "png",
        "rawvideo",
        "ffv1",
        "huffyuv",
        "utvideo",
        "qtrle",
    }
)
#: Decoders that honour ``skip_frame=NONREF`` frame by frame (dav1d, for one, reads it once
#: when it opens, so it would skip sampled frames too).
NONREF_SKIP_CODECS = frozenset({"h264", "hevc", "mpeg4", "mpeg1video", "mpeg2video", "vp8", "vp9", "h263", "flv"})
#: Keep a GOP's packets when a target time lies within this many seconds of the GOP's frames
#: (the frame nearest a target is normally within half a frame of it; the plan checks it).
KEEP_WINDOW = 1.0
#: Compressed video kept per clip at most; beyond it the clip is decoded whole as it streams.
KEEP_BUDGET_BYTES = 64 << 20
#: Restarting the decoder at a keyframe costs about this many decoded packets (flush, drain,
#: the keyframe itself is counted in the range); a gap this short is decoded through instead.
RESTART_COST = 2


def sparse_eligible(container: av.container.InputContainer, vstream: av.video.stream.VideoStream) -> str | None:
    """None when the container and codec admit sparse decoding, else why not."""
    if container.format.name not in TRUSTED_FORMATS:
        return f"container {container.format.name}"
    name = vstream.codec_context.name
    if name not in ONE_FRAME_CODECS:
        return f"codec {name}"
    return None


def packet_time(pts: int, time_base) -> float:  # type: ignore[no-untyped-def]
    """Seconds of a timestamp, computed exactly as PyAV computes ``Frame.time``."""
    return float(pts) * time_base.numerator / time_base.denominator


def _vp8_shown(data: bytes) -> bool:
    return len(data) >= 3 and bool(data[0] & 0x10)  # frame tag: show_frame bit


def _vp9_frame_shown(data: bytes) -> bool | None:
    """show_frame (or show_existing_frame) of one VP9 frame's uncompressed header."""
    if not data:
        return None
    b = data[0]
    if b >> 6 != 0b10:  # frame_marker
        return None
    profile = ((b >> 5) & 1) | (((b >> 4) & 1) << 1)
    bit = 3 if profile < 3 else 2  # position of show_existing_frame (profile 3 has a reserved bit)
    if (b >> bit) & 1:
        return True
    return bool((b >> (bit - 2)) & 1)  # frame_type, then show_frame


def _vp9_shown_count(data: bytes) -> int | None:
    """Frames a VP9 packet displays (a superframe bundles hidden frames with a shown one)."""
    if not data:
        return None
    marker = data[-1]
    if marker & 0xE0 == 0xC0:
        frames = (marker & 7) + 1
        mag = ((marker >> 3) & 3) + 1
        index = 2 + mag * frames
        if len(data) >= index and data[-index] == marker:
            sizes, pos, count = [], len(data) - index + 1, 0
            for _ in range(frames):
                sizes.append(int.from_bytes(data[pos : pos + mag], "little"))
                pos += mag
            offset = 0
            for size in sizes:
                shown = _vp9_frame_shown(data[offset : offset + size])
                if shown is None:
                    return None
                count += shown
                offset += size
            return count
    shown = _vp9_frame_shown(data)
    return None if shown is None else int(shown)


def _one_frame(codec: str, packet: av.Packet) -> bool:
    """Whether this packet decodes to exactly one frame (checked for the codecs that may not)."""
    if codec in ("vp8", "libvpx"):
        return _vp8_shown(bytes(memoryview(packet)[:3]))
    if codec in ("vp9", "libvpx-vp9"):
        return _vp9_shown_count(bytes(packet)) == 1
    if codec == "mpeg4":
        # "not coded" VOPs and packed-B-frame placeholders are a few bytes and decode to nothing
        return packet.size > 8
    return True


@dataclass
class _Range:
    first: int  # decode index of the keyframe
    last: int  # decode index of the last packet to feed
    wanted: set[int] = field(default_factory=set)  # pts this range delivers


@dataclass
class SparseResult:
    """What the plan decoded: ``frames[i]`` is the frame for target ``i``."""

    frames: list[av.VideoFrame]
    frame_count: int
    last_time: float
    packets_decoded: int


class SparseVideo:
    """Receives the video packets of one demux pass; decodes the sampled frames at the end.

    Modes: ``collect`` (keep packets near targets, decode later); ``stream`` (decode every packet
    as it arrives, through ``decode_packet``: the decode-all path); ``reread`` (packets were
    dropped before the clip turned out to need all of them: the caller decodes it whole again).
    """

    def __init__(
        self,
        vstream: av.video.stream.VideoStream,
        targets: list[float],
        frame_dt: float,
        decode_packet: Callable[[av.Packet], None],
        budget: int | None = None,
    ) -> None:
        self.vstream = vstream
        self.codec = vstream.codec_context.name
        self.time_base = vstream.time_base
        self.targets = targets
        self.frame_dt = frame_dt
        self.decode_packet = decode_packet
        self.budget = KEEP_BUDGET_BYTES if budget is None else budget
        self.mode = "collect"
        self.why_whole: str | None = None
        self.pts: list[int] = []  # decode order
        self.key: list[bool] = []
        self.discard: list[bool] = []
        self.kept: dict[int, av.Packet] = {}
        self.kept_bytes = 0
        self.dropped = False
        self.gop: list[tuple[int, av.Packet]] = []
        self.flush_packet: av.Packet | None = None

    # -- during the demux pass ------------------------------------------------------------------
    def add(self, packet: av.Packet) -> None:
        if self.mode == "stream":
            self.decode_packet(packet)
            return
        if packet.size == 0 and packet.pts is None:  # PyAV's end-of-stream flush packet
            self.flush_packet = packet
            return
        if self.mode == "reread":
            return
        problem = None
        if packet.pts is None or packet.size == 0:
            problem = "a video packet without timestamp or data"
        elif not self.pts and not packet.is_keyframe:
            problem = "the video does not start on a keyframe"
        elif not _one_frame(self.codec, packet):
            problem = f"a {self.codec} packet that does not hold exactly one shown frame"
        if problem is not None:
            self._give_up(problem)
            if self.mode == "stream":
                self.decode_packet(packet)
            return
        if packet.is_keyframe and self.gop:
            self._close_gop()
            if self.mode != "collect":  # closing that GOP went over the memory budget
                self.add(packet)
                return
        i = len(self.pts)
        self.pts.append(packet.pts)
        self.key.append(packet.is_keyframe)
        self.discard.append(packet.is_discard)
        self.gop.append((i, packet))

    def _close_gop(self) -> None:
        gop, self.gop = self.gop, []
        times = [packet_time(self.pts[i], self.time_base) for i, _ in gop]
        lo, hi = min(times) - KEEP_WINDOW, max(times) + self.frame_dt + KEEP_WINDOW
        if any(lo <= t <= hi for t in self.targets):
            for i, packet in gop:
                self.kept[i] = packet
                self.kept_bytes += packet.size
            if self.kept_bytes > self.budget:
                self._give_up(f"more than {self.budget / (1 << 20):g} MiB of video near the sampled times")
        else:
            self.dropped = True

    def _give_up(self, why: str) -> None:
        """Decode the whole video: at once from the kept packets when none was dropped, else later."""
        if self.mode != "collect":
            return
        self.why_whole = why
        if self.dropped:
            self.mode = "reread"
            self.kept.clear()
            self.gop = []
            return
        self.mode = "stream"
        pending = sorted([*self.kept.items(), *self.gop])
        self.kept.clear()
        self.gop = []
        for _, packet in pending:
            self.decode_packet(packet)

    # -- after the demux pass -------------------------------------------------------------------
    def finish(self) -> SparseResult | None:
        """Decode what the plan needs. None when the whole video was (or must be) decoded instead:
        ``mode`` then says whether that already happened (``stream``) or is left to the caller."""
        if self.mode == "collect" and self.gop:
            self._close_gop()
        if self.mode != "collect":
            self._drain_stream()
            return None
        shown = [i for i in range(len(self.pts)) if not self.discard[i]]
        problem = None
        if not shown:
            problem = "no frames"
        elif len(set(self.pts)) != len(self.pts):
            problem = "repeated video timestamps"
        elif any(self.pts[i] < self.pts[0] for i in shown):
            # leading frames of an open GOP the file starts with: their references were cut off
            # and decoders drop them, so the packet count would be too high
            problem = "frames shown before the first keyframe"
        if problem is not None:
            self._give_up(problem)
            self._drain_stream()
            return None
        order = sorted(shown, key=lambda i: self.pts[i])
        times = np.array([packet_time(self.pts[i], self.time_base) for i in order])
        mids = times + self.frame_dt / 2
        picks = [order[int(np.argmin(np.abs(mids - target)))] for target in self.targets]
        ranges = self._plan(picks)
        decoded = sum(r.last - r.first + 1 for r in ranges)
        if any(i not in self.kept for r in ranges for i in range(r.first, r.last + 1)):
            self._give_up("frames far from the sampled times")
            self._drain_stream()
            return None
        frames = self._decode_ranges(ranges, set(picks))
        if any(frames.get(self.pts[i]) is None for i in picks):
            # the decoder did not deliver a planned frame: trust only a full decode
            self.vstream.codec_context.flush_buffers()
            self._give_up("a planned frame did not decode")
            self._drain_stream()
            return None
        return SparseResult(
            frames=[frames[self.pts[i]] for i in picks],
            frame_count=len(shown),
            last_time=float(times[-1]),
            packets_decoded=decoded,
        )

    def _plan(self, picks: list[int]) -> list[_Range]:
        """Decode ranges (keyframe .. sampled packet), merged where decoding through is cheaper."""
        keys = [i for i, k in enumerate(self.key) if k]
        spans: dict[int, _Range] = {}
        for j in sorted(set(picks)):
            # the last keyframe up to j that is not shown after j (open-GOP leading frames
            # precede their keyframe in time and need the previous GOP)
            pos = np.searchsorted(keys, j, side="right") - 1
            while pos > 0 and self.pts[keys[pos]] > self.pts[j]:
                pos -= 1
            k = keys[pos]
            r = spans.setdefault(k, _Range(k, j))
            r.last = max(r.last, j)
            r.wanted.add(self.pts[j])
        merged: list[_Range] = []
        for r in sorted(spans.values(), key=lambda r: r.first):
            if merged and r.first <= merged[-1].last + 1 + RESTART_COST:
                merged[-1].last = max(merged[-1].last, r.last)
                merged[-1].wanted |= r.wanted
            else:
                merged.append(r)
        return merged

    def _decode_ranges(self, ranges: list[_Range], picks: set[int]) -> dict[int, av.VideoFrame]:
        cc = self.vstream.codec_context
        got: dict[int, av.VideoFrame] = {}
        skip = self.codec in NONREF_SKIP_CODECS

        def take(frames: list[av.VideoFrame], wanted: set[int]) -> None:
            for frame in frames:
                if frame.pts in wanted and frame.pts not in got:
                    got[frame.pts] = frame

        for n, r in enumerate(ranges):
            if n:
                cc.flush_buffers()
            for i in range(r.first, r.last + 1):
                if skip:
                    cc.skip_frame = "DEFAULT" if i in picks else "NONREF"
                take(self._decode(self.kept[i]), r.wanted)
            if skip:
                cc.skip_frame = "DEFAULT"
            take(self._decode(self._flush()), r.wanted)
        cc.flush_buffers()
        return got

    def _decode(self, packet: av.Packet) -> list[av.VideoFrame]:
        frames: list[av.VideoFrame] = []
        self.decode_packet(packet, frames.append)  # type: ignore[call-arg]
        return frames

    def _flush(self) -> av.Packet:
        if self.flush_packet is None:
            raise RuntimeError("sparse video: the demuxer's end-of-stream packet was not seen")
        return self.flush_packet

    def _drain_stream(self) -> None:
        """In stream mode, the demuxer's end-of-stream packet drains the decoder."""
        if self.mode == "stream" and self.flush_packet is not None:
            packet, self.flush_packet = self.flush_packet, None
            self.decode_packet(packet)


__all__ = ["ONE_FRAME_CODECS", "TRUSTED_FORMATS", "SparseResult", "SparseVideo", "packet_time", "sparse_eligible"]

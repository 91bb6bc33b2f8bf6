"""Decode only the video a whole clip's samples need: from the keyframe before each sampled frame.

Ingest keeps 3 frames (or 1 per second) of a clip; a 10-second 30 fps clip has 300. Decoding
all of them costs most of ingest's time, while a frame only needs the packets from the keyframe
before it. The file is demuxed once, front to back (audio is decoded on the way); every video
packet's timestamp and flags go into a timeline, and the compressed packets of the GOPs near a
sampled time are kept for a while. When a GOP closes (the next keyframe arrives) and more than
``DECODE_BATCH_BYTES`` are kept, the targets whose frame can no longer change are resolved (each
target's nearest frame by midpoint, ties to the earlier, the rule decoding everything applies)
and decoded, and the packets no later sample can need are released; the rest is decoded at the
end of the file. Memory stays under that batch plus about two GOPs whatever the clip's length.

Which packets are decoded is chosen per sample from the keyframes the stream actually has (its
GOP structure, read from the packets' keyframe flags, not assumed): a sample whose keyframe lies
within ``RESTART_COST`` packets of where the decoder stands is reached by decoding through;
otherwise the decoder is drained and restarted at that keyframe. Decoding through a gap never
decodes fewer frames than restarting (both decode the keyframe), and a restart costs less than
one frame, so the decoder restarts wherever the next sample's keyframe is past where it stands,
and decodes through where the keyframe is behind it: at one sample a second, GOPs longer than a
second are decoded through from their keyframe to their last sample, shorter ones only from
each sample's keyframe. Frames no other frame refers to (most B-frames) are skipped unless
sampled (FFmpeg's ``skip_frame=NONREF``): nothing depends on them, so the sampled frames are
unchanged. Nothing is reached by a container seek: demuxing every packet costs 1-2 % of decoding
the frames (measured, ``benchmarks/ingest.py --profile``), the audio needs the whole file read
anyway, and how a seek lands differs by demuxer (Matroska's sparse cue points, MP4's decode
timestamps...).

The manifest fields stay exact because they come from the timeline, not from decoded frames:
in the containers and codecs admitted here every packet decodes to exactly one frame with the
packet's timestamp (a packet marked discard, e.g. before an MP4 edit list's start, to none), so
the frame count is the number of packets and the last frame is the latest packet. Files where
that is not known to hold (other containers, MPEG-TS/PS in particular, hidden VP8/VP9 frames,
MPEG-4 "not coded" frames, packets without timestamps, a stream that does not start on a
keyframe or shows frames before it) are decoded whole. When the demux pass ends, the targets
are resolved again on the whole timeline; should any pick differ from the one made on the way
(it cannot when no GOP shows frames before the previous GOP's first), or a planned frame be
missing, the clip is decoded whole in a second pass. Packets outside the decoded ranges, and
skipped frames, are demuxed but not decoded, so a decoding error there goes unnoticed;
demuxing errors and truncation are still caught.
"""

from __future__ import annotations

import bisect
import math
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
#: Compressed video kept at once, at most (checked after each batch is decoded, when about two
#: GOPs are left); beyond it the clip is decoded whole (e.g. a long stream with a single keyframe).
KEEP_BUDGET_BYTES = 64 << 20
#: Kept video (bytes) that triggers decoding the samples resolved so far and releasing their
#: packets. Decoding in a few large batches rather than GOP by GOP: interleaving video decoding
#: with the demuxing and audio decoding cost about 3 % more CPU per 10-s clip (A/B, 40 clips, GOP
#: 60, --fps 1: 231 against 224 ms a clip), and a clip under this size is decoded at the end of
#: the file as before. Memory is then at most this plus about two GOPs.
DECODE_BATCH_BYTES = 16 << 20
#: Packets a restart at a keyframe costs beyond the ones it decodes: a gap this long or shorter is
#: decoded through. Draining and flushing the decoder take 0.01-0.05 ms, against 1.2-1.5 ms for one
#: 640x360 inter frame (H.264, VP9; measured on the real-length corpus of ``benchmarks/ingest.py``),
#: and both ways decode the keyframe, so any gap is restarted over.
RESTART_COST = 0


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


def nearest_frames(mids: np.ndarray, targets: list[float]) -> np.ndarray:
    """Index into sorted frame midpoints ``mids`` of each target's nearest, ties to the earlier:
    ``argmin(|mids - target|)``, searched among the target's neighbours only (O(log n) each)."""
    if not len(targets):
        return np.zeros(0, dtype=np.int64)
    t = np.asarray(targets, dtype=np.float64)
    n = len(mids)
    base = np.searchsorted(mids, t, side="left") - 2  # window [i-2, i+2): the neighbours, and a margin
    window = np.clip(base[:, None] + np.arange(4)[None, :], 0, n - 1)
    dist = np.abs(mids[window] - t[:, None])
    return window[np.arange(len(t)), np.argmin(dist, axis=1)]


@dataclass
class _Range:
    """The decoder's current run: fed from keyframe ``first`` up to ``last`` without a gap."""

    first: int
    last: int
    wanted: set[int] = field(default_factory=set)  # pts of sampled frames this run delivers


@dataclass
class _Span:
    last: int  # decode index of the latest pick served from this keyframe
    picks: set[int] = field(default_factory=set)  # their decode indices


@dataclass
class SparseResult:
    """What the plan decoded: ``frames[i]`` is the frame for target ``i`` (as ``convert`` made it)."""

    frames: list[object]
    frame_count: int
    last_time: float
    packets_decoded: int


class SparseVideo:
    """Receives the video packets of one demux pass and decodes the sampled frames as it goes.

    Modes: ``collect`` (keep packets near targets, decode them as targets resolve); ``stream``
    (decode every packet as it arrives, through ``decode_packet``: the decode-all path); ``reread``
    (packets were released or decoded before the clip turned out to need all of them: the caller
    decodes it whole again).
    """

    def __init__(
        self,
        vstream: av.video.stream.VideoStream,
        targets: list[float],
        frame_dt: float,
        decode_packet: Callable[[av.Packet], None],
        budget: int | None = None,
        convert: Callable[[av.VideoFrame], object] | None = None,
    ) -> None:
        self.vstream = vstream
        self.convert = convert if convert is not None else (lambda frame: frame)
        self.codec = vstream.codec_context.name
        self.time_base = vstream.time_base
        self.targets = targets
        self.frame_dt = frame_dt
        self.decode_packet = decode_packet
        self.budget = KEEP_BUDGET_BYTES if budget is None else budget
        self.batch = DECODE_BATCH_BYTES
        self.skip_nonref = self.codec in NONREF_SKIP_CODECS
        self.mode = "collect"
        self.why_whole: str | None = None
        # the timeline, in decode order
        self.pts: list[int] = []
        self.times: list[float] = []
        self.discard: list[bool] = []
        self.keys: list[int] = []  # decode indices of keyframes
        self.seen_pts: set[int] = set()
        self.mids: list[float] = []  # midpoints of the shown frames known so far, sorted
        self.mid_index: list[int] = []  # their decode indices
        # compressed packets near targets, by decode index, until no sample can need them
        self.kept: dict[int, av.Packet] = {}
        self.kept_bytes = 0
        self.peak_kept_bytes = 0
        self.released = False  # a packet was dropped or released: a whole decode needs a second pass
        self.gop: list[tuple[int, av.Packet]] = []
        self.flush_packet: av.Packet | None = None
        # decoding
        self.next_target = 0
        self.picks: list[int] = []  # decode index of each resolved target's frame
        self.got: dict[int, object] = {}  # pts -> sampled frame, converted
        self.ahead: dict[int, av.VideoFrame] = {}  # frames decoded past the latest pick (future picks?)
        self.run: _Range | None = None
        self.fed = 0  # packets given to the decoder

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
        elif packet.pts in self.seen_pts:
            problem = "repeated video timestamps"
        elif self.pts and packet.pts < self.pts[0] and not packet.is_discard:
            # leading frames of an open GOP the file starts with: their references were cut off
            # and decoders drop them, so the packet count would be too high
            problem = "frames shown before the first keyframe"
        if problem is not None:
            self._give_up(problem)
            if self.mode == "stream":
                self.decode_packet(packet)
            return
        if packet.is_keyframe and self.gop:
            self._close_gop()
            if self.mode != "collect":  # closing that GOP went over the memory budget, or failed a plan
                self.add(packet)
                return
        i = len(self.pts)
        t = packet_time(packet.pts, self.time_base)
        self.pts.append(packet.pts)
        self.times.append(t)
        self.discard.append(packet.is_discard)
        self.seen_pts.add(packet.pts)
        if packet.is_keyframe:
            self.keys.append(i)
        if not packet.is_discard:
            at = bisect.bisect_right(self.mids, t + self.frame_dt / 2)
            self.mids.insert(at, t + self.frame_dt / 2)
            self.mid_index.insert(at, i)
        self.gop.append((i, packet))

    def _close_gop(self) -> None:
        gop, self.gop = self.gop, []
        times = [self.times[i] for i, _ in gop]
        lo, hi = min(times) - KEEP_WINDOW, max(times) + self.frame_dt + KEEP_WINDOW
        near = bisect.bisect_left(self.targets, lo)  # targets ascend: one look-up, not a scan per GOP
        if near < len(self.targets) and self.targets[near] <= hi:
            for i, packet in gop:
                self.kept[i] = packet
                self.kept_bytes += packet.size
            self.peak_kept_bytes = max(self.peak_kept_bytes, self.kept_bytes)
        else:
            self.released = True
        # no frame of a later GOP is shown before this one's first frame (checked in finish), so
        # every target whose nearest frame lies before it can be resolved; that is done (and the
        # frames decoded) in batches, once this much video is kept
        if self.kept_bytes > self.batch:
            self._advance(min(times))
        if self.mode == "collect" and self.kept_bytes > self.budget:
            self._give_up(f"more than {self.budget / (1 << 20):g} MiB of video near the sampled times")

    def _give_up(self, why: str) -> None:
        """Decode the whole video: at once from the kept packets when none was released or decoded
        yet, else in a second pass."""
        if self.mode != "collect":
            return
        self.why_whole = why
        if self.released or self.fed:
            self.mode = "reread"
            self.kept.clear()
            self.gop = []
            self.got.clear()
            self.ahead.clear()
            self.run = None
            self.vstream.codec_context.skip_frame = "DEFAULT"
            self.vstream.codec_context.flush_buffers()
            return
        self.mode = "stream"
        pending = sorted([*self.kept.items(), *self.gop])
        self.kept.clear()
        self.gop = []
        for _, packet in pending:
            self.decode_packet(packet)

    # -- resolving and decoding -----------------------------------------------------------------
    def _advance(self, horizon: float) -> None:
        """Resolve the targets no frame shown at or after ``horizon`` (seconds) could be nearer to,
        decode their frames, and release the packets no later target can need."""
        batch: list[int] = []
        half = self.frame_dt / 2
        while self.next_target < len(self.targets) and self.mids:
            target = self.targets[self.next_target]
            # the nearest midpoint, ties to the earlier: argmin over the target's neighbours
            lo = max(0, bisect.bisect_left(self.mids, target) - 2)
            window = self.mids[lo : lo + 4]
            best = min(range(len(window)), key=lambda k: (abs(window[k] - target), k))
            # an unseen frame is shown at or after the horizon, so its midpoint is at least
            # horizon + half a frame away; a tie would go to the earlier, already-seen frame
            if abs(window[best] - target) >= horizon + half - target:
                break
            batch.append(self.mid_index[lo + best])
            self.next_target += 1
        if batch:
            self.picks += batch
            self._decode_picks(batch)
        if self.mode == "collect":
            self._release()

    def _keyframe_for(self, j: int) -> int:
        """The last keyframe up to packet ``j`` that is not shown after it (open-GOP leading frames
        precede their keyframe in time and need the previous GOP)."""
        pos = bisect.bisect_right(self.keys, j) - 1
        while pos > 0 and self.pts[self.keys[pos]] > self.pts[j]:
            pos -= 1
        return self.keys[pos]

    def _decode_picks(self, picks: list[int]) -> None:
        latest = max(self.pts[j] for j in picks)
        spans: dict[int, _Span] = {}
        for j in sorted(set(picks)):
            pts = self.pts[j]
            if pts in self.got:
                continue
            if pts in self.ahead:  # decoded already, past the previous picks
                self.got[pts] = self.convert(self.ahead.pop(pts))
                continue
            span = spans.setdefault(self._keyframe_for(j), _Span(j))
            span.last = max(span.last, j)
            span.picks.add(j)
        self.ahead = {p: f for p, f in self.ahead.items() if p > latest}
        for k in sorted(spans):
            span = spans[k]
            run = self.run
            if run is not None and run.first <= k <= run.last + 1 + RESTART_COST:
                start = run.last + 1  # decode through (a pick at or before run.last is on its way out)
            else:
                if run is not None:
                    self._drain()
                run = self.run = _Range(k, k - 1)
                start = k
            run.wanted |= {self.pts[j] for j in span.picks}
            for i in range(start, span.last + 1):
                packet = self.kept.get(i)
                if packet is None:
                    self._give_up("frames far from the sampled times")
                    return
                if self.skip_nonref:
                    self.vstream.codec_context.skip_frame = "DEFAULT" if i in span.picks else "NONREF"
                self._take(self._decode(packet), latest)
                self.fed += 1
            run.last = max(run.last, span.last)
            if self.skip_nonref:
                self.vstream.codec_context.skip_frame = "DEFAULT"

    def _take(self, frames: list[av.VideoFrame], latest: int | None) -> None:
        wanted = self.run.wanted if self.run is not None else set()
        for frame in frames:
            if frame.pts in wanted:
                wanted.discard(frame.pts)
                if frame.pts not in self.got:
                    self.got[frame.pts] = self.convert(frame)
            elif latest is not None and frame.pts is not None and frame.pts > latest:
                self.ahead[frame.pts] = frame

    def _drain(self) -> None:
        """End the decoder's run: take the frames it still holds, then reset it for a new keyframe."""
        latest = self.pts[self.picks[-1]] if self.picks else None
        self._take(self._decode(self._end_packet()), latest)
        self.vstream.codec_context.flush_buffers()
        self.run = None

    def _release(self) -> None:
        """Drop kept packets before the keyframe of the latest pick (later picks are shown no
        earlier, so their keyframes are no earlier) and before what the decoder still may continue."""
        if not self.picks or not self.kept:
            return
        keep_from = self._keyframe_for(self.picks[-1])
        if self.run is not None:
            keep_from = min(keep_from, self.run.last + 1)
        for i in list(self.kept):
            if i >= keep_from:
                break
            self.kept_bytes -= self.kept.pop(i).size
            self.released = True

    # -- after the demux pass -------------------------------------------------------------------
    def finish(self) -> SparseResult | None:
        """Decode what is left. None when the whole video was (or must be) decoded instead:
        ``mode`` then says whether that already happened (``stream``) or is left to the caller."""
        if self.mode == "collect" and self.gop:
            self._close_gop()
        if self.mode == "collect" and not self.mids:
            self._give_up("no frames")
        if self.mode == "collect":
            self._advance(math.inf)
        if self.mode == "collect" and self.run is not None:
            self._drain()
        if self.mode != "collect":
            self._drain_stream()
            return None
        shown = [i for i in range(len(self.pts)) if not self.discard[i]]
        order = sorted(shown, key=lambda i: self.pts[i])
        mids = np.array([self.times[i] for i in order]) + self.frame_dt / 2
        final = [order[int(k)] for k in nearest_frames(mids, self.targets)]
        if final != self.picks:
            self._give_up("a GOP shows frames before the previous GOP's first")
        elif any(self.got.get(self.pts[j]) is None for j in self.picks):
            self._give_up("a planned frame did not decode")  # trust only a full decode
        if self.mode != "collect":
            return None
        return SparseResult(
            frames=[self.got[self.pts[j]] for j in self.picks],
            frame_count=len(shown),
            last_time=max(self.times[i] for i in shown),
            packets_decoded=self.fed,
        )

    def _decode(self, packet: av.Packet) -> list[av.VideoFrame]:
        frames: list[av.VideoFrame] = []
        self.decode_packet(packet, frames.append)  # type: ignore[call-arg]
        return frames

    def _end_packet(self) -> av.Packet:
        """An empty packet: sent to the decoder, it drains it (as the demuxer's last packet does)."""
        packet = av.Packet()
        packet.stream = self.vstream
        packet.time_base = self.time_base
        return packet

    def _drain_stream(self) -> None:
        """In stream mode, the demuxer's end-of-stream packet drains the decoder."""
        if self.mode == "stream" and self.flush_packet is not None:
            packet, self.flush_packet = self.flush_packet, None
            self.decode_packet(packet)


__all__ = [
    "ONE_FRAME_CODECS",
    "TRUSTED_FORMATS",
    "SparseResult",
    "SparseVideo",
    "nearest_frames",
    "packet_time",
    "sparse_eligible",
]

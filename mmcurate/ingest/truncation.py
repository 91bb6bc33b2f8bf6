"""Truncation of streams that declare no duration (MPEG transport and program streams).

An MP4 or Matroska header states the clip's duration, so a cut-off file decodes short of it and
the coverage check fails it. A transport stream (``.ts``, ``.m2ts``) or program stream (``.mpg``)
states none: FFmpeg estimates the duration from the timestamps near the end of the file, so the
estimate agrees with whatever is left. The file itself still shows two kinds of damage:

* it ends inside a transport packet (188, 192 or 204 bytes): muxers write whole packets, so
  the file was cut at an arbitrary byte (how much is lost cannot be known);
* bytes follow the last packet the demuxer could read: a download that was preallocated to its
  full size and interrupted leaves a zero-filled tail. The tail's playing time, at the stream's
  own byte rate (bytes demuxed per second of timestamps), gives the expected end, which the
  decoded length is compared with like a declared duration.

A cut that falls exactly between transport packets and between frames leaves a shorter but
valid stream, indistinguishable from a shorter recording.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import av

from mmcurate.common.files import open_regular

#: FFmpeg demuxers of streams without a duration field.
DURATIONLESS_FORMATS = frozenset({"mpegts", "mpeg"})
#: Transport packet sizes FFmpeg reads (plain, with a 4-byte timecode prefix, with FEC bytes).
TS_PACKET_SIZES = (188, 192, 204)
_TS_SYNC = 0x47
#: Payload bytes of a transport packet, and a PES header with a timestamp (estimates the span
#: a PES occupies: a little short when adaptation fields take room, which errs towards "whole").
_TS_PAYLOAD = 184
_PES_HEADER = 14


def ts_packet_size(path: Path) -> int | None:
    """The transport packet size, from the sync bytes at the start of the file."""
    with open_regular(path) as fh:
        head = fh.read(204 * 8)
    for size in TS_PACKET_SIZES:
        offset = 4 if size == 192 else 0
        starts = range(offset, len(head), size)
        if len(starts) >= 3 and all(head[i] == _TS_SYNC for i in starts):
            return size
    return None


class StreamSpan:
    """Where the demuxed packets lie in the file and in time, to extrapolate the expected end."""

    def __init__(self, path: Path, format_name: str) -> None:
        self.path = path
        self.ts_packet = ts_packet_size(path) if format_name == "mpegts" else None
        self.first_pos: int | None = None
        self.data_end = 0
        self.first_time: float | None = None
        self.last_end: float | None = None

    def add(self, packet: av.Packet) -> None:
        pos, pts = packet.pos, packet.pts
        if pos is None or pos < 0 or pts is None or not packet.size:
            return
        if self.first_pos is None or pos < self.first_pos:
            self.first_pos = pos
        if self.ts_packet:
            end = pos + math.ceil((packet.size + _PES_HEADER) / _TS_PAYLOAD) * self.ts_packet
        else:
            end = pos + packet.size
        self.data_end = max(self.data_end, end)
        tb = packet.time_base
        t = float(pts) * tb.numerator / tb.denominator
        t_end = t + float((packet.duration or 0) * tb)
        if self.first_time is None or t < self.first_time:
            self.first_time = t
        if self.last_end is None or t_end > self.last_end:
            self.last_end = t_end

    def cut_inside_packet(self) -> str | None:
        """The reason a transport stream was cut at an arbitrary byte, or None."""
        if not self.ts_packet:
            return None
        size = os.path.getsize(self.path)
        if size % self.ts_packet:
            return (
                f"the file ends inside a {self.ts_packet}-byte transport packet ({size % self.ts_packet} of its "
                f"bytes): cut off"
            )
        return None

    def expected_end(self) -> float | None:
        """Timestamp where the stream should end if the bytes after the last demuxed packet held
        media at the rate of the rest; None when there are too few packets to tell."""
        if self.first_pos is None or self.first_time is None or self.last_end is None:
            return None
        span = self.last_end - self.first_time
        if span <= 0 or self.data_end <= self.first_pos:
            return None
        rate = (self.data_end - self.first_pos) / span
        tail = max(0, os.path.getsize(self.path) - self.data_end)
        return self.last_end + tail / rate


__all__ = ["DURATIONLESS_FORMATS", "StreamSpan", "ts_packet_size"]

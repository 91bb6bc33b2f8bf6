"""Is this file audio/video? Ask FFmpeg's own format probe, not the file name.

FFmpeg recognises hundreds of containers (RealMedia ``.rm``, Windows TV ``.wtv``, Xbox
``.xmv``, 4X Movie ``.4xm``...), so an extension allow-list rejects files it could decode. The
test here is the one FFmpeg runs when it opens a file (``av_probe_input_buffer2``: every demuxer
scores the first 2 KiB, then 4 KiB, ... up to 1 MiB, until one is confident), called through
the libavformat that PyAV already loaded. It reads a few KiB of a real media file and stops.

Two differences from FFmpeg, both about files FFmpeg opens but that are not recordings:

* a weak match (score <= 25 of 100, what FFmpeg itself warns about as "misdetection
  possible") is refused: random bytes often look like a few MP3 frames with score 1, and
  FFmpeg opens a big enough random file as MP3 noise;
* FFmpeg's text-art demuxers (``tty`` opens ``.txt``/``.nfo``/``.ans`` files and renders the
  text as video), still-image demuxers (``png_pipe``, ``jpeg_pipe``...) and playlists or
  stream descriptions (``hls``, ``concat``, ``sdp``...: they refer to other files or network
  streams) are refused.
"""

from __future__ import annotations

import ctypes
import functools
import os
from dataclasses import dataclass
from pathlib import Path

from mmcurate.common.files import is_media_name, open_regular

#: FFmpeg's probe sizes: PROBE_BUF_MIN (2 KiB) doubling up to PROBE_BUF_MAX (1 MiB).
PROBE_MIN = 2048
PROBE_MAX = 1 << 20
#: AVPROBE_SCORE_RETRY: at or below it FFmpeg keeps reading and warns of possible misdetection.
CONFIDENT_SCORE = 25
#: AVPROBE_PADDING_SIZE: zero bytes FFmpeg's probe functions may read past the buffer.
_PADDING = 64
#: Demuxers that open plain text files as "video" (text rendered as ANSI art).
TEXT_DEMUXERS = frozenset({"tty", "bin", "adf", "idf", "xbin"})
#: Demuxers for text files that point at other files or network streams (playlists, session
#: descriptions): not a recording, and opening them could make FFmpeg read elsewhere.
REFERENCE_DEMUXERS = frozenset({"hls", "dash", "concat", "sdp", "ffmetadata"})


@dataclass(frozen=True)
class Probe:
    """What FFmpeg's probe made of a file: the demuxer's name (None when none matched) and its
    score (0-100), and ``problem``: None for an audio/video container, else a one-line reason."""

    format: str | None
    score: int
    problem: str | None


class _ProbeData(ctypes.Structure):
    """``AVProbeData`` (libavformat/avformat.h), unchanged since FFmpeg 2.x."""

    _fields_ = [
        ("filename", ctypes.c_char_p),
        ("buf", ctypes.c_void_p),
        ("buf_size", ctypes.c_int),
        ("mime_type", ctypes.c_char_p),
    ]


@functools.lru_cache(maxsize=1)
def _probe_function():  # type: ignore[no-untyped-def]
    """``av_probe_input_format3`` from the libavformat PyAV is linked against (looked up through
    one of PyAV's extension modules, whose dependencies ``dlsym`` searches), or None."""
    try:
        import av.format

        fn = ctypes.CDLL(av.format.__file__).av_probe_input_format3
    except (ImportError, OSError, AttributeError):
        return None
    fn.restype = ctypes.c_void_p
    fn.argtypes = [ctypes.POINTER(_ProbeData), ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    return fn


def _score(fn, name: bytes, data: bytes) -> tuple[str | None, int]:  # type: ignore[no-untyped-def]
    buf = ctypes.create_string_buffer(data, len(data) + _PADDING)
    pd = _ProbeData(name, ctypes.cast(buf, ctypes.c_void_p), len(data), None)
    score = ctypes.c_int(0)
    fmt = fn(ctypes.byref(pd), 1, ctypes.byref(score))
    if not fmt:
        return None, score.value
    # AVInputFormat starts with ``const char *name``
    return ctypes.cast(fmt, ctypes.POINTER(ctypes.c_char_p))[0].decode("ascii", "replace"), score.value


def _judge(fmt: str | None, score: int, head: bytes) -> str | None:
    if fmt is None or score <= CONFIDENT_SCORE:
        what = "text" if _looks_like_text(head) else "no audio/video format"
        if fmt is not None:
            return f"{what}: only a weak match for {fmt} (FFmpeg probe score {score} of 100)"
        return f"{what}: FFmpeg recognises no audio/video container in its content"
    if fmt in TEXT_DEMUXERS:
        return f"a text file (FFmpeg's {fmt} demuxer would render the text as video)"
    if fmt in REFERENCE_DEMUXERS:
        return f"a playlist or stream description ({fmt}) that refers to other media, not a recording"
    if fmt.endswith("_pipe") or fmt in ("image2", "image2pipe"):
        return f"a still image ({fmt}), not an audio/video recording"
    return None


def _looks_like_text(head: bytes) -> bool:
    sample = head[:4096]
    if not sample or b"\0" in sample:
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:  # a multi-byte character cut at the end of the sample is fine
        if exc.start < len(sample) - 3:
            return False
    return True


def probe_file(path: str | os.PathLike[str]) -> Probe:
    """FFmpeg's verdict on ``path``'s content (reads 2 KiB for a real media file, at most 1 MiB).

    Raises OSError when the file cannot be read."""
    path = Path(path)
    fn = _probe_function()
    with open_regular(path) as fh:  # a FIFO would block the probe forever
        head = fh.read(PROBE_MIN)
        if not head:
            return Probe(None, 0, "empty file (0 bytes)")
        if fn is None:
            return _probe_by_opening(path, head)
        name = os.fsencode(path)
        size = PROBE_MIN
        while True:
            fmt, score = _score(fn, name, head)
            if score > CONFIDENT_SCORE or len(head) < size or size >= PROBE_MAX:
                break
            size = min(size * 2, PROBE_MAX)
            more = fh.read(size - len(head))
            head += more
            if not more:
                break
    return Probe(fmt, score, _judge(fmt, score, head))


def _probe_by_opening(path: Path, head: bytes) -> Probe:
    """Fallback when libavformat's probe cannot be called: open the file with PyAV (slower, and
    blind to FFmpeg's score) and apply the same rules to the demuxer it picked."""
    import av

    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            fmt = container.format.name
            has_av = any(s.type in ("audio", "video") for s in container.streams)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError):
        return Probe(None, 0, _judge(None, 0, head))
    problem = _judge(fmt, 100, head)
    if problem is None and not has_av:
        problem = f"no audio or video stream ({fmt})"
    return Probe(fmt, 100 if problem is None else 0, problem)


def media_problem(path: str | os.PathLike[str]) -> str | None:
    """None when ``path`` holds an audio/video container FFmpeg recognises, else why not."""
    try:
        return probe_file(path).problem
    except OSError as exc:
        return f"cannot read file ({exc.strerror or exc})"


def media_file_problem(path: str | os.PathLike[str]) -> str | None:
    """Why discovery should not hand ``path`` to the decoder, or None. A known audio/video
    extension is enough (the decoder probes the content itself, so a large folder costs no extra
    reads at discovery); any other file is probed, so formats outside the list are not dropped."""
    if is_media_name(Path(path).name):
        return None
    return media_problem(path)


def is_media_file(path: str | os.PathLike[str]) -> bool:
    """Whether discovery should hand ``path`` to the decoder (see :func:`media_file_problem`)."""
    return media_file_problem(path) is None


__all__ = ["Probe", "is_media_file", "media_file_problem", "media_problem", "probe_file"]

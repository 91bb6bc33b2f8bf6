"""Ingest's decoder at the decode limit: sparse video decoding gives exactly what decoding every
frame gives (pixels, times, counts, durations), files are admitted by FFmpeg's content probe rather
than by extension, and a cut-off stream without a declared duration is caught."""

from __future__ import annotations

import csv
import dataclasses
import gc
import json
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from mmcurate.common.media_probe import probe_file
from mmcurate.ingest import DecodeConfig, IngestConfig, decode, run_ingest, sparse
from mmcurate.ingest.decode import DecodedClip, DecodeError, decode_clip
from mmcurate.store import IngestDir, Workdir
from mmcurate.synth.clips import ClipSpec, write_clip

FRAMES3 = DecodeConfig(missing_modality="keep")
FPS1 = DecodeConfig(missing_modality="keep", fps=1.0)
FRAMES8 = DecodeConfig(missing_modality="keep", frames=8)
FRAMES4 = DecodeConfig(missing_modality="keep", frames=4)  # on the 3-s HEVC clip, samples a leading frame


def _decode(path: Path, cfg: DecodeConfig, mode: str) -> DecodedClip | tuple[str, str]:
    try:
        return decode_clip(path, cfg, video_mode=mode)
    except DecodeError as exc:
        return (exc.stage, exc.reason)


def _assert_same(ref: DecodedClip | tuple[str, str], got: DecodedClip | tuple[str, str], where: str) -> None:
    """Everything ingest writes from a decoded clip is equal (frames pixel for pixel)."""
    if isinstance(ref, tuple) or isinstance(got, tuple):
        assert ref == got, where
        return
    for name in (
        "container",
        "video_codec",
        "audio_codec",
        "fps",
        "width",
        "height",
        "native_frame_count",
        "native_sample_rate",
        "native_channels",
        "native_audio_samples",
        "duration",
        "frame_times",
    ):
        assert getattr(got, name) == getattr(ref, name), (where, name, getattr(ref, name), getattr(got, name))
    assert len(got.frames) == len(ref.frames), where
    for i, (a, b) in enumerate(zip(ref.frames, got.frames, strict=True)):
        assert np.array_equal(a, b), (where, f"frame {i}")
    assert (ref.audio is None) == (got.audio is None), where
    if ref.audio is not None:
        assert np.array_equal(ref.audio, got.audio), where


@pytest.fixture()
def sparse_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sparse decoding even for clips too small for it to pay (so that every clip exercises it)."""
    monkeypatch.setattr(decode, "MIN_SPARSE_PIXELS", 0)


@pytest.fixture(params=["at_end", "every_gop"])
def batching(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Sparse decoding as it runs on short clips (the samples decoded when the file ends) and on
    long ones (decoded GOP by GOP as the file is read, packets released: forced here on every GOP)."""
    if request.param == "every_gop":
        monkeypatch.setattr(sparse, "DECODE_BATCH_BYTES", 0)
    return str(request.param)


def _compare(paths: list[Path], configs: list[DecodeConfig], mode: str = "auto") -> Counter[str]:
    """Decode every file whole and with ``mode``; assert equal results; count how video was decoded."""
    used: Counter[str] = Counter()
    for path in paths:
        for cfg in configs:
            ref = _decode(path, cfg, "all")
            got = _decode(path, cfg, mode)
            _assert_same(ref, got, f"{path.name} frames={cfg.frames} fps={cfg.fps}")
            if isinstance(got, DecodedClip) and got.video_codec is not None:
                used[got.video_decoding] += 1
    return used


# --------------------------------------------------------------------------- sparse == whole


@pytest.mark.slow
@pytest.mark.parametrize("cfg", [FRAMES3, FPS1], ids=["frames3", "fps1"])
@pytest.mark.usefixtures("sparse_everywhere", "batching")
def test_sparse_decoding_equals_whole_decoding_on_every_real_clip(clips_dir: Path, cfg: DecodeConfig) -> None:
    """Every clip of ../shared/data/clips (H.264, HEVC 10-bit, AV1, VP8, VP9, VP6, MPEG-1, Theora,
    edit lists, B-frames...): sparse decoding equals decoding every frame. About 15 s of CPU per
    config: the 1-minute clips are the ones with several GOPs."""
    with open(clips_dir / "INDEX.csv", newline="") as fh:
        files = [clips_dir / r["file"] for r in csv.DictReader(fh)]
    used = _compare(files, [cfg])
    assert used["sparse"] >= 30, used  # the comparison exercised sparse decoding on most clips


@pytest.mark.slow
def test_sparse_decoding_equals_whole_decoding_on_av_digits(av_digits: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stratified sample of av_digits: 25 clips of each of the 7 container/codec families
    (the full 3000 take about a minute per config; see the issue-14 report). The clips are too
    small (8 frames of 64 x 64) for sparse decoding to pay, so by default they decode whole."""
    with open(av_digits / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    by_format: dict[str, list[Path]] = {}
    for r in rows:
        by_format.setdefault(r["format"], []).append(av_digits / r["path"])
    sample = [p for fmt in sorted(by_format) for p in by_format[fmt][:25]]
    assert decode_clip(sample[0], FRAMES3).video_whole_reason == "small clip"
    monkeypatch.setattr(decode, "MIN_SPARSE_PIXELS", 0)
    used = _compare(sample, [FRAMES3, FRAMES8])
    assert used["sparse"] >= 100, used


# The generated clips below are small (so the tests are fast) but shaped like real ones.
GOP_CLIPS = {
    "h264_bframes": ClipSpec(
        "mp4",
        "libx264",
        "aac",
        seconds=4,
        width=160,
        height=96,
        fps=25,
        gop=12,
        video_options=(("preset", "veryfast"), ("bf", "3")),
    ),
    "h264_open_gop": ClipSpec(
        "matroska",
        "libx264",
        "aac",
        seconds=4,
        width=160,
        height=96,
        fps=25,
        gop=10,
        video_options=(("preset", "veryfast"), ("x264-params", "open-gop=1:bframes=3:b-pyramid=normal")),
    ),
    "hevc_open_gop": ClipSpec(
        "mp4",
        "libx265",
        "aac",
        seconds=3,
        width=160,
        height=96,
        fps=25,
        gop=10,
        video_options=(("preset", "ultrafast"), ("x265-params", "open-gop=1:bframes=3:log-level=none")),
    ),
    "vp9_altref": ClipSpec(
        "webm",
        "libvpx-vp9",
        "libopus",
        seconds=3,
        width=160,
        height=96,
        fps=25,
        gop=10,
        video_options=(("deadline", "good"), ("cpu-used", "8"), ("auto-alt-ref", "1"), ("lag-in-frames", "16")),
    ),
    "vp8_altref": ClipSpec(
        "webm",
        "libvpx",
        "libopus",
        seconds=3,
        width=160,
        height=96,
        fps=25,
        gop=10,
        video_options=(("deadline", "good"), ("cpu-used", "8"), ("auto-alt-ref", "1"), ("lag-in-frames", "16")),
    ),
    "mpeg4_avi": ClipSpec("avi", "mpeg4", "pcm_s16le", seconds=3, width=160, height=96, fps=25, gop=10),
    "mjpeg_mov": ClipSpec("mov", "mjpeg", "pcm_s16le", seconds=2, width=160, height=96, fps=25, pix_fmt="yuvj420p"),
    "flv1": ClipSpec("flv", "flv", "libmp3lame", seconds=3, width=160, height=96, fps=25, gop=10, sample_rate=44100),
    # the first 5 frames get negative timestamps: the MP4 edit list starts after them, and the
    # demuxer marks their packets "discard" (decoded as references, never shown)
    "h264_edit_list": ClipSpec(
        "mp4",
        "libx264",
        "aac",
        seconds=3,
        width=160,
        height=96,
        fps=25,
        gop=12,
        lead_in_frames=5,
        video_options=(("preset", "veryfast"),),
    ),
}


@pytest.fixture(scope="module")
def gop_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("gop_clips")
    return {
        name: write_clip(folder / f"{name}.{spec.extension}", spec, seed=i)
        for i, (name, spec) in enumerate(GOP_CLIPS.items())
    }


@pytest.mark.slow
@pytest.mark.usefixtures("sparse_everywhere", "batching")
def test_sparse_decoding_equals_whole_decoding_on_generated_gop_structures(gop_clips: dict[str, Path]) -> None:
    """Open GOPs (leading frames shown before their keyframe need the previous GOP), B-frames
    (skipped unless sampled), VP8/VP9, MPEG-4 in AVI, intra-only MJPEG, FLV1 and an MP4 edit
    list: sparse decoding equals decoding every frame, with 3, 4, 8 and 1-per-second samples."""
    for name, path in gop_clips.items():
        # sparse decoding never had to fall back: every planned frame decoded from the keyframe
        # the plan chose (an open GOP's leading frames need the keyframe before theirs)
        assert _compare([path], [FRAMES3, FRAMES4, FRAMES8, FPS1]) == Counter(sparse=4), name
    edit = decode_clip(gop_clips["h264_edit_list"], FRAMES3)
    assert edit.video_decoding == "sparse" and edit.native_frame_count == 3 * 25 - 5


@pytest.mark.usefixtures("sparse_everywhere", "batching")
def test_sparse_decoding_with_frame_threads_equals_whole_decoding(gop_clips: dict[str, Path]) -> None:
    """A single-worker ingest decodes with FFmpeg's frame threads (``threads=0``): the decoder
    then lags behind by a few packets and the plan switches ``skip_frame`` per packet."""
    for name in ("h264_bframes", "hevc_open_gop", "vp9_altref"):
        for cfg in (FRAMES3, FRAMES8):
            ref = decode_clip(gop_clips[name], cfg, video_mode="all")
            got = decode_clip(gop_clips[name], cfg, threads=0)
            assert got.video_decoding == "sparse", name
            _assert_same(ref, got, f"{name} threads=0")


def _hide_one_frame(src: Path, dst: Path, index: int = 5) -> Path:
    """Remux a VP8 stream into AVI with one inter frame's show_frame bit cleared: the decoder
    then outputs one frame fewer than there are packets (AVI keeps such a packet on its own)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="avi") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for i, packet in enumerate(p for p in inp.demux(inp.streams.video[0]) if p.size):
            data = bytearray(bytes(packet))
            if i == index:
                data[0] &= ~0x10
            copy = av.Packet(bytes(data))
            copy.pts, copy.dts, copy.time_base, copy.is_keyframe = (
                packet.pts,
                packet.dts,
                packet.time_base,
                packet.is_keyframe,
            )
            copy.stream = stream
            out.mux(copy)
    return dst


@pytest.mark.usefixtures("sparse_everywhere")
def test_a_packet_without_a_shown_frame_makes_the_clip_decode_whole(tmp_path: Path) -> None:
    """The frame count comes from packets only where each packet shows one frame: a hidden VP8
    frame breaks that, so the clip is decoded whole (and counted right)."""
    spec = ClipSpec(
        "webm",
        "libvpx",
        None,
        seconds=2,
        width=160,
        height=96,
        fps=25,
        gop=10,
        video_options=(("deadline", "realtime"), ("cpu-used", "8")),
    )
    path = _hide_one_frame(write_clip(tmp_path / "vp8.webm", spec), tmp_path / "hidden.avi")
    ref = decode_clip(path, FRAMES3, video_mode="all")
    assert ref.native_frame_count == 49
    got = decode_clip(path, FRAMES3)
    assert got.video_decoding == "whole" and "exactly one shown frame" in (got.video_whole_reason or "")
    _assert_same(ref, got, "hidden vp8 frame")


def _cut_at_second_keyframe(src: Path, dst: Path) -> Path:
    """Copy an open-GOP HEVC stream from its second keyframe on (a CRA) into Matroska, without
    re-encoding: the leading frames after that CRA lose their references and decoders drop them."""
    with av.open(str(src)) as inp:
        video = inp.streams.video[0]
        packets = [p for p in inp.demux(video) if p.size]
        keys = [i for i, p in enumerate(packets) if p.is_keyframe]
        rest = packets[keys[1] :]
        shift = min(min(p.pts for p in rest), min(p.dts for p in rest))
        with av.open(str(dst), "w", format="matroska") as out:
            stream = out.add_stream_from_template(video)
            for p in rest:
                copy = av.Packet(bytes(p))
                copy.pts, copy.dts, copy.time_base, copy.is_keyframe = (
                    p.pts - shift,
                    p.dts - shift,
                    p.time_base,
                    p.is_keyframe,
                )
                copy.stream = stream
                out.mux(copy)
    return dst


@pytest.mark.usefixtures("sparse_everywhere")
def test_a_stream_that_starts_with_leading_frames_is_decoded_whole(gop_clips: dict[str, Path], tmp_path: Path) -> None:
    """Frames shown before the first keyframe cannot be decoded, so the packet count would be too
    high: such a stream (a cut made without re-encoding) is decoded whole and counted right."""
    path = _cut_at_second_keyframe(gop_clips["hevc_open_gop"], tmp_path / "cut.mkv")
    ref = decode_clip(path, FRAMES3, video_mode="all")
    got = decode_clip(path, FRAMES3)
    assert got.video_whole_reason == "frames shown before the first keyframe"
    _assert_same(ref, got, "cut at a CRA")


@pytest.mark.usefixtures("sparse_everywhere")
def test_sparse_decoding_decodes_a_fraction_of_the_frames(gop_clips: dict[str, Path]) -> None:
    """With 3 samples and 12-frame GOPs, at most the three GOP prefixes are decoded."""
    clip = decode_clip(gop_clips["h264_bframes"], FRAMES3)
    assert clip.video_decoding == "sparse" and clip.native_frame_count == 100
    assert clip.video_packets_decoded is not None and clip.video_packets_decoded <= 3 * 12
    mjpeg = decode_clip(gop_clips["mjpeg_mov"], FRAMES3)  # every frame is a keyframe
    assert mjpeg.video_decoding == "sparse" and mjpeg.video_packets_decoded == 3
    every = DecodeConfig(fps=25.0)  # every frame sampled: one range over the whole clip
    dense = decode_clip(gop_clips["h264_bframes"], every)
    assert dense.video_decoding == "sparse" and dense.video_packets_decoded == 100
    _assert_same(decode_clip(gop_clips["h264_bframes"], every, video_mode="all"), dense, "every frame")


@pytest.mark.usefixtures("sparse_everywhere")
def test_sparse_decoding_fallbacks_give_the_same_result(
    gop_clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """When sparse decoding gives up, the clip is decoded whole: from the packets it kept (over the
    memory budget) or in a second pass (packets it dropped turn out to be needed)."""
    path = gop_clips["h264_bframes"]
    ref = decode_clip(path, FRAMES3, video_mode="all")
    monkeypatch.setattr(sparse, "KEEP_BUDGET_BYTES", 1)
    over = decode_clip(path, FRAMES3)
    assert over.video_decoding == "whole" and "MiB of video" in (over.video_whole_reason or "")
    _assert_same(ref, over, "over budget")
    monkeypatch.undo()
    monkeypatch.setattr(decode, "MIN_SPARSE_PIXELS", 0)
    monkeypatch.setattr(sparse, "KEEP_WINDOW", -10.0)  # keep no GOP: the planned ranges are missing
    again = decode_clip(path, FRAMES3)
    assert again.video_decoding == "whole" and again.video_whole_reason == "frames far from the sampled times"
    _assert_same(ref, again, "second pass")


# --------------------------------------------------------------------------- GOP lengths and long clips

FPS5 = DecodeConfig(missing_modality="keep", fps=5.0)
#: One container/codec pair per demuxer that sparse decoding trusts; 12 s at 25 fps = 300 frames,
#: so a 250-frame GOP closes once.
GOP_CONTAINERS = {
    "mp4_h264": ClipSpec("mp4", "libx264", "aac", video_options=(("preset", "veryfast"),)),
    "webm_vp9": ClipSpec("webm", "libvpx-vp9", "libopus", video_options=(("deadline", "realtime"), ("cpu-used", "8"))),
    "mkv_h264_bframes": ClipSpec("matroska", "libx264", "aac", video_options=(("preset", "veryfast"), ("bf", "3"))),
    "avi_mpeg4": ClipSpec("avi", "mpeg4", "pcm_s16le"),
    "flv_h264": ClipSpec("flv", "libx264", "aac", sample_rate=44100, video_options=(("preset", "veryfast"),)),
}


@pytest.fixture(scope="module")
def gop_length_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], Path]:
    folder = tmp_path_factory.mktemp("gop_lengths")
    clips = {}
    for n, (name, base) in enumerate(GOP_CONTAINERS.items()):
        for gop in (12, 60, 250):
            spec = dataclasses.replace(base, seconds=12, width=160, height=96, fps=25, gop=gop)
            clips[name, gop] = write_clip(folder / f"{name}_gop{gop}.{spec.extension}", spec, seed=n)
    return clips


def _fewest_packets(path: Path, ref: DecodedClip) -> int:
    """Packets that must be decoded to reach the frames ``ref`` sampled: for each, from the last
    keyframe before it (in decoding order) that is not shown after it, up to it; no packet twice."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        t0 = (c.start_time or 0) / av.time_base
        packets = [(p.pts, p.is_keyframe) for p in c.demux(v) if p.size]
        times = [float(pts * v.time_base) for pts, _ in packets]
    needed: set[int] = set()
    for t in ref.frame_times:
        j = min(range(len(times)), key=lambda i: abs(times[i] - (t0 + t)))
        k = max(i for i in range(j + 1) if packets[i][1] and packets[i][0] <= packets[j][0])
        needed.update(range(k, j + 1))
    return len(needed)


@pytest.mark.slow
@pytest.mark.parametrize("gop", [12, 60, 250])
@pytest.mark.usefixtures("sparse_everywhere", "batching")
def test_sparse_decoding_on_gop_lengths_and_containers(gop_length_clips: dict, gop: int) -> None:
    """MP4/H.264, WebM/VP9, Matroska/H.264 with B-frames, AVI/MPEG-4, FLV/H.264 at 12-, 60- and
    250-frame GOPs, sampled 3 times, once and 5 times a second: equal to decoding every frame, and
    decoding exactly the packets from each sample's keyframe to it (restarting at the next sample's
    keyframe when it is ahead of the decoder, decoding through when it is behind)."""
    for name in GOP_CONTAINERS:
        path = gop_length_clips[name, gop]
        for cfg in (FRAMES3, FPS1, FPS5):
            ref = decode_clip(path, cfg, video_mode="all")
            got = decode_clip(path, cfg)
            where = f"{name} gop={gop} frames={cfg.frames} fps={cfg.fps}"
            assert got.video_decoding == "sparse", (where, got.video_whole_reason)
            _assert_same(ref, got, where)
            assert got.video_packets_decoded == _fewest_packets(path, ref), where


@pytest.mark.parametrize("name", ["mp4_h264", "webm_vp9"])
@pytest.mark.usefixtures("sparse_everywhere")
def test_a_long_clip_is_decoded_sparsely_within_the_memory_budget(
    gop_length_clips: dict, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clip with more compressed video than the keep budget (a long clip, scaled down: budget a
    quarter of its video, batch an eighth) is still decoded sparsely at one sample a second: the
    samples resolved so far are decoded in batches and their packets released, never the whole
    clip kept."""
    path = gop_length_clips[name, 12]
    with av.open(str(path)) as c:
        total = sum(p.size for p in c.demux(c.streams.video[0]))
    monkeypatch.setattr(sparse, "KEEP_BUDGET_BYTES", total // 4)
    monkeypatch.setattr(sparse, "DECODE_BATCH_BYTES", total // 8)
    ref = decode_clip(path, FPS1, video_mode="all")
    got = decode_clip(path, FPS1)
    assert got.video_decoding == "sparse", got.video_whole_reason
    assert got.video_packets_decoded == _fewest_packets(path, ref) < 300 // 2
    _assert_same(ref, got, name)


@pytest.mark.usefixtures("sparse_everywhere")
def test_sampled_frames_are_held_at_the_output_size(gop_length_clips: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long clip sampled once a second has thousands of samples: each is scaled and cropped as it
    is decoded, so no full-size decoded picture is held until the end of the file (an hour of
    1080p sampled once a second would otherwise hold 11 GB of decoded pictures)."""
    path = gop_length_clips["mp4_h264", 12]
    every = DecodeConfig(fps=25.0)  # 300 samples
    alive: list[int] = []
    finish = sparse.SparseVideo.finish

    def counting_finish(self: sparse.SparseVideo) -> sparse.SparseResult | None:
        result = finish(self)
        gc.collect()
        alive.append(sum(_is_frame(o) for o in gc.get_objects()))
        return result

    monkeypatch.setattr(sparse.SparseVideo, "finish", counting_finish)
    got = decode_clip(path, every)
    assert got.video_decoding == "sparse" and len(got.frames) == 300
    assert alive and alive[0] <= 8, alive  # a decoder's few frames in flight, not the 300 samples
    _assert_same(decode_clip(path, every, video_mode="all"), got, "every frame")


@pytest.mark.usefixtures("sparse_everywhere")
def test_a_pick_made_too_early_is_caught_and_the_clip_decoded_whole(
    gop_length_clips: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Targets are resolved while the file is read, before later frames are known; the picks are
    checked against the whole timeline at the end, and a clip where one was wrong is decoded whole.
    Here the resolution is made to run 3 s ahead of what the frames seen so far can settle."""
    path = gop_length_clips["mkv_h264_bframes", 60]
    ref = decode_clip(path, FPS1, video_mode="all")
    monkeypatch.setattr(sparse, "DECODE_BATCH_BYTES", 0)
    advance = sparse.SparseVideo._advance
    monkeypatch.setattr(sparse.SparseVideo, "_advance", lambda self, horizon: advance(self, horizon + 3.0))
    got = decode_clip(path, FPS1)
    assert (
        got.video_decoding == "whole"
        and got.video_whole_reason == "a GOP shows frames before the previous GOP's first"
    )
    _assert_same(ref, got, "early picks")


@pytest.mark.usefixtures("sparse_everywhere")
def test_a_problem_found_after_decoding_began_rereads_the_clip(tmp_path: Path) -> None:
    """A hidden VP8 frame near the end, found after the first GOPs' samples were decoded and their
    packets released: the clip is decoded whole in a second pass, with the same result."""
    spec = ClipSpec(
        "webm", "libvpx", None, seconds=2, width=160, height=96, fps=25, gop=10,
        video_options=(("deadline", "realtime"), ("cpu-used", "8")),
    )  # fmt: skip
    path = _hide_one_frame(write_clip(tmp_path / "vp8.webm", spec), tmp_path / "hidden_late.avi", index=45)
    ref = decode_clip(path, FRAMES8, video_mode="all")
    calls = []
    again = decode._decode_video_again
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sparse, "DECODE_BATCH_BYTES", 0)
        mp.setattr(decode, "_decode_video_again", lambda *a, **k: (calls.append(1), again(*a, **k)))
        got = decode_clip(path, FRAMES8)
    assert calls == [1]  # the second pass ran
    assert got.video_decoding == "whole" and "exactly one shown frame" in (got.video_whole_reason or "")
    _assert_same(ref, got, "hidden vp8 frame late")


def test_ineligible_streams_are_decoded_whole(av_digits: Path) -> None:
    """MPEG-TS derives keyframe flags by parsing: never decoded sparsely."""
    ts = min((av_digits / "ts_mpeg2_mp2").glob("*.ts"))
    clip = decode_clip(ts, DecodeConfig(frames=1))
    assert clip.video_decoding == "whole" and clip.video_whole_reason == "container mpegts"


# --------------------------------------------------------------------------- probing by content


def _write_4xm_header(path: Path) -> Path:
    """A RIFF/4XMV header (FFmpeg has no 4X Movie muxer): what its probe recognises."""
    body = b"4XMV" + b"LIST" + (16).to_bytes(4, "little") + b"HEAD" + b"\0" * 12
    path.write_bytes(b"RIFF" + len(body).to_bytes(4, "little") + body + b"\0" * 2048)
    return path


def _write_xmv_header(path: Path) -> Path:
    """An Xbox XMV file header (FFmpeg has no XMV muxer): version 4, 'xobX' tag, 0 audio tracks."""
    head = (64).to_bytes(4, "little") + b"\0" * 8 + b"xobX" + (4).to_bytes(4, "little")
    head += (160).to_bytes(4, "little") + (96).to_bytes(4, "little") + (1000).to_bytes(4, "little") + b"\0" * 4
    path.write_bytes(head + b"\0" * 2048)
    return path


RARE = {
    "rm/realvideo.rm": ClipSpec(
        "rm", "rv20", "ac3", seconds=1.5, width=176, height=144, fps=15, gop=8, sample_rate=44100
    ),
    "rm/realaudio144.rm": ClipSpec(
        "rm", "rv10", "real_144", seconds=1.5, width=176, height=144, fps=15, gop=8, sample_rate=8000, channels=1
    ),
    "wtv/recording.wtv": ClipSpec("wtv", "mpeg2video", "mp2", seconds=1.5, width=176, height=144, fps=25, gop=8),
    "nut/clip.nut": ClipSpec("nut", "mpeg4", "pcm_s16le", seconds=1.5, width=176, height=144, fps=25, gop=8),
    "roq/game.roq": ClipSpec(
        "roq",
        "roqvideo",
        "roq_dpcm",
        seconds=1.5,
        width=128,
        height=128,
        fps=30,
        gop=None,
        sample_rate=22050,
        channels=1,
        pix_fmt="yuvj444p",
    ),
}


@pytest.fixture()
def probe_raw(tmp_path: Path) -> Path:
    """Label folders with rare containers FFmpeg decodes and with files it must not be given."""
    raw = tmp_path / "raw"
    for rel, spec in RARE.items():
        write_clip(raw / rel, spec)
    (raw / "other").mkdir()
    _write_4xm_header(raw / "other" / "movie.4xm")
    _write_xmv_header(raw / "other" / "intro.xmv")
    junk = raw / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("plain notes\n" * 20)
    (junk / "art.ans").write_bytes(b"\x1b[1;31mANSI ART\x1b[0m\r\n" * 50)  # FFmpeg's tty demuxer opens these
    (junk / "readme.txt").write_bytes(b"\x1b[0mstarts like ANSI art\n" * 30)
    (junk / "page.mp4").write_text("<!DOCTYPE html><html><body>404 Not Found</body></html>\n" * 20)
    rng = np.random.default_rng(0)
    (junk / "noise.mp3").write_bytes(rng.integers(0, 256, 3 << 20, dtype=np.uint8).tobytes())  # > 1 MiB
    (junk / "noise.bin").write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (junk / "empty.dat").write_bytes(b"")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(junk / "thumb.png")
    (junk / "list.m3u8").write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\nseg0.ts\n#EXT-X-ENDLIST\n"
    )
    return raw


def test_files_are_admitted_by_content_not_extension(probe_raw: Path, tmp_path: Path) -> None:
    """RealMedia, Windows TV, NUT and RoQ files (no extension on the old allow-list) ingest with
    their codecs; 4X Movie and XMV headers are handed to the decoder (no FFmpeg muxer exists to
    write real ones, so only the probe is tested for those); text, HTML named .mp4, random bytes,
    an empty file, an image and a playlist fail with a one-line reason saying what they are."""
    out = tmp_path / "out"
    run_ingest(Workdir(out.parent), IngestConfig(raw_dir=probe_raw, out=out, workers=2))
    rows = {r["path"]: r for r in IngestDir(out).read_manifest().to_pylist()}
    assert set(rows) == set(RARE)
    assert rows["rm/realvideo.rm"]["container"] == "rm" and rows["rm/realvideo.rm"]["video_codec"] == "rv20"
    assert rows["rm/realaudio144.rm"]["audio_codec"] == "real_144"
    assert rows["wtv/recording.wtv"]["container"] == "wtv"
    assert rows["roq/game.roq"]["video_codec"] == "roqvideo"
    assert all(r["num_frames"] == 3 and r["has_audio"] for r in rows.values())
    failures = {f["file"]: f for f in map(json.loads, (out / "failures.jsonl").read_text().splitlines())}
    for name in ("other/movie.4xm", "other/intro.xmv"):
        assert failures[name]["stage"] != "discover", failures[name]  # the decoder got it
    for name, fmt in (("other/movie.4xm", "4xm"), ("other/intro.xmv", "xmv")):
        probe = probe_file(probe_raw / name)
        assert (probe.format, probe.score, probe.problem) == (fmt, 100, None)
    expected = {
        "junk/notes.txt": ("discover", "not a media file (text"),
        "junk/art.ans": ("discover", "tty demuxer would render the text"),
        "junk/readme.txt": ("discover", "tty demuxer would render the text"),
        "junk/page.mp4": ("probe", "not a readable media file (text"),
        "junk/noise.mp3": ("probe", "only a weak match for mp3"),
        "junk/noise.bin": ("discover", "not a media file (no audio/video format"),
        "junk/empty.dat": ("discover", "empty file (0 bytes)"),
        "junk/thumb.png": ("discover", "a still image (png_pipe)"),
        "junk/list.m3u8": ("discover", "playlist or stream description (hls)"),
    }
    for file, (stage, words) in expected.items():
        assert failures[file]["stage"] == stage and words in failures[file]["reason"], failures[file]
        assert "\n" not in failures[file]["reason"]


# --------------------------------------------------------------------------- truncated MPEG-TS


@pytest.mark.slow
def test_truncated_transport_streams_are_caught_without_false_positives(av_digits: Path, tmp_path: Path) -> None:
    """A .ts declares no duration, so a cut-off one used to pass the coverage check. Now a file
    that ends inside a transport packet, or whose tail holds no packets (an interrupted download
    preallocated to full size), fails like a cut-off .mp4; all 428 av_digits .ts clips pass."""
    clips = sorted((av_digits / "ts_mpeg2_mp2").glob("*.ts"))
    assert len(clips) == 428
    cfg = DecodeConfig(frames=1)
    for clip in clips:
        decode_clip(clip, cfg)  # raises on a false positive
    data = max(clips, key=lambda p: p.stat().st_size).read_bytes()
    half = len(data) // 2
    cut = tmp_path / "cut.ts"
    cut.write_bytes(data[: half if half % 188 else half + 1])
    with pytest.raises(DecodeError, match="ends inside a 188-byte transport packet"):
        decode_clip(cut, cfg)
    zero_tail = tmp_path / "zero_tail.ts"
    zero_tail.write_bytes(data[: half - half % 188] + b"\0" * (len(data) - (half - half % 188)))
    with pytest.raises(DecodeError, match="its size at its bitrate implies"):
        decode_clip(zero_tail, cfg)
    decode_clip(zero_tail, cfg.replace(min_coverage=0.0))  # --min-coverage 0 switches the check off


def _is_frame(obj: object) -> bool:
    """Whether ``obj`` is a decoded picture (a dead weak proxy among the objects is not)."""
    try:
        return isinstance(obj, av.VideoFrame)
    except ReferenceError:
        return False

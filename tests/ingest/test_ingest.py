"""Ingest on real media: counts against FFmpeg's INDEX.csv, bad inputs, resume after SIGKILL,
determinism and array-job splitting."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import soundfile as sf
from PIL import Image

from mmcurate.execution import ArrayJobConfig
from mmcurate.ingest import DecodeConfig, IngestConfig, run_ingest
from mmcurate.store import IngestDir, Workdir
from mmcurate.store.io import open_ipc_file


def read_manifest(out: Path) -> pa.Table:
    return IngestDir(out).read_manifest()


def read_shard(path: Path) -> pa.Table:
    return open_ipc_file(path, fix="")


def ingest_to(
    raw: Path,
    out: Path,
    manifest: Path | None = None,
    group_column: str | None = None,
    *,
    workers: int = 1,
    num_shards: int | None = None,
    shard_index: int | None = None,
    **decode: object,
):
    """Run the ingest stage in-process (decode settings as keyword arguments)."""
    cfg = IngestConfig(
        raw_dir=raw,
        out=out,
        manifest=manifest,
        group_column=group_column,
        decode=DecodeConfig(**decode),
        workers=workers,
        array=ArrayJobConfig(num_shards, shard_index),
    )
    return run_ingest(Workdir(out.parent), cfg)


ENV = {**os.environ, "MMCURATE_NO_PROGRESS": "1"}


def _failures(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]


def _shard_rows(out: Path) -> dict[str, dict]:
    rows = {}
    for shard in sorted((out / "shards").glob("*.arrow")):
        for r in read_shard(shard).to_pylist():
            rows[r["sample_id"]] = r
    return rows


def _run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mmcurate", *args], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=600
    )


@pytest.fixture(scope="module")
def clips_ingest(clips_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("clips") / "ingest"
    ingest_to(clips_dir, out, missing_modality="keep", workers=2, shard_size=16)
    return out


@pytest.mark.slow
def test_clips_decode_counts_match_ffmpeg_index(clips_ingest: Path, clips_dir: Path) -> None:
    index = {r["file"]: r for r in csv.DictReader(open(clips_dir / "INDEX.csv"))}
    manifest = {r["path"]: r for r in read_manifest(clips_ingest).to_pylist()}
    failures = {f["file"]: f for f in _failures(clips_ingest)}
    # every file is accounted for exactly once: the 54 clips plus INDEX.csv itself
    assert set(manifest) | set(failures) == set(index) | {"INDEX.csv"}
    assert not set(manifest) & set(failures)
    assert "not a media file" in failures["INDEX.csv"]["reason"]
    # the fragmented MP4 has no decodable frames (FFmpeg's INDEX says 0 frames)
    frag = "fq/format__isobmff__testdata__fragmented.mp4"
    assert frag in failures and failures[frag]["stage"] == "decode"
    assert len(manifest) == 53
    media = _shard_rows(clips_ingest)
    for path, row in manifest.items():
        ref = index[path]
        assert row["native_frame_count"] == int(ref["video_frames"] or 0), path
        assert row["native_audio_samples"] == int(ref["audio_samples"] or 0), path
        assert row["has_video"] == bool(ref["video_frames"] and int(ref["video_frames"]) > 0), path
        assert row["has_audio"] == bool(ref["audio_samples"]), path
        if row["has_video"]:
            assert (row["width"], row["height"]) == (int(ref["width"]), int(ref["height"])), path
            assert row["num_frames"] == 3
            for jpeg in media[row["sample_id"]]["frames"]:
                assert Image.open(io.BytesIO(jpeg)).size == (224, 224)
        else:
            assert row["num_frames"] == 0 and media[row["sample_id"]]["frames"] == []
        if row["has_audio"]:
            assert row["native_sample_rate"] == int(ref["audio_rate"]), path
            expected = int(ref["audio_samples"]) * 16000 / int(ref["audio_rate"])
            assert abs(row["num_audio_samples"] - expected) <= 2, path
            audio, sr = sf.read(io.BytesIO(media[row["sample_id"]]["audio"]), dtype="float32")
            assert sr == 16000 and audio.ndim == 1 and audio.size == row["num_audio_samples"]
        else:
            assert media[row["sample_id"]]["audio"] is None


def test_multistream_and_surround_files_use_first_streams(clips_ingest: Path) -> None:
    rows = {r["path"]: r for r in read_manifest(clips_ingest).to_pylist()}
    multi = rows["ffmpegio/tests__assets__testmulti-1m.mp4"]
    assert multi["video_codec"] == "h264" and multi["audio_codec"] == "aac"
    assert multi["native_frame_count"] == 1799
    tiny = rows["moviepy/media__-video-with-dash-.mp4"]  # a 1x1-pixel video still gives 224x224 frames
    assert (tiny["width"], tiny["height"]) == (1, 1) and tiny["num_frames"] == 3


def test_default_policy_rejects_missing_modalities(clips_dir: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    (raw / "a").mkdir(parents=True)
    shutil.copy(clips_dir / "torchcodec/test__resources__sine_mono_s16.wav", raw / "a" / "sine.wav")
    shutil.copy(clips_dir / "torchcodec/test__resources__h265_video.mp4", raw / "a" / "silent.mp4")
    shutil.copy(clips_dir / "imageio/realshort.mp4", raw / "a" / "ok.mp4")
    out = tmp_path / "out"
    ingest_to(raw, out, workers=1)
    assert [r["path"] for r in read_manifest(out).to_pylist()] == ["a/ok.mp4"]
    reasons = {f["file"]: f["reason"] for f in _failures(out)}
    assert reasons["a/sine.wav"].startswith("no video stream")
    assert reasons["a/silent.mp4"].startswith("no audio stream")
    # zero-fill keeps them with silent audio / black frames, flagged in the manifest
    out2 = tmp_path / "out2"
    ingest_to(raw, out2, workers=1, missing_modality="zero-fill")
    rows = {r["path"]: r for r in read_manifest(out2).to_pylist()}
    assert rows["a/sine.wav"]["has_video"] is False and rows["a/sine.wav"]["num_frames"] == 3
    assert rows["a/silent.mp4"]["has_audio"] is False
    assert rows["a/silent.mp4"]["num_audio_samples"] == round(rows["a/silent.mp4"]["duration"] * 16000)
    black = _shard_rows(out2)["a/sine.wav"]["frames"][0]
    assert np.asarray(Image.open(io.BytesIO(black))).max() <= 2


@pytest.fixture()
def bad_raw(av_digits: Path, tmp_path: Path) -> Path:
    """A raw folder mixing good clips with the bad inputs researchers meet."""
    raw = tmp_path / "raw"
    good = (
        sorted((av_digits / "mkv_h264_flac").glob("*.mkv"))[:4]
        + sorted((av_digits / "mp4_h264_aac").glob("*.mp4"))[:2]
    )
    for p in good:
        (raw / p.name.split("_")[0]).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, raw / p.name.split("_")[0] / p.name)
    bad = raw / "bad"
    bad.mkdir()
    mkv = good[0].read_bytes()
    mp4 = good[-1].read_bytes()
    (bad / "truncated.mkv").write_bytes(mkv[: len(mkv) // 2])
    (bad / "truncated.mp4").write_bytes(mp4[: len(mp4) // 2])
    (bad / "zeroed.mkv").write_bytes(mkv[: len(mkv) // 3] + b"\0" * (len(mkv) // 3) + mkv[2 * len(mkv) // 3 :])
    (bad / "empty.mp4").write_bytes(b"")
    (bad / "text.mp4").write_text("this is not a video\n" * 50)
    (bad / "notes.txt").write_text("not media")
    (raw / "toplevel.mp4").write_bytes(mp4)
    return raw


@pytest.mark.slow
def test_bad_inputs_are_reported_one_line_each_and_nothing_is_lost(bad_raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _run_cli("ingest", str(bad_raw), "--out", str(out), "--workers", "2", "--max-failures", "3")
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "more than --max-failures 3" in proc.stderr
    manifest = {r["path"] for r in read_manifest(out).to_pylist()}
    failures = {f["file"]: f for f in _failures(out)}
    all_files = {p.relative_to(bad_raw).as_posix() for p in bad_raw.rglob("*") if p.is_file()}
    assert manifest | set(failures) == all_files and not manifest & set(failures)
    assert len(manifest) == 6
    expected = {
        "bad/truncated.mkv": "truncated or corrupt",
        "bad/truncated.mp4": "not a readable media file",
        "bad/zeroed.mkv": "corrupt",
        "bad/empty.mp4": "empty file (0 bytes)",
        "bad/text.mp4": "not a readable media file",
        "bad/notes.txt": "not a media file",
        "toplevel.mp4": "not inside a label folder",
    }
    for file, words in expected.items():
        assert words in failures[file]["reason"], (file, failures[file])
        assert "\n" not in failures[file]["reason"]


def test_manifest_input_with_absent_files_and_segments(av_digits: Path, tmp_path: Path) -> None:
    rows = list(csv.DictReader(open(av_digits / "labels.csv")))[:5]
    manifest = tmp_path / "inputs.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "split", "speaker", "start", "end", "condition"])
        for r in rows:
            w.writerow([r["path"], r["label"], r["split"], r["speaker"], "", "", r["condition"]])
        w.writerow([rows[0]["path"], rows[0]["label"], "train", rows[0]["speaker"], "0.1", "0.3", "clean"])
        w.writerow(["mp4_h264_aac/does_not_exist.mp4", "3", "train", "x", "", "", "clean"])
        w.writerow([rows[1]["path"], "", "train", "x", "", "", "clean"])
    out = tmp_path / "out"
    result = ingest_to(av_digits, out, manifest, "speaker", workers=1)
    assert result.n_ok == 6 and result.n_failed == 2
    table = read_manifest(out)
    assert "condition" in table.column_names and "speaker" in table.column_names
    seg = [r for r in table.to_pylist() if r["start"] is not None][0]
    assert seg["sample_id"] == f"{rows[0]['path']}#0.1-0.3"
    assert abs(seg["duration"] - 0.2) < 1e-9 and seg["num_audio_samples"] == 3200
    assert all(r["group"] == r["speaker"] for r in table.to_pylist())
    reasons = {f["file"]: f["reason"] for f in _failures(out)}
    assert reasons["mp4_h264_aac/does_not_exist.mp4"].startswith("file not found")
    assert "empty label" in reasons[rows[1]["path"]]
    assert json.loads((out / "stats.json").read_text())["unlisted_files"] > 2990


@pytest.mark.slow
def test_missing_raw_dir_and_bad_options_are_one_line_errors(tmp_path: Path) -> None:
    proc = _run_cli("ingest", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"error: raw directory {tmp_path / 'nope'} does not exist"
    (tmp_path / "raw").mkdir()
    proc = _run_cli("ingest", str(tmp_path / "raw"), "--frames", "0", "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and proc.stderr.strip() == "error: --frames must be at least 1 (got 0)"


def _subset_raw(av_digits: Path, root: Path, n_per_format: int) -> Path:
    raw = root / "raw"
    for fmt in sorted(p for p in av_digits.iterdir() if p.is_dir()):
        for p in sorted(fmt.iterdir())[:n_per_format]:
            label = p.name.split("_")[0]
            (raw / label).mkdir(parents=True, exist_ok=True)
            shutil.copy(p, raw / label / f"{fmt.name}__{p.name}")
    return raw


def _tree_bytes(out: Path) -> dict[str, bytes]:
    files = {
        "manifest.parquet": (out / "manifest.parquet").read_bytes(),
        "failures.jsonl": (out / "failures.jsonl").read_bytes(),
    }
    for shard in sorted((out / "shards").glob("*.arrow")):
        files[shard.name] = shard.read_bytes()
    return files


@pytest.mark.slow
def test_resume_after_sigkill_gives_identical_output(av_digits: Path, tmp_path: Path) -> None:
    raw = _subset_raw(av_digits, tmp_path, 30)  # 210 clips in 21 shards of 10
    ref = tmp_path / "ref"
    assert _run_cli("ingest", str(raw), "--out", str(ref), "--shard-size", "10", "--workers", "2").returncode == 0
    again = _run_cli("ingest", str(raw), "--out", str(ref), "--shard-size", "10", "--workers", "2")
    assert "nothing was decoded" in again.stderr

    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mmcurate",
            "ingest",
            str(raw),
            "--out",
            str(out),
            "--shard-size",
            "10",
            "--workers",
            "1",
        ],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if len(list((out / "chunks").glob("shard-*.json"))) >= 5:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_at_kill = len(list((out / "chunks").glob("shard-*.json")))
    assert 5 <= done_at_kill < 21 and not (out / "manifest.parquet").exists()
    resumed = _run_cli("ingest", str(raw), "--out", str(out), "--shard-size", "10", "--workers", "2")
    assert resumed.returncode == 0, resumed.stderr
    assert _tree_bytes(out) == _tree_bytes(ref)
    assert not [p for p in out.rglob(".tmp-*")]
    stats = json.loads((out / "stats.json").read_text())["last_run"]
    assert (
        stats["shards_already_done"] >= done_at_kill and stats["shards_written"] == 21 - stats["shards_already_done"]
    )


def test_array_job_parts_combine_to_the_single_run_output(av_digits: Path, tmp_path: Path) -> None:
    raw = _subset_raw(av_digits, tmp_path, 6)
    ref, out = tmp_path / "ref", tmp_path / "parts"
    ingest_to(raw, ref, workers=2, shard_size=5)
    first = ingest_to(raw, out, workers=1, shard_size=5, num_shards=3, shard_index=0)
    assert not first.finalized and not (out / "manifest.parquet").exists()
    ingest_to(raw, out, workers=1, shard_size=5, num_shards=3, shard_index=2)
    last = ingest_to(raw, out, workers=1, shard_size=5, num_shards=3, shard_index=1)
    assert last.finalized
    assert _tree_bytes(out) == _tree_bytes(ref)


@pytest.mark.slow
def test_changed_settings_are_refused_then_overwritten(av_digits: Path, tmp_path: Path) -> None:
    raw = _subset_raw(av_digits, tmp_path, 1)
    out = tmp_path / "out"
    assert _run_cli("ingest", str(raw), "--out", str(out)).returncode == 0
    proc = _run_cli("ingest", str(raw), "--out", str(out), "--size", "112")
    assert proc.returncode == 2 and "config.size: 224 -> 112" in proc.stderr and "--overwrite" in proc.stderr
    proc = _run_cli("ingest", str(raw), "--out", str(out), "--size", "112", "--overwrite")
    assert proc.returncode == 0
    frames = next(iter(_shard_rows(out).values()))["frames"]
    assert Image.open(io.BytesIO(frames[0])).size == (112, 112)


def test_fps_sampling_and_decord_fast_path(av_digits: Path, tmp_path: Path) -> None:
    raw = _subset_raw(av_digits, tmp_path, 2)
    out_pyav, out_decord = tmp_path / "pyav", tmp_path / "decord"
    ingest_to(raw, out_pyav, workers=1, fps=5.0)
    rows = read_manifest(out_pyav).to_pylist()
    media = _shard_rows(out_pyav)
    for r in rows:  # one frame per 0.2 s step of the clip (the header's duration decides the count)
        assert abs(r["num_frames"] - r["duration"] * 5) <= 1, r
        times = media[r["sample_id"]]["frame_times"]
        assert len(times) == r["num_frames"] and np.all(np.abs(np.diff(times) - 0.2) < 0.07), times
    pytest.importorskip("decord", reason="decord is an optional extra")
    ingest_to(raw, out_decord, workers=1, fps=5.0, decoder="decord")
    by_id = {r["sample_id"]: r for r in read_manifest(out_decord).to_pylist()}
    pyav_media, decord_media = _shard_rows(out_pyav), _shard_rows(out_decord)
    assert set(by_id) == {r["sample_id"] for r in rows}
    # MP4/MKV/WebM (zero start time): the same frames chosen and near-identical pixels
    for r in [r for r in rows if r["container"] in ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm")]:
        assert (
            abs(by_id[r["sample_id"]]["native_frame_count"] - r["native_frame_count"]) <= 1
        )  # decord counts by index
        np.testing.assert_allclose(
            decord_media[r["sample_id"]]["frame_times"], pyav_media[r["sample_id"]]["frame_times"], atol=1e-3
        )
        a = np.asarray(Image.open(io.BytesIO(decord_media[r["sample_id"]]["frames"][0])), dtype=float)
        b = np.asarray(Image.open(io.BytesIO(pyav_media[r["sample_id"]]["frames"][0])), dtype=float)
        assert np.abs(a - b).mean() < 4.0
    assert pa.types.is_list(read_shard(next((out_decord / "shards").glob("*.arrow"))).schema.field("frames").type)


def test_schemas_rendered_copy_is_in_sync() -> None:
    from mmcurate.store.schemas import render_all

    folder = Path(__file__).resolve().parents[2] / "manifests" / "schemas"
    for name, content in render_all().items():
        assert json.loads((folder / f"{name}.json").read_text()) == content, (
            f"run python -m mmcurate.store.schemas ({name})"
        )

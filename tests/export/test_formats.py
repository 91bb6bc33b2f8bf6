"""The field's formats: BalanceMM's `Balance` layout written by `mmcurate export` and read by `--layout balancemm`.

The export is read back here the way BalanceMM's ``BalanceDataset`` reads it (json, h5py, PIL,
pickle, its frame-index rule; no torchvision), the import is fed broken releases (missing and
corrupt files, a malicious pickle), and av_digits makes the whole round trip:
ingest -> balance -> export -> import -> score -> reeval.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import pickle
import pickletools
import random
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from _fixtures_ingest import make_ingest_dir, make_selection
from conftest import run_cli, write_av_digits_manifest
from PIL import Image

from mmcurate.common.errors import MMCurateError
from mmcurate.data import audio_features_from_flac, build_av_tensors, read_shards
from mmcurate.data.config import TensorConfig
from mmcurate.data.records import cached_features_column
from mmcurate.features import get_preset
from mmcurate.formats.balancemm import (
    export_frame_indices,
    frames_to_hdf5,
    loader_frame_indices,
    read_hdf5_frames,
)
from mmcurate.formats.config import ExportConfig
from mmcurate.formats.export import is_complete, run_export
from mmcurate.formats.safe_pickle import dump_array, load_array
from mmcurate.recipes import run_layout
from mmcurate.store import IngestDir, Workdir

h5py = pytest.importorskip("h5py", reason="h5py is not installed (pip install 'mmcurate[formats]')")

PRESET = "vggsound_stft"


# ----------------------------------------------------------------------------- how BalanceMM reads a folder


def balancemm_read(folder: Path, mode: str, seed: int = 0) -> list[dict]:
    """Every clip of ``mode`` as BalanceMM's BalanceDataset yields it (before its torchvision transforms):
    annotation JSON, subset == mode + 'ing', files found by string concatenation, 3 frames picked by the
    frame count from the HDF5 'video' dataset and opened with PIL, the spectrogram unpickled plainly."""
    csv_path, visual_path, audio_path = str(folder / "annotations.json"), f"{folder}/visual/", f"{folder}/audio/"
    with open(csv_path) as f:
        ann = json.load(f)
    class_to_idx = {label: i for i, label in enumerate(ann["labels"])}
    rng = random.Random(seed)
    out = []
    for key, entry in ann["database"].items():
        if entry["subset"] != mode + "ing":
            continue
        if not (os.path.exists(visual_path + key + ".hdf5") and os.path.exists(audio_path + key + ".pkl")):
            continue
        with open(audio_path + key + ".pkl", "rb") as f:
            spectrogram = np.expand_dims(pickle.load(f), axis=0)
        with h5py.File(visual_path + key + ".hdf5", "r") as f:
            video = f["video"]
            picks = loader_frame_indices(len(video), mode, rng)
            images = [Image.open(io.BytesIO(video[t])).convert("RGB") for t in picks]
        out.append(
            {"id": key, "label": class_to_idx[entry["label"]], "images": images, "audio": spectrogram, "picks": picks}
        )
    return out


def bml_validation_ids(folder: Path) -> list[str]:
    """BML's loader (``mode='validation'``) takes the entries whose subset is exactly 'validation'."""
    ann = json.loads((folder / "annotations.json").read_text())
    return sorted(k for k, e in ann["database"].items() if e["subset"] == "validation")


# ----------------------------------------------------------------------------- safe pickles


def test_dump_array_names_only_version_stable_numpy_and_loads_writable() -> None:
    """numpy >= 2 pickles name numpy._core, which numpy 1.x (BalanceMM's pins) cannot import."""
    arr = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    data = dump_array(arr)
    names = [arg for op, arg, _ in pickletools.genops(data) if op.name in ("SHORT_BINUNICODE", "BINUNICODE")]
    assert "_core" not in " ".join(names) and {"numpy", "ndarray", "dtype", "builtins", "bytearray"} <= set(names)
    back = pickle.loads(data)
    assert type(back) is np.ndarray and back.dtype == np.float32 and np.array_equal(back, arr)
    assert back.flags.writeable and back.flags.c_contiguous
    back[0, 0] = 5.0  # BML's audio masking writes into the array
    assert dump_array(arr) == dump_array(arr.copy())


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_load_array_reads_numpys_own_pickles(protocol: int) -> None:
    arr = np.linspace(-3, 3, 20, dtype=np.float64).reshape(4, 5)
    assert np.array_equal(load_array(pickle.dumps(arr, protocol=protocol), "x.pkl"), arr)


class _Payload:
    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):  # what a malicious .pkl does: call anything at load time
        return (Path.touch, (self.path,))


def test_malicious_pickles_are_refused_without_running(tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    evil = pickle.dumps(_Payload(pwned))
    pickle.loads(evil)  # the payload works with a plain unpickler ...
    assert pwned.exists()
    pwned.unlink()
    with pytest.raises(MMCurateError, match=r"evil\.pkl: not a pickled numpy array \(it refers to pathlib"):
        load_array(evil, "evil.pkl")
    assert not pwned.exists()  # ... and never runs with ours
    for obj, why in (
        (np.ma.masked_array([[1.0, 2.0]]), "not part of a numpy array"),
        ({"a": 1}, "holds a dict"),
        (np.zeros(3), r"shape \(3,\)"),
        (np.array([["a"]]), "dtype <U1"),
        ([1.0, 2.0], "holds a list"),
    ):
        with pytest.raises(MMCurateError, match=why):
            load_array(pickle.dumps(obj), "x.pkl")
    with pytest.raises(MMCurateError, match="unreadable pickle|not a pickled numpy array"):
        load_array(b"\x80\x04garbage", "x.pkl")


# ----------------------------------------------------------------------------- frames


def test_loader_and_export_frame_rules() -> None:
    assert loader_frame_indices(6, "test") == [1, 1, 1] == loader_frame_indices(2, "train", random.Random(0))
    assert loader_frame_indices(10, "test") == [1, 4, 7]
    assert loader_frame_indices(7, "test") == [1, 3, 5]
    rng = random.Random(0)
    for n in (7, 9, 10, 30):
        for _ in range(50):
            picks = loader_frame_indices(n, "train", rng)
            assert all(1 <= t <= min(n - 1, 8) for t in picks)
    assert export_frame_indices(1, 10) == [0, 0]  # the loader reads index 1
    assert export_frame_indices(7, 10) == list(range(7))
    picks = export_frame_indices(30, 10)
    assert len(picks) == 10 and picks == sorted(set(picks)) and picks[0] >= 1 and picks[-1] <= 29


def _jpeg(value: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (20, 12), (value, 0, 0)).save(buf, format="JPEG")
    return buf.getvalue()


def test_hdf5_frames_round_trip_and_bad_files(tmp_path: Path) -> None:
    frames = [_jpeg(v) for v in (10, 120, 240)]
    data = frames_to_hdf5(frames, [0.0, 0.5, 1.0], 1.25)
    assert data == frames_to_hdf5(frames, [0.0, 0.5, 1.0], 1.25)  # no timestamps in the file
    (tmp_path / "a.hdf5").write_bytes(data)
    got = read_hdf5_frames(tmp_path / "a.hdf5", "a.hdf5")
    assert got.frames == frames and got.times == [0.0, 0.5, 1.0] and got.duration == 1.25
    with h5py.File(tmp_path / "b.hdf5", "w") as f:  # fixed-length byte strings, no extras: also read
        f.create_dataset("video", data=np.array(frames, dtype=f"S{max(map(len, frames))}"))
    assert read_hdf5_frames(tmp_path / "b.hdf5", "b").frames == frames
    with h5py.File(tmp_path / "c.hdf5", "w") as f:
        f.create_dataset("frames", data=np.zeros(3))
    with pytest.raises(MMCurateError, match="c.hdf5: no 'video' dataset"):
        read_hdf5_frames(tmp_path / "c.hdf5", "c.hdf5")
    (tmp_path / "d.hdf5").write_bytes(b"not hdf5 at all" * 10)
    with pytest.raises(MMCurateError, match="d.hdf5: not a readable HDF5 file"):
        read_hdf5_frames(tmp_path / "d.hdf5", "d.hdf5")
    (tmp_path / "e.hdf5").write_bytes(frames_to_hdf5([frames[0], b"GIF89a..."], None, None))
    with pytest.raises(MMCurateError, match="frame 2 of 2 is not a JPEG"):
        read_hdf5_frames(tmp_path / "e.hdf5", "e.hdf5")


# ----------------------------------------------------------------------------- export


def _balanced(root: Path, n: int = 24, frames_per_clip: int = 8, **kw) -> Workdir:
    """A work directory with a synthetic ingest (16 kHz FLAC) and a balanced selection over it."""
    work = Workdir(root)
    kw.setdefault("with_features", False)  # the fixture's cache names no real preset
    make_ingest_dir(work.ingest.path, n=n, frames_per_clip=frames_per_clip, rows_per_shard=6, **kw)
    balanced = work.balanced
    balanced.path.mkdir(parents=True)
    balanced.write_selection(make_selection(work.ingest.path, drop_every=5))
    balanced.write_meta({"ingest_dir": str(work.ingest.path), "bin_edges": [-1, -1 / 3, 1 / 3, 1], "seed": 0})
    return work


def _export(work: Workdir, **kw) -> Path:
    cfg = ExportConfig(
        workers=1, chunk_size=kw.pop("chunk_size", 4), audio_preset=kw.pop("audio_preset", PRESET), **kw
    )
    return run_export(work, cfg).out_dir


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_export_is_what_balancemm_loads_for_every_split(tmp_path: Path) -> None:
    work = _balanced(tmp_path / "w", frames_per_clip=8)
    out = _export(work)
    selection = work.balanced.read_selection().to_pylist()
    classes = work.ingest.read_classes()
    by_id = {r["sample_id"]: r for r in selection}
    media = read_shards(work.ingest.path, sorted(by_id)).to_pylist()
    stored = {m["sample_id"]: m for m in media}
    cfg = get_preset(PRESET)
    for mode, split in (("train", "train"), ("test", "test")):
        clips = balancemm_read(out, mode)
        assert sorted(c["id"] for c in clips) == sorted(s for s, r in by_id.items() if r["split"] == split)
        for c in clips:
            assert c["label"] == classes.index(by_id[c["id"]]["label"])
            assert c["audio"].shape == (1, 129, 1251) and c["audio"].dtype == np.float32
            want = audio_features_from_flac(stored[c["id"]]["audio"], cfg)
            assert np.array_equal(c["audio"][0], want.astype(np.float32))
            assert len(set(c["picks"])) == 3  # 8 frames: the loader sees three moments
            for t, img in zip(c["picks"], c["images"], strict=True):
                assert img.size == (48, 48)
                assert np.array_equal(
                    np.asarray(img), np.asarray(Image.open(io.BytesIO(stored[c["id"]]["frames"][t])).convert("RGB"))
                )
    assert bml_validation_ids(out) == sorted(s for s, r in by_id.items() if r["split"] == "val")
    card = (out / "README.md").read_text()
    assert "validation: false" in card and "visual_path: <this folder>/visual/" in card and "129 x 1251" in card


def test_export_thins_to_the_loaders_rate_and_keeps_short_clips_loadable(tmp_path: Path) -> None:
    work = _balanced(tmp_path / "w", n=10, frames_per_clip=25)
    out = _export(work, max_frames=10)
    with h5py.File(next((out / "visual").rglob("*.hdf5")), "r") as f:
        assert len(f["video"]) == 10 and np.allclose(
            f["frame_times"][()], [0.1 * k for k in export_frame_indices(25, 10)]
        )
    work1 = _balanced(tmp_path / "w1", n=10, frames_per_clip=1)
    out1 = _export(work1)
    clips = balancemm_read(out1, "train") + balancemm_read(out1, "test")
    assert clips and all(c["picks"] == [1, 1, 1] for c in clips)  # one stored frame, written twice
    assert "Clips with a single stored frame, written twice" in (out1 / "README.md").read_text()


def test_export_is_deterministic_resumable_and_atomic(tmp_path: Path) -> None:
    work = _balanced(tmp_path / "w")
    clean = _export(work, out=tmp_path / "clean")
    first = _tree(clean)
    assert _tree(_export(work, out=tmp_path / "again")) == first  # same inputs, same bytes

    # an unchanged rerun writes nothing
    mtimes = {p: p.stat().st_mtime_ns for p in clean.rglob("*") if p.is_file()}
    again = run_export(work, ExportConfig(workers=1, chunk_size=4, audio_preset=PRESET, out=clean))
    assert again.already_complete and {p: p.stat().st_mtime_ns for p in clean.rglob("*") if p.is_file()} == mtimes

    # a run that dies half way leaves the previous export whole, and the next run resumes
    last = work.ingest.shard_indices()[-1]
    saved = work.ingest.shard_path(last).read_bytes()
    table = work.ingest.open_shard(work.ingest.shard_path(last).name)
    garbage = pa.array([b"not flac"] * table.num_rows, pa.binary())
    work.ingest.write_shard(last, table.set_column(table.schema.get_field_index("audio"), "audio", garbage))
    del table
    work.balanced.write_selection(make_selection(work.ingest.path, drop_every=4))  # a new selection to export
    work.balanced.write_meta({"ingest_dir": str(work.ingest.path), "bin_edges": [-1, -1 / 3, 1 / 3, 1], "seed": 0})
    with pytest.raises(MMCurateError, match="not decodable FLAC"):
        _export(work, out=clean)
    assert _tree(clean) == first and is_complete(clean)
    staging = clean.with_name(".clean.partial")
    done = sorted((staging / ".mmcurate" / "units").glob("*.json"))
    assert done  # the units before the damaged shard are finished and marked
    work.ingest.shard_path(last).write_bytes(saved)
    resumed = run_export(work, ExportConfig(workers=1, chunk_size=4, audio_preset=PRESET, out=clean))
    assert resumed.units_done_before == len(done) and resumed.units_written > 0 and not staging.exists()
    assert _tree(clean) == _tree(_export(work, out=tmp_path / "fresh"))
    assert is_complete(clean)

    # damage is noticed, and a folder mmcurate did not write is never replaced
    victim = next((clean / "audio").rglob("*.pkl"))
    victim.write_bytes(victim.read_bytes()[:-1])
    assert not is_complete(clean)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(MMCurateError, match="is not an mmcurate export"):
        _export(work, out=foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_export_refuses_what_it_cannot_compute(tmp_path: Path) -> None:
    work = _balanced(tmp_path / "w")
    with pytest.raises(MMCurateError, match="cremad_stft needs 22050 Hz audio but .* stored it at 16000 Hz"):
        _export(work, audio_preset="cremad_stft")
    with pytest.raises(MMCurateError, match="unknown audio feature preset 'nope'"):
        _export(work, audio_preset="nope")


# ----------------------------------------------------------------------------- import


def _release(tmp_path: Path) -> tuple[Path, Workdir]:
    work = _balanced(tmp_path / "src", n=30, frames_per_clip=4)
    out = _export(work, out=tmp_path / "release")
    shutil.rmtree(out / ".mmcurate")  # a release as shared: the files only
    return out, work


@pytest.mark.slow
def test_import_restores_ids_splits_frames_and_spectrograms(tmp_path: Path) -> None:
    release, src = _release(tmp_path)
    proc = run_cli("ingest", str(release), "--layout", "balancemm", "--workdir", str(tmp_path / "imp"))
    assert proc.returncode == 0, proc.stderr
    imported = IngestDir(tmp_path / "imp" / "ingest")
    manifest = imported.read_manifest().sort_by("sample_id").to_pylist()
    sel = sorted(src.balanced.read_selection().to_pylist(), key=lambda r: r["sample_id"])
    assert [(m["sample_id"], m["label"], m["split"]) for m in manifest] == [
        (r["sample_id"], r["label"], r["split"]) for r in sel
    ]
    assert imported.read_classes() == src.ingest.read_classes()
    assert all(
        m["has_audio"] and m["num_audio_samples"] == 0 and m["spectrogram"].startswith("audio/") for m in manifest
    )
    ids = [r["sample_id"] for r in sel]
    a, b = read_shards(src.ingest.path, ids), read_shards(imported.path, ids)
    assert (
        a["frames"].to_pylist() == b["frames"].to_pylist()
        and a["frame_times"].to_pylist() == b["frame_times"].to_pylist()
    )
    assert b["audio"].null_count == len(ids)
    cfg = get_preset(PRESET)
    for flac, cached in zip(a["audio"].to_pylist(), cached_features_column(b["audio_features"]), strict=True):
        assert np.array_equal(cached, audio_features_from_flac(flac, cfg))

    # no waveform: the cached preset is used; any other is refused, never zero-filled
    classes = imported.read_classes()
    tensors = build_av_tensors(b, classes, TensorConfig(audio=PRESET))
    assert tensors.stats["cached_features_used"] == len(ids) and bool(tensors.has_audio.all())
    with pytest.raises(
        MMCurateError, match="has no waveform, only cached vggsound_stft audio features, so logmel cannot"
    ):
        build_av_tensors(b, classes, TensorConfig(audio="logmel"))
    with pytest.raises(MMCurateError, match="no waveform, only cached audio features .*--audio-preset vggsound_stft"):
        run_export(
            Workdir(tmp_path / "imp2"),
            ExportConfig(balanced_dir=src.balanced.path, ingest_dir=imported.path, audio_preset="ks_fbank", workers=1),
        )

    # the imported set re-exports (from its cache) and its Hub export keeps the cache usable for reeval
    again = run_export(
        Workdir(tmp_path / "imp2"),
        ExportConfig(balanced_dir=src.balanced.path, ingest_dir=imported.path, audio_preset=PRESET, workers=1),
    )
    assert again.stats["audio_from"] == {"cache": len(ids)}
    assert _tree(again.out_dir)["annotations.json"] == (release / "annotations.json").read_bytes()
    from mmcurate.export import export_balanced
    from mmcurate.reeval.config import TensorSettings
    from mmcurate.reeval.sources import load_balanced_dir

    hub = tmp_path / "hub"
    export_balanced(imported.path, src.balanced.selection_path, hub, {}, show_summary=False)
    data = load_balanced_dir(hub, TensorSettings(image_size=16, audio_preset=PRESET))
    assert data.decoder["audio"]["kind"] == "stft" and len(data.train.sample_ids) == sum(
        r["split"] == "train" for r in sel
    )


def _break(release: Path) -> dict[str, str]:
    """Break a release in every way the issue lists; returns clip id -> expected failure stage."""
    ann = json.loads((release / "annotations.json").read_text())
    ids = sorted(ann["database"])
    broken = {}
    (release / "visual" / f"{ids[0]}.hdf5").unlink()
    broken[ids[0]] = "discover"
    (release / "audio" / f"{ids[1]}.pkl").unlink()
    broken[ids[1]] = "discover"
    (release / "visual" / f"{ids[2]}.hdf5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)  # a damaged HDF5
    broken[ids[2]] = "decode"
    (release / "audio" / f"{ids[3]}.pkl").write_bytes(pickle.dumps(_Payload(release / "pwned")))
    broken[ids[3]] = "decode"
    (release / "audio" / f"{ids[4]}.pkl").write_bytes(pickle.dumps({"spectrogram": [1, 2, 3]}))
    broken[ids[4]] = "decode"
    (release / "audio" / f"{ids[5]}.pkl").write_bytes(dump_array(np.zeros((128, 10), np.float32)))  # wrong bin count
    broken[ids[5]] = "decode"
    (release / "audio" / f"{ids[6]}.pkl").write_bytes(dump_array(np.full((129, 10), np.inf, np.float32)))
    broken[ids[6]] = "decode"
    ann["database"][ids[7]]["label"] = "seven"
    broken[ids[7]] = "label"
    ann["database"][ids[8]]["subset"] = "holdout"
    broken[ids[8]] = "discover"
    (release / "annotations.json").write_text(json.dumps(ann))
    return broken


@pytest.mark.slow
def test_bad_release_gives_one_failure_line_per_clip_and_goes_on(tmp_path: Path) -> None:
    release, _ = _release(tmp_path)
    broken = _break(release)
    n = len(json.loads((release / "annotations.json").read_text())["database"])
    proc = run_cli("ingest", str(release), "--layout", "balancemm", "--workdir", str(tmp_path / "imp"))
    assert proc.returncode == 0, proc.stderr
    assert not (release / "pwned").exists()  # the malicious pickle never ran
    imported = IngestDir(tmp_path / "imp" / "ingest")
    failures = {f["sample_id"]: f for f in imported.read_failures()}
    assert {k: f["stage"] for k, f in failures.items()} == broken
    assert all("\n" not in f["reason"] for f in failures.values())
    assert "refers to pathlib" in failures[sorted(broken)[3]]["reason"]
    assert imported.read_manifest().num_rows == n - len(broken)


def test_import_needs_to_know_the_spectrogram_recipe(tmp_path: Path) -> None:
    release, _ = _release(tmp_path)
    ann = json.loads((release / "annotations.json").read_text())
    del ann["mmcurate"]  # a release made elsewhere (the paper's) says nothing about its spectrograms
    (release / "annotations.json").write_text(json.dumps(ann))
    with pytest.raises(MMCurateError, match="does not say which recipe .* pass --layout-option audio_preset=NAME"):
        run_layout("balancemm", release, {})
    found = run_layout("balancemm", release, {"audio_preset": PRESET})
    assert found.features == get_preset(PRESET).to_dict() and found.classes == ann["labels"]
    (release / "settings.json").write_text(json.dumps({"preset": PRESET, "tile_seconds": 5.0}))
    custom = run_layout("balancemm", release, {"audio_preset": "settings.json"})
    assert custom.features["tile_seconds"] == 5.0 and custom.features["n_fft"] == 256
    with pytest.raises(MMCurateError, match="visual=.*outside RAW_DIR"):
        run_layout("balancemm", release, {"audio_preset": PRESET, "visual": str(tmp_path)})


# ----------------------------------------------------------------------------- av_digits round trip


@pytest.mark.slow
def test_av_digits_round_trip(av_digits: Path, tmp_path: Path) -> None:
    """Real clips: ingest -> balance -> export balancemm -> import -> score -> reeval (tiny): the same splits and
    labels, frames pixel-equal, spectrograms equal. The two format steps run as a user runs them (CLI), the
    others in this process; about 30 s on 2 idle cores (three torch start-ups)."""
    from mmcurate.balance import STAGE as BALANCE
    from mmcurate.balance import BalanceConfig
    from mmcurate.ingest import STAGE as INGEST
    from mmcurate.ingest import DecodeConfig, IngestConfig
    from mmcurate.reeval import STAGE as REEVAL
    from mmcurate.reeval import ReevalConfig
    from mmcurate.score import STAGE as SCORE
    from mmcurate.score import ScoreStageConfig

    manifest = write_av_digits_manifest(av_digits, tmp_path / "inputs.csv", per_format=6)
    w1, w2 = Workdir(tmp_path / "w1"), Workdir(tmp_path / "w2")
    INGEST.run(
        w1,
        IngestConfig(
            raw_dir=av_digits,
            manifest=manifest,
            group_column="speaker",
            workers=1,
            decode=DecodeConfig(fps=15, size=64),
        ),
    )  # 5-7 frames a clip
    scores = tmp_path / "scores.csv"
    with open(manifest) as fh, open(scores, "w", newline="") as out:
        w = csv.writer(out)
        w.writerow(["sample_id", "p_audio", "p_visual"])
        for r in csv.DictReader(fh):  # confidences from the ground-truth condition, jittered by a hash
            h = int(hashlib.sha256(r["path"].encode()).hexdigest()[:8], 16) / 2**32
            a, v = {"clean": (0.8, 0.6), "audio_noise": (0.2, 0.7)}.get(r["condition"], (0.9, 0.15))
            w.writerow(
                [r["path"], round(min(1, max(0, a - 0.3 + 0.6 * h)), 4), round(min(1, max(0, v + 0.3 - 0.6 * h)), 4)]
            )
    SCORE.run(w1, ScoreStageConfig(scores_from=scores))
    BALANCE.run(w1, BalanceConfig(bins=4, per_bin=8, shortfall="best-effort"))
    proc = run_cli("export", "--format", "balancemm", "--audio-preset", PRESET, "--workdir", str(w1.path))
    assert proc.returncode == 0, proc.stderr
    export = w1.path / "balancemm"
    sel = sorted(w1.balanced.read_selection().to_pylist(), key=lambda r: r["sample_id"])
    read = {c["id"]: c for mode in ("train", "test") for c in balancemm_read(export, mode)}
    assert sorted(read) == [r["sample_id"] for r in sel if r["split"] in ("train", "test")]
    assert any(len(set(c["picks"])) == 3 for c in read.values())  # clips with 7 frames: three moments

    proc = run_cli("ingest", str(export), "--layout", "balancemm", "--workdir", str(w2.path))
    assert proc.returncode == 0, proc.stderr
    imported = w2.ingest
    m = imported.read_manifest().sort_by("sample_id").to_pylist()
    assert [(x["sample_id"], x["label"], x["split"], x["group"]) for x in m] == [
        (r["sample_id"], r["label"], r["split"], r["group"]) for r in sel
    ]
    ids = [r["sample_id"] for r in sel]
    a, b = read_shards(w1.ingest.path, ids), read_shards(imported.path, ids)
    for fa, fb in zip(a["frames"].to_pylist(), b["frames"].to_pylist(), strict=True):  # pixel-equal
        assert len(fa) == len(fb) and all(
            np.array_equal(np.asarray(Image.open(io.BytesIO(x))), np.asarray(Image.open(io.BytesIO(y))))
            for x, y in zip(fa, fb)
        )
    cfg = get_preset(PRESET)
    cached = cached_features_column(b["audio_features"])
    assert all(
        np.array_equal(c, audio_features_from_flac(x, cfg))
        for x, c in zip(a["audio"].to_pylist(), cached, strict=True)
    )

    sub = tmp_path / "scores_sel.csv"
    with open(scores) as fh, open(sub, "w", newline="") as out:
        rows = [r for r in csv.DictReader(fh) if r["sample_id"] in set(ids)]
        w = csv.DictWriter(out, ["sample_id", "p_audio", "p_visual"])
        w.writeheader()
        w.writerows(rows)
    SCORE.run(w2, ScoreStageConfig(scores_from=sub))
    outcome = REEVAL.run(
        w2,
        ReevalConfig(
            source=str(imported.path),
            methods="joint",
            epochs=1,
            batch_size=8,
            audio_preset=PRESET,
            image_size=16,
            width=4,
            bins=4,
            device="cpu",
        ),
    )
    results = json.loads((w2.reeval_dir / "results.json").read_text())
    assert "joint" in json.dumps(results) and outcome is not None
    from mmcurate.reeval.config import TensorSettings
    from mmcurate.reeval.sources import load_ingest_dir

    data = load_ingest_dir(imported.path, TensorSettings(image_size=16, audio_preset=PRESET))
    for split in ("train", "val", "test"):  # the re-evaluation sees the balanced set's splits and labels
        want = sorted((r["sample_id"], r["label"]) for r in sel if r["split"] == split)
        part = data.split(split)
        assert sorted(zip(part.sample_ids, [data.classes[i] for i in part.labels.tolist()])) == want

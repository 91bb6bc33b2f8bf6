"""Dataset adapters (CREMA-D, Kinetics-Sounds, VGGSound, AVE), class lists and pipeline recipes.

Each adapter runs on a tiny stand-in laid out exactly like the real release -- real file names,
real CSV/TXT formats (copied row shapes from the official files), a few real media files written
with PyAV and zero-byte placeholders where nothing is decoded -- including malformed names, rows
naming absent files and files no annotation names.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from mmcurate.common.errors import MMCurateError
from mmcurate.recipes import (
    CLASS_LISTS,
    LAYOUTS,
    class_list,
    layout_options,
    run_layout,
)
from mmcurate.recipes.classes import CLASSES_DIR, available_class_lists
from mmcurate.recipes.scan import is_media, list_files
from mmcurate.store.items import Discovery
from mmcurate.store.splits import split_groups

REPO = Path(__file__).resolve().parents[2]
FEATURE_PRESETS = {"cremad_stft", "ks_fbank", "vggsound_stft", "logmel"}
BUILTIN_LAYOUTS = {"folders", "manifest"}


# ----------------------------------------------------------------------------- helpers


def write_clip(path: Path, container: str = "mp4", seconds: float = 1.0) -> Path:
    """A real, tiny clip with video and audio (flv: Sorenson H.263 + MP3 like CREMA-D; mp4: H.264 + AAC)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    vcodec, acodec, rate = ("flv", "libmp3lame", 22050) if container == "flv" else ("libx264", "aac", 16000)
    fps = 10
    with av.open(str(path), "w", format=container) as out:
        v = out.add_stream(vcodec, rate=fps)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = out.add_stream(acodec, rate=rate, layout="mono")
        for i in range(int(seconds * fps)):
            img = np.full((48, 64, 3), (i * 20) % 255, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for p in v.encode(frame):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
        n = int(seconds * rate)
        t = np.arange(n) / rate
        pcm = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32).reshape(1, -1)
        step = a.codec_context.frame_size or 1024
        for s in range(0, n, step):
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[:, s : s + step]), format="fltp", layout="mono")
            af.sample_rate, af.pts, af.time_base = rate, s, Fraction(1, rate)
            for p in a.encode(af):
                out.mux(p)
        for p in a.encode():
            out.mux(p)
    return path


def touch(root: Path, rel: str, data: bytes = b"") -> str:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return rel


def accounted(disc: Discovery) -> set[str]:
    return {it.path for it in disc.items} | {f.file for f in disc.failures} | set(disc.unlisted)


def assert_every_file_accounted(root: Path, disc: Discovery) -> None:
    files = set(list_files(root))
    missing = files - accounted(disc)
    assert not missing, f"files neither item, failure nor unlisted: {sorted(missing)}"
    # an unlisted file is never also an item; only annotation files (bad rows) may be both unlisted and failed
    assert not set(disc.unlisted) & {it.path for it in disc.items}
    assert not {p for p in disc.unlisted if is_media(p)} & {f.file for f in disc.failures}


def failure_for(disc: Discovery, file: str) -> str:
    reasons = [f.reason for f in disc.failures if f.file == file]
    assert reasons, f"no failure for {file}; failures: {[(f.file, f.reason) for f in disc.failures]}"
    return " | ".join(reasons)


def by_path(disc: Discovery) -> dict[str, object]:
    return {it.path: it for it in disc.items}


# ----------------------------------------------------------------------------- class lists


def test_class_lists_have_the_documented_sizes_and_no_repeats() -> None:
    sizes = {name: len(class_list(name)) for name in available_class_lists()}
    assert sizes == {"ave": 28, "cremad": 6, "demo": 6, "kinetics_sounds": 31, "vggsound": 309}
    assert class_list("cremad") == ["NEU", "HAP", "SAD", "FEA", "DIS", "ANG"]  # OGM-GE's class_dict order
    ks = class_list("kinetics_sounds")
    assert ks[4] == "dribbling_basketball" and ks[27] == "tap_dancing" and ks[13] == "playing_harmonica"
    assert "strumming_guitar" not in ks  # the 32-class variant's extra class
    vgg = class_list("vggsound")
    assert vgg == sorted(vgg) and "male speech, man speaking" in vgg and "police car (siren)" in vgg
    assert class_list("ave")[0] == "Church bell" and "Rodents, rats, mice" in class_list("ave")


def test_class_list_files_have_a_provenance_header_and_repo_copies_match() -> None:
    for name in available_class_lists():
        packaged = (CLASSES_DIR / f"{name}.txt").read_bytes()
        assert packaged.startswith(b"#"), f"{name}.txt has no comment header"
        copy = REPO / "manifests" / "classes" / f"{name}.txt"
        assert copy.is_file(), f"manifests/classes/{name}.txt missing"
        assert copy.read_bytes() == packaged, f"manifests/classes/{name}.txt differs from the packaged copy"
    assert {p.stem for p in (REPO / "manifests" / "classes").glob("*.txt")} == set(available_class_lists())


def test_unknown_class_list_is_a_clear_error() -> None:
    with pytest.raises(MMCurateError, match="no class list named 'nope'.*available: ave, cremad"):
        class_list("nope")


def test_every_layout_has_a_class_list() -> None:
    # balancemm takes its classes from the release's own 'labels' list
    assert set(CLASS_LISTS) == set(LAYOUTS) - {"balancemm"} == {"cremad", "kinetics_sounds", "vggsound", "ave"}
    for name in CLASS_LISTS.values():
        assert class_list(name)


def test_wheel_ships_the_class_lists(tmp_path: Path) -> None:
    """An installed mmcurate must find its class lists: they have to be package data of the wheel."""
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(REPO / "pyproject.toml", src)
    shutil.copytree(REPO / "mmcurate", src / "mmcurate", ignore=shutil.ignore_patterns("__pycache__"))
    readme = REPO / "README.md"
    (src / "README.md").write_text(readme.read_text() if readme.exists() else "# mmcurate\n")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    import zipfile

    (wheel,) = (tmp_path / "dist").glob("mmcurate-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in available_class_lists():
        assert f"mmcurate/recipes/classes/{name}.txt" in names, (
            f'mmcurate/recipes/classes/{name}.txt is not in the wheel: add "recipes/classes/*.txt" to '
            "[tool.setuptools.package-data] mmcurate in pyproject.toml"
        )


# ----------------------------------------------------------------------------- splits and options


def test_split_groups_is_deterministic_and_keeps_groups_whole() -> None:
    actors = [str(1001 + i) for i in range(91)]
    a = split_groups(actors, val_fraction=0.1, test_fraction=0.1, seed=0)
    assert a == split_groups(list(reversed(actors)), val_fraction=0.1, test_fraction=0.1, seed=0)
    counts = {s: sum(v == s for v in a.values()) for s in ("train", "val", "test")}
    assert counts == {"train": 73, "val": 9, "test": 9}
    assert a != split_groups(actors, val_fraction=0.1, test_fraction=0.1, seed=1)
    # adding a group moves no other group
    b = split_groups([*actors, "9999"], val_fraction=0.1, test_fraction=0.1, seed=0)
    moved = [g for g in actors if a[g] != b[g]]
    assert len(moved) <= 2  # only the rounding boundary can shift
    with pytest.raises(MMCurateError, match="only 2 actors"):
        split_groups(["1", "2"], val_fraction=0.1, test_fraction=0.1, seed=0, what="actors")


def test_run_layout_checks_option_names_and_converts_strings(tmp_path: Path) -> None:
    assert set(layout_options("cremad")) == {
        "video_dir",
        "train_csv",
        "test_csv",
        "val_fraction",
        "test_fraction",
        "split_seed",
    }
    raw = tmp_path / "CREMA-D"
    for actor in range(1001, 1011):
        touch(raw, f"VideoFlash/{actor}_DFA_ANG_XX.flv")
    with pytest.raises(
        MMCurateError, match="layout 'cremad' has no option 'valfraction'; its options are: video_dir="
    ):
        run_layout("cremad", raw, {"valfraction": "0.2"})
    with pytest.raises(MMCurateError, match="val_fraction='lots' is not a number"):
        run_layout("cremad", raw, {"val_fraction": "lots"})
    with pytest.raises(MMCurateError, match="unknown dataset layout 'cremd'"):
        run_layout("cremd", raw, {})
    disc = run_layout(
        "cremad", raw, {"val-fraction": "0.2", "test_fraction": "0.2", "split_seed": "3", "train_csv": "none"}
    )
    assert sorted(it.split for it in disc.items).count("val") == 2


def test_layouts_reject_a_missing_raw_dir(tmp_path: Path) -> None:
    for name in LAYOUTS:
        with pytest.raises(MMCurateError, match="raw data folder not found"):
            LAYOUTS[name](tmp_path / "absent")


# ----------------------------------------------------------------------------- CREMA-D


def make_cremad(root: Path, actors: range = range(1001, 1011)) -> Path:
    """VideoFlash/ + AudioWAV/ + AudioMP3/ + rating CSVs, as the git-lfs release lays them out."""
    emotions = ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"]
    sentences = ["DFA", "IEO", "IOM", "ITH"]
    for i, actor in enumerate(actors):
        for j, emo in enumerate(emotions):
            level = "MD" if sentences[(i + j) % 4] == "IEO" else "XX"
            name = f"{actor}_{sentences[(i + j) % 4]}_{emo}_{level}"
            touch(root, f"VideoFlash/{name}.flv")
            touch(root, f"AudioWAV/{name}.wav")
            touch(root, f"AudioMP3/{name}.mp3")
    touch(root, "SentenceFilenames.csv", b"Filename\n1001_DFA_ANG_XX\n")
    touch(root, "processedResults/tabulatedVotes.csv", b"A,D,F,H,N,S,fileName\n")
    touch(root, "README.md", b"# CREMA-D\n")
    touch(root, "VideoFlash/1001_DFA_XYZ_XX.flv")  # emotion code not in the class list
    touch(root, "VideoFlash/clip-001.flv")  # not ACTOR_SENTENCE_EMOTION_LEVEL
    touch(root, ".git/objects/ab/cdef")  # a git-lfs clone's metadata: hidden, not data
    return root


def test_cremad_labels_groups_and_actor_splits(tmp_path: Path) -> None:
    raw = make_cremad(tmp_path / "CREMA-D")
    disc = LAYOUTS["cremad"](raw)
    assert len(disc.items) == 60
    items = by_path(disc)
    it = items["VideoFlash/1003_IOM_ANG_XX.flv"]
    assert (it.label, it.group, it.start, it.end) == ("ANG", "1003", None, None)
    assert it.extra_dict() == {"actor": "1003", "intensity": "XX", "sentence": "IOM"}
    assert {i.label for i in disc.items} == set(class_list("cremad"))
    # every actor in exactly one split; 10 actors at 0.1/0.1 -> 8 / 1 / 1
    split_of_actor: dict[str, set[str]] = {}
    for i in disc.items:
        split_of_actor.setdefault(i.group, set()).add(i.split)
    assert all(len(s) == 1 for s in split_of_actor.values())
    per_split = sorted(next(iter(s)) for s in split_of_actor.values())
    assert per_split.count("train") == 8 and per_split.count("val") == 1 and per_split.count("test") == 1
    # failures name the file and the reason
    assert "label code 'XYZ' not in the CREMA-D class list" in failure_for(disc, "VideoFlash/1001_DFA_XYZ_XX.flv")
    assert "is not ACTOR_SENTENCE_EMOTION_LEVEL" in failure_for(disc, "VideoFlash/clip-001.flv")
    # audio-only copies and rating files are ignored, hidden folders are not even listed
    assert "AudioWAV/1001_DFA_ANG_XX.wav" in disc.unlisted and "AudioMP3/1002_IEO_ANG_MD.mp3" in disc.unlisted
    assert "SentenceFilenames.csv" in disc.unlisted
    assert not any(p.startswith(".git") for p in accounted(disc))
    assert_every_file_accounted(raw, disc)
    # deterministic, and the seed changes the actor assignment
    again = LAYOUTS["cremad"](raw)
    assert again.items == disc.items and again.failures == disc.failures and again.unlisted == disc.unlisted
    other = LAYOUTS["cremad"](raw, split_seed=7)
    assert [i.split for i in other.items] != [i.split for i in disc.items]


def test_cremad_with_ogm_ge_split_csvs(tmp_path: Path) -> None:
    raw = make_cremad(tmp_path / "CREMA-D", actors=range(1001, 1004))
    # OGM-GE format: no header, "clip,EMOTION"; their file is read with utf-8-sig, so a BOM is allowed
    clips = sorted(p.stem for p in (raw / "VideoFlash").glob("10*_*_*_*.flv") if "XYZ" not in p.name)
    train = [f"{c},{c.split('_')[2]}" for c in clips[:10]]
    test = [f"{c},{c.split('_')[2]}" for c in clips[10:16]]
    test.append("1091_TIE_NEU_XX,NEU")  # listed, but the clip is absent
    train[0] = f"{clips[0]},SAD" if not clips[0].endswith("SAD_XX") else f"{clips[0]},ANG"  # disagrees with the name
    touch(raw, "splits/train.csv", ("\ufeff" + "\n".join(train) + "\n").encode())
    touch(raw, "splits/test.csv", ("\n".join(test) + "\n").encode())
    disc = LAYOUTS["cremad"](raw, train_csv="splits/train.csv", test_csv=str(raw / "splits" / "test.csv"))
    items = by_path(disc)
    assert {items[f"VideoFlash/{c}.flv"].split for c in clips[1:10]} == {"train"}
    assert {items[f"VideoFlash/{c}.flv"].split for c in clips[10:16]} == {"test"}
    assert "says" in failure_for(disc, f"VideoFlash/{clips[0]}.flv")
    assert "listed in splits/test.csv (line 7) but the clip file is missing" in failure_for(
        disc, "VideoFlash/1091_TIE_NEU_XX.flv"
    )
    assert "not listed in splits/test.csv or splits/train.csv" in failure_for(disc, f"VideoFlash/{clips[16]}.flv")
    assert "splits/train.csv" in disc.unlisted
    assert_every_file_accounted(raw, disc)


def test_cremad_bad_split_csv_and_too_few_actors_are_clear_errors(tmp_path: Path) -> None:
    raw = make_cremad(tmp_path / "CREMA-D", actors=range(1001, 1003))
    with pytest.raises(MMCurateError, match="only 2 actors"):
        LAYOUTS["cremad"](raw)
    touch(raw, "train.csv", b"just-one-field\n")
    with pytest.raises(MMCurateError, match=r"train.csv line 1: expected 'clip_name,EMOTION'"):
        LAYOUTS["cremad"](raw, train_csv="train.csv")
    with pytest.raises(MMCurateError, match="absent.csv: CREMA-D test split CSV not found"):
        LAYOUTS["cremad"](raw, test_csv="absent.csv")
    disc = LAYOUTS["cremad"](raw, val_fraction=0, test_fraction=0.4)
    assert sorted({i.split for i in disc.items}) == ["test", "train"]


def test_cremad_through_mmcurate_ingest(tmp_path: Path) -> None:
    """The adapter behind the real ingest command: real FLV clips decoded into the manifest."""
    from mmcurate.cli import main

    raw = tmp_path / "CREMA-D"
    clip = write_clip(tmp_path / "proto.flv", "flv")
    names = ["1001_DFA_ANG_XX", "1002_IEO_HAP_HI", "1003_TIE_SAD_XX", "1004_MTI_NEU_XX"]
    for name in names:
        (raw / "VideoFlash").mkdir(parents=True, exist_ok=True)
        shutil.copy(clip, raw / "VideoFlash" / f"{name}.flv")
    touch(raw, "VideoFlash/1005_DFA_ANX_XX.flv")
    touch(raw, "AudioWAV/1001_DFA_ANG_XX.wav")
    work = tmp_path / "work"
    main(
        [
            "ingest",
            str(raw),
            "--workdir",
            str(work),
            "--layout",
            "cremad",
            "--layout-option",
            "val_fraction=0.25",
            "--layout-option",
            "test_fraction=0.25",
            "--classes",
            str(REPO / "manifests" / "classes" / "cremad.txt"),
            "--frames",
            "2",
            "--size",
            "32",
            "--sample-rate",
            "22050",
            "--workers",
            "1",
        ]
    )
    rows = pq.read_table(work / "ingest" / "manifest.parquet").to_pylist()
    got = {r["path"]: (r["label"], r["group"], r["split"]) for r in rows}
    assert {p: v[:2] for p, v in got.items()} == {
        "VideoFlash/1001_DFA_ANG_XX.flv": ("ANG", "1001"),
        "VideoFlash/1002_IEO_HAP_HI.flv": ("HAP", "1002"),
        "VideoFlash/1003_TIE_SAD_XX.flv": ("SAD", "1003"),
        "VideoFlash/1004_MTI_NEU_XX.flv": ("NEU", "1004"),
    }
    assert sorted(v[2] for v in got.values()) == ["test", "train", "train", "val"]
    assert all(r["has_audio"] and r["has_video"] and r["native_sample_rate"] == 22050 for r in rows)
    failures = [json.loads(line) for line in (work / "ingest" / "failures.jsonl").read_text().splitlines()]
    assert [f["file"] for f in failures] == ["VideoFlash/1005_DFA_ANX_XX.flv"]
    assert "label code 'ANX'" in failures[0]["reason"]
    assert json.loads((work / "ingest" / "classes.json").read_text()) == class_list("cremad")


# ----------------------------------------------------------------------------- Kinetics-Sounds

KINETICS_HEADER = "label,youtube_id,time_start,time_end,split,is_cc\n"


def test_kinetics_sounds_cvdf_layout_with_annotation_csvs(tmp_path: Path) -> None:
    raw = tmp_path / "k400"
    clip = write_clip(tmp_path / "proto.mp4")
    train_rows = [
        "playing bagpipes,--4-0ihtnBU,58,68,train,0",  # leading dashes in the YouTube id
        "tap dancing,-00nar1nEPc,33,43,train,0",
        '"dribbling basketball",a_b-c_d_efg,5,15,train,0',  # quoted label, underscores in the id
        "abseiling,abcdefghijk,10,20,train,0",  # a Kinetics class outside Kinetics-Sounds
        "singing,MISSINGclip,0,10,train,0",  # Kinetics-Sounds row without its file
        "singing,-2UWP3n_05A,360,370,train,0",  # second segment of a video
        "singing,-2UWP3n_05A,10,20,train,0",
    ]
    val_rows = ["mowing lawn,-24HxQDHOAM,1,11,val,0", "bowling,zzzzzzzzzzz,bad,11,val,0"]  # second row malformed
    touch(raw, "annotations/train.csv", (KINETICS_HEADER + "\n".join(train_rows) + "\n").encode())
    touch(raw, "annotations/val.csv", (KINETICS_HEADER + "\n".join(val_rows) + "\n").encode())
    (raw / "train").mkdir(parents=True)
    shutil.copy(clip, raw / "train" / "--4-0ihtnBU_000058_000068.mp4")  # one real clip
    for rel in [
        "train/-00nar1nEPc_000033_000043.mp4",
        "train/a_b-c_d_efg_000005_000015.mp4",
        "train/abcdefghijk_000010_000020.mp4",
        "train/-2UWP3n_05A_000360_000370.mp4",
        "train/-2UWP3n_05A_000010_000020.mp4",
        "val/-24HxQDHOAM_000001_000011.mp4",
        "val/notinanycsv_000001_000011.mp4",  # no row anywhere
        "val/holiday video.mp4",  # not the Kinetics naming
        # arrange_by_classes.py's class-folder copy of a clip already listed
        "videos/train/playing bagpipes/--4-0ihtnBU_000058_000068.mp4",
        "kinetics400.tar.gz.md5",
    ]:
        touch(raw, rel)
    disc = LAYOUTS["kinetics_sounds"](raw)
    items = by_path(disc)
    assert set(items) == {
        "train/--4-0ihtnBU_000058_000068.mp4",
        "train/-00nar1nEPc_000033_000043.mp4",
        "train/a_b-c_d_efg_000005_000015.mp4",
        "train/-2UWP3n_05A_000360_000370.mp4",
        "train/-2UWP3n_05A_000010_000020.mp4",
        "val/-24HxQDHOAM_000001_000011.mp4",
    }
    it = items["train/--4-0ihtnBU_000058_000068.mp4"]
    assert (it.label, it.split, it.group, it.start, it.end) == ("playing_bagpipes", "train", "--4-0ihtnBU", None, None)
    assert it.extra_dict() == {"youtube_id": "--4-0ihtnBU", "yt_start": "58", "yt_end": "68"}
    assert items["train/a_b-c_d_efg_000005_000015.mp4"].label == "dribbling_basketball"
    assert items["val/-24HxQDHOAM_000001_000011.mp4"].split == "val"
    assert items["train/-2UWP3n_05A_000360_000370.mp4"].group == items["train/-2UWP3n_05A_000010_000020.mp4"].group
    assert "train/abcdefghijk_000010_000020.mp4" in disc.unlisted  # abseiling is not Kinetics-Sounds
    assert "videos/train/playing bagpipes/--4-0ihtnBU_000058_000068.mp4" in disc.unlisted
    assert {"annotations/train.csv", "annotations/val.csv", "kinetics400.tar.gz.md5"} <= set(disc.unlisted)
    assert "listed in annotations/train.csv line 6 but the clip file is missing" in failure_for(
        disc, "train/MISSINGclip_000000_000010.mp4"
    )
    assert "not listed in annotations/train.csv, annotations/val.csv" in failure_for(
        disc, "val/notinanycsv_000001_000011.mp4"
    )
    assert "file name is not {youtube_id}_{start:06d}_{end:06d}" in failure_for(disc, "val/holiday video.mp4")
    assert "line 3: malformed row" in failure_for(disc, "annotations/val.csv")
    assert_every_file_accounted(raw, disc)
    # the explicit option gives the same result
    explicit = LAYOUTS["kinetics_sounds"](raw, annotations="annotations")
    assert explicit.items == disc.items


def test_kinetics_sounds_class_folders_without_csv(tmp_path: Path) -> None:
    raw = tmp_path / "kinetics"
    for rel in [
        "train/playing bagpipes/--4-0ihtnBU_000058_000068.mp4",  # label folder with spaces (Kinetics CSV names)
        "train/tap_dancing/-00nar1nEPc_000033_000043.mp4",  # ... or underscores
        "val/shoveling snow/-1IlTIWPNs4_000027_000037.mp4",
        "train/abseiling/abcdefghijk_000010_000020.mp4",  # not Kinetics-Sounds
        "train/-3EZyImLCXk_000003_000013.mp4",  # a split folder but no class folder, and no CSV
        "train/singing/bad-name.mp4",
        "README.txt",
    ]:
        touch(raw, rel)
    disc = LAYOUTS["kinetics_sounds"](raw)
    got = {it.path: (it.label, it.split, it.group) for it in disc.items}
    assert got == {
        "train/playing bagpipes/--4-0ihtnBU_000058_000068.mp4": ("playing_bagpipes", "train", "--4-0ihtnBU"),
        "train/tap_dancing/-00nar1nEPc_000033_000043.mp4": ("tap_dancing", "train", "-00nar1nEPc"),
        "val/shoveling snow/-1IlTIWPNs4_000027_000037.mp4": ("shoveling_snow", "val", "-1IlTIWPNs4"),
    }
    assert "train/abseiling/abcdefghijk_000010_000020.mp4" in disc.unlisted
    assert "not in a class folder" in failure_for(disc, "train/-3EZyImLCXk_000003_000013.mp4")
    assert "file name is not" in failure_for(disc, "train/singing/bad-name.mp4")
    assert_every_file_accounted(raw, disc)


def test_kinetics_sounds_bad_annotation_option(tmp_path: Path) -> None:
    raw = tmp_path / "k400"
    touch(raw, "train/--4-0ihtnBU_000058_000068.mp4")
    touch(raw, "notes.csv", b"a,b,c\n1,2,3\n")
    with pytest.raises(MMCurateError, match="Kinetics annotation CSV not found"):
        LAYOUTS["kinetics_sounds"](raw, annotations="annotations/train.csv")
    with pytest.raises(MMCurateError, match="notes.csv: not a Kinetics annotation CSV"):
        LAYOUTS["kinetics_sounds"](raw, annotations="notes.csv")


# ----------------------------------------------------------------------------- VGGSound


def make_vggsound(root: Path, clip: Path) -> Path:
    rows = [
        "---g-f_I2yQ,1,people marching,test",
        '-0DLPzsiXXE,30,"male speech, man speaking",train',
        "-0DLPzsiXXE,200,playing bagpipes,train",
        "-0FHUc78Gqo,30,police car (siren),train",
        "--0PQM4-hqg,30,waterfall burbling,train",  # the clip is missing
        "-0BKyt8iZ1I,10,dancing in the rain,train",  # label not in the class list
        "broken,line",  # 2 fields
        "-0CamVQdP_Y,0,playing harp,holdout",  # neither train nor test
    ]
    touch(root, "vggsound.csv", ("\n".join(rows) + "\n").encode())
    (root / "video").mkdir(parents=True)
    shutil.copy(clip, root / "video" / "---g-f_I2yQ_000001.mp4")
    touch(root, "video/-0DLPzsiXXE_000030.mp4")
    touch(root, "video/-0DLPzsiXXE_000200.mp4")
    touch(root, "video/-0BKyt8iZ1I_000010.mp4")
    touch(root, "video/-0CamVQdP_Y_000000.mp4")
    touch(root, "ogm/-0FHUc78Gqo_30.mp4")  # OGM-GE's unpadded naming, another folder
    touch(root, "video/zzzzzzzzzzz_000005.mp4")  # not in the CSV
    touch(root, "video/clip.mp4")  # not the VGGSound naming
    touch(root, "README.md")
    return root


def test_vggsound_rows_files_and_failures(tmp_path: Path) -> None:
    raw = make_vggsound(tmp_path / "VGGSound", write_clip(tmp_path / "proto.mp4"))
    disc = LAYOUTS["vggsound"](raw)
    got = {it.path: (it.label, it.split, it.group) for it in disc.items}
    assert got == {
        "video/---g-f_I2yQ_000001.mp4": ("people marching", "test", "---g-f_I2yQ"),
        "video/-0DLPzsiXXE_000030.mp4": ("male speech, man speaking", "train", "-0DLPzsiXXE"),
        "video/-0DLPzsiXXE_000200.mp4": ("playing bagpipes", "train", "-0DLPzsiXXE"),
        "ogm/-0FHUc78Gqo_30.mp4": ("police car (siren)", "train", "-0FHUc78Gqo"),
    }
    assert by_path(disc)["video/-0DLPzsiXXE_000030.mp4"].extra_dict() == {
        "youtube_id": "-0DLPzsiXXE",
        "yt_start": "30",
        "yt_end": "40",
    }
    # the missing clip is reported where most clips are (video/), with the official zero-padded name
    assert "listed in vggsound.csv (line 5) but the clip file is missing" in failure_for(
        disc, "video/--0PQM4-hqg_000030.mp4"
    )
    assert "label 'dancing in the rain' (line 6 of vggsound.csv) not in the VGGSound class list" in failure_for(
        disc, "video/-0BKyt8iZ1I_000010.mp4"
    )
    assert "split 'holdout'" in failure_for(disc, "video/-0CamVQdP_Y_000000.mp4")
    assert "line 7: expected 4 fields" in failure_for(disc, "vggsound.csv")
    assert "not listed in vggsound.csv" in failure_for(disc, "video/zzzzzzzzzzz_000005.mp4")
    assert "file name is not {youtube_id}_{start:06d}" in failure_for(disc, "video/clip.mp4")
    assert {"vggsound.csv", "README.md"} <= set(disc.unlisted)
    assert_every_file_accounted(raw, disc)


def test_vggsound_missing_csv_is_a_clear_error(tmp_path: Path) -> None:
    raw = tmp_path / "VGGSound"
    touch(raw, "video/---g-f_I2yQ_000001.mp4")
    with pytest.raises(MMCurateError, match="vggsound.csv: VGGSound annotation CSV not found"):
        LAYOUTS["vggsound"](raw)


# ----------------------------------------------------------------------------- AVE


def make_ave(root: Path, clip: Path) -> Path:
    annotations = [
        "Category&VideoID&Quality&StartTime&EndTime",
        "Church bell&RUhOCu3LNXM&good&0&10",
        "Church bell&MH3m4AwEcRY&good&6&8",
        "Church bell&VWi2ENBuTbw&good&0&0",  # zero-length, as in the real file
        "Male speech, man speaking&-hChcJAh5N0&good&5&10",
        "Bark&-hChcJAh5N0&good&0&3",  # a second event of the same video
        "Bark&3jS8tWfLJxI&good&7&9",
        "Goat&3jS8tWfLJxI&good&7&9",  # the same segment with another category
        "Frying (food)&MISSING_vid&good&1&4",  # the video file is absent
        "Didgeridoo&K5AE5C5FUQk&good&5&10",  # not an AVE category
        "Bus&only-four&good&3",  # malformed line
    ]
    touch(root, "Annotations.txt", ("\n".join(annotations) + "\n").encode())
    touch(root, "trainSet.txt", b"Church bell&RUhOCu3LNXM&good&0&10\nBark&-hChcJAh5N0&good&0&3\n")
    touch(root, "valSet.txt", b"Church bell&MH3m4AwEcRY&good&6&8\n")
    touch(root, "testSet.txt", b"Male speech, man speaking&-hChcJAh5N0&good&5&10\n")
    touch(root, "ReadMe.txt", b"AVE.zip: videos in AVE dataset.\n")
    (root / "AVE").mkdir(parents=True)
    shutil.copy(clip, root / "AVE" / "RUhOCu3LNXM.mp4")
    for vid in ["MH3m4AwEcRY", "VWi2ENBuTbw", "-hChcJAh5N0", "3jS8tWfLJxI", "K5AE5C5FUQk", "NOTLISTED01"]:
        touch(root, f"AVE/{vid}.mp4")
    touch(root, "wave_files/RUhOCu3LNXM.wav")  # derived audio from OGM-GE's preprocessing
    return root


def test_ave_event_segments_splits_and_failures(tmp_path: Path) -> None:
    raw = make_ave(tmp_path / "AVE_Dataset", write_clip(tmp_path / "proto.mp4"))
    disc = LAYOUTS["ave"](raw)
    got = {it.sample_id: (it.label, it.split, it.group, it.start, it.end) for it in disc.items}
    assert got == {
        "AVE/RUhOCu3LNXM.mp4#0-10": ("Church bell", "train", "RUhOCu3LNXM", 0.0, 10.0),
        "AVE/MH3m4AwEcRY.mp4#6-8": ("Church bell", "val", "MH3m4AwEcRY", 6.0, 8.0),
        "AVE/-hChcJAh5N0.mp4#5-10": ("Male speech, man speaking", "test", "-hChcJAh5N0", 5.0, 10.0),
        "AVE/-hChcJAh5N0.mp4#0-3": ("Bark", "train", "-hChcJAh5N0", 0.0, 3.0),
    }
    assert by_path(disc)["AVE/RUhOCu3LNXM.mp4"].extra_dict() == {"quality": "good", "youtube_id": "RUhOCu3LNXM"}
    assert "empty or negative event segment 0-0 s (Annotations.txt line 4)" in failure_for(disc, "AVE/VWi2ENBuTbw.mp4")
    assert "labelled 'Bark' and 'Goat'" in failure_for(disc, "AVE/3jS8tWfLJxI.mp4")
    assert "listed in Annotations.txt line 9 but the video file is missing" in failure_for(disc, "AVE/MISSING_vid.mp4")
    assert "category 'Didgeridoo' (Annotations.txt line 10) not in the AVE class list" in failure_for(
        disc, "AVE/K5AE5C5FUQk.mp4"
    )
    assert "line 11: expected Category&VideoID&Quality&StartTime&EndTime" in failure_for(disc, "Annotations.txt")
    assert "not listed in Annotations.txt" in failure_for(disc, "AVE/NOTLISTED01.mp4")
    assert {"ReadMe.txt", "Annotations.txt", "trainSet.txt", "wave_files/RUhOCu3LNXM.wav"} <= set(disc.unlisted)
    assert_every_file_accounted(raw, disc)


def test_ave_without_split_files_and_with_a_conflicting_split(tmp_path: Path) -> None:
    raw = make_ave(tmp_path / "AVE_Dataset", write_clip(tmp_path / "proto.mp4"))
    for name in ("trainSet.txt", "valSet.txt", "testSet.txt"):
        (raw / name).unlink()
    disc = LAYOUTS["ave"](raw)
    assert {it.split for it in disc.items} == {None}
    touch(raw, "mine/train.txt", b"Church bell&RUhOCu3LNXM&good&0&10\n")
    touch(raw, "mine/test.txt", b"Church bell&RUhOCu3LNXM&good&0&10\n")
    disc = LAYOUTS["ave"](raw, train_split="mine/train.txt", test_split="mine/test.txt")
    assert "an event can be in one split only" in failure_for(disc, "AVE/RUhOCu3LNXM.mp4")
    with pytest.raises(MMCurateError, match="AVE val split file not found"):
        LAYOUTS["ave"](raw, val_split="nope.txt")
    (raw / "Annotations.txt").unlink()
    with pytest.raises(MMCurateError, match="Annotations.txt: AVE annotation file not found"):
        LAYOUTS["ave"](raw)


# ----------------------------------------------------------------------------- pipelines/*.yaml

PIPELINES = sorted((REPO / "pipelines").glob("*.yaml"))


def _cli_option_names(command: str) -> set[str]:
    """Long option names of a real mmcurate command (dashes as underscores)."""
    from mmcurate.stages import load_command

    cmd = load_command(command)
    return {o[2:].replace("-", "_") for p in cmd.params for o in p.opts if o.startswith("--")}


def test_the_five_recipes_exist() -> None:
    assert [p.stem for p in PIPELINES] == ["ave", "cremad", "demo", "kinetics_sounds", "vggsound"]


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.stem)
def test_pipeline_recipe_is_consistent(path: Path) -> None:
    text = path.read_text()
    for heading in ("Where to get the data", "Expected layout", "Licence", "reproduce"):
        assert heading in text, f"{path.name}: header comment lacks '{heading}'"
    recipe = yaml.safe_load(text)
    assert recipe["name"] == path.stem and recipe["description"]
    source = recipe["source"]
    layout = source["layout"]
    assert layout in set(LAYOUTS) | BUILTIN_LAYOUTS
    if layout in LAYOUTS:
        assert set(source.get("layout_options") or {}) <= set(layout_options(layout))
    ingest = recipe["ingest"]
    assert ingest["features"] in FEATURE_PRESETS
    assert recipe["score"]["audio_features"] == ingest["features"]
    assert recipe["reeval"]["audio_preset"] == ingest["features"]
    assert ingest["classes"] in available_class_lists(), f"{path.name}: no shipped class list {ingest['classes']!r}"
    if layout in LAYOUTS:
        assert ingest["classes"] == CLASS_LISTS[layout]
    assert recipe["balance"]["bins"] >= 2
    assert recipe["export"]["license"] and recipe["export"]["source_dataset"]
    from mmcurate.reeval.methods import METHODS

    assert set(recipe["reeval"]["methods"]) <= set(METHODS)
    # every stage key is a real option of that command (for the stages present in this build)
    for command in ("ingest", "score", "balance", "reeval"):
        names = _cli_option_names(command)
        unknown = set(recipe[command]) - names
        assert not unknown, f"{path.name}: [{command}] has keys that are not options of mmcurate {command}: {unknown}"


@pytest.mark.slow
@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.stem)
def test_mmcurate_run_accepts_every_recipe(path: Path, tmp_path: Path) -> None:
    """A dry run resolves every section into real command lines (unknown keys would fail)."""
    from conftest import run_cli

    proc = run_cli("run", str(path), "--workdir", str(tmp_path / "w"), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "would run" in proc.stderr and "Traceback" not in proc.stderr


def test_packaged_demo_recipe_is_the_repository_copy() -> None:
    from mmcurate.demo.cli import demo_recipe_path

    assert demo_recipe_path().read_bytes() == (REPO / "pipelines" / "demo.yaml").read_bytes()


def test_feature_presets_named_by_recipes_exist_in_mmcurate_features() -> None:
    import mmcurate.features as features

    presets = set(getattr(features, "PRESETS", {}))
    assert FEATURE_PRESETS <= presets, f"missing presets: {FEATURE_PRESETS - presets}"

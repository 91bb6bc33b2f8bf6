"""The synthetic demo set: real MP4 files, per-class shapes and sounds, recorded per-clip noise."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import av
import numpy as np
import pytest

from mmcurate.common.errors import MMCurateError
from mmcurate.recipes import class_list
from mmcurate.synth.shapes import (
    DEFAULT_CLASSES,
    DEMO_CLASSES,
    LABELS_FILE,
    REGIMES,
    SEGMENTS,
    SLOTS,
    class_sound,
    draw_clip_spec,
    draw_frame,
    generate_demo_dataset,
)

SMALL = dict(n_per_class=8, seed=3, classes=["circle", "square", "triangle"], seconds=1.0)
RATE = 16000


def read_labels(root: Path) -> list[dict[str, str]]:
    with open(root / LABELS_FILE, newline="") as fh:
        return list(csv.DictReader(fh))


def decode(path: Path) -> tuple[np.ndarray, np.ndarray, av.container.InputContainer]:
    with av.open(str(path)) as c:
        kinds = {(s.type, s.codec_context.name) for s in c.streams}
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    with av.open(str(path)) as c:
        rate = c.streams.audio[0].codec_context.sample_rate
        audio = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)[0]
    return frames, audio, (kinds, rate)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo_dataset(tmp_path_factory.mktemp("demo") / "data", **SMALL)


def test_clips_are_real_mp4s_with_both_streams(small_set: Path) -> None:
    rows = read_labels(small_set)
    assert len(rows) == 24
    assert {r["label"] for r in rows} == {"circle", "square", "triangle"}
    mp4s = sorted(p.relative_to(small_set).as_posix() for p in small_set.rglob("*.mp4"))
    assert mp4s == sorted(r["path"] for r in rows)
    assert all(r["path"].startswith(r["label"] + "/") for r in rows)  # out_dir/<label>/<clip>.mp4
    for r in rows[::5]:
        frames, audio, (kinds, rate) = decode(small_set / r["path"])
        assert kinds == {("video", "h264"), ("audio", "aac")}
        assert frames.shape == (8, 64, 64, 3)  # 1 s at 8 fps
        assert rate == RATE and abs(len(audio) - RATE) <= 2048  # AAC adds up to a frame of padding
        assert np.abs(audio).max() <= 1.0
    splits = [r["split"] for r in rows]
    assert splits.count("test") == 3 and splits.count("val") == 3 and splits.count("train") == 18
    for label in ("circle", "square", "triangle"):  # every split holds every class
        assert {r["split"] for r in rows if r["label"] == label} == {"train", "val", "test"}


def test_same_seed_gives_identical_files_and_another_seed_does_not(small_set: Path, tmp_path: Path) -> None:
    again = generate_demo_dataset(tmp_path / "again", **SMALL)
    for p in sorted(small_set.rglob("*")):
        if p.is_file():
            assert (again / p.relative_to(small_set)).read_bytes() == p.read_bytes(), p.name
    other = generate_demo_dataset(tmp_path / "other", **{**SMALL, "seed": 4})
    assert (other / LABELS_FILE).read_bytes() != (small_set / LABELS_FILE).read_bytes()
    assert (other / "circle/circle_0000.mp4").read_bytes() != (small_set / "circle/circle_0000.mp4").read_bytes()


def _nearest_colour(frame: np.ndarray) -> str:
    fg = np.abs(frame.astype(int) - 40).max(axis=2) > 60
    mean = frame[fg].mean(axis=0)
    return min(DEMO_CLASSES, key=lambda c: float(np.sum((np.array(c.colour) - mean) ** 2))).name


def _band_profile(audio: np.ndarray) -> np.ndarray:
    """Magnitude spectrum 100-4000 Hz, smoothed over 15 Hz, unit norm (1-s input: 1 Hz resolution)."""
    spec = np.abs(np.fft.rfft(audio[:RATE] * np.hanning(RATE)))
    freqs = np.fft.rfftfreq(RATE, 1 / RATE)
    band = spec[(freqs >= 100) & (freqs < 4000)]
    smooth = np.convolve(band, np.ones(15) / 15, mode="same")
    return smooth / np.linalg.norm(smooth)


def test_clean_clips_of_each_class_are_told_apart_by_colour_and_sound(small_set: Path) -> None:
    rows = read_labels(small_set)
    seen_v: set[str] = set()
    seen_a: set[str] = set()
    for r in rows:
        frames, audio, _ = decode(small_set / r["path"])
        if float(r["visual_clarity"]) == 1.0:
            assert _nearest_colour(frames[len(frames) // 2]) == r["label"], r["path"]
            seen_v.add(r["label"])
        if float(r["audio_clarity"]) == 1.0:
            profile = _band_profile(audio)
            pitch = float(r["audio_pitch"])
            templates = {c.name: _band_profile(class_sound(c, RATE, RATE, pitch)) for c in DEFAULT_CLASSES}
            best = max(templates, key=lambda name: float(templates[name] @ profile))
            assert best == r["label"], r["path"]
            seen_a.add(r["label"])
    assert seen_v == seen_a == {"circle", "square", "triangle"}  # the check ran for every class
    # the building blocks differ pairwise across all classes the generator knows
    colours = {c.name: draw_frame([c] * SLOTS, 64).reshape(-1, 3).mean(axis=0) for c in DEMO_CLASSES}
    sounds = {c.name: _band_profile(class_sound(c, RATE, RATE, 1.0)) for c in DEMO_CLASSES}
    for a in DEMO_CLASSES:
        for b in DEMO_CLASSES:
            if a.name < b.name:
                assert np.abs(colours[a.name] - colours[b.name]).max() > 10
                assert float(sounds[a.name] @ sounds[b.name]) < 0.9, (a.name, b.name)


def test_noise_levels_are_recorded_and_match_the_files(small_set: Path) -> None:
    rows = read_labels(small_set)
    for r in rows:
        qa, qv = float(r["audio_clarity"]), float(r["visual_clarity"])
        assert qa * SEGMENTS == int(qa * SEGMENTS) and qv * SLOTS == int(qv * SLOTS)
        assert float(r["expected_discrepancy"]) == pytest.approx(qa - qv)
        assert -10.0 <= float(r["audio_snr_db"]) <= 20.0 and 4.0 <= float(r["visual_noise"]) <= 40.0
        assert r["regime"] in {name for name, *_ in REGIMES}
        a_seg, v_slots = r["audio_segments"].split(), r["visual_slots"].split()
        assert len(a_seg) == SEGMENTS and len(v_slots) == SLOTS
        assert a_seg.count(r["label"]) / SEGMENTS == qa and v_slots.count(r["label"]) / SLOTS == qv
    # measured pixel noise on the background strip between the slots follows the recorded level
    by_noise = sorted(rows, key=lambda r: float(r["visual_noise"]))
    measured = []
    for r in (by_noise[0], by_noise[len(by_noise) // 2], by_noise[-1]):
        frames, _, _ = decode(small_set / r["path"])
        strip = frames[:, :, 30:34, :].astype(float)
        measured.append(float(strip.std()))
    assert measured[0] < measured[1] < measured[2], measured
    # measured audio noise floor (6-7.5 kHz, above every class sound) follows the recorded SNR
    by_snr = sorted(rows, key=lambda r: float(r["audio_snr_db"]))
    floors = []
    for r in (by_snr[0], by_snr[-1]):
        _, audio, _ = decode(small_set / r["path"])
        spec = np.abs(np.fft.rfft(audio[:RATE]))
        freqs = np.fft.rfftfreq(RATE, 1 / RATE)
        floors.append(float(spec[(freqs > 6000) & (freqs < 7500)].mean() / spec.max()))
    assert floors[0] > 3 * floors[1], floors


def test_default_design_spreads_discrepancy_over_the_whole_range() -> None:
    names = [c.name for c in DEFAULT_CLASSES]
    specs = [draw_clip_spec(0, c, i, "train", names, 64) for c in DEFAULT_CLASSES for i in range(60)]
    d = np.array([s.expected_discrepancy for s in specs])
    # clarity moves in steps of 1/4 (SEGMENTS = SLOTS = 4), so the designed discrepancy takes the 9 values
    # -1, -0.75, ..., 1; the measured one is continuous. Every value is well populated.
    assert SEGMENTS == SLOTS == 4
    levels = np.linspace(-1.0, 1.0, 9)
    counts = [int(np.sum(np.isclose(d, v))) for v in levels]
    assert sum(counts) == len(d) and min(counts) >= 8, counts
    assert 0.35 < np.mean(d > 0) / max(np.mean(d != 0), 1e-9) < 0.65  # roughly as many audio- as visual-preferred
    regimes = {s.regime for s in specs}
    assert regimes == {name for name, *_ in REGIMES}
    both_clean = [s for s in specs if s.regime == "both_clean"]
    assert both_clean and all(s.audio_clarity == 1.0 and s.visual_clarity == 1.0 for s in both_clean)


@pytest.mark.slow
def test_default_set_size_speed_and_class_list(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    out = generate_demo_dataset(tmp_path / "demo")
    elapsed = time.perf_counter() - t0
    rows = read_labels(out)
    assert len(rows) == 360 and len(list(out.rglob("*.mp4"))) == 360
    assert [c.name for c in DEFAULT_CLASSES] == class_list("demo")
    print(f"generated 6 x 60 demo clips in {elapsed:.1f} s")
    assert elapsed < 60, f"demo generation took {elapsed:.1f} s"
    # a second call with the same parameters reuses the set without rewriting it
    mtime = (out / LABELS_FILE).stat().st_mtime_ns
    t0 = time.perf_counter()
    assert generate_demo_dataset(tmp_path / "demo") == out
    assert time.perf_counter() - t0 < 2 and (out / LABELS_FILE).stat().st_mtime_ns == mtime


def test_refuses_to_clobber_and_rejects_bad_parameters(small_set: Path, tmp_path: Path) -> None:
    with pytest.raises(MMCurateError, match="holds a demo set made with other parameters"):
        generate_demo_dataset(small_set, **{**SMALL, "n_per_class": 2})
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(MMCurateError, match="not empty and is not a demo set"):
        generate_demo_dataset(foreign, n_per_class=1)
    assert (foreign / "thesis.tex").read_text() == "precious"
    with pytest.raises(MMCurateError, match="unknown demo class 'hexagon'"):
        generate_demo_dataset(tmp_path / "x", classes=["circle", "hexagon"])
    with pytest.raises(MMCurateError, match="at least two distinct"):
        generate_demo_dataset(tmp_path / "x", classes=["circle"])
    with pytest.raises(MMCurateError, match="n_per_class must be at least 1"):
        generate_demo_dataset(tmp_path / "x", n_per_class=0)
    replaced = generate_demo_dataset(tmp_path / "re", **SMALL)
    generate_demo_dataset(replaced, **{**SMALL, "n_per_class": 2}, overwrite=True)
    assert len(read_labels(replaced)) == 6

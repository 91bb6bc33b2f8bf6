"""A small labelled audio-visual dataset made from nothing: each class is a coloured shape and a sound.

``mmcurate demo`` must work on a fresh machine with no download, finish the whole pipeline in a
few minutes on 2 CPU cores, and show a *wide* spread of modality discrepancy. So every clip gets
its own clarity in each modality, drawn so that audio-minus-visual clarity covers [-1, 1]:
about a third of the clips have clean audio and degraded video, a third the reverse, a fifth
both clean and a tenth both degraded.

How a modality is degraded: a share ``1 - clarity`` of its evidence is replaced by a randomly
chosen *other* class -- interference a classifier cannot tell from the real thing -- and
background noise grows as clarity falls (white noise at a lower SNR; Gaussian pixel noise).
Audio is cut into ``SEGMENTS`` time segments, each the true class's sound or another's. Every
video frame shows ``SLOTS`` shapes (a 2 x 2 grid, the same in all frames), each the true class or
another. The visual mixture lives inside every frame on purpose: a scorer that trains on one
random frame per step would otherwise see whole frames of another class under the true label,
which caps its confidence on clean clips. Pure noise alone would not do either: a small CNN
averages it away and its confidence jumps from chance to certain over a few dB, which would
leave the middle discrepancy bins empty; the share of interfering evidence makes confidence
fall gradually instead. The ground truth per clip is written to ``demo_labels.csv``.

The files are real MP4s (H.264 + AAC, encoded by PyAV's FFmpeg with one thread and without x264's
lookahead, so the same seed gives byte-identical files with the same FFmpeg build).
"""

from __future__ import annotations

import csv
import io
import json
import math
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.codec.context import Flags
from PIL import Image, ImageDraw

from mmcurate.common.atomic import atomic_dir
from mmcurate.common.errors import MMCurateError
from mmcurate.common.progress import progress_bar

#: Ground-truth table written next to the class folders.
LABELS_FILE = "demo_labels.csv"
#: Parameters of the generated set, to reuse an existing set instead of regenerating it.
STAMP_FILE = "demo_config.json"
#: Equal time segments of the audio; each is the true class's sound or an interfering one.
SEGMENTS = 4
#: Shapes per video frame (2 x 2 grid); each is the true class or an interfering one.
SLOTS = 4
#: libx264 settings: one thread and no lookahead, for the same bytes from the same frames on every run.
X264_OPTIONS = {
    "crf": "20",
    "preset": "veryfast",
    "threads": "1",
    "x264-params": "rc-lookahead=0:mbtree=0:b-adapt=0:scenecut=0",
}
#: Version of the generation recipe: bump when output for a given seed changes.
RECIPE_VERSION = 3


@dataclass(frozen=True)
class DemoClass:
    """One demo class: what it looks like and what it sounds like."""

    name: str
    shape: str  # circle | square | triangle | cross | diamond | ring | bars | star
    colour: tuple[int, int, int]
    sound: str  # tone | chord | chirp_up | chirp_down | pulse | trill | vibrato | fifths
    base_hz: float


#: Every class the generator knows; :data:`DEFAULT_CLASSES` are the first six.
DEMO_CLASSES: tuple[DemoClass, ...] = (
    DemoClass("circle", "circle", (230, 60, 50), "tone", 440.0),
    DemoClass("square", "square", (60, 200, 80), "chord", 330.0),
    DemoClass("triangle", "triangle", (70, 110, 240), "chirp_up", 600.0),
    DemoClass("cross", "cross", (240, 220, 60), "chirp_down", 1500.0),
    DemoClass("diamond", "diamond", (220, 80, 220), "pulse", 880.0),
    DemoClass("ring", "ring", (60, 220, 230), "trill", 1200.0),
    DemoClass("bars", "bars", (250, 150, 40), "vibrato", 700.0),
    DemoClass("star", "star", (240, 240, 240), "fifths", 260.0),
)
DEFAULT_CLASSES: tuple[DemoClass, ...] = DEMO_CLASSES[:6]

#: (name, probability, (audio clarity range), (visual clarity range)) per regime.
Regime = tuple[str, float, tuple[float, float], tuple[float, float]]
REGIMES: tuple[Regime, ...] = (
    ("audio_clean", 0.35, (0.9, 1.0), (0.0, 1.0)),
    ("visual_clean", 0.35, (0.0, 1.0), (0.9, 1.0)),
    ("both_clean", 0.20, (0.9, 1.0), (0.9, 1.0)),
    ("both_degraded", 0.10, (0.0, 0.45), (0.0, 0.45)),
)


@dataclass(frozen=True)
class ClipSpec:
    """Everything drawn at random for one clip (the ground truth of ``demo_labels.csv``)."""

    path: str
    label: str
    split: str
    regime: str
    audio_clarity: float  # share of audio segments that are the true class
    visual_clarity: float  # share of shape slots that show the true class
    audio_snr_db: float  # SNR of the white background noise against the class sound
    visual_noise: float  # std of the Gaussian pixel noise, 0-255 scale
    audio_segments: tuple[str, ...]  # class heard in each segment
    visual_slots: tuple[str, ...]  # class shown in each slot (top-left, top-right, bottom-left, bottom-right)
    pitch: float  # per-clip pitch factor
    loudness: float  # per-clip peak amplitude of the class sound
    dx: int  # per-clip offset of the shape grid
    dy: int
    radius: int

    @property
    def expected_discrepancy(self) -> float:
        return round(self.audio_clarity - self.visual_clarity, 4)


def resolve_classes(classes: Sequence[DemoClass | str] | None) -> tuple[DemoClass, ...]:
    """Class objects from names or objects; at least two, no repeats."""
    if classes is None:
        return DEFAULT_CLASSES
    by_name = {c.name: c for c in DEMO_CLASSES}
    out: list[DemoClass] = []
    for c in classes:
        if isinstance(c, DemoClass):
            out.append(c)
        elif c in by_name:
            out.append(by_name[c])
        else:
            raise MMCurateError(f"unknown demo class '{c}'; choose from {', '.join(by_name)}")
    names = [c.name for c in out]
    if len(out) < 2 or len(set(names)) != len(names):
        raise MMCurateError(f"demo classes must be at least two distinct names, got {names}")
    return tuple(out)


# --------------------------------------------------------------------------- drawing


def _shape_polygon(shape: str, x: float, y: float, r: float) -> list[tuple[float, float]]:
    if shape == "triangle":
        return [(x, y - r), (x + r * 0.95, y + r * 0.8), (x - r * 0.95, y + r * 0.8)]
    if shape == "diamond":
        return [(x, y - r), (x + r * 0.75, y), (x, y + r), (x - r * 0.75, y)]
    if shape == "star":
        pts = []
        for k in range(10):
            rr = r if k % 2 == 0 else r * 0.45
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((x + rr * math.cos(a), y + rr * math.sin(a)))
        return pts
    raise ValueError(shape)


def _draw_shape(d: ImageDraw.ImageDraw, cls: DemoClass, x: float, y: float, r: float) -> None:
    c = cls.colour
    box = (x - r, y - r, x + r, y + r)
    if cls.shape == "circle":
        d.ellipse(box, fill=c)
    elif cls.shape == "square":
        d.rectangle((x - r * 0.8, y - r * 0.8, x + r * 0.8, y + r * 0.8), fill=c)
    elif cls.shape == "ring":
        d.ellipse(box, outline=c, width=max(2, int(r / 3)))
    elif cls.shape == "cross":
        w = r * 0.3
        d.rectangle((x - r, y - w, x + r, y + w), fill=c)
        d.rectangle((x - w, y - r, x + w, y + r), fill=c)
    elif cls.shape == "bars":
        w = r * 0.22
        for dx in (-0.7, 0.0, 0.7):
            d.rectangle((x + dx * r - w, y - r, x + dx * r + w, y + r), fill=c)
    else:
        d.polygon(_shape_polygon(cls.shape, x, y, r), fill=c)


def slot_centres(size: int) -> list[tuple[float, float]]:
    """Centres of the 2 x 2 grid of shape slots."""
    q = size / 4
    return [(q, q), (3 * q, q), (q, 3 * q), (3 * q, 3 * q)]


def draw_frame(
    slots: Sequence[DemoClass], size: int, dx: float = 0, dy: float = 0, r: float | None = None, background: int = 40
) -> np.ndarray:
    """A clean ``size x size`` RGB frame with one shape per grid slot, shifted by (dx, dy)."""
    img = Image.new("RGB", (size, size), (background, background, background))
    d = ImageDraw.Draw(img)
    radius = r if r is not None else size / 7
    for cls, (x, y) in zip(slots, slot_centres(size)):
        _draw_shape(d, cls, x + dx, y + dy, radius)
    return np.asarray(img, dtype=np.uint8)


# --------------------------------------------------------------------------- sound


def class_sound(cls: DemoClass, n: int, sample_rate: int, pitch: float) -> np.ndarray:
    """``n`` samples of ``cls``'s sound, peak 1 (before loudness), float64."""
    t = np.arange(n) / sample_rate
    f0 = cls.base_hz * pitch
    if cls.sound == "tone":
        y = np.sin(2 * np.pi * f0 * t) + 0.3 * np.sin(4 * np.pi * f0 * t)
    elif cls.sound == "chord":
        y = sum(np.sin(2 * np.pi * f0 * k * t) for k in (1.0, 1.26, 1.5))
    elif cls.sound in ("chirp_up", "chirp_down"):
        dur = max(n / sample_rate, 1e-3)
        f1 = f0 * 2.0 if cls.sound == "chirp_up" else f0 / 2.0
        k = (f1 - f0) / dur
        y = np.sin(2 * np.pi * (f0 * t + 0.5 * k * t * t))
    elif cls.sound == "pulse":
        gate = (np.floor(t * 16) % 2 == 0).astype(np.float64)
        y = np.sin(2 * np.pi * f0 * t) * gate
    elif cls.sound == "trill":
        sel = np.floor(t * 20) % 2 == 0
        y = np.where(sel, np.sin(2 * np.pi * f0 * t), np.sin(2 * np.pi * f0 * 1.33 * t))
    elif cls.sound == "vibrato":
        y = np.sin(2 * np.pi * f0 * t + 8.0 * np.sin(2 * np.pi * 6.0 * t))
    elif cls.sound == "fifths":
        y = np.sin(2 * np.pi * f0 * t) + np.sin(2 * np.pi * f0 * 1.5 * t) + 0.5 * np.sin(2 * np.pi * f0 * 3 * t)
    else:
        raise ValueError(cls.sound)
    y = np.asarray(y, dtype=np.float64)
    peak = float(np.max(np.abs(y))) or 1.0
    return y / peak


def _fade(n: int, sample_rate: int) -> np.ndarray:
    """Raised-cosine 5 ms fades, so segment joins do not click (clicks would be a cue of their own)."""
    w = np.ones(n)
    k = min(n // 2, int(0.005 * sample_rate))
    if k > 0:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, k))
        w[:k] = ramp
        w[-k:] = ramp[::-1]
    return w


# --------------------------------------------------------------------------- clips


def _clip_rng(seed: int, cls: DemoClass, index: int) -> np.random.Generator:
    """One generator per clip, keyed by (seed, class name, index): adding clips changes no other clip."""
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(cls.name.encode()), index]))


def _mixture(rng: np.random.Generator, clarity: float, n: int, true: str, others: list[str]) -> tuple[str, ...]:
    """``n`` evidence units: ``round((1 - clarity) * n)`` of them (at random places) another class."""
    n_bad = int(round((1.0 - clarity) * n))
    bad = set(rng.choice(n, size=n_bad, replace=False).tolist()) if n_bad else set()
    return tuple(str(rng.choice(others)) if s in bad else true for s in range(n))


def draw_clip_spec(
    seed: int,
    cls: DemoClass,
    index: int,
    split: str,
    class_names: list[str],
    size: int,
    regimes: Sequence[Regime] = REGIMES,
) -> ClipSpec:
    """Draw one clip's regime, clarities, noise levels, interference and placement."""
    rng = _clip_rng(seed, cls, index)
    probs = np.array([r[1] for r in regimes])
    regime = regimes[int(rng.choice(len(regimes), p=probs / probs.sum()))]
    qa = float(rng.uniform(*regime[2]))
    qv = float(rng.uniform(*regime[3]))
    others = [c for c in class_names if c != cls.name]
    a_seg = _mixture(rng, qa, SEGMENTS, cls.name, others)
    v_slots = _mixture(rng, qv, SLOTS, cls.name, others)
    qa_eff = sum(s == cls.name for s in a_seg) / SEGMENTS
    qv_eff = sum(s == cls.name for s in v_slots) / SLOTS
    radius = int(rng.integers(max(3, size // 9), max(4, size // 7) + 1))
    shift = max(1, size // 16)
    return ClipSpec(
        path=f"{cls.name}/{cls.name}_{index:04d}.mp4",
        label=cls.name,
        split=split,
        regime=regime[0],
        audio_clarity=qa_eff,
        visual_clarity=qv_eff,
        audio_snr_db=round(20.0 - 30.0 * (1.0 - qa), 2),
        visual_noise=round(4.0 + 36.0 * (1.0 - qv), 2),
        audio_segments=a_seg,
        visual_slots=v_slots,
        pitch=round(float(rng.uniform(0.97, 1.03)), 4),
        loudness=round(float(rng.uniform(0.3, 0.6)), 4),
        dx=int(rng.integers(-shift, shift + 1)),
        dy=int(rng.integers(-shift, shift + 1)),
        radius=radius,
    )


def render_clip(
    spec: ClipSpec, classes: dict[str, DemoClass], seed: int, *, seconds: float, fps: int, size: int, sample_rate: int
) -> tuple[np.ndarray, np.ndarray]:
    """The clip's frames (T, size, size, 3) uint8 and mono audio float32 in [-1, 1]."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(spec.path.encode()), 1]))
    n_frames = int(round(seconds * fps))
    frames = np.empty((n_frames, size, size, 3), dtype=np.uint8)
    slots = [classes[name] for name in spec.visual_slots]
    for i in range(n_frames):
        jx, jy = rng.integers(-1, 2, size=2)
        clean = draw_frame(slots, size, spec.dx + int(jx), spec.dy + int(jy), spec.radius)
        noisy = clean.astype(np.float32) + rng.normal(0.0, spec.visual_noise, size=clean.shape).astype(np.float32)
        frames[i] = np.clip(noisy, 0, 255).astype(np.uint8)

    n = int(round(seconds * sample_rate))
    bounds = [round(s * n / SEGMENTS) for s in range(SEGMENTS + 1)]
    signal = np.zeros(n, dtype=np.float64)
    for s in range(SEGMENTS):
        a, b = bounds[s], bounds[s + 1]
        sound = class_sound(classes[spec.audio_segments[s]], b - a, sample_rate, spec.pitch)
        signal[a:b] = sound * _fade(b - a, sample_rate)
    signal *= spec.loudness
    sig_power = float(np.mean(signal**2)) or 1e-12
    noise_std = math.sqrt(sig_power / (10.0 ** (spec.audio_snr_db / 10.0)))
    audio = signal + rng.normal(0.0, noise_std, size=n)
    peak = float(np.max(np.abs(audio)))
    if peak > 0.99:  # keep within [-1, 1] without changing the SNR
        audio *= 0.99 / peak
    return frames, audio.astype(np.float32)


def rgb_to_yuv420p(img: np.ndarray) -> np.ndarray:
    """BT.601 limited-range YUV 4:2:0 planes stacked as PyAV expects, ``(h * 3 // 2, w)`` uint8.

    Done here rather than by the encoder's implicit swscale conversion, so the bytes x264 receives
    depend on the drawn frame alone, not on swscale's version or flags. BT.601 is what decoders
    assume for untagged SD video, so colours decode back as drawn.
    """
    rgb = img.astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0
    cb = 128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0
    cr = 128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0
    h, w = y.shape

    def sub(c: np.ndarray) -> np.ndarray:
        return c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))

    u, v = sub(cb), sub(cr)
    planes = [np.clip(np.rint(p), 0, 255).astype(np.uint8) for p in (y, u, v)]
    return np.concatenate([planes[0], planes[1].reshape(h // 4, w), planes[2].reshape(h // 4, w)], axis=0)


def encode_mp4(path: Path, frames: np.ndarray, audio: np.ndarray, *, fps: int, sample_rate: int) -> None:
    """Write H.264 + AAC MP4 with one encoder thread (deterministic bytes for a given FFmpeg).

    x264's lookahead (rc-lookahead, mb-tree, adaptive B-frames, scene-cut detection) is switched
    off: with it, the same 64 x 64 frames encoded twice in one process sometimes gave different
    bitstreams even with one thread (the cause was not pinned down); without it, repeated encodes
    are identical. The codecs also get FFmpeg's BITEXACT flag.
    """
    with av.open(str(path), mode="w", format="mp4") as container:
        v = container.add_stream("libx264", rate=fps, options=X264_OPTIONS)
        v.width = frames.shape[2]
        v.height = frames.shape[1]
        v.pix_fmt = "yuv420p"
        v.codec_context.thread_count = 1
        v.codec_context.flags |= int(Flags.bitexact)
        a = container.add_stream("aac", rate=sample_rate, layout="mono", options={"aac_coder": "fast"})
        a.codec_context.flags |= int(Flags.bitexact)
        for i, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(rgb_to_yuv420p(img), format="yuv420p")
            vf.pts = i
            vf.time_base = Fraction(1, fps)
            for packet in v.encode(vf):
                container.mux(packet)
        for packet in v.encode():
            container.mux(packet)
        chunk = 1024
        pcm = audio.reshape(1, -1)
        for start in range(0, pcm.shape[1], chunk):
            block = np.ascontiguousarray(pcm[:, start : start + chunk])
            af = av.AudioFrame.from_ndarray(block, format="fltp", layout="mono")
            af.sample_rate = sample_rate
            af.pts = start
            af.time_base = Fraction(1, sample_rate)
            for packet in a.encode(af):
                container.mux(packet)
        for packet in a.encode():
            container.mux(packet)


def _assign_splits(seed: int, cls: DemoClass, n: int, fractions: tuple[float, float, float]) -> list[str]:
    """A per-class shuffle cut into train/val/test, so every split holds every class."""
    order = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(cls.name.encode()), 2])).permutation(n)
    n_test = int(round(n * fractions[2]))
    n_val = int(round(n * fractions[1]))
    split = ["train"] * n
    for rank, idx in enumerate(order):
        split[int(idx)] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return split


def demo_config(
    n_per_class: int, seed: int, classes: tuple[DemoClass, ...], seconds: float, fps: int, size: int, sample_rate: int
) -> dict[str, object]:
    """The parameters that determine the generated bytes (stored as ``demo_config.json``)."""
    return {
        "recipe_version": RECIPE_VERSION,
        "n_per_class": n_per_class,
        "seed": seed,
        "classes": [asdict(c) for c in classes],
        "seconds": seconds,
        "fps": fps,
        "size": size,
        "sample_rate": sample_rate,
        "segments": SEGMENTS,
        "slots": SLOTS,
        "pyav": av.__version__,
    }


def _labels_csv(specs: list[ClipSpec]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        [
            "path",
            "label",
            "split",
            "regime",
            "audio_clarity",
            "visual_clarity",
            "expected_discrepancy",
            "audio_snr_db",
            "visual_noise",
            "audio_segments",
            "visual_slots",
            "audio_pitch",
        ]
    )
    for s in specs:
        w.writerow(
            [
                s.path,
                s.label,
                s.split,
                s.regime,
                f"{s.audio_clarity:g}",
                f"{s.visual_clarity:g}",
                f"{s.expected_discrepancy:g}",
                f"{s.audio_snr_db:g}",
                f"{s.visual_noise:g}",
                " ".join(s.audio_segments),
                " ".join(s.visual_slots),
                f"{s.pitch:g}",
            ]
        )
    return buf.getvalue()


def generate_demo_dataset(
    out_dir: Path,
    n_per_class: int = 60,
    seed: int = 0,
    classes: Sequence[DemoClass | str] | None = DEFAULT_CLASSES,
    *,
    seconds: float = 2.0,
    fps: int = 8,
    size: int = 64,
    sample_rate: int = 16000,
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    overwrite: bool = False,
    regimes: Sequence[Regime] | None = None,
) -> Path:
    """Write ``out_dir/<label>/<label>_NNNN.mp4`` clips and ``out_dir/demo_labels.csv``; return ``out_dir``.

    The folder appears complete or not at all (built in a temporary sibling, then renamed). If
    ``out_dir`` already holds a demo set made with the same parameters it is reused as is; a
    demo set with other parameters is replaced only with ``overwrite=True``; any other
    non-empty folder is never touched. ``regimes`` replaces :data:`REGIMES` (the clarity mix:
    ``(name, probability, audio clarity range, visual clarity range)`` each), e.g. to draw
    benchmark sets with another spread of modality discrepancy.
    """
    out_dir = Path(out_dir)
    if n_per_class < 1:
        raise MMCurateError(f"n_per_class must be at least 1, got {n_per_class}")
    if seconds <= 0 or fps < 1 or size < 16 or size % 4 or sample_rate < 8000:
        raise MMCurateError(
            "demo clips need seconds > 0, fps >= 1, size >= 16 and a multiple of 4, and sample_rate >= 8000"
        )
    if min(split_fractions) < 0 or abs(sum(split_fractions) - 1.0) > 1e-6:
        raise MMCurateError(f"split_fractions must be three non-negative numbers summing to 1, got {split_fractions}")
    resolved = resolve_classes(classes)
    config = demo_config(n_per_class, seed, resolved, seconds, fps, size, sample_rate)
    config["split_fractions"] = list(split_fractions)
    if regimes is not None:
        regimes = tuple(regimes)
        if (
            not regimes
            or any(p < 0 or not (0 <= a[0] <= a[1] <= 1 and 0 <= v[0] <= v[1] <= 1) for _, p, a, v in regimes)
            or sum(p for _, p, _, _ in regimes) <= 0
        ):
            raise MMCurateError(
                "regimes need non-negative probabilities (not all zero) and clarity ranges within [0, 1]"
            )
        config["regimes"] = [list(r) for r in regimes]  # only when given: default sets keep their stamp
    config = json.loads(json.dumps(config))  # tuples -> lists, as read back from the stamp

    stamp = out_dir / STAMP_FILE
    if out_dir.exists():
        if not out_dir.is_dir():
            raise MMCurateError(f"{out_dir}: exists and is not a folder; choose another output folder")
        if stamp.is_file():
            try:
                previous = json.loads(stamp.read_text())
            except (OSError, ValueError):
                previous = None
            if previous == config and (out_dir / LABELS_FILE).is_file():
                return out_dir
            if not overwrite:
                raise MMCurateError(
                    f"{out_dir}: holds a demo set made with other parameters; "
                    "pass overwrite=True or choose another folder"
                )
        elif any(out_dir.iterdir()):
            raise MMCurateError(f"{out_dir}: folder is not empty and is not a demo set; choose an empty or new folder")

    by_name = {c.name: c for c in resolved}
    names = [c.name for c in resolved]
    specs: list[ClipSpec] = []
    for cls in resolved:
        splits = _assign_splits(seed, cls, n_per_class, split_fractions)
        specs.extend(
            draw_clip_spec(seed, cls, i, splits[i], names, size, regimes or REGIMES) for i in range(n_per_class)
        )

    with atomic_dir(out_dir) as tmp:
        with progress_bar("demo: generating clips", len(specs)) as advance:
            for spec in specs:
                frames, audio = render_clip(
                    spec, by_name, seed, seconds=seconds, fps=fps, size=size, sample_rate=sample_rate
                )
                dest = tmp / spec.path
                dest.parent.mkdir(parents=True, exist_ok=True)
                encode_mp4(dest, frames, audio, fps=fps, sample_rate=sample_rate)
                advance()
        (tmp / LABELS_FILE).write_text(_labels_csv(specs), encoding="utf-8")
        (tmp / STAMP_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out_dir

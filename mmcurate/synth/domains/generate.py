"""Labelled audio-visual sets from other domains, with ground-truth corruption per clip.

Why: every default of the scorers must hold on data it was not chosen on. av_digits (grey MNIST
digits and FSDD speech, three corruption kinds) is one domain; this generator draws sets from
others: coloured glyphs or textured shapes in cluttered, moving scenes (:mod:`.visual`) with
melodies, sound events or real speech (:mod:`.audio`), corrupted in kinds av_digits does not have
(blur, occlusion, low contrast, compression; band-limiting, reverberation, a competing source:
:mod:`.corruptions`), in six container/codec families, at any size (small sets included).

A class is a pair (visual class k, audio class k). Ground truth per clip in ``labels.csv``:
``condition`` is ``clean``, ``visual_mismatch`` / ``audio_mismatch`` (that modality shows another
class) or ``visual_<kind>`` / ``audio_<kind>`` (degraded at ``level``); ``severity`` names the
level (``blur3``, ``reverb1.2``). ``group`` is a per-clip style group (or the FSDD speaker).
Severity levels are dealt evenly within a condition. Every draw depends only on the seed (one
generator per clip), so the same spec gives the same ``labels.csv`` and, with the same FFmpeg
build, the same bytes.

    python -m mmcurate.synth.domains OUT --visual glyphs --audio textures --clips 1500 --seed 7 \\
        --condition visual_blur=0.1:2,4,7 --condition audio_reverb=0.1:0.6,1.5
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import numpy as np
import soundfile

from mmcurate.common.atomic import atomic_dir
from mmcurate.common.errors import MMCurateError
from mmcurate.common.progress import progress_bar
from mmcurate.synth.avdigits import _EXT, FORMATS, encode_clip, list_fsdd
from mmcurate.synth.domains.audio import AUDIO_CLASSES, AUDIO_SOURCES, normalise
from mmcurate.synth.domains.corruptions import AUDIO_KINDS, VISUAL_KINDS, corrupt_audio, corrupt_frames
from mmcurate.synth.domains.visual import VISUAL_CLASSES, VISUAL_SOURCES

LABELS_FILE = "labels.csv"
STAMP_FILE = "domain_config.json"
#: bump when the output for given arguments changes
RECIPE_VERSION = 1
#: six container/codec families (MPEG-TS left out: a seventh kind adds nothing the scorers see)
SIX_FORMATS = ("mp4_h264_aac", "mkv_h264_flac", "webm_vp9_opus", "avi_mpeg4_pcm", "flv_flv1_mp3", "mov_mjpeg_pcm")
LABEL_COLUMNS = [
    "path",
    "label",
    "condition",
    "severity",
    "level",
    "visual_class",
    "audio_class",
    "group",
    "split",
    "format",
    "n_frames",
    "audio_seconds",
]

Condition = tuple[str, float, tuple[float, ...]]


@dataclass(frozen=True)
class DomainSpec:
    """What to draw. ``conditions``: (name, share of clips, severity levels); the rest is clean."""

    n_clips: int = 1500
    seed: int = 1
    visual: str = "glyphs"
    audio: str = "instruments"
    n_classes: int = 10
    conditions: tuple[Condition, ...] = (
        ("visual_mismatch", 0.1, ()),
        ("visual_blur", 0.1, (3.0, 5.0, 8.0)),
        ("audio_reverb", 0.1, (0.8, 1.5, 3.0)),
    )
    size: int = 96
    fps: int = 12
    seconds: tuple[float, float] = (1.0, 2.0)
    groups: int = 12
    test_share: float = 0.2
    formats: tuple[str, ...] = SIX_FORMATS

    def __post_init__(self) -> None:
        if self.visual not in VISUAL_SOURCES:
            raise MMCurateError(f"unknown visual source {self.visual!r}; choose from {', '.join(VISUAL_SOURCES)}")
        if self.audio not in AUDIO_CLASSES:
            raise MMCurateError(f"unknown audio source {self.audio!r}; choose from {', '.join(AUDIO_CLASSES)}")
        most = min(VISUAL_CLASSES[self.visual], AUDIO_CLASSES[self.audio])
        if not 2 <= self.n_classes <= most:
            raise MMCurateError(f"n_classes must be 2-{most} for {self.visual} + {self.audio} (got {self.n_classes})")
        if self.n_clips < 2 * self.n_classes:
            raise MMCurateError(f"n_clips must be at least 2 per class (got {self.n_clips})")
        rates = [rate for _, rate, _ in self.conditions]
        if min(rates, default=0) < 0 or sum(rates) >= 1:
            raise MMCurateError(f"condition shares must be >= 0 and sum below 1 (got {rates})")
        for name, _, levels in self.conditions:
            modality, _, kind = name.partition("_")
            known = {"visual": VISUAL_KINDS, "audio": AUDIO_KINDS}.get(modality, ())
            if kind == "mismatch":
                continue
            if kind not in known or not levels:
                raise MMCurateError(f"condition {name!r}: use <visual|audio>_<kind> with levels; kinds {known}")
        unknown = [f for f in self.formats if f not in FORMATS]
        if unknown or not self.formats:
            raise MMCurateError(f"unknown format(s) {unknown}; choose from {', '.join(FORMATS)}")

    def to_dict(self) -> dict[str, object]:
        return json.loads(json.dumps(asdict(self)))


@dataclass
class _Clip:
    index: int
    label: int
    visual_class: int
    audio_class: int
    condition: str
    level: float | None
    group: str
    split: str
    fmt: str
    fsdd_file: str | None = None

    @property
    def severity(self) -> str:
        if self.level is None:
            return self.condition
        return f"{self.condition.partition('_')[2]}{self.level:g}"

    @property
    def path(self) -> str:
        return f"{self.fmt}/clip{self.index:05d}.{_EXT[FORMATS[self.fmt][0]]}"


def class_names(spec: DomainSpec) -> list[str]:
    return [f"{spec.visual[:5]}{k:02d}" for k in range(spec.n_classes)]


def draw_clips(spec: DomainSpec, fsdd: list[tuple[str, int, str, int]] | None) -> list[_Clip]:
    """Every random choice of the set, from ``spec.seed`` alone."""
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 0xD0A1]))
    n = spec.n_clips
    conditions: list[str] = []
    for name, rate, _ in spec.conditions:
        conditions += [name] * int(round(rate * n))
    conditions += ["clean"] * (n - len(conditions))
    conditions = [conditions[i] for i in rng.permutation(n)]
    formats = [spec.formats[i % len(spec.formats)] for i in rng.permutation(n)]
    levels = {name: lv for name, _, lv in spec.conditions}
    level_of: dict[int, float] = {}
    for name, lv in levels.items():
        members = [i for i, c in enumerate(conditions) if c == name]
        for rank, i in enumerate(rng.permutation(members).tolist() if members and lv else []):
            level_of[int(i)] = float(lv[rank % len(lv)])
    labels = [k % spec.n_classes for k in rng.permutation(n)]
    recordings: dict[int, list[tuple[str, str]]] = {}
    if fsdd is not None:
        for name, digit, speaker, _ in fsdd:
            if digit < spec.n_classes:
                recordings.setdefault(digit, []).append((name, speaker))
        for k in recordings:
            recordings[k] = [recordings[k][i] for i in rng.permutation(len(recordings[k]))]
    clips = []
    for i in range(n):
        label, cond = labels[i], conditions[i]
        visual = audio = label
        other = int(rng.choice([k for k in range(spec.n_classes) if k != label]))
        if cond == "visual_mismatch":
            visual = other
        elif cond == "audio_mismatch":
            audio = other
        fsdd_file, group = None, f"g{int(rng.integers(0, spec.groups)):02d}"
        if fsdd is not None:
            if not recordings.get(audio):
                raise MMCurateError(f"ran out of FSDD recordings of digit {audio} (each is used once)")
            fsdd_file, group = recordings[audio].pop()
        split = "test" if rng.random() < spec.test_share else "train"
        clips.append(_Clip(i, label, visual, audio, cond, level_of.get(i), group, split, formats[i], fsdd_file))
    return clips


def _interferer(spec: DomainSpec, rng: np.random.Generator, seconds: float) -> tuple[np.ndarray, int]:
    """A competing source from another audio family than the set's own (never one of its classes)."""
    family = "textures" if spec.audio != "textures" else "instruments"
    return AUDIO_SOURCES[family](int(rng.integers(0, 12)), seconds, rng)


def render_clip(spec: DomainSpec, c: _Clip, fsdd_dir: Path | None) -> tuple[np.ndarray, np.ndarray, int]:
    """(frames, audio, sample rate) of one clip, corrupted as its condition says."""
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, c.index, 1]))
    if c.fsdd_file is not None and fsdd_dir is not None:
        try:
            wave, rate = soundfile.read(fsdd_dir / c.fsdd_file, dtype="float64", always_2d=True)
        except Exception as exc:  # libsndfile error types vary by version
            raise MMCurateError(f"{fsdd_dir / c.fsdd_file}: not a readable WAV ({exc})") from None
        audio = wave.mean(axis=1)
        seconds = len(audio) / rate
    else:
        seconds = float(rng.uniform(*spec.seconds))
        audio, rate = AUDIO_SOURCES[spec.audio](c.audio_class, seconds, rng)
    modality, _, kind = c.condition.partition("_")
    if modality == "audio" and kind != "mismatch" and c.level is not None:
        interferer = None
        if kind == "competing":
            other, other_rate = _interferer(spec, rng, seconds)
            interferer = np.interp(np.arange(len(audio)) / rate, np.arange(len(other)) / other_rate, other)
        audio = corrupt_audio(audio, rate, kind, c.level, rng, interferer)
    audio = normalise(audio, float(rng.uniform(0.3, 0.9)))
    n_frames = max(3, math.ceil(seconds * spec.fps))
    style = int(c.group[1:]) / max(1, spec.groups - 1) if c.group[1:].isdigit() else 0.5
    rendered = VISUAL_SOURCES[spec.visual](c.visual_class, n_frames, spec.size, rng, style)
    frames = rendered.frames
    if modality == "visual" and kind != "mismatch" and c.level is not None:
        frames = corrupt_frames(frames, rendered.boxes, kind, c.level, rng)
    return frames, audio, int(rate)


def _row(c: _Clip, names: list[str], n_frames: int, seconds: float) -> list[object]:
    return [
        c.path,
        names[c.label],
        c.condition,
        c.severity,
        "" if c.level is None else f"{c.level:g}",
        names[c.visual_class],
        names[c.audio_class],
        c.group,
        c.split,
        c.fmt,
        n_frames,
        f"{seconds:.4f}",
    ]


def generate_domain_set(
    out_dir: Path, spec: DomainSpec, fsdd_dir: Path | None = None, overwrite: bool = False
) -> Path:
    """Write ``out_dir/<format>/clipNNNNN.<ext>``, ``labels.csv`` and ``domain_config.json``.

    The folder appears complete or not at all; a folder made with the same spec is reused, one made
    with another is replaced only with ``overwrite``; any other non-empty folder is never touched."""
    out_dir = Path(out_dir)
    config = {"recipe_version": RECIPE_VERSION, "spec": spec.to_dict(), "pyav": av.__version__}
    if out_dir.exists():
        stamp = out_dir / STAMP_FILE
        if stamp.is_file():
            try:
                same = json.loads(stamp.read_text()) == config
            except (OSError, ValueError):
                same = False
            if same and (out_dir / LABELS_FILE).is_file():
                return out_dir
            if not overwrite:
                raise MMCurateError(f"{out_dir}: holds a set made with another spec; pass overwrite")
        elif not out_dir.is_dir() or any(out_dir.iterdir()):
            raise MMCurateError(f"{out_dir}: exists and is not an empty folder or a generated set")
    fsdd = None
    if spec.audio == "fsdd":
        fsdd_dir = Path(fsdd_dir or Path("../shared/data/fsdd/recordings"))
        fsdd = list_fsdd(fsdd_dir)
    clips = draw_clips(spec, fsdd)
    names = class_names(spec)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(LABEL_COLUMNS)
    with atomic_dir(out_dir) as tmp, progress_bar(f"{spec.visual}+{spec.audio}: generating", len(clips)) as advance:
        for c in clips:
            frames, audio, rate = render_clip(spec, c, fsdd_dir)
            dest = tmp / c.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            encode_clip(dest, c.fmt, frames, audio, rate, fps=spec.fps)
            writer.writerow(_row(c, names, len(frames), len(audio) / rate))
            advance()
        (tmp / LABELS_FILE).write_text(buf.getvalue(), encoding="utf-8")
        (tmp / STAMP_FILE).write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")
    return out_dir


def parse_condition(text: str) -> Condition:
    """``visual_blur=0.1:2,4,7`` -> ("visual_blur", 0.1, (2.0, 4.0, 7.0)); ``visual_mismatch=0.1``."""
    name, _, rest = text.partition("=")
    rate, _, levels = rest.partition(":")
    try:
        return name, float(rate), tuple(float(v) for v in levels.split(",") if v)
    except ValueError:
        raise MMCurateError(f"--condition {text!r}: use NAME=SHARE[:LEVEL,LEVEL,...]") from None


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--visual", default="glyphs", choices=sorted(VISUAL_SOURCES))
    ap.add_argument("--audio", default="instruments", choices=sorted(AUDIO_CLASSES))
    ap.add_argument("--clips", type=int, default=1500)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--size", type=int, default=96, help="frame side in px")
    ap.add_argument("--condition", action="append", default=None, help="NAME=SHARE[:LEVELS] (repeatable)")
    ap.add_argument("--fsdd", type=Path, default=None, help="FSDD recordings folder (audio fsdd)")
    args = ap.parse_args(argv)
    extra = {"conditions": tuple(parse_condition(c) for c in args.condition)} if args.condition else {}
    spec = DomainSpec(
        n_clips=args.clips,
        seed=args.seed,
        visual=args.visual,
        audio=args.audio,
        n_classes=args.classes,
        size=args.size,
        **extra,
    )
    print(generate_domain_set(args.out, spec, args.fsdd))

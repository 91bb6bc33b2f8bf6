"""AV-digits-style sets re-drawn from real data: a spoken digit as the audio, an MNIST digit as the video.

Why: the score stage's defaults were chosen on ``../shared/data/av_digits``; a discrepancy that is
only right on the set it was tuned on is worth little. This generator draws *fresh* sets from the
same sources (the Free Spoken Digit Dataset recordings and the MNIST t10k images) with any seed,
size, corruption rate per condition and severity, so the score stage can be checked on data no
default was chosen on (``benchmarks/discrepancy.py``).

Each clip is built like av_digits (see its README): the FSDD recording unchanged as the audio
track (8 kHz), one MNIST test image of a digit scaled 2x (56 x 56) on a 64 x 64 black canvas with
a random offset per clip and +-1 px jitter per frame, 15 fps, as long as the audio (at least 3
frames), encoded with PyAV into one of several container/codec families. The ground truth per
clip (``labels.csv``):

* ``clean``: the image shows the spoken digit;
* ``visual_mismatch``: the image shows another digit (visual evidence is wrong);
* ``visual_noise``: Gaussian pixel noise of std ``visual_noise_sigma`` (0-255 scale) on every
  frame, plus an ``occlusion_px`` square block of one random grey level at one random place per
  clip (as in av_digits, the block is the same in every frame of a clip);
* ``audio_noise``: white noise mixed into the speech at ``audio_snr_db`` (SNR against the
  recording's mean power over the whole clip).

Severity levels are dealt evenly within a condition, so every level has about the same count.
``severity`` names the level (``snr-10``, ``sigma90-occ32``) for per-severity breakdowns. Every
draw depends only on the seed (one generator per clip), so the same arguments give the same
``labels.csv``; the clip bytes are the same for the same FFmpeg build.

Usage::

    python -m mmcurate.synth.avdigits OUT --seed 3 --clips 1500 --audio-noise 0.2 --snr=-10,-5,0
    generate_avdigits(Path("out"), AVDigitsSpec(seed=3, n_clips=1500, audio_noise=0.2))
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile
from av.codec.context import Flags

from mmcurate.common.atomic import atomic_dir
from mmcurate.common.errors import MMCurateError
from mmcurate.common.progress import progress_bar
from mmcurate.synth.shapes import X264_OPTIONS, rgb_to_yuv420p

#: container/codec families: folder -> (container, video codec, pixel format, audio codec, audio rate or None = 8 kHz)
FORMATS: dict[str, tuple[str, str, str, str, int | None]] = {
    "mp4_h264_aac": ("mp4", "libx264", "yuv420p", "aac", None),
    "mkv_h264_flac": ("matroska", "libx264", "yuv420p", "flac", None),
    "webm_vp9_opus": ("webm", "libvpx-vp9", "yuv420p", "libopus", None),
    "avi_mpeg4_pcm": ("avi", "mpeg4", "yuv420p", "pcm_s16le", None),
    "flv_flv1_mp3": ("flv", "flv", "yuv420p", "libmp3lame", 22050),
    "mov_mjpeg_pcm": ("mov", "mjpeg", "yuvj420p", "pcm_s16le", None),
    "ts_mpeg2_mp2": ("mpegts", "mpeg2video", "yuv420p", "mp2", 16000),
}
_EXT = {"mp4": "mp4", "matroska": "mkv", "webm": "webm", "avi": "avi", "flv": "flv", "mov": "mov", "mpegts": "ts"}
CONDITIONS = ("clean", "visual_mismatch", "visual_noise", "audio_noise")
LABELS_FILE = "labels.csv"
STAMP_FILE = "avdigits_config.json"
#: Version of the generation recipe: bump when the output for given arguments changes.
RECIPE_VERSION = 1
FPS = 15
CANVAS = 64
DIGIT_SIZE = 56
FSDD_RATE = 8000
LABEL_COLUMNS = [
    "path",
    "label",
    "audio_digit",
    "visual_digit",
    "condition",
    "severity",
    "audio_snr_db",
    "visual_noise_sigma",
    "occlusion_px",
    "speaker",
    "split",
    "fsdd_file",
    "mnist_t10k_index",
    "format",
    "n_frames",
    "audio_seconds",
]


@dataclass(frozen=True)
class AVDigitsSpec:
    """What to draw. Rates are shares of ``n_clips`` per corrupted condition (the rest is clean);
    each corrupted clip gets one level of its condition's severities, dealt evenly."""

    n_clips: int = 1500
    seed: int = 1
    visual_mismatch: float = 0.10
    visual_noise: float = 0.05
    audio_noise: float = 0.05
    audio_snr_db: tuple[float, ...] = (-10.0, -5.0, 0.0)
    #: (noise std on the 0-255 scale, occluding block side in px) per visual-noise level
    visual_levels: tuple[tuple[float, int], ...] = ((90.0, 32),)
    formats: tuple[str, ...] = tuple(FORMATS)

    def __post_init__(self) -> None:
        rates = (self.visual_mismatch, self.visual_noise, self.audio_noise)
        if self.n_clips < 10:
            raise MMCurateError(f"n_clips must be at least 10 (got {self.n_clips})")
        if min(rates) < 0 or sum(rates) >= 1:
            raise MMCurateError(f"corruption rates must be >= 0 and sum below 1 (got {rates})")
        if not self.audio_snr_db or not self.visual_levels:
            raise MMCurateError("give at least one audio SNR level and one visual noise level")
        for sigma, occ in self.visual_levels:
            if sigma < 0 or not 0 <= occ <= CANVAS:
                raise MMCurateError(f"visual level ({sigma}, {occ}): sigma must be >= 0 and the block 0-{CANVAS} px")
        unknown = [f for f in self.formats if f not in FORMATS]
        if unknown or not self.formats:
            raise MMCurateError(f"unknown format(s) {unknown}; choose from {', '.join(FORMATS)}")

    def to_dict(self) -> dict[str, object]:
        return json.loads(json.dumps(asdict(self)))


@dataclass
class _Clip:
    index: int
    fsdd_file: str
    digit: int
    speaker: str
    split: str
    condition: str
    visual_digit: int
    mnist_index: int
    snr_db: float | None
    sigma: float | None
    occlusion: int | None
    fmt: str
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def severity(self) -> str:
        if self.condition == "audio_noise":
            return f"snr{self.snr_db:g}"
        if self.condition == "visual_noise":
            return f"sigma{self.sigma:g}-occ{self.occlusion}"
        return self.condition

    @property
    def path(self) -> str:
        ext = _EXT[FORMATS[self.fmt][0]]
        return f"{self.fmt}/{Path(self.fsdd_file).stem}.{ext}"


# --------------------------------------------------------------------------- sources


def read_mnist(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """MNIST IDX files (gzipped) -> images (N, 28, 28) uint8 and labels (N,) int64."""
    img_path, lbl_path = folder / "t10k-images-idx3-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz"
    try:
        raw = gzip.decompress(img_path.read_bytes())
        lab = gzip.decompress(lbl_path.read_bytes())
    except (OSError, EOFError) as exc:
        raise MMCurateError(f"{folder}: cannot read the MNIST t10k IDX files ({exc})") from None
    magic, n, rows, cols = np.frombuffer(raw[:16], dtype=">u4")
    if magic != 2051 or int.from_bytes(lab[:4], "big") != 2049:
        raise MMCurateError(f"{folder}: not MNIST IDX files (bad magic number)")
    images = np.frombuffer(raw[16:], dtype=np.uint8).reshape(int(n), int(rows), int(cols))
    labels = np.frombuffer(lab[8:], dtype=np.uint8).astype(np.int64)
    return images, labels


def list_fsdd(folder: Path) -> list[tuple[str, int, str, int]]:
    """``(file name, digit, speaker, take)`` of every FSDD recording, sorted by name."""
    out = []
    for p in sorted(folder.glob("*.wav")):
        parts = p.stem.split("_")
        if len(parts) == 3 and parts[0].isdigit() and parts[2].isdigit():
            out.append((p.name, int(parts[0]), parts[1], int(parts[2])))
    if not out:
        raise MMCurateError(f"{folder}: no FSDD recordings ({{digit}}_{{speaker}}_{{take}}.wav)")
    return out


# --------------------------------------------------------------------------- drawing


def draw_clips(spec: AVDigitsSpec, fsdd: list[tuple[str, int, str, int]], mnist_labels: np.ndarray) -> list[_Clip]:
    """Every random choice of the set, from ``spec.seed`` alone."""
    if spec.n_clips > len(fsdd):
        raise MMCurateError(f"n_clips {spec.n_clips} exceeds the {len(fsdd)} FSDD recordings (each is used once)")
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 0xA7D1]))
    chosen = np.sort(rng.choice(len(fsdd), size=spec.n_clips, replace=False))
    counts = {
        c: int(round(rate * spec.n_clips))
        for c, rate in (
            ("visual_mismatch", spec.visual_mismatch),
            ("visual_noise", spec.visual_noise),
            ("audio_noise", spec.audio_noise),
        )
    }
    conditions = ["visual_mismatch"] * counts["visual_mismatch"] + ["visual_noise"] * counts["visual_noise"]
    conditions += ["audio_noise"] * counts["audio_noise"]
    conditions += ["clean"] * (spec.n_clips - len(conditions))
    conditions = [conditions[i] for i in rng.permutation(spec.n_clips)]
    formats = [spec.formats[i % len(spec.formats)] for i in rng.permutation(spec.n_clips)]
    level_of: dict[int, int] = {}
    for cond, n_levels in (("audio_noise", len(spec.audio_snr_db)), ("visual_noise", len(spec.visual_levels))):
        members = [i for i, c in enumerate(conditions) if c == cond]
        for rank, i in enumerate(rng.permutation(members).tolist() if members else []):
            level_of[int(i)] = rank % n_levels
    # MNIST images of each digit, shuffled; each clip takes the next unused one of its visual digit
    pools = {d: list(rng.permutation(np.flatnonzero(mnist_labels == d))) for d in range(10)}
    clips = []
    for i, row in enumerate(chosen.tolist()):
        name, digit, speaker, take = fsdd[row]
        cond = conditions[i]
        visual = digit
        if cond == "visual_mismatch":
            visual = int(rng.choice([d for d in range(10) if d != digit]))
        if not pools[visual]:
            raise MMCurateError(f"ran out of MNIST images of digit {visual}")
        level = level_of.get(i)
        clips.append(
            _Clip(
                index=i,
                fsdd_file=name,
                digit=digit,
                speaker=speaker,
                split="test" if take < 5 else "train",
                condition=cond,
                visual_digit=visual,
                mnist_index=int(pools[visual].pop()),
                snr_db=float(spec.audio_snr_db[level]) if cond == "audio_noise" and level is not None else None,
                sigma=float(spec.visual_levels[level][0]) if cond == "visual_noise" and level is not None else None,
                occlusion=int(spec.visual_levels[level][1]) if cond == "visual_noise" and level is not None else None,
                fmt=formats[i],
            )
        )
    return clips


def render_frames(
    image: np.ndarray, n_frames: int, rng: np.random.Generator, sigma: float | None, occlusion: int | None
) -> np.ndarray:
    """(n_frames, 64, 64, 3) uint8: the 2x MNIST digit at a per-clip offset with +-1 px jitter per
    frame; with ``sigma``/``occlusion``, pixel noise on every frame and one flat block per clip."""
    big = np.kron(image.astype(np.float32), np.ones((2, 2), dtype=np.float32))
    room = CANVAS - DIGIT_SIZE
    ox, oy = (int(v) for v in rng.integers(1, room, size=2))
    bx, by = (int(v) for v in rng.integers(0, CANVAS - (occlusion or 0) + 1, size=2))
    shade = float(rng.integers(0, 256))
    out = np.empty((n_frames, CANVAS, CANVAS, 3), dtype=np.uint8)
    for t in range(n_frames):
        jx, jy = (int(v) for v in rng.integers(-1, 2, size=2))
        canvas = np.zeros((CANVAS, CANVAS), dtype=np.float32)
        x, y = ox + jx, oy + jy
        canvas[y : y + DIGIT_SIZE, x : x + DIGIT_SIZE] = big
        if sigma:
            canvas += rng.normal(0.0, sigma, size=canvas.shape).astype(np.float32)
        if occlusion:
            canvas[by : by + occlusion, bx : bx + occlusion] = shade
        out[t] = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)[..., None]
    return out


def mix_noise(wave: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """White Gaussian noise at ``snr_db`` against the clip's mean power; scaled down as a whole
    (SNR unchanged) if the mix would clip."""
    power = float(np.mean(wave.astype(np.float64) ** 2)) or 1e-12
    noisy = wave + rng.normal(0.0, math.sqrt(power / 10.0 ** (snr_db / 10.0)), size=wave.shape)
    peak = float(np.max(np.abs(noisy)))
    if peak > 0.99:
        noisy *= 0.99 / peak
    return noisy.astype(np.float32)


# --------------------------------------------------------------------------- encoding


def encode_clip(
    path: Path, fmt: str, frames: np.ndarray, audio: np.ndarray, sample_rate: int = FSDD_RATE, fps: int = FPS
) -> None:
    """Write ``frames`` (T, H, W, 3) uint8 at ``fps`` (15) and mono float ``audio`` into one file of
    family ``fmt`` (single-threaded encoders, bit-exact flags where the codec has them)."""
    container_name, vcodec, pix_fmt, acodec, arate = FORMATS[fmt]
    rate = arate or sample_rate
    with av.open(str(path), mode="w", format=container_name) as container:
        v = container.add_stream(vcodec, rate=fps, options=X264_OPTIONS if vcodec == "libx264" else {})
        v.width, v.height, v.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        v.codec_context.thread_count = 1
        v.codec_context.flags |= int(Flags.bitexact)
        a = container.add_stream(acodec, rate=rate, layout="mono")
        a.codec_context.flags |= int(Flags.bitexact)
        for i, img in enumerate(frames):
            if pix_fmt == "yuv420p":
                vf = av.VideoFrame.from_ndarray(rgb_to_yuv420p(img), format="yuv420p")
            else:
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24").reformat(format=pix_fmt)
            vf.pts, vf.time_base = i, Fraction(1, fps)
            for packet in v.encode(vf):
                container.mux(packet)
        for packet in v.encode():
            container.mux(packet)
        if not a.codec_context.is_open:
            a.codec_context.open()  # fixes frame_size for codecs that need whole frames (AAC, Opus, MP2, MP3)
        fmt_name = a.codec_context.format.name
        resampler = av.AudioResampler(
            format=fmt_name, layout="mono", rate=rate, frame_size=a.codec_context.frame_size or None
        )
        src = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(audio.reshape(1, -1), dtype=np.float32), format="flt", layout="mono"
        )
        src.sample_rate, src.pts, src.time_base = sample_rate, 0, Fraction(1, sample_rate)
        for frame in [*resampler.resample(src), *resampler.resample(None)]:
            for packet in a.encode(frame):
                container.mux(packet)
        for packet in a.encode():
            container.mux(packet)


# --------------------------------------------------------------------------- the set


def _label_row(c: _Clip, n_frames: int, seconds: float) -> list[object]:
    return [
        c.path,
        c.digit,
        c.digit,
        c.visual_digit,
        c.condition,
        c.severity,
        "" if c.snr_db is None else f"{c.snr_db:g}",
        "" if c.sigma is None else f"{c.sigma:g}",
        "" if c.occlusion is None else c.occlusion,
        c.speaker,
        c.split,
        c.fsdd_file,
        c.mnist_index,
        c.fmt,
        n_frames,
        f"{seconds:.4f}",
    ]


def generate_avdigits(
    out_dir: Path,
    spec: AVDigitsSpec,
    fsdd_dir: Path | None = None,
    mnist_dir: Path | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``out_dir/<format>/<fsdd name>.<ext>`` clips, ``labels.csv`` and ``avdigits_config.json``.

    ``fsdd_dir`` (the ``recordings`` folder) and ``mnist_dir`` default to ``../shared/data``
    relative to the working directory. The folder appears complete or not at all; a folder made
    with the same spec is reused as is, one made with another spec is replaced only with
    ``overwrite``; any other non-empty folder is never touched.
    """
    out_dir = Path(out_dir)
    fsdd_dir = Path(fsdd_dir or Path("../shared/data/fsdd/recordings"))
    mnist_dir = Path(mnist_dir or Path("../shared/data/mnist_t10k"))
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
                raise MMCurateError(
                    f"{out_dir}: holds a set made with another spec; pass overwrite or choose another folder"
                )
        elif not out_dir.is_dir() or any(out_dir.iterdir()):
            raise MMCurateError(
                f"{out_dir}: exists and is not an empty folder or a generated set; choose another folder"
            )
    fsdd = list_fsdd(fsdd_dir)
    images, labels = read_mnist(mnist_dir)
    clips = draw_clips(spec, fsdd, labels)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(LABEL_COLUMNS)
    with atomic_dir(out_dir) as tmp, progress_bar("avdigits: generating clips", len(clips)) as advance:
        for c in clips:
            rng = np.random.default_rng(np.random.SeedSequence([spec.seed, c.index, 1]))
            try:
                wave, rate = soundfile.read(fsdd_dir / c.fsdd_file, dtype="float32", always_2d=True)
            except Exception as exc:  # libsndfile error types vary by version
                raise MMCurateError(f"{fsdd_dir / c.fsdd_file}: not a readable WAV ({exc})") from None
            mono = wave.mean(axis=1).astype(np.float32)
            if c.snr_db is not None:
                mono = mix_noise(mono, c.snr_db, rng)
            seconds = len(mono) / rate
            n_frames = max(3, math.ceil(seconds * FPS))
            frames = render_frames(images[c.mnist_index], n_frames, rng, c.sigma, c.occlusion)
            dest = tmp / c.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            encode_clip(dest, c.fmt, frames, mono, int(rate))
            writer.writerow(_label_row(c, n_frames, seconds))
            advance()
        (tmp / LABELS_FILE).write_text(buf.getvalue(), encoding="utf-8")
        (tmp / STAMP_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out_dir


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def _levels(text: str) -> tuple[tuple[float, int], ...]:
    out = []
    for item in text.split(","):
        sigma, _, occ = item.partition(":")
        out.append((float(sigma), int(occ or 0)))
    return tuple(out)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m mmcurate.synth.avdigits OUT [options]``."""
    import click

    @click.command(context_settings={"show_default": True})
    @click.argument("out", type=click.Path(path_type=Path))
    @click.option("--seed", type=int, default=1)
    @click.option(
        "--clips", "n_clips", type=int, default=1500, help="Clips to draw (each FSDD recording at most once)."
    )
    @click.option(
        "--visual-mismatch", type=float, default=0.10, help="Share of clips whose image shows another digit."
    )
    @click.option(
        "--visual-noise", type=float, default=0.05, help="Share of clips with pixel noise and an occluding block."
    )
    @click.option(
        "--audio-noise", type=float, default=0.05, help="Share of clips with white noise mixed into the speech."
    )
    @click.option("--snr", default="-10,-5,0", help="Audio-noise SNR levels in dB, comma-separated.")
    @click.option("--visual-levels", default="90:32", help="Visual-noise levels as sigma:block_px, comma-separated.")
    @click.option("--formats", default=",".join(FORMATS), help="Container/codec families to deal the clips over.")
    @click.option("--fsdd", type=click.Path(path_type=Path), default=Path("../shared/data/fsdd/recordings"))
    @click.option("--mnist", type=click.Path(path_type=Path), default=Path("../shared/data/mnist_t10k"))
    @click.option("--overwrite", is_flag=True, default=False)
    def cli(
        out: Path,
        seed: int,
        n_clips: int,
        visual_mismatch: float,
        visual_noise: float,
        audio_noise: float,
        snr: str,
        visual_levels: str,
        formats: str,
        fsdd: Path,
        mnist: Path,
        overwrite: bool,
    ) -> None:
        try:
            spec = AVDigitsSpec(
                n_clips=n_clips,
                seed=seed,
                visual_mismatch=visual_mismatch,
                visual_noise=visual_noise,
                audio_noise=audio_noise,
                audio_snr_db=_floats(snr),
                visual_levels=_levels(visual_levels),
                formats=tuple(f for f in formats.split(",") if f),
            )
            click.echo(str(generate_avdigits(out, spec, fsdd, mnist, overwrite)))
        except (MMCurateError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None

    cli.main(args=list(argv) if argv is not None else None, prog_name="python -m mmcurate.synth.avdigits")


if __name__ == "__main__":  # pragma: no cover
    main()

"""``mmcurate export``: every setting of the stage, written once (command line, recipes, Python)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmcurate.common.errors import MMCurateError
from mmcurate.common.limits import MAX_FRAMES_PER_CLIP
from mmcurate.common.options import opt
from mmcurate.formats.balancemm import DEFAULT_MAX_FRAMES

#: the formats ``mmcurate export`` writes
FORMATS = ("balancemm",)


@dataclass(frozen=True)
class ExportConfig:
    """``mmcurate export [BALANCED_DIR] --format balancemm``: the balanced dataset in a layout the field's code
    loads."""

    balanced_dir: Path | None = opt(None, argument=True)
    format: str = opt(
        "balancemm",
        "Layout to write: balancemm = BalanceMM's `Balance` dataset / BML release (annotation JSON, per-clip HDF5 "
        "JPEG frames, per-clip pickled spectrograms).",
        choices=FORMATS,
    )
    ingest_dir: Path | None = opt(
        None,
        "Ingest folder holding the media (default: the one balance.json names, else WORKDIR/ingest).",
        show_default=False,
    )
    out: Path | None = opt(None, "Output folder (default: WORKDIR/<format>).", show_default=False)
    audio_preset: str = opt(
        "vggsound_stft",
        "Spectrogram recipe of the .pkl files, a preset of mmcurate.features: vggsound_stft (OGM-GE's VGGSound "
        "STFT, 129 x 1251), ks_fbank (OGM-GE's Kinetics-Sounds fbank, 128 x 1024), cremad_stft, logmel.",
    )
    max_frames: int = opt(
        DEFAULT_MAX_FRAMES,
        "Most frames written per clip, spread evenly over the stored ones: BalanceMM's loader picks 3 of about "
        "10 one-per-second frames (its training picks never go past index 8).",
    )
    chunk_size: int = opt(64, "Clips per unit of resume (a killed export redoes at most one unit per worker).")
    workers: int = opt(0, "Encoding processes (0 = all cores).")

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise MMCurateError(f"--format must be one of {', '.join(FORMATS)} (got {self.format!r})")
        if self.max_frames < 2:
            raise MMCurateError(
                f"--max-frames must be at least 2: BalanceMM's loader reads frame index 1 (got {self.max_frames})"
            )
        if self.max_frames > MAX_FRAMES_PER_CLIP:
            raise MMCurateError(f"--max-frames must be at most {MAX_FRAMES_PER_CLIP} (got {self.max_frames})")
        if not 1 <= self.chunk_size <= 100_000:
            raise MMCurateError(f"--chunk-size must be 1 to 100000 (got {self.chunk_size})")
        if not 0 <= self.workers <= 1024:
            raise MMCurateError(f"--workers must be 0 (all cores) to 1024 (got {self.workers})")

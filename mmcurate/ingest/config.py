"""Ingest settings, written once: the command line, recipes and Python callers all build these.

:class:`DecodeConfig` holds everything that determines a clip's decoded output (what
:func:`mmcurate.ingest.clip.process_clip` needs); its content hash, with the discovery settings and
the class list, decides whether an existing output folder can be resumed. :class:`IngestConfig` is
the whole stage: where to read and write, how to discover inputs, the decode settings, and how to
run (workers, array-job part), which changes how the work is done, never what it produces.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmcurate.common.errors import MMCurateError
from mmcurate.common.hashing import config_hash
from mmcurate.common.options import nested, opt
from mmcurate.execution import ArrayJobConfig, ExecutionConfig

MISSING_MODALITY_POLICIES = ("reject", "keep", "zero-fill")
DECODERS = ("pyav", "decord")
#: Most decoding processes (each holds up to one clip's frames: see ingest/limits.py).
MAX_WORKERS = 1024


@dataclass(frozen=True)
class DecodeConfig:
    """What each clip becomes. Defaults follow the field's reference code (3 frames evenly spaced,
    224 px short side with centre crop, 16 kHz mono audio)."""

    frames: int = opt(3, "Frames per clip, evenly spaced (centres of equal parts).")
    fps: float | None = opt(None, "Sample frames at this rate instead of --frames.")
    size: int = opt(224, "Frame short side in pixels, then centre crop (0 = native).")
    jpeg_quality: int = opt(90, "JPEG quality of stored frames.")
    sample_rate: int = opt(16000, "Audio is mixed to mono and resampled to this rate.")
    features: Any = opt(
        None,
        "Also cache audio features (float16) in the shards: a preset such as logmel, cremad_stft, vggsound_stft, "
        "ks_fbank.",
    )
    missing_modality: str = opt(
        "reject",
        "A clip without audio or video: reject it (to failures.jsonl), keep it with the modality empty, or "
        "zero-fill (black frames / silence). has_audio/has_video record the truth.",
        choices=MISSING_MODALITY_POLICIES,
    )
    video_stream: int = opt(0, "Which video stream of multi-stream files (0 = first).")
    audio_stream: int = opt(0, "Which audio stream of multi-stream files (0 = first).")
    tolerate_decode_errors: bool = opt(False, "Skip corrupt packets instead of failing the clip.")
    min_coverage: float = opt(
        0.85,
        "Fail a clip that decodes less than this fraction of the duration its container declares (truncated "
        "files); 0 disables.",
    )
    decoder: str = opt(
        "pyav",
        "Video decoder. decord is an optional fast path (pip install mmcurate[decord]); any decord error falls "
        "back to PyAV for that file.",
        choices=DECODERS,
    )
    shard_size: int = opt(256, "Samples per Arrow shard (the unit of resume).")

    def __post_init__(self) -> None:
        if self.fps is None and self.frames < 1:
            raise MMCurateError(f"--frames must be at least 1 (got {self.frames})")
        if self.fps is not None and not (math.isfinite(self.fps) and self.fps > 0):
            raise MMCurateError(f"--fps must be a positive number (got {self.fps})")
        if self.size < 0:
            raise MMCurateError(f"--size must be positive, or 0 to keep the native size (got {self.size})")
        if not 1 <= self.jpeg_quality <= 100:
            raise MMCurateError(f"--jpeg-quality must be in 1..100 (got {self.jpeg_quality})")
        if self.sample_rate < 1000:
            raise MMCurateError(f"--sample-rate must be at least 1000 Hz (got {self.sample_rate})")
        if self.missing_modality not in MISSING_MODALITY_POLICIES:
            raise MMCurateError(
                f"--missing-modality must be one of {', '.join(MISSING_MODALITY_POLICIES)} "
                f"(got {self.missing_modality!r})"
            )
        if self.decoder not in DECODERS:
            raise MMCurateError(f"--decoder must be one of {', '.join(DECODERS)} (got {self.decoder!r})")
        if self.shard_size < 1:
            raise MMCurateError(f"--shard-size must be at least 1 (got {self.shard_size})")
        if not (math.isfinite(self.min_coverage) and 0.0 <= self.min_coverage <= 1.0):
            raise MMCurateError(f"--min-coverage must be a fraction in 0..1 (got {self.min_coverage})")
        for name, index in (("--video-stream", self.video_stream), ("--audio-stream", self.audio_stream)):
            if index < 0:
                raise MMCurateError(f"{name} must be 0 (the first stream) or more (got {index})")
        from mmcurate.ingest.limits import decode_option_problem

        problem = decode_option_problem(self)  # bounds from what one clip may hold (see ingest/limits.py)
        if problem is not None:
            raise MMCurateError(problem)

    def content_dict(self) -> dict[str, Any]:
        """The fields that determine the output (used for the config hash)."""
        return dataclasses.asdict(self)

    def content_hash(self) -> str:
        return config_hash(self.content_dict())

    def replace(self, **changes: Any) -> DecodeConfig:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class IngestConfig:
    """``mmcurate ingest RAW_DIR``: every setting of the stage."""

    raw_dir: Path | None = opt(None, argument=True, required=True)
    out: Path | None = opt(None, "Output folder (default: WORKDIR/ingest).", show_default=False)
    manifest: Path | None = opt(
        None,
        "CSV/TSV/JSONL listing the inputs: path,label[,split][,group][,start,end] (paths relative to RAW_DIR); "
        "other columns are kept in manifest.parquet. Without it, RAW_DIR/<label>/<clip> is used.",
    )
    layout: str | None = opt(
        None,
        "Dataset adapter that knows a release's layout: folders (default), manifest, cremad, kinetics_sounds, "
        "vggsound, ave, balancemm (a BalanceMM-format release: annotation JSON, HDF5 frames, pickled spectrograms).",
    )
    layout_options: dict[str, str] = opt(
        help="Option passed to the --layout adapter (repeatable), e.g. annotations=Annotations.txt.",
        flag="--layout-option",
        default_factory=dict,
    )
    group_column: str | None = opt(
        None, "Input-manifest column whose value must not cross splits (e.g. speaker, youtube_id)."
    )
    classes: Path | None = opt(
        None,
        "Class list: a file (one name per line) or a shipped list by name (cremad, kinetics_sounds, vggsound, ave, "
        "demo). Fixes the label order; labels not in it fail. Default: the sorted labels found.",
    )
    decode: DecodeConfig = dataclasses.field(default_factory=DecodeConfig)
    workers: int = opt(0, "Decoding processes (0 = all cores).")
    array: ArrayJobConfig = dataclasses.field(default_factory=ArrayJobConfig)
    execution: ExecutionConfig = nested(ExecutionConfig, skip=("gpus_per_job", "distributed"))
    max_failures: int | None = opt(None, "Exit with status 3 when more inputs than this fail (default: report only).")
    overwrite: bool = opt(
        False,
        "Replace an output folder made with different settings, or write into a non-empty folder that is not an "
        "ingest output (only the files ingest writes are replaced); otherwise either is an error.",
    )
    #: set by ``mmcurate run`` when the recipe's ingest settings changed: replace the ingest output made
    #: with the old ones, but (unlike --overwrite) never write into a folder that is not an ingest output
    replace_changed: bool = opt(False, cli=False)
    dataset_name: str | None = opt(None, "Source dataset name, recorded for the dataset card.")
    license: str | None = opt(None, "Source dataset licence, recorded for the dataset card.")

    def __post_init__(self) -> None:
        if not 0 <= self.workers <= MAX_WORKERS:
            raise MMCurateError(f"--workers must be 0 (all cores) to {MAX_WORKERS} (got {self.workers})")
        if self.max_failures is not None and self.max_failures < 0:
            raise MMCurateError(f"--max-failures must be 0 or more (got {self.max_failures})")

    @property
    def source(self) -> dict[str, str]:
        """Provenance for the dataset card: the source dataset's name and licence, where given."""
        return {k: v for k, v in (("name", self.dataset_name), ("license", self.license)) if v}

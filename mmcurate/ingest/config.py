"""Ingest settings, resolved once and saved with the output.

:class:`IngestConfig` holds everything that determines the content of the output; the
``content_hash`` of those fields decides whether an existing output folder can be resumed.
Execution settings (workers, array-job shard index) change how the work is run, never what it
produces, so they are left out of the hash.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from mmcurate.common.errors import MMCurateError
from mmcurate.common.files import MEDIA_EXTENSIONS  # noqa: F401  (re-exported for adapters)
from mmcurate.common.hashing import config_hash

MISSING_MODALITY_POLICIES = ("reject", "keep", "zero-fill")
DECODERS = ("pyav", "decord")



@dataclass(frozen=True)
class IngestConfig:
    """What ``mmcurate ingest`` produces, and how it runs. Defaults follow the field's reference code
    (3 frames evenly spaced, 224 px short side with centre crop, 16 kHz mono audio)."""

    # --- content (hashed) ---
    frames: int = 3
    fps: float | None = None
    size: int = 224
    jpeg_quality: int = 90
    sample_rate: int = 16000
    features: str | dict[str, Any] | None = None
    missing_modality: str = "reject"
    video_stream: int = 0
    audio_stream: int = 0
    tolerate_decode_errors: bool = False
    min_coverage: float = 0.85
    decoder: str = "pyav"
    shard_size: int = 256
    # --- execution (not hashed) ---
    workers: int = 0
    num_shards: int = 1
    shard_index: int = 0

    EXECUTION_FIELDS = ("workers", "num_shards", "shard_index")

    def __post_init__(self) -> None:
        if self.fps is None and self.frames < 1:
            raise MMCurateError(f"--frames must be at least 1 (got {self.frames})")
        if self.fps is not None and self.fps <= 0:
            raise MMCurateError(f"--fps must be positive (got {self.fps})")
        if self.size < 0:
            raise MMCurateError(f"--size must be positive, or 0 to keep the native size (got {self.size})")
        if not 1 <= self.jpeg_quality <= 100:
            raise MMCurateError(f"--jpeg-quality must be in 1..100 (got {self.jpeg_quality})")
        if self.sample_rate < 1000:
            raise MMCurateError(f"--sample-rate must be at least 1000 Hz (got {self.sample_rate})")
        if self.missing_modality not in MISSING_MODALITY_POLICIES:
            raise MMCurateError(
                f"--missing-modality must be one of {', '.join(MISSING_MODALITY_POLICIES)} (got {self.missing_modality!r})"
            )
        if self.decoder not in DECODERS:
            raise MMCurateError(f"--decoder must be one of {', '.join(DECODERS)} (got {self.decoder!r})")
        if self.shard_size < 1:
            raise MMCurateError(f"--shard-size must be at least 1 (got {self.shard_size})")
        if self.num_shards < 1 or not 0 <= self.shard_index < self.num_shards:
            raise MMCurateError(
                f"--shard-index must be in 0..{self.num_shards - 1} for --num-shards {self.num_shards} (got {self.shard_index})"
            )

    def content_dict(self) -> dict[str, Any]:
        """The fields that determine the output (used for the config hash)."""
        d = dataclasses.asdict(self)
        for k in self.EXECUTION_FIELDS:
            d.pop(k, None)
        return d

    def content_hash(self) -> str:
        return config_hash(self.content_dict())

    def replace(self, **changes: Any) -> IngestConfig:
        return dataclasses.replace(self, **changes)


@dataclass
class IngestPaths:
    """Where ingest reads and writes."""

    raw_dir: str
    out_dir: str
    manifest: str | None = None
    layout: str = "folders"
    layout_options: dict[str, str] = field(default_factory=dict)
    classes_file: str | None = None

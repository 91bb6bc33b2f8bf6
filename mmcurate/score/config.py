"""Scorer settings: what the out-of-fold confidences depend on, and the scorer id built from them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from mmcurate.common.errors import MMCurateError
from mmcurate.common.hashing import config_hash

#: CPU-sized defaults (a few minutes for thousands of short clips on 2 cores) and the field's
#: reference size on a GPU (ResNet-18 at full width on 224 px frames, as OGM-GE trains). The CPU
#: sizes were chosen with benchmarks/discrepancy_search.py on generated tuning sets and checked on
#: other generated sets (benchmarks/discrepancy.py): 48 px frames (with ResNet-18's stride-4 stem,
#: 32 px leaves 8 x 8 maps and a visual scorer far below what MNIST-like frames allow).
CPU_DEFAULTS = {"width": 8, "image_size": 48, "repeats": 2}
GPU_DEFAULTS = {"width": 64, "image_size": 224, "repeats": 1}
#: ``floor``: cross-fitted temperature scaling with a label-noise floor per modality; ``temperature``:
#: plain cross-fitted temperature scaling; ``none`` (see mmcurate.score.calibration).
CALIBRATIONS = ("floor", "temperature", "none")


@dataclass(frozen=True)
class ScoreConfig:
    """Out-of-fold unimodal scoring.

    ``avg_last`` of ``None`` averages the second half of training; ``width``/``image_size``/``repeats``
    of ``None`` mean "pick by device" (:data:`CPU_DEFAULTS` or
    :data:`GPU_DEFAULTS`); :meth:`resolved` fills them in, and only resolved configs are hashed.
    """

    folds: int = 5
    repeats: int | None = None
    epochs: int = 12
    avg_last: int | None = None
    width: int | None = None
    image_size: int | None = None
    num_frames: int = 3
    train_frames: int = 1
    audio_features: str = "logmel"
    audio_frames: int | None = None
    batch_size: int = 64
    lr: float = 1e-2
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    augment: bool = True
    group_folds: bool = False
    calibration: str = "floor"
    seed: int = 0
    # execution only (not hashed)
    device: str = "auto"
    workers: int = 0
    memory_budget_gb: float = 4.0

    EXECUTION_FIELDS = ("device", "workers", "memory_budget_gb")

    def __post_init__(self) -> None:
        if self.repeats is not None and self.repeats < 1:
            raise MMCurateError(f"--repeats must be at least 1 (got {self.repeats})")
        if self.folds < 2:
            raise MMCurateError(f"--folds must be at least 2 for out-of-fold scores (got {self.folds})")
        if self.epochs < 1:
            raise MMCurateError(f"--epochs must be at least 1 (got {self.epochs})")
        if self.avg_last is not None and not 1 <= self.avg_last <= self.epochs:
            raise MMCurateError(f"--avg-last must be between 1 and --epochs {self.epochs} (got {self.avg_last})")
        if self.train_frames < 1 or self.train_frames > self.num_frames:
            raise MMCurateError(f"--train-frames must be between 1 and --num-frames {self.num_frames} (got {self.train_frames})")
        if self.batch_size < 2:
            raise MMCurateError(f"--batch-size must be at least 2 (got {self.batch_size})")
        if self.calibration not in CALIBRATIONS:
            raise MMCurateError(f"--calibration must be one of {', '.join(CALIBRATIONS)} (got {self.calibration!r})")
        if self.lr <= 0:
            raise MMCurateError(f"--lr must be positive (got {self.lr})")

    def resolved(self, on_gpu: bool) -> ScoreConfig:
        """This config with device-dependent sizes filled in."""
        defaults = GPU_DEFAULTS if on_gpu else CPU_DEFAULTS
        return dataclasses.replace(
            self,
            width=self.width or defaults["width"],
            image_size=self.image_size or defaults["image_size"],
            repeats=self.repeats or defaults["repeats"],
            avg_last=self.avg_last or max(1, self.epochs // 2),
        )

    def content_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in self.EXECUTION_FIELDS:
            d.pop(k, None)
        return d

    def content_hash(self) -> str:
        if self.width is None or self.image_size is None or self.repeats is None or self.avg_last is None:
            raise ValueError("hash a resolved ScoreConfig")
        return config_hash(self.content_dict(), length=10)

    def scorer_id(self) -> str:
        """Architecture + config hash + seed, e.g. ``resnet18-w8-oof5-3f1c2a9b0d-seed0``."""
        return f"resnet18-w{self.width}-oof{self.folds}-{self.content_hash()}-seed{self.seed}"

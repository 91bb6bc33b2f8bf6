"""The built-in scorer's settings (:class:`ScoreConfig`): what the out-of-fold confidences depend on.

Two stages take them: ``mmcurate score``, which trains with them, and ``mmcurate balance``, which has
the same options so that it can have the scores made first when they are missing or stale (and judges
staleness by their hash). They live here, below both, so that neither stage imports the other; the
score stage's own options are :class:`mmcurate.score.config.ScoreStageConfig`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from mmcurate.common.errors import MMCurateError
from mmcurate.common.hashing import config_hash
from mmcurate.common.options import check_seed, opt

#: CPU-sized defaults (a few minutes for thousands of short clips on 2 cores) and the field's
#: reference size on a GPU (ResNet-18 at full width on 224 px frames, as OGM-GE trains). The CPU
#: sizes were chosen with benchmarks/discrepancy_search.py on generated tuning sets and checked on
#: other generated sets (benchmarks/discrepancy.py): 48 px frames (with ResNet-18's stride-4 stem,
#: 32 px leaves 8 x 8 maps and a visual scorer far below what MNIST-like frames allow). One repeat:
#: at 48 px with augmentation two repeats take 463 s on 3000 av_digits clips (2 cores, over the
#: 5-minute budget) and gave the same AUROCs as the first repeat alone there (0.995/0.944/0.971 vs
#: 0.991/0.942/0.973); ``--repeats 2`` remains for a steadier d where time allows.
CPU_DEFAULTS = {"width": 8, "image_size": 48, "repeats": 1}
GPU_DEFAULTS = {"width": 64, "image_size": 224, "repeats": 1}
BUILTIN_SCORER = "resnet18-oof"
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

    folds: int = opt(5, "Cross-fitting folds (stratified by label).")
    repeats: int | None = opt(
        None,
        "Repeat the cross-fitting with other folds and seeds and average "
        "(default: 1; 2 gives a steadier d at twice the time).",
    )
    epochs: int | None = opt(
        None,
        "Train every scorer exactly this many epochs (warm-up, cosine decay, the last --avg-last averaged) "
        "instead of to convergence. Default: train to convergence (see --max-epochs).",
        show_default=False,
    )
    max_epochs: int = opt(
        60,
        "Convergence: the most epochs a scorer may train. Each trains until the loss on an inner validation split "
        "(carved from its own training part, never the clips it scores) stops improving, then anneals its learning "
        "rate over about half as many epochs and averages those epochs' predictions.",
    )
    patience: int = opt(
        3,
        "Convergence: the shortest window (this many epochs plus one) over which the inner-validation loss's recent "
        "rate of improvement is measured; the window grows to a third of the search. The search ends when that rate "
        "(plus a standard error) is under 40 % of the average rate so far, or when no epoch beat the best loss by "
        "1 % for max(2 x patience, the window) epochs; both stricter while the inner loss is above half of ln C. "
        "Raised on small sets to at least 50 optimiser steps; see docs/score.md.",
    )
    inner_fraction: float = opt(
        0.1, "Convergence: share of each job's training part (per class) held out as its inner validation split."
    )
    restarts: int = opt(
        2,
        "Convergence: a scorer still at chance after 10 epochs and no longer improving is stuck on its initial "
        "plateau; restart it from another initialisation up to this many times.",
    )
    frame_norm: str = opt(
        "frame",
        "How the visual scorer normalises frames: frame = each frame's channels standardised on their own (robust "
        "to each clip's colours and lighting), imagenet = ImageNet channel statistics.",
        choices=("frame", "imagenet"),
    )
    avg_last: int | None = opt(
        None,
        "With a fixed --epochs: average held-out softmax over the last N epochs' weights (default: the second half).",
    )
    width: int | None = opt(None, "ResNet-18 base width (64 = standard). Default: 8 on CPU, 64 on GPU.")
    image_size: int | None = opt(
        None,
        "Frame size fed to the visual scorer. Default: 48 on CPU, 224 on GPU. Larger than reeval's 32 on purpose: "
        "d compares two scorers, and at 32 px ResNet-18's stride-4 stem leaves 8 x 8 maps and a visual scorer too "
        "weak, which would push d toward audio (benchmarks/discrepancy_search.py chose 48).",
    )
    num_frames: int = opt(3, "Frames per clip used by the visual scorer.")
    train_frames: int = opt(
        1, "Frames per clip in each training step (a random run of this many); all --num-frames at prediction."
    )
    audio_features: str = opt(
        "logmel", "Audio feature preset for the audio scorer (logmel, cremad_stft, vggsound_stft, ks_fbank)."
    )
    audio_frames: int | None = opt(
        None, "Pad/crop audio features to this many frames (default: 95th percentile of the data)."
    )
    batch_size: int = opt(64, "Training batch size.")
    lr: float = opt(1e-2, "Peak learning rate (AdamW; linear warm-up, then cosine decay).")
    weight_decay: float = opt(1e-4, "AdamW weight decay.")
    label_smoothing: float = opt(
        0.0, "Label smoothing of the scorers' cross-entropy (softer, better-ranked confidences)."
    )
    loss_truncation: float = opt(
        0.0,
        "Experimental, off by default: leave out of each batch's loss this share of its highest-loss samples "
        "(ramped in over the first two epochs; loss truncation, Kang & Hashimoto 2020), so that clips whose evidence "
        "in the modality is damaged teach the scorer less and keep a low confidence. Measured at 0.2 "
        "(benchmarks/results/loss_truncation.md): the audio AUROCs of ob1 (not of ob2, ot1) come near the "
        "clean-trained ceiling, but the visual scorers stay near their plateau (0.31 clean accuracy against 0.96). "
        "0 = plain cross-entropy.",
    )
    truncation_after: float = opt(
        0.0,
        "Experimental, with --loss-truncation: leave the high-loss share out only once the job's best inner loss "
        "has gained this share of ln C (the scorer then knows what intact evidence looks like; a visual scorer "
        "still on its initial plateau is not starved of its hard clips). Converging schedule only; the share is "
        "then left out in full, without the two-epoch ramp. 0 = from the first epochs, ramped (the earlier "
        "behaviour). See benchmarks/results/loss_truncation.md.",
    )
    augment: bool = opt(
        True,
        "Random shifts of the frames, time rolls and a frequency mask of the audio while training "
        "(mmcurate.score.augment).",
    )
    calibration: str = opt(
        "floor",
        "Calibrate each modality's confidences, cross-fitted over the folds (no sample calibrates itself): "
        "floor = temperature scaling plus a label-noise floor, temperature = temperature scaling only, "
        "none = the raw averaged softmax.",
        choices=CALIBRATIONS,
    )
    group_folds: bool | None = opt(
        None,
        "Keep each manifest group (speaker, actor, source video) in one fold, so no scorer has seen the sample's "
        "group. Default: on whenever the manifest has at least 4 groups per fold (said in the log and scores.json).",
        show_default=False,
    )
    seed: int = opt(0, "Random seed; same seed, inputs and config give identical outputs.")
    # execution only (not hashed)
    device: str = opt("auto", "auto (CUDA when present), cpu, cuda, cuda:N.")
    workers: int = opt(
        0, "Decoding threads (in memory) or DataLoader processes (per batch); 0 = torch's thread count."
    )
    memory_budget_gb: float = opt(
        4.0,
        "Without the tensor cache: decode the whole set into memory when it fits in this much; otherwise decode "
        "per batch (DataLoader workers).",
    )
    tensor_cache: bool = opt(
        True,
        "Decode once into INGEST_DIR/tensor_cache/ (frames uint8 + audio float16: about 35 KB a 1-s clip at 3 frames "
        "of 48 px; "
        "entries of changed data are removed) and memory-map it: reruns, seeds and parallel jobs reuse one decode "
        "and memory does not grow with the set. Off, or when the disk lacks room: --memory-budget-gb decides.",
    )

    EXECUTION_FIELDS = ("device", "workers", "memory_budget_gb", "tensor_cache")
    #: fields added after scores were first written, with the value that reproduces the earlier scorers:
    #: hashed only when set otherwise, so scores made before a field existed keep their scorer id
    LATER_FIELDS: ClassVar[dict[str, Any]] = {"loss_truncation": 0.0, "truncation_after": 0.0}

    def __post_init__(self) -> None:
        if self.repeats is not None and self.repeats < 1:
            raise MMCurateError(f"--repeats must be at least 1 (got {self.repeats})")
        if self.folds < 2:
            raise MMCurateError(f"--folds must be at least 2 for out-of-fold scores (got {self.folds})")
        if self.epochs is not None and self.epochs < 1:
            raise MMCurateError(f"--epochs must be at least 1 (got {self.epochs})")
        if self.avg_last is not None and (self.epochs is None or not 1 <= self.avg_last <= self.epochs):
            raise MMCurateError(
                f"--avg-last needs a fixed --epochs and must be between 1 and it (got {self.avg_last})"
            )
        if self.max_epochs < 8:
            raise MMCurateError(f"--max-epochs must be at least 8 (got {self.max_epochs})")
        if self.patience < 1 or self.restarts < 0:
            raise MMCurateError(
                f"--patience must be at least 1 and --restarts 0 or more (got {self.patience}, {self.restarts})"
            )
        if not (math.isfinite(self.inner_fraction) and 0.0 <= self.inner_fraction <= 0.5):
            raise MMCurateError(f"--inner-fraction must be in [0, 0.5] (got {self.inner_fraction})")
        if self.frame_norm not in ("frame", "imagenet"):
            raise MMCurateError(f"--frame-norm must be frame or imagenet (got {self.frame_norm!r})")
        if self.train_frames < 1 or self.train_frames > self.num_frames:
            raise MMCurateError(
                f"--train-frames must be between 1 and --num-frames {self.num_frames} (got {self.train_frames})"
            )
        if self.batch_size < 2:
            raise MMCurateError(f"--batch-size must be at least 2 (got {self.batch_size})")
        if self.calibration not in CALIBRATIONS:
            raise MMCurateError(f"--calibration must be one of {', '.join(CALIBRATIONS)} (got {self.calibration!r})")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise MMCurateError(f"--lr must be a positive number (got {self.lr})")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise MMCurateError(f"--weight-decay must be 0 or more (got {self.weight_decay})")
        if not (math.isfinite(self.label_smoothing) and 0.0 <= self.label_smoothing < 1.0):
            raise MMCurateError(f"--label-smoothing must be in [0, 1) (got {self.label_smoothing})")
        if not (math.isfinite(self.loss_truncation) and 0.0 <= self.loss_truncation < 0.9):
            raise MMCurateError(f"--loss-truncation must be in [0, 0.9) (got {self.loss_truncation})")
        if not (math.isfinite(self.truncation_after) and 0.0 <= self.truncation_after < 1.0):
            raise MMCurateError(f"--truncation-after must be in [0, 1) (got {self.truncation_after})")
        for name, value in (
            ("--width", self.width),
            ("--image-size", self.image_size),
            ("--audio-frames", self.audio_frames),
        ):
            if value is not None and value < 1:
                raise MMCurateError(f"{name} must be at least 1 (got {value})")
        if self.num_frames < 1:
            raise MMCurateError(f"--num-frames must be at least 1 (got {self.num_frames})")
        check_seed("--seed", self.seed)
        if self.workers < 0:
            raise MMCurateError(f"--workers must be 0 or more (got {self.workers})")
        if not (math.isfinite(self.memory_budget_gb) and self.memory_budget_gb >= 0):
            raise MMCurateError(f"--memory-budget-gb must be 0 or more (got {self.memory_budget_gb})")

    def resolved(self, on_gpu: bool) -> ScoreConfig:
        """This config with device-dependent sizes filled in."""
        defaults = GPU_DEFAULTS if on_gpu else CPU_DEFAULTS
        return dataclasses.replace(
            self,
            width=self.width or defaults["width"],
            image_size=self.image_size or defaults["image_size"],
            repeats=self.repeats or defaults["repeats"],
            avg_last=(self.avg_last or max(1, self.epochs // 2)) if self.epochs is not None else None,
        )

    def content_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in self.EXECUTION_FIELDS:
            d.pop(k, None)
        for k, unchanged in self.LATER_FIELDS.items():
            if d.get(k) == unchanged:
                d.pop(k)
        return d

    def content_hash(self) -> str:
        if self.width is None or self.image_size is None or self.repeats is None:
            raise ValueError("hash a resolved ScoreConfig")
        return config_hash(self.content_dict(), length=10)

    def scorer_id(self) -> str:
        """Architecture + config hash + seed, e.g. ``resnet18-w8-oof5-3f1c2a9b0d-seed0``."""
        return f"resnet18-w{self.width}-oof{self.folds}-{self.content_hash()}-seed{self.seed}"

"""``mmcurate reeval``: every option of the stage, written once, and how they resolve into the settings every
run shares (:class:`~mmcurate.reeval.settings.TrainConfig`, :class:`~mmcurate.reeval.settings.TensorSettings`,
with device-dependent defaults).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmcurate.common.errors import MMCurateError
from mmcurate.common.options import nested, opt
from mmcurate.execution.config import ExecutionConfig
from mmcurate.models.fusion import FUSIONS
from mmcurate.reeval.settings import (
    DEVICE_DEFAULTS,
    OPTIMIZER_DEFAULTS,
    OPTIMIZERS,
    TensorSettings,
    TrainConfig,
)

#: largest accepted seed (seeds are combined with salts into 64-bit generator seeds)
MAX_SEED = 2**31 - 1


@dataclass(frozen=True)
class ReevalConfig:
    """``mmcurate reeval [SOURCE]``: every setting of the stage."""

    source: str | None = opt(None, argument=True)
    out: Path | None = opt(
        None,
        "Results directory (default WORKDIR/reeval). Holds results.json/.csv/.md, plots and runs/ checkpoints.",
        show_default=False,
    )
    methods: str = opt(
        "default",
        "Comma-separated methods to run, in any common spelling (ogm_ge, OGM-GE, MMCosine, ReconBoost); 'default' "
        "runs the demo's eight (audio_only, visual_only, joint, ogm_ge, greedy, pmr, agm, mmpareto), 'all' the "
        "twenty; --list-methods shows them.",
    )
    seeds: str = opt("0", "Comma-separated seeds; every method runs once per seed and the tables give mean ± std.")
    epochs: int = opt(20, "Training epochs, the same for every method.")
    batch_size: int = opt(32, "Mini-batch size.")
    lr: float | None = opt(
        None, "Learning rate (default 0.01 for sgd, 0.001 for adamw); cosine-annealed over the epochs."
    )
    optimizer: str = opt(
        "sgd", "sgd (momentum 0.9) keeps gradient modulation meaningful; adamw is an alternative.", choices=OPTIMIZERS
    )
    weight_decay: float | None = opt(None, "Weight decay (default 1e-4 for sgd, 1e-2 for adamw).")
    device: str = opt(
        "auto", "auto (CUDA when present, else CPU), cpu, cuda or cuda:N. The output says which was used."
    )
    width: int | None = opt(None, "ResNet-18 base width (64 = standard). Default 8 on CPU, 32 on CUDA.")
    image_size: int | None = opt(
        None,
        "Frames are resized to this square size. Default 32 on CPU, 64 on CUDA: smaller than score's 48 on purpose, "
        "to fit every method x seed in a CPU budget; methods are compared with each other on the same frames, "
        "while score's per-sample d needs a visual scorer that is not handicapped by its input size.",
    )
    num_frames: int = opt(3, "Frames per clip, evenly spread.")
    fusion: str = opt(
        "concat",
        "Fusion head of the joint models. film and gated have no per-modality logits (ogm_ge needs them).",
        choices=FUSIONS,
    )
    bins: int = opt(
        10, "Equal-width discrepancy bins over [-1, 1] for an ingest+score SOURCE (a balanced export carries its own)."
    )
    audio_preset: str | None = opt(
        None, "Spectrogram preset of mmcurate.features (default: the data module's default)."
    )
    method_params: tuple[str, ...] = opt(
        help="Override a method hyper-parameter, e.g. ogm_ge.alpha=0.8, gblending.super_epoch=5, greedy.window=5, "
        "pmr.alpha=1.0, pmr.coefficient=clipped, agm.variant=balancemm, mmpareto.gamma=1.5 (defaults and variants: "
        "mmcurate/reeval/README.md). Repeatable.",
        flag="--method-param",
        metavar="METHOD.KEY=VALUE",
        default_factory=tuple,
    )
    resplit: bool = opt(
        False,
        "Re-draw the train/val split for every seed (test fixed; stratified by bin and class, groups kept whole), so "
        "the spread over seeds includes split variance; the tables say which variance they show.",
    )
    fresh: bool = opt(False, "Ignore checkpoints and finished runs in --out and train everything again.")
    overwrite: bool = opt(
        False,
        "Write into an --out folder that holds files but is not a reeval output: reeval adds its own files "
        "(results.*, plots, timings.json, runs/) and replaces only those. Without it such a folder is refused.",
    )
    threads: int = opt(
        1,
        "CPU threads per training run (tiny CPU models gain little from more; shared cores lose a lot). On CPU the "
        "local engine trains cores / threads runs at once; the results are the same however many train together.",
    )
    cache_dir: str | None = opt(None, "datasets cache directory for a Hub SOURCE.")
    execution: ExecutionConfig = nested(ExecutionConfig)

    def __post_init__(self) -> None:
        for name, value, low in (
            ("--epochs", self.epochs, 1),
            ("--batch-size", self.batch_size, 2),
            ("--num-frames", self.num_frames, 1),
            ("--bins", self.bins, 2),
            ("--threads", self.threads, 1),
            ("--width", self.width, 1),
            ("--image-size", self.image_size, 8),
        ):
            if value is not None and value < low:
                raise MMCurateError(f"{name} must be at least {low} (got {value})")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise MMCurateError(f"--lr must be a positive number (got {self.lr})")
        if self.weight_decay is not None and not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise MMCurateError(f"--weight-decay must be 0 or more (got {self.weight_decay})")
        self.method_list()
        self.seed_list()
        self.param_overrides()

    def method_list(self) -> list[str]:
        """'all' or a comma list in any accepted spelling -> registry names (duplicates dropped, order kept)."""
        from mmcurate.reeval.methods import DEFAULT_METHODS, METHODS, lookup_method

        names = [t.strip() for t in self.methods.split(",") if t.strip()]
        if [n.lower() for n in names] == ["all"]:
            return list(METHODS)
        if [n.lower() for n in names] == ["default"]:
            return list(DEFAULT_METHODS)
        if not names:
            raise MMCurateError("--methods is empty")
        unknown = [n for n in names if lookup_method(n) is None]
        if unknown:
            raise MMCurateError(
                f"--methods: unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)} or 'all' "
                "(mmcurate reeval --list-methods)"
            )
        return list(dict.fromkeys(str(lookup_method(n)) for n in names))

    def seed_list(self) -> list[int]:
        try:
            seeds = [int(t) for t in self.seeds.split(",") if t.strip()]
        except ValueError:
            raise MMCurateError(f"--seeds {self.seeds!r}: expected comma-separated integers such as 0,1,2") from None
        if not seeds:
            raise MMCurateError("--seeds is empty")
        if any(not 0 <= s <= MAX_SEED for s in seeds):
            raise MMCurateError(f"--seeds {self.seeds!r}: seeds must lie between 0 and {MAX_SEED}")
        return list(dict.fromkeys(seeds))

    def param_overrides(self) -> dict[str, dict[str, Any]]:
        """('ogm_ge.alpha=0.8', ...) -> {'ogm_ge': {'alpha': 0.8}}; values parsed as YAML scalars."""
        import yaml

        out: dict[str, dict[str, Any]] = {}
        for item in self.method_params:
            key, sep, raw = item.partition("=")
            method, dot, param = key.strip().partition(".")
            if not sep or not dot or not method or not param:
                raise MMCurateError(f"--method-param {item!r}: expected METHOD.KEY=VALUE, e.g. ogm_ge.alpha=0.8")
            try:
                value = yaml.safe_load(raw)
            except yaml.YAMLError:
                value = raw
            out.setdefault(_canonical_method(method.strip()), {})[param] = value
        return out

    def train_config(self, device_type: str) -> TrainConfig:
        """The settings every run of the comparison shares, with device-dependent defaults filled in."""
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr if self.lr is not None else OPTIMIZER_DEFAULTS[self.optimizer]["lr"],
            optimizer=self.optimizer,
            weight_decay=self.weight_decay
            if self.weight_decay is not None
            else OPTIMIZER_DEFAULTS[self.optimizer]["weight_decay"],
            width=self.width or DEVICE_DEFAULTS[device_type]["width"],
            fusion=self.fusion,
            method_params=self.param_overrides(),
        )

    def tensor_settings(self, device_type: str) -> TensorSettings:
        return TensorSettings(
            image_size=self.image_size or DEVICE_DEFAULTS[device_type]["image_size"],
            num_frames=self.num_frames,
            audio_preset=self.audio_preset,
        )


def _canonical_method(method: str) -> str:
    """A --method-param method name in any spelling -> its registry name (unknown: unchanged, checked later)."""
    from mmcurate.reeval.methods import lookup_method

    return lookup_method(method) or method

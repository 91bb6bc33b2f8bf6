"""What every run of a re-evaluation is trained with, and how media become tensors.

One :class:`TrainConfig` is shared by every method and seed of a comparison, which is the point
of the protocol: same data, same budget, same optimiser, same model size for all. Its hash names
the runs, so a changed setting never resumes an old checkpoint. The stage's options
(:class:`mmcurate.reeval.config.ReevalConfig`) resolve into these; they live apart so that the data,
the methods and the trainer can use them without importing the option parsing, which looks the
methods up (config -> methods -> data -> config was a circle).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: optimisers the trainer knows
OPTIMIZERS: tuple[str, ...] = ("sgd", "adamw")


@dataclass(frozen=True)
class TensorSettings:
    """How clips become model inputs (passed on to :mod:`mmcurate.data` when it is installed).

    ``image_size``: frames are resized to a square of this side. ``num_frames``: frames per clip,
    evenly spread (OGM-GE and BalanceMM use 3). ``audio_preset``: the :mod:`mmcurate.features`
    preset for spectrograms (None: the data module's default).
    """

    image_size: int = 32
    num_frames: int = 3
    audio_preset: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and model settings shared by every run of a comparison.

    Defaults are sized for a CPU: a width-8 ResNet-18 pair trains an ``av_digits``-sized set in
    minutes per method. SGD with momentum is the default because gradient-modulation methods
    (OGM-GE, AGM, MMPareto) rescale raw gradients, which an adaptive optimiser partly undoes.
    """

    epochs: int = 20
    batch_size: int = 32
    lr: float = 0.01
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    width: int = 8
    fusion: str = "concat"
    #: per-method hyper-parameter overrides: {"ogm_ge": {"alpha": 0.5}}
    method_params: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def params_for(self, method: str) -> dict[str, Any]:
        """The overrides given for ``method`` (empty when none)."""
        return dict(self.method_params.get(method, {}))


#: per-optimiser defaults of the learning rate and weight decay
OPTIMIZER_DEFAULTS: dict[str, dict[str, float]] = {
    "sgd": {"lr": 0.01, "weight_decay": 1e-4},
    "adamw": {"lr": 1e-3, "weight_decay": 1e-2},
}
#: CPU-sized and GPU-sized defaults of the model width and frame size
DEVICE_DEFAULTS: dict[str, dict[str, int]] = {
    "cpu": {"width": 8, "image_size": 32},
    "cuda": {"width": 32, "image_size": 64},
}

"""The interface every re-evaluated method implements, and the plain joint baseline's pieces.

A method is a small object with a few hooks, called by the one generic training loop in
:mod:`mmcurate.reeval.trainer`::

    model = method.build_model(num_classes)
    method.on_train_start(model, ctx)                  # fresh runs only (not on resume)
    for each epoch:
        method.on_epoch_start(model, ctx)              # e.g. G-Blending's look-ahead weight estimate
        for each batch of method.train_batches(ctx)    # None: the shuffled train split, or the part of it
                                                       # that method.train_subset(data) keeps (default: all)
            out = method.forward(model, batch, ctx)    # an optional model wrapper lives here
            loss, logs = method.loss(model, batch, out, ctx)
            loss.backward()
            method.after_backward(model, batch, out, ctx)   # gradient modulation lives here
            optimizer.step()
        method.on_epoch_end(model, ctx)                # e.g. G-Blending's weight re-estimation
    method.predict(model, batch)                        # evaluation, model in eval mode

Running state a method keeps between steps (OGM-GE's noise generator, AGM's running scores,
PMR's prototypes) goes in ``state_dict`` so a resumed run continues exactly.

``diagnostics`` names the history entries (per-epoch means of what ``loss``/``after_backward``
logged, ``epoch_end_*`` for what ``on_epoch_end`` returned) that the report plots as the method's
trajectory over training (``diagnostics_<method>.png``) and copies into ``results.json``.

``ctx`` also carries the run's optimiser, its :class:`~mmcurate.reeval.settings.TrainConfig` (``cfg``) and
results directory, for methods whose published algorithm needs them: MLA takes one optimiser
step per modality per batch, ReconBoost starts each boosting phase with fresh optimiser state,
UMT trains (or reuses) the comparison's unimodal runs as its teachers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from mmcurate.common.errors import MMCurateError
from mmcurate.models import AVClassifier, AVOutput
from mmcurate.models.fusion import FUSIONS_WITH_MODALITY_LOGITS
from mmcurate.reeval.batches import Batch
from mmcurate.reeval.data import ReevalData

if TYPE_CHECKING:
    from mmcurate.reeval.settings import TrainConfig


@dataclass
class Prediction:
    """Evaluation output: fused logits and, where defined, per-modality logits."""

    logits: torch.Tensor
    audio_logits: torch.Tensor | None = None
    visual_logits: torch.Tensor | None = None


@dataclass
class TrainContext:
    """Where training stands, and what a method may read besides the batch."""

    epoch: int
    num_epochs: int
    step: int  # optimiser steps taken so far in this run (0 at the first step)
    steps_per_epoch: int
    device: torch.device
    data: ReevalData
    batch_size: int
    seed: int
    #: the run's settings (optimiser, width, ...): for methods that train temporary model copies
    cfg: TrainConfig | None = None
    #: the learning rate of the current epoch (after the schedule)
    lr: float | None = None
    #: the run's optimiser (None outside a training run, e.g. in a unit test that steps by hand)
    optimizer: torch.optim.Optimizer | None = None
    #: the comparison's results directory (where runs/<method>/ live)
    out_dir: Path | None = None
    #: another method's run of this comparison, same seed and settings, trained (or reused) on demand:
    #: ``run_of("audio_only") -> (its result, its validation-selected best.pt)``. Set by the trainer, so a
    #: method that builds on other runs (UMT's teachers) needs no import of the trainer, which imports it.
    run_of: Callable[[str], tuple[Any, Path]] | None = None


#: BalanceMM's taxonomy of imbalance methods, plus the reference rows
CATEGORIES: tuple[str, ...] = ("baseline", "data", "feed-forward", "objective", "optimisation")


class Method:
    """Base class: plain cross-entropy on the model's logits, no modulation.

    Subclasses set ``name`` (the registry key), ``title`` (the table row), ``reference`` and
    ``defaults`` (hyper-parameters, overridable with ``--method-param name.key=value``), and the
    metadata ``mmcurate reeval --list-methods`` prints: ``category`` (one of :data:`CATEGORIES`),
    ``paper`` (the paper's title) and ``aliases`` (other spellings accepted on the command line).
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    category: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    #: "unimodal" rows are the audio-only / visual-only references; "joint" rows use both inputs
    kind: ClassVar[str] = "joint"
    defaults: ClassVar[dict[str, Any]] = {}
    #: the method reads the fusion head's per-modality logits (concat/sum only)
    needs_modality_logits: ClassVar[bool] = False
    #: history key -> plot label of the method's diagnostics (see the module docstring)
    diagnostics: ClassVar[dict[str, str]] = {}

    def __init__(self, width: int, fusion: str = "concat", epochs: int = 1, seed: int = 0, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise MMCurateError(f"method {self.name}: unknown parameter(s) {', '.join(unknown)} (known: {known})")
        if self.needs_modality_logits and fusion not in FUSIONS_WITH_MODALITY_LOGITS:
            raise MMCurateError(
                f"method {self.name} needs per-modality logits, which the {fusion} head does not have; "
                f"use --fusion {' or '.join(FUSIONS_WITH_MODALITY_LOGITS)}"
            )
        self.width = width
        self.fusion = fusion
        self.epochs = epochs
        self.seed = seed
        self.params: dict[str, Any] = {**self.defaults, **params}

    # -- hooks ---------------------------------------------------------------------------------
    def build_model(self, num_classes: int) -> nn.Module:
        return AVClassifier(num_classes, self.width, self.fusion)

    def forward(self, model: nn.Module, batch: Batch, ctx: TrainContext) -> Any:
        return model(batch.audio, batch.frames)

    def loss(
        self, model: nn.Module, batch: Batch, out: Any, ctx: TrainContext
    ) -> tuple[torch.Tensor, dict[str, float]]:
        return F.cross_entropy(out.logits, batch.labels), {}

    def after_backward(self, model: nn.Module, batch: Batch, out: Any, ctx: TrainContext) -> dict[str, float]:
        return {}

    def train_subset(self, data: ReevalData) -> torch.Tensor | None:
        """Positions in ``data.train`` the training loop draws batches from; None: all of them.

        A method that keeps part of train aside (G-Blending's hold-out) returns the rest. Must
        depend on the data only, so a resumed run trains on the same samples.
        """
        return None

    def on_train_start(self, model: nn.Module, ctx: TrainContext) -> None:
        """Called once before the first epoch of a fresh run (not when resuming)."""

    def train_batches(self, ctx: TrainContext) -> Iterable[Batch] | None:
        """This epoch's training batches; None (the default) means the shuffled train split.

        Called after :meth:`on_epoch_start`. Modality valuation trains on a re-sampled split here.
        """
        return None

    def on_epoch_start(self, model: nn.Module, ctx: TrainContext) -> None:
        """Called before each training epoch, model in train mode."""

    def on_epoch_end(self, model: nn.Module, ctx: TrainContext) -> dict[str, float]:
        """Called after each training epoch, before validation."""
        return {}

    @torch.no_grad()
    def predict(self, model: nn.Module, batch: Batch) -> Prediction:
        out: AVOutput = model(batch.audio, batch.frames)
        return Prediction(out.logits, out.audio_logits, out.visual_logits)

    # -- resumable state -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "reference": self.reference, "params": dict(self.params)}

    # -- what the method does when, and what its runs say -------------------------------------
    def schedule(self) -> dict[str, list[int]]:
        """Event name -> the epochs (0-based) of a run of ``self.epochs`` epochs in which it happens.

        An event is anything the method does only in some epochs: a diagnosis, a weight estimate, a
        phase, the end of a warm-up. Derived from the method's own parameters (scaled schedules
        included), so a test can run every method long enough for each of its events to happen at
        least once (:func:`mmcurate.reeval.methods.epochs_for_every_event`): a method that overrides
        an epoch hook must say here when it acts. Empty: nothing depends on the epoch.
        """
        return {}

    @classmethod
    def run_notes(cls, histories: list[list[dict[str, Any]]]) -> list[str]:
        """Sentences for ``results.md`` about what the runs (one history per seed) say about the method itself,
        such as a weight estimated on too few clips or a threshold that never binds. Default: none."""
        return []


def epochs_where(epochs: int, test: Any) -> list[int]:
    """The epochs of ``range(epochs)`` for which ``test(epoch)`` holds (a schedule's helper)."""
    return [e for e in range(epochs) if test(e)]


def in_window(epoch: int, start: int, end: int | None) -> bool:
    """Whether ``epoch`` lies in the inclusive modulation window [start, end] (end None: no end)."""
    return epoch >= start and (end is None or epoch <= end)


def encoder_parameters(model: nn.Module, modality: str) -> list[nn.Parameter]:
    """The parameters of the ``audio`` or ``visual`` encoder of a joint model."""
    return list(getattr(model, f"{modality}_encoder").parameters())


def label_probability_sum(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Sum over the batch of the softmax probability of the true class."""
    return float(F.softmax(logits.detach(), dim=1).gather(1, labels[:, None]).sum())


def head_without(model: nn.Module, a: torch.Tensor, v: torch.Tensor, keep: str) -> torch.Tensor:
    """Fused logits with only ``keep``'s features ("audio"/"visual"); the other's are zeroed.

    This is how the late-fusion papers remove a modality (Valuate-and-Enhance zeroes the encoder
    features before the fusion head): it works for every fusion head, and for the concat head it
    equals the kept modality's split logits plus the whole bias.
    """
    if keep == "audio":
        return model.head(a, torch.zeros_like(v)).logits
    if keep == "visual":
        return model.head(torch.zeros_like(a), v).logits
    raise ValueError(f"keep must be 'audio' or 'visual', got {keep!r}")


def cpu_generator(seed: int, salt: int) -> torch.Generator:
    """A CPU generator for a method's own random draws, seeded from the run seed and a per-method salt.

    Draws on the CPU make them identical on every device; the state goes in ``state_dict``.
    """
    return torch.Generator().manual_seed(salt + 1_000_003 * seed)

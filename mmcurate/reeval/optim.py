"""The optimiser and schedule every run trains with, in one place.

The trainer builds the run's optimiser here; a method that trains temporary copies of the model
(G-Blending's per-head look-ahead) builds its optimisers here too, so they differ from the run's
only in the learning rate they start from.
"""

from __future__ import annotations

import torch
from torch import nn

from mmcurate.reeval.settings import TrainConfig


def make_optimizer(model: nn.Module, cfg: TrainConfig, lr: float | None = None) -> torch.optim.Optimizer:
    """SGD (momentum, weight decay) or AdamW over ``model``'s parameters; ``lr`` overrides ``cfg.lr``."""
    rate = cfg.lr if lr is None else lr
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=rate, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=rate, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def build_optimizer(
    model: nn.Module, cfg: TrainConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """The run's optimiser with a cosine schedule over the epochs."""
    opt = make_optimizer(model, cfg)
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs))

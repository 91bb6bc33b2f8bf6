"""Balance settings: what the selection and its splits depend on."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from mmcurate.balance.sampling import SHORTFALL_CHOICES
from mmcurate.common.errors import MMCurateError
from mmcurate.common.hashing import config_hash


@dataclass(frozen=True)
class BalanceConfig:
    bins: int = 10
    edges: tuple[float, ...] | None = None
    per_bin: int | None = None
    size: int | None = None
    shortfall: str = "ask"
    stratify: str = "label"
    split: str = "80/10/10"
    ignore_groups: bool = False
    seed: int = 0
    #: leave out samples whose discrepancy_std exceeds this (their bin is uncertain); None = keep all
    max_discrepancy_std: float | None = None
    # export
    max_shard_size: str = "500MB"
    include_features: bool = True
    pretty_name: str | None = None
    #: card provenance overrides: source dataset ``name`` and ``license``
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.shortfall not in SHORTFALL_CHOICES:
            raise MMCurateError(f"--shortfall must be one of {', '.join(SHORTFALL_CHOICES)} (got {self.shortfall!r})")
        if self.max_discrepancy_std is not None and not self.max_discrepancy_std >= 0:
            raise MMCurateError(f"--max-discrepancy-std must be a non-negative number (got {self.max_discrepancy_std})")
        if self.stratify not in ("label", "none"):
            raise MMCurateError(f"--stratify must be label or none (got {self.stratify!r})")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["edges"] = list(self.edges) if self.edges is not None else None
        return d

    def selection_hash(self) -> str:
        """Hash of the settings that decide which samples land in which split."""
        d = self.to_dict()
        for k in ("max_shard_size", "include_features", "pretty_name", "extra"):
            d.pop(k)
        return config_hash(d)

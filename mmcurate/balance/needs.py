"""``mmcurate balance --per-bin N --dry-run``: how many more clips each bin needs, and who can supply them.

Why: the uniform set is limited by its smallest bin. Before collecting (or scoring) more clips a
researcher wants to know, per bin and class, how far the seed pool (the first pool) is from N
clips, and which classes the candidate pools (the other ``--pool`` folders, scored with
``mmcurate score SEED --candidates DIR``) hold in that bin. Everything here is a pure function
of the bin and class of each sample.

Per bin: ``have`` (seed pool), ``need = max(0, N - have)``, ``candidates`` (every other pool)
and ``short after candidates = max(0, need - candidates)``. Per class within a bin: its even
share of N (``ceil(N / classes)``: balance spreads a bin over its classes as evenly as the pool
allows), how far the seed pool is below it, and what the candidate pools hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmcurate.common.console import summary_table
from mmcurate.store.bins import bin_label


@dataclass(frozen=True)
class BinNeeds:
    """Counts per (bin, class): ``have`` in the seed pool, ``supply`` in the candidate pools."""

    per_bin: int
    classes: list[str]
    have: np.ndarray  # (bins, classes) int
    supply: np.ndarray  # (bins, classes) int

    @property
    def need(self) -> np.ndarray:
        """Clips each bin lacks in the seed pool to reach ``per_bin``."""
        return np.maximum(0, self.per_bin - self.have.sum(axis=1))

    @property
    def short_after(self) -> np.ndarray:
        """Clips each bin still lacks with every candidate pool added."""
        return np.maximum(0, self.need - self.supply.sum(axis=1))

    @property
    def share(self) -> int:
        """A class's even share of a bin's ``per_bin`` clips."""
        return math.ceil(self.per_bin / max(1, len(self.classes)))

    @property
    def class_short(self) -> np.ndarray:
        """(bins, classes): how far the seed pool is below each class's even share."""
        return np.maximum(0, self.share - self.have)

    def to_dict(self) -> dict[str, Any]:
        return {
            "per_bin": self.per_bin,
            "classes": self.classes,
            "have": self.have.tolist(),
            "candidates": self.supply.tolist(),
            "need": self.need.tolist(),
            "short_after_candidates": self.short_after.tolist(),
        }


def bin_needs(
    bins: np.ndarray, labels: np.ndarray, is_candidate: np.ndarray, classes: list[str], n_bins: int, per_bin: int
) -> BinNeeds:
    """Count seed-pool and candidate-pool samples per (bin, class); samples with a bin < 0 (outside
    the edges, or left out as bin-uncertain) count nowhere."""
    index = {c: i for i, c in enumerate(classes)}
    have = np.zeros((n_bins, len(classes)), dtype=np.int64)
    supply = np.zeros_like(have)
    for b, label, cand in zip(
        np.asarray(bins).tolist(), np.asarray(labels).tolist(), np.asarray(is_candidate).tolist(), strict=True
    ):
        if b < 0:
            continue
        (supply if cand else have)[b, index[label]] += 1
    return BinNeeds(int(per_bin), list(classes), have, supply)


def print_needs(needs: BinNeeds, edges: np.ndarray, has_candidates: bool) -> None:
    """One row per bin: what the seed pool has and needs, which of its classes are below their even
    share (class: clips short), and what the candidate pools hold in that bin (class: clips)."""
    rows = []
    for b in range(len(needs.need)):
        short = _pairs(needs.classes, needs.class_short[b]) if needs.need[b] else ""
        supply = (_pairs(needs.classes, needs.supply[b]) or "none") if has_candidates and needs.need[b] else ""
        rows.append(
            [
                b,
                bin_label(edges, b),
                int(needs.have[b].sum()),
                int(needs.need[b]),
                int(needs.supply[b].sum()) if has_candidates else "",
                int(needs.short_after[b]) if has_candidates else "",
                short,
                supply,
            ]
        )
    summary_table(
        f"clips needed to reach {needs.per_bin} per bin in the seed pool (the first pool); even share per class: "
        f"{needs.share}",
        [
            "bin",
            "range",
            "have",
            "need",
            "candidates",
            "short after",
            "classes short of share (class: clips)",
            "candidate classes (class: clips)",
        ],
        rows,
    )


def _pairs(classes: list[str], counts: np.ndarray) -> str:
    return ", ".join(f"{c}: {int(n)}" for c, n in zip(classes, counts, strict=True) if n)

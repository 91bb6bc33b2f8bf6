"""Stratified sampling: a target count per discrepancy bin, spread across classes within a bin.

Within a bin, classes get equal shares "as evenly as the pool allows" (water-filling): a class
with fewer samples than its share gives all it has, and the rest is shared among the others.
Everything is deterministic for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mmcurate.common.errors import MMCurateError

SHORTFALL_CHOICES = ("ask", "shrink", "best-effort")


def water_fill(available: np.ndarray, target: int, rng: np.random.Generator) -> np.ndarray:
    """Counts per class summing to ``min(target, available.sum())``, as equal as capacity allows.

    The level rises until the target is met; classes below the level give all they have. The
    few units left when the level is fractional go to classes chosen at random (seeded)."""
    available = np.asarray(available, dtype=np.int64)
    target = int(min(target, available.sum()))
    take = np.zeros_like(available)
    open_ = available > 0
    remaining = target
    while remaining > 0 and open_.any():
        share = remaining // int(open_.sum())
        if share == 0:
            cands = np.flatnonzero(open_)
            chosen = rng.choice(cands, size=remaining, replace=False)
            take[chosen] += 1
            break
        room = available - take
        add = np.where(open_, np.minimum(share, room), 0)
        take += add
        remaining -= int(add.sum())
        open_ = (available - take) > 0
    return take


@dataclass
class BinPlan:
    """What the sampler will do: pool and target per bin and the resulting counts."""

    edges: np.ndarray
    pool: np.ndarray  # samples available per bin
    targets: np.ndarray  # requested per bin
    take: np.ndarray  # what will be taken per bin
    policy: str  # "uniform", "shrink" or "best-effort"
    notes: list[str] = field(default_factory=list)

    @property
    def shortfall(self) -> np.ndarray:
        return self.targets - self.take

    @property
    def size(self) -> int:
        return int(self.take.sum())


def plan_bins(pool: np.ndarray, edges: np.ndarray, per_bin: int | None, size: int | None, shortfall: str) -> BinPlan:
    """Decide per-bin counts. Default target: the largest count every bin can meet.

    When a requested target cannot be met by some bin, ``shortfall`` decides: ``shrink`` lowers
    every bin to the smallest pool, ``best-effort`` keeps the target where possible and reports
    the shortfall, ``ask`` stops with an error that lays out both choices (never a silent skew).
    """
    nbins = len(pool)
    if per_bin is not None and size is not None:
        raise MMCurateError("give --per-bin or --size, not both")
    if size is not None:
        if size < nbins:
            raise MMCurateError(f"--size {size} is smaller than the number of bins ({nbins})")
        per_bin = size // nbins
    if per_bin is None:
        smallest = int(pool.min())
        if smallest == 0:
            empty = [int(b) for b in np.flatnonzero(pool == 0)]
            raise MMCurateError(
                f"bin(s) {', '.join(map(str, empty))} hold no samples, so no uniform dataset exists with these edges; "
                "use fewer --bins, custom --edges, or a target with --per-bin N --shortfall best-effort"
            )
        targets = np.full(nbins, smallest)
        return BinPlan(edges, pool, targets, targets.copy(), "uniform", [f"target = smallest bin pool = {smallest}"])
    if per_bin < 1:
        raise MMCurateError(f"--per-bin must be at least 1 (got {per_bin})")
    targets = np.full(nbins, per_bin)
    short = pool < targets
    if not short.any():
        return BinPlan(edges, pool, targets, targets.copy(), "uniform")
    smallest = int(pool.min())
    if shortfall == "shrink":
        if smallest == 0:
            raise MMCurateError(
                "--shortfall shrink: a bin is empty, so every bin would shrink to 0; "
                "use --shortfall best-effort or other --edges"
            )
        take = np.full(nbins, smallest)
        return BinPlan(edges, pool, targets, take, "shrink", [f"all bins shrunk to {smallest} (smallest pool)"])
    if shortfall == "best-effort":
        take = np.minimum(pool, targets)
        return BinPlan(edges, pool, targets, take, "best-effort", [f"{int(short.sum())} bin(s) short of the target"])
    lacking = ", ".join(f"bin {int(b)} has {int(pool[b])}" for b in np.flatnonzero(short))
    best = int(np.minimum(pool, targets).sum())
    if smallest == 0:
        raise MMCurateError(
            f"the target of {per_bin} per bin cannot be met ({lacking}) and an empty bin leaves no uniform set: "
            f"--shortfall best-effort ({best} samples, not uniform, shortfall reported), or other --bins/--edges"
        )
    raise MMCurateError(
        f"the target of {per_bin} per bin cannot be met ({lacking}). Choose: --shortfall shrink "
        f"(every bin {smallest}, {smallest * nbins} samples, exactly uniform) or --shortfall best-effort "
        f"({best} samples, near-uniform, shortfall reported)"
    )


def sample_within_bins(
    bins: np.ndarray, labels: np.ndarray, take: np.ndarray, stratify: bool, seed: int
) -> np.ndarray:
    """Indices of the selected samples (sorted), ``take[b]`` from bin ``b``.

    With ``stratify`` the per-bin count is water-filled across the bin's classes; otherwise
    samples are drawn uniformly from the bin."""
    rng = np.random.default_rng(seed)
    chosen: list[np.ndarray] = []
    classes = np.unique(labels)
    for b in range(len(take)):
        in_bin = np.flatnonzero(bins == b)
        if take[b] == 0 or len(in_bin) == 0:
            continue
        if not stratify:
            chosen.append(rng.choice(in_bin, size=int(take[b]), replace=False))
            continue
        by_class = [in_bin[labels[in_bin] == c] for c in classes]
        counts = water_fill(np.array([len(x) for x in by_class]), int(take[b]), rng)
        for members, n in zip(by_class, counts):
            if n:
                chosen.append(rng.choice(members, size=int(n), replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)

"""Train/val/test splits stratified by discrepancy bin and class, with groups kept whole.

Without groups, samples are dealt in (bin, class) order to the split furthest below its quota,
so every (bin, class) cell is split in proportion to within one sample. With groups (speaker,
source video, YouTube id), whole groups are placed, largest first, in the split where they
best restore the per-bin and per-class proportions: no group ever appears in two splits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmcurate.common.errors import MMCurateError

SPLIT_NAMES = ("train", "val", "test")


def parse_ratios(text: str) -> tuple[float, float, float]:
    """``"80/10/10"`` (or ``0.8,0.1,0.1``) -> fractions summing to 1."""
    parts = [p for p in text.replace(",", "/").split("/") if p.strip()]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise MMCurateError(f"--split expects train/val/test shares such as 80/10/10 (got {text!r})") from None
    if len(values) != 3 or any(v < 0 for v in values) or sum(values) <= 0:
        raise MMCurateError(f"--split expects three non-negative shares such as 80/10/10 (got {text!r})")
    if values[0] == 0:
        raise MMCurateError("--split needs a non-zero train share")
    total = sum(values)
    return (values[0] / total, values[1] / total, values[2] / total)


def assign_splits(
    bins: np.ndarray, labels: np.ndarray, groups: Sequence[str | None] | None, ratios: Sequence[float], seed: int
) -> np.ndarray:
    """Split name per sample (``train``/``val``/``test``)."""
    ratios = np.asarray(ratios, dtype=float)
    if groups is not None and any(g is not None for g in groups):
        return _grouped(bins, labels, groups, ratios, seed)
    return _ungrouped(bins, labels, ratios, seed)


def _ungrouped(bins: np.ndarray, labels: np.ndarray, ratios: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    _, label_codes = np.unique(labels, return_inverse=True)
    order = np.lexsort((rng.permutation(len(bins)), label_codes, bins))
    counts = np.zeros(3)
    out = np.empty(len(bins), dtype=object)
    for i, idx in enumerate(order):
        deficit = ratios * (i + 1) - counts
        s = int(np.argmax(deficit))
        counts[s] += 1
        out[idx] = SPLIT_NAMES[s]
    return out


def _grouped(
    bins: np.ndarray, labels: np.ndarray, groups: Sequence[str | None], ratios: np.ndarray, seed: int
) -> np.ndarray:
    keys = np.asarray([g if g is not None else f"\0sample{i}" for i, g in enumerate(groups)], dtype=object)
    uniq, inverse = np.unique(keys, return_inverse=True)
    needed = int((ratios > 0).sum())
    if len(uniq) < needed:
        raise MMCurateError(
            f"only {len(uniq)} group(s) for {needed} non-empty splits: a group cannot span splits; "
            "use --ignore-groups or a split with fewer parts (e.g. 90/0/10)"
        )
    _, label_codes = np.unique(labels, return_inverse=True)
    nb, nc = int(bins.max()) + 1, int(label_codes.max()) + 1
    # per-group profile: counts per bin and per class, plus its size
    bin_counts = np.zeros((len(uniq), nb))
    cls_counts = np.zeros((len(uniq), nc))
    np.add.at(bin_counts, (inverse, bins), 1)
    np.add.at(cls_counts, (inverse, label_codes), 1)
    sizes = bin_counts.sum(axis=1)
    total_bins, total_cls, total = bin_counts.sum(0), cls_counts.sum(0), sizes.sum()
    rng = np.random.default_rng(seed)
    tiebreak = rng.permutation(len(uniq))
    order = np.lexsort((tiebreak, -sizes))
    cur_bins = np.zeros((3, nb))
    cur_cls = np.zeros((3, nc))
    cur_size = np.zeros(3)
    split_of = np.empty(len(uniq), dtype=np.int64)
    for g in order:
        best, best_cost = 0, np.inf
        for s in range(3):
            if ratios[s] == 0:
                continue

            def dev(cb: np.ndarray, cc: np.ndarray, n: float, s: int = s) -> float:
                return float(
                    ((cb - ratios[s] * total_bins) ** 2).sum()
                    + ((cc - ratios[s] * total_cls) ** 2).sum()
                    + 4.0 * (n - ratios[s] * total) ** 2
                )

            cost = dev(cur_bins[s] + bin_counts[g], cur_cls[s] + cls_counts[g], cur_size[s] + sizes[g]) - dev(
                cur_bins[s], cur_cls[s], cur_size[s]
            )
            if cost < best_cost:
                best, best_cost = s, cost
        split_of[g] = best
        cur_bins[best] += bin_counts[g]
        cur_cls[best] += cls_counts[g]
        cur_size[best] += sizes[g]
    # every non-empty split needs at least one group: move the smallest group of the largest split
    for s in range(3):
        if ratios[s] > 0 and cur_size[s] == 0:
            donor = int(np.argmax(cur_size))
            members = [g for g in range(len(uniq)) if split_of[g] == donor]
            g = min(members, key=lambda m: (sizes[m], tiebreak[m]))
            split_of[g] = s
            cur_size[donor] -= sizes[g]
            cur_size[s] += sizes[g]
    return np.asarray([SPLIT_NAMES[split_of[i]] for i in inverse], dtype=object)

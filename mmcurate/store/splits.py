"""The one split vocabulary of mmcurate, and the one way to draw splits.

Every stage speaks of ``train``, ``val`` and ``test``. Releases, manifests and Hub datasets spell
them in other ways (``training``, ``validate``, ``validation``, ``dev``, ``testing``): they are read
through :func:`normalize_split`, and written to the Hub under its canonical names
(:func:`hub_split_name`: ``val`` becomes ``validation``).

Two splitters cover every need, so the rules cannot drift apart between stages:

* :func:`assign_splits`: per-sample splits stratified by (bin, class), groups (speaker, source
  video, YouTube id) kept whole. ``mmcurate balance`` uses it with discrepancy bins; ``mmcurate
  reeval`` uses it (one bin) when a source has no splits, or no validation split.
* :func:`split_groups`: a whole group list cut by a seeded hash rank, for dataset adapters whose
  release defines groups but no split (CREMA-D actors): adding one group moves no other group.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np

from mmcurate.common.errors import MMCurateError

#: mmcurate's split names, in order.
SPLITS: tuple[str, ...] = ("train", "val", "test")

#: Split names found in releases, manifests and Hub datasets -> mmcurate's names.
SPLIT_ALIASES: dict[str, str] = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validate": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}

#: mmcurate split names renamed to the Hub's canonical split names (the Hub and
#: ``load_dataset`` infer ``validation`` from a ``val-*`` file name anyway, so both ways of
#: loading agree only if the export uses the canonical name itself).
HUB_SPLIT_NAMES: dict[str, str] = {"val": "validation", "valid": "validation", "dev": "validation"}


def normalize_split(value: str) -> str | None:
    """``train``/``val``/``test`` for any spelling in :data:`SPLIT_ALIASES`, else None."""
    return SPLIT_ALIASES.get(str(value).strip().lower())


def normalize_splits(raw: Sequence[str | None], origin: str) -> list[str | None]:
    """Map split names to train/val/test (None or empty stays None); an unknown name is an error naming ``origin``."""
    out: list[str | None] = []
    for name in raw:
        if name is None or name == "":
            out.append(None)
            continue
        key = normalize_split(name)
        if key is None:
            raise MMCurateError(f"{origin}: unknown split name {name!r}; use train, val (or validation) and test")
        out.append(key)
    return out


def hub_split_name(split: str) -> str:
    """The Hub split name for a selection split (``val`` -> ``validation``)."""
    name = HUB_SPLIT_NAMES.get(split, split)
    if not name.replace("_", "").isalnum():
        raise MMCurateError(f"split name '{split}' cannot be a Hub split; use letters, digits and underscores")
    return name


def parse_ratios(text: str) -> tuple[float, float, float]:
    """``"80/10/10"`` (or ``0.8,0.1,0.1``) -> fractions summing to 1."""
    parts = [p for p in text.replace(",", "/").split("/") if p.strip()]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise MMCurateError(f"--split expects train/val/test shares such as 80/10/10 (got {text!r})") from None
    if len(values) != 3 or any(not np.isfinite(v) or v < 0 for v in values) or sum(values) <= 0:
        raise MMCurateError(f"--split expects three non-negative shares such as 80/10/10 (got {text!r})")
    if values[0] == 0:
        raise MMCurateError("--split needs a non-zero train share")
    total = sum(values)
    return (values[0] / total, values[1] / total, values[2] / total)


def assign_splits(
    bins: np.ndarray, labels: np.ndarray, groups: Sequence[str | None] | None, ratios: Sequence[float], seed: int
) -> np.ndarray:
    """Split name per sample (``train``/``val``/``test``), stratified by (bin, class).

    Without groups, samples are dealt in (bin, class) order to the split furthest below its quota,
    so every (bin, class) cell is split in proportion to within one sample. With groups, whole
    groups are placed, largest first, in the split where they best restore the per-bin and
    per-class proportions: no group ever appears in two splits. Deterministic for ``seed``.
    """
    ratios = np.asarray(ratios, dtype=float)
    if groups is not None and any(g is not None for g in groups):
        return _grouped(np.asarray(bins), np.asarray(labels, dtype=object), groups, ratios, seed)
    return _ungrouped(np.asarray(bins), np.asarray(labels, dtype=object), ratios, seed)


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
        out[idx] = SPLITS[s]
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
    return np.asarray([SPLITS[split_of[i]] for i in inverse], dtype=object)


def _rank(seed: int, group: str) -> str:
    return hashlib.sha256(f"{seed}\x00{group}".encode()).hexdigest()


def split_groups(
    groups: Iterable[str], *, val_fraction: float, test_fraction: float, seed: int, what: str = "groups"
) -> dict[str, str]:
    """Map each distinct group to ``train``, ``val`` or ``test`` by a seeded hash rank.

    ``round(n * fraction)`` groups go to test and to val (at least one each when the fraction is
    positive), the rest to train. The rank depends only on (seed, group), not on file order, the
    machine or Python's hash seed. ``what`` names the groups in the error raised when there are
    too few of them to leave any for training.
    """
    unique = sorted(set(groups))
    n = len(unique)
    if n == 0:
        return {}
    n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
    n_val = max(1, round(n * val_fraction)) if val_fraction > 0 else 0
    if n_test + n_val >= n:
        raise MMCurateError(
            f"only {n} {what}: cannot hold out {n_val} for val and {n_test} for test and keep any for train; "
            "lower val_fraction/test_fraction (e.g. val_fraction=0)"
        )
    order = sorted(unique, key=lambda g: _rank(seed, g))
    assignment: dict[str, str] = {}
    for i, g in enumerate(order):
        assignment[g] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return assignment

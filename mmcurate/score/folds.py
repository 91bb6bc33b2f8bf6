"""Cross-fitting folds: each sample is scored by models that never trained on it.

In-sample confidences saturate near 1 for both modalities and make the discrepancy meaningless,
so every confidence comes from the fold that held the sample out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmcurate.common.errors import MMCurateError


def check_fold_feasible(labels: Sequence[str], k: int) -> None:
    """Clear errors for label sets that cannot be cross-fitted with ``k`` folds."""
    values, counts = np.unique(np.asarray(labels, dtype=object), return_counts=True)
    if len(values) < 2:
        only = f" ({values[0]!r})" if len(values) else ""
        raise MMCurateError(
            f"only one class{only}: modality discrepancy needs a classification task with at least 2 classes; "
            "check the labels of the ingest (label folders or the manifest's label column)"
        )
    small = [(str(v), int(c)) for v, c in zip(values, counts) if c < k]
    if small:
        listed = ", ".join(f"{v!r} has {c}" for v, c in small[:5])
        more = f" (and {len(small) - 5} more)" if len(small) > 5 else ""
        raise MMCurateError(
            f"too few samples per class for --folds {k}: {listed}{more}; "
            f"use --folds {max(2, min(c for _, c in small))} "
            "or remove those classes (e.g. a --classes list without them at ingest)"
        )


def stratified_folds(labels: Sequence[str], k: int, seed: int) -> np.ndarray:
    """Fold index per sample, stratified by label, deterministic for ``seed``.

    Within each class the samples are shuffled and dealt round-robin; the dealing continues from
    class to class so fold sizes differ by at most one overall.
    """
    arr = np.asarray(labels, dtype=object)
    rng = np.random.default_rng(seed)
    folds = np.empty(len(arr), dtype=np.int64)
    offset = 0
    for cls in sorted(set(arr.tolist())):
        idx = np.flatnonzero(arr == cls)
        rng.shuffle(idx)
        folds[idx] = (np.arange(len(idx)) + offset) % k
        offset += len(idx)
    return folds


def group_folds(labels: Sequence[str], groups: Sequence[str | None], k: int, seed: int) -> np.ndarray:
    """Fold index per sample with whole groups (speaker, source video) in one fold.

    Groups are dealt largest first to the fold with the fewest samples (ties broken by a seeded
    shuffle), which keeps folds balanced; label stratification is then only approximate.
    Samples without a group are their own group.
    """
    keys = [g if g is not None else f"__sample{i}" for i, g in enumerate(groups)]
    uniq = sorted(set(keys))
    if len(uniq) < k:
        raise MMCurateError(f"--group-folds needs at least --folds {k} groups, found {len(uniq)}; lower --folds")
    rng = np.random.default_rng(seed)
    order = list(rng.permutation(len(uniq)))
    sizes = {g: 0 for g in uniq}
    for key in keys:
        sizes[key] += 1
    ranked = sorted((uniq[i] for i in order), key=lambda g: -sizes[g])  # stable: shuffled ties
    load = np.zeros(k, dtype=np.int64)
    fold_of: dict[str, int] = {}
    for g in ranked:
        f = int(np.argmin(load))
        fold_of[g] = f
        load[f] += sizes[g]
    return np.asarray([fold_of[key] for key in keys], dtype=np.int64)


#: Automatic group folds need at least this many groups per fold (20 for 5 folds), so every scorer
#: trains on many groups. With few groups a held-out group is a transfer problem, not modality
#: evidence: on a generated AV-digits set with FSDD's 6 speakers, speaker-disjoint folds dropped the
#: audio scorer's out-of-fold accuracy on clean clips from about 0.95 to 0.61 and the AUROC of d for
#: audio noise to 0.80 (benchmarks/discrepancy.py, set b3, seed 0). CREMA-D's 91 actors or one
#: source video per group (Kinetics-Sounds, VGGSound) are well above it.
MIN_GROUPS_PER_FOLD = 4


def resolve_group_folds(setting: bool | None, groups: Sequence[str | None], k: int) -> tuple[bool, str]:
    """Whether to keep groups in one fold, and why (for the log and scores.json).

    ``setting`` None (the default) turns group folds on whenever the manifest has groups, at least
    :data:`MIN_GROUPS_PER_FOLD` per fold: a scorer that trained on the same actor or source video
    as the sample it scores is confident for the wrong reason. True forces them (an error when
    there are fewer groups than folds), False turns them off.
    """
    distinct = len({g for g in groups if g is not None})
    if setting is False:
        return False, "off (--no-group-folds)"
    if setting is True:
        return True, f"on (--group-folds; {distinct} groups)"
    if distinct == 0:
        return False, "off (the manifest has no groups)"
    if distinct < MIN_GROUPS_PER_FOLD * k:
        return False, (
            f"off: only {distinct} groups for {k} folds (automatic below {MIN_GROUPS_PER_FOLD * k}: "
            "each scorer would see too few of them; --group-folds forces them)"
        )
    return True, f"on: the manifest has {distinct} groups (--no-group-folds to mix them across folds)"


#: a class needs this many samples in a job's training part before one of them goes to the inner split
MIN_CLASS_FOR_INNER = 4


def inner_split(train_idx: np.ndarray, y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(fit, inner)``: a job's training rows split into what it trains on and its inner validation
    split, which only decides when training has converged (:mod:`mmcurate.score.schedule`).

    Stratified by label: ``round(fraction * n)`` rows of each class (at least one where the class has
    :data:`MIN_CLASS_FOR_INNER` rows, none below), chosen with ``seed``. Groups are not kept whole
    here: a shared speaker makes the inner loss a little optimistic, which at worst ends the search a
    little later; the scores themselves stay out-of-fold by the folds' own grouping.
    """
    train_idx = np.asarray(train_idx, dtype=np.int64)
    if fraction <= 0 or len(train_idx) == 0:
        return train_idx, train_idx[:0]
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x1AA3]))
    labels = y[train_idx]
    inner: list[np.ndarray] = []
    for cls in np.unique(labels):
        rows = train_idx[labels == cls]
        if len(rows) < MIN_CLASS_FOR_INNER:
            continue
        take = max(1, int(round(fraction * len(rows))))
        inner.append(rng.permutation(rows)[:take])
    inner_idx = np.sort(np.concatenate(inner)) if inner else train_idx[:0]
    fit_idx = np.setdiff1d(train_idx, inner_idx, assume_unique=True)
    return fit_idx, inner_idx

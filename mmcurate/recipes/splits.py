"""Deterministic train/val/test splits that keep every group (actor, source video) in one split.

A split that lets one CREMA-D actor appear in train and test measures speaker memorisation,
not emotion recognition; the reference code's random per-clip split does exactly that. Groups
are ordered by a hash of (seed, group), so the assignment does not depend on file order, the
machine or Python's hash seed, and adding one group moves no other group.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from mmcurate.common.errors import MMCurateError


def _rank(seed: int, group: str) -> str:
    return hashlib.sha256(f"{seed}\x00{group}".encode()).hexdigest()


def split_groups(
    groups: Iterable[str], *, val_fraction: float, test_fraction: float, seed: int, what: str = "groups"
) -> dict[str, str]:
    """Map each distinct group to ``train``, ``val`` or ``test``.

    ``round(n * fraction)`` groups go to test and to val (at least one each when the fraction is
    positive), the rest to train. ``what`` names the groups in the error raised when there are
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

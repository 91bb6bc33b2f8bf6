"""A deterministic hold-out carved from the training split (G-Blending's overfitting estimate).

The hold-out must never share a group (speaker, source video) with the samples the look-ahead
models train on, or its loss measures memorisation instead of generalisation. It is drawn with the
one splitter of mmcurate (:func:`mmcurate.store.splits.assign_splits`): stratified by label, whole
groups kept on one side.
"""

from __future__ import annotations

import numpy as np

from mmcurate.common.errors import MMCurateError
from mmcurate.store.splits import assign_splits


def holdout_split(
    labels: list[str] | list[int], groups: list[str | None] | None, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held_out) sorted positions; both non-empty, group-disjoint where groups are known."""
    n = len(labels)
    if not 0 < fraction < 1:
        raise MMCurateError(f"hold-out fraction must lie strictly between 0 and 1, got {fraction}")
    if n < 2:
        raise MMCurateError(f"cannot hold out part of a training split of {n} sample(s)")
    grouped = groups is not None and any(g is not None for g in groups)
    if grouped and len({g if g is not None else f"\0{i}" for i, g in enumerate(groups)}) < 2:  # type: ignore[union-attr]
        raise MMCurateError("cannot hold out part of a training split whose samples all share one group")
    sides = assign_splits(
        np.zeros(n, np.int64),
        np.asarray([str(x) for x in labels], dtype=object),
        groups if grouped else None,
        (1 - fraction, fraction, 0.0),
        seed,
    )
    held = sides == "val"
    if not held.any():  # a share too small to round to one sample: hold out one, seeded
        held[int(np.random.default_rng([seed, 2]).integers(n))] = True
    return np.flatnonzero(~held).astype(np.int64), np.flatnonzero(held).astype(np.int64)

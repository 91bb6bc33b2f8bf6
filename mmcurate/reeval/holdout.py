"""A deterministic hold-out carved from the training split (G-Blending's overfitting estimate).

The hold-out must never share a group (speaker, source video) with the samples the look-ahead
models train on, or its loss measures memorisation instead of generalisation. With groups,
whole groups are drawn in a seeded order until the hold-out reaches its share; a sample without
a group is its own group. Without groups, the cut is stratified by label
(:func:`mmcurate.reeval.data.stratified_partition`).
"""

from __future__ import annotations

import numpy as np

from mmcurate.common.errors import MMCurateError
from mmcurate.reeval.data import stratified_partition


def holdout_split(
    labels: list[str] | list[int], groups: list[str | None] | None, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held_out) sorted positions; both non-empty, group-disjoint where groups are known."""
    n = len(labels)
    if not 0 < fraction < 1:
        raise MMCurateError(f"hold-out fraction must lie strictly between 0 and 1, got {fraction}")
    if n < 2:
        raise MMCurateError(f"cannot hold out part of a training split of {n} sample(s)")
    target = min(n - 1, max(1, int(round(fraction * n))))
    if groups is not None and any(g is not None for g in groups):
        keys = [f"g:{g}" if g is not None else f"s:{i}" for i, g in enumerate(groups)]
        uniq = sorted(set(keys))
        if len(uniq) < 2:
            raise MMCurateError("cannot hold out part of a training split whose samples all share one group")
        order = np.random.default_rng([seed, 1]).permutation(len(uniq))
        members: dict[str, list[int]] = {}
        for i, k in enumerate(keys):
            members.setdefault(k, []).append(i)
        held: list[int] = []
        for j in order:
            if len(held) >= target:
                break
            group = members[uniq[j]]
            if len(held) + len(group) >= n:  # keep at least one group to train on
                continue
            held += group
        held_set = set(held)
    else:
        parts = stratified_partition([str(x) for x in labels], {"keep": 1 - fraction, "hold": fraction}, seed)
        held_set = set(parts["hold"])
        if not held_set:  # classes too small for a stratified share: a seeded draw instead
            held_set = set(np.random.default_rng([seed, 2]).permutation(n)[:target].tolist())
        if len(held_set) == n:
            held_set.discard(max(held_set))
    held_out = np.array(sorted(held_set), dtype=np.int64)
    kept = np.array(sorted(set(range(n)) - held_set), dtype=np.int64)
    return kept, held_out

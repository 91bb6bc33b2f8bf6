"""The Wilson score interval of a proportion: one implementation for the scorers' self-check, the
health shown on cards and pages, and the re-evaluation's accuracies."""

from __future__ import annotations

import math

#: two-sided 95 % normal quantile
Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of ``successes`` out of ``n``; None for n = 0."""
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in [0, {n}], got {successes}")
    p = successes / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)  # exact at the edges, no rounding residue
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi

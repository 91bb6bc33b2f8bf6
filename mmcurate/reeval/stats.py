"""Interval estimates for the report: Wilson for one run, Student t across seeds.

One run's accuracy on n test samples is a binomial proportion: its 95 % interval is the Wilson
score interval, which stays inside [0, 1] and is honest for small n (the normal approximation
gives 0 % +- 0 for 0 of 3). Several seeds give one accuracy each on the same test samples: their
interval is the Student t interval of the mean, which shows seed (and, with re-drawn splits,
split) variance but not the test-sample variance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: two-sided 95 % normal quantile
Z95 = 1.959963984540054
#: a subset or bin with fewer test samples than this is shown but not read (greyed in plots)
MIN_SAMPLES = 10


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


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float] | None:
    """Student t interval of the mean of ``values``; None for fewer than two values."""
    xs = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if xs.size < 2:
        return None
    from scipy import stats

    mean = float(xs.mean())
    half = float(stats.t.ppf(0.5 + level / 2, df=xs.size - 1)) * float(xs.std(ddof=1)) / math.sqrt(xs.size)
    return mean - half, mean + half

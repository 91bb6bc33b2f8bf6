"""Interval estimates and paired comparisons for the report.

Why a bootstrap over clips *and* seeds: several seeds give one accuracy each on the *same* test
clips, so an interval over seeds alone (Student t) shows seed variance but not the test-sample
variance; on a few dozen clips one run's binomial standard error is 6-8 points, and t intervals
of zero width appeared (three seeds, same score). Here every accuracy's 95 % interval is a
percentile bootstrap that resamples the test clips and the seeds together (a two-level, crossed
resample: clips with replacement, seeds with replacement), never narrower than the Wilson score
interval of the clip count (which keeps it honest at 0 % and 100 %, where a bootstrap collapses).

Why paired: two methods tested on the same clips are compared clip by clip. Their difference's
interval uses the *same* resampled clips and seeds for both (a paired bootstrap), which removes
the variance the two share (easy and hard clips) and is far narrower than two overlapping
accuracy intervals suggest. A difference is called a difference only when its interval excludes
0 **and** an exact sign test over the clips (per clip, the mean over seeds of correct(a) -
correct(b); clips where it is 0 are ties) agrees at the 5 % level: the percentile bootstrap is
anti-conservative when only a handful of clips disagree, the sign test is exact there.

All draws come from generators seeded by fixed constants and the subset's name, so the same runs
give the same intervals (and the same bytes in the report), and every method is resampled on
the same clips (the pairing).
"""

from __future__ import annotations

import math
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mmcurate.common.proportions import wilson_interval

#: a subset or bin with fewer test samples than this is shown but not read (greyed in plots)
MIN_SAMPLES = 10
#: a validation or test split smaller than this cannot choose a checkpoint or tell methods apart: warn
MIN_SPLIT = 30
#: bootstrap resamples per interval
BOOTSTRAP_RESAMPLES = 2000
#: seed of every bootstrap draw (fixed: same runs, same intervals)
BOOTSTRAP_SEED = 2024
#: level of every interval and test
LEVEL = 0.95
#: resamples evaluated at once (bounds memory at about 8 * BLOCK * clips bytes)
_BLOCK = 250
#: bytes of bootstrap draws kept for reuse across methods (beyond it, drawn again)
DRAW_CACHE_BYTES = 64 * 2**20


def t_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float] | None:
    """Student t interval of the mean of ``values``; None for fewer than two values."""
    xs = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if xs.size < 2:
        return None
    from scipy import stats

    mean = float(xs.mean())
    half = float(stats.t.ppf(0.5 + level / 2, df=xs.size - 1)) * float(xs.std(ddof=1)) / math.sqrt(xs.size)
    return mean - half, mean + half


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test of ``wins`` against ``losses`` (ties left out); 1.0 when there are none."""
    n = wins + losses
    if n == 0:
        return 1.0
    from scipy import stats

    return float(stats.binomtest(wins, n, 0.5).pvalue)


class Bootstrap:
    """Two-level resampling draws shared by every method of a report (which makes comparisons paired).

    ``n_seeds`` seeds are resampled with replacement into per-resample seed weights; the clips of
    a subset (named by ``key``, e.g. ``acc_bin3``) are resampled with replacement, from a generator
    seeded by the key, so every method and every reference sees the same draws for that subset.
    """

    def __init__(self, n_seeds: int, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> None:
        if n_seeds < 1:
            raise ValueError("a bootstrap needs at least one seed")
        self.resamples = resamples
        self.seed = seed
        rng = np.random.default_rng([seed, n_seeds])
        picks = rng.integers(0, n_seeds, size=(resamples, n_seeds))
        self.seed_weights = np.stack([np.bincount(row, minlength=n_seeds) for row in picks]) / n_seeds
        self._clips: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()

    def clip_draws(self, key: str, m: int) -> np.ndarray:
        """(resamples, m) positions drawn with replacement from ``range(m)``, fixed for (key, m).

        Draws are kept for reuse (every method asks for the same subsets) in the smallest unsigned type
        that holds them, least recently used first out past :data:`DRAW_CACHE_BYTES`, and drawn again
        (the same numbers: the generator is seeded by key and size) when asked for after that. Why: kept
        as int64 for every subset, bin and threshold, they grew with the test split (2000 x 8 bytes a test
        clip per subset: about 340 MB for 3000 test clips), the largest part of reeval's memory growth."""
        found = self._clips.get((key, m))
        if found is not None:
            self._clips.move_to_end((key, m))
            return found
        rng = np.random.default_rng([self.seed, zlib.crc32(key.encode()), m])
        draws = rng.integers(0, m, size=(self.resamples, m), dtype=np.int64)
        draws = draws.astype(np.min_scalar_type(max(m - 1, 0)))
        self._clips[(key, m)] = draws
        while len(self._clips) > 1 and sum(d.nbytes for d in self._clips.values()) > DRAW_CACHE_BYTES:
            self._clips.popitem(last=False)
        return draws

    def means(self, values: np.ndarray, key: str) -> np.ndarray:
        """Resampled means of ``values`` (seeds x clips of the subset ``key``): one per resample."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[0] != self.seed_weights.shape[1]:
            raise ValueError(f"values must be (seeds={self.seed_weights.shape[1]}, clips), got {values.shape}")
        m = values.shape[1]
        out = np.empty(self.resamples)
        if m == 0:
            out[:] = np.nan
            return out
        draws = self.clip_draws(key, m)
        for start in range(0, self.resamples, _BLOCK):
            stop = min(start + _BLOCK, self.resamples)
            per_clip = self.seed_weights[start:stop] @ values  # each resample's seed mix, per clip
            out[start:stop] = np.take_along_axis(per_clip, draws[start:stop], axis=1).mean(axis=1)
        return out


def _percentiles(draws: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def accuracy_interval(correct: np.ndarray, boot: Bootstrap, key: str) -> tuple[float, float] | None:
    """95 % interval of the mean accuracy of ``correct`` (seeds x clips, 0/1) over clips and seeds.

    The bootstrap percentile interval, widened where needed to the Wilson interval of the mean
    accuracy on this many clips (at 0 % or 100 % every resample agrees and the bootstrap has width 0).
    """
    correct = np.asarray(correct, dtype=np.float64)
    m = correct.shape[1]
    if m == 0:
        return None
    lo, hi = _percentiles(boot.means(correct, key))
    wilson = wilson_interval(int(round(float(correct.mean()) * m)), m)
    assert wilson is not None
    return max(0.0, min(lo, wilson[0])), min(1.0, max(hi, wilson[1]))


@dataclass(frozen=True)
class PairedDifference:
    """Accuracy of A minus accuracy of B on the same clips and seeds, with its paired 95 % interval."""

    mean: float
    ci_low: float
    ci_high: float
    #: clips where A is right more often than B over the seeds, and the reverse
    wins: int
    losses: int
    #: two-sided exact sign test over the clips
    sign_p: float
    count: int

    @property
    def significant(self) -> bool:
        """The interval excludes 0, and the sign test agrees on the direction at the 5 % level."""
        if self.sign_p >= 1 - LEVEL:
            return False
        return (self.ci_low > 0 and self.wins > self.losses) or (self.ci_high < 0 and self.losses > self.wins)

    def to_dict(self) -> dict[str, float | int | bool]:
        return {
            "mean": self.mean,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "wins": self.wins,
            "losses": self.losses,
            "sign_p": self.sign_p,
            "count": self.count,
            "significant": self.significant,
        }


def paired_difference(a: np.ndarray, b: np.ndarray, boot: Bootstrap, key: str) -> PairedDifference | None:
    """A - B from their per-clip correctness (seeds x clips each, seeds paired by position); None without clips."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired arrays differ in shape: {a.shape} vs {b.shape}")
    if a.shape[1] == 0:
        return None
    diff = a - b
    lo, hi = _percentiles(boot.means(diff, key))
    per_clip = diff.mean(axis=0)
    wins, losses = int((per_clip > 1e-12).sum()), int((per_clip < -1e-12).sum())
    return PairedDifference(float(diff.mean()), lo, hi, wins, losses, sign_test(wins, losses), int(a.shape[1]))


def chance_level(labels: np.ndarray) -> float:
    """Accuracy of always predicting the most frequent test label (1/C on a class-balanced test)."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return 0.0
    return float(np.bincount(labels).max() / labels.size)


def wilson_half_width(n: int) -> float:
    """Half-width of one run's 95 % Wilson interval at 50 % accuracy on ``n`` clips (the widest case)."""
    interval = wilson_interval(n // 2, n)
    return float("inf") if interval is None else (interval[1] - interval[0]) / 2

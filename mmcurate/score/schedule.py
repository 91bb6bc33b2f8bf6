"""When a scorer has trained enough: the convergence rule, as pure decisions on per-epoch figures.

Why: a fixed epoch count tuned on one kind of data is too short on another (coloured, cluttered
frames need two to three times the epochs MNIST-like digits need) and wasteful where data learns
fast. So a scorer trains in two phases:

1. **search**: a linear warm-up, then the peak learning rate, held while the loss on an *inner
   validation* split (carved from the job's own training part, never the scored samples) keeps
   improving. The loss is that of an exponential moving average of the weights (half-life about
   an epoch): at the peak rate the raw model's inner loss jumps by factors of two from epoch to
   epoch, the average's shows the trend. The search ends at diminishing returns: once the scorer
   has clearly left chance and is past ``min_epochs``, when the loss's *recent* rate of
   improvement (a least-squares slope over the last third of the search, at least ``patience`` + 1
   epochs, read optimistically: plus ``RATE_SE`` standard errors) is under ``RETURNS`` of its
   *average* rate since the uniform guess (ln C per epoch searched), both stricter while less than
   ``HALFWAY`` of ln C is gained (and then never within ``patience`` epochs of a new best); or when
   no epoch has beaten the best loss by 1 % for ``max(2 x patience, the window)`` epochs;
2. **anneal**: a cosine decay to zero over about half as many epochs as the search took (at
   least ``MIN_ANNEAL``), the epochs whose predictions are averaged into the confidence.

A scorer that has not left chance after ``stuck_after`` epochs and is no longer improving is
*stuck* on its initial plateau: the job restarts from another initialisation (up to
``restarts`` times); the last attempt anneals anyway and the health checks say it failed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import binom

#: names the stopping rule below; part of each job's identity, so a result of another rule is not resumed
STOP_RULE = "recent-vs-average-rate/6"
#: a new best inner-validation loss must be this much (relative) below the previous best
MIN_DELTA = 0.01
#: the search ends when the recent rate of improvement is under this share of the average rate so far.
#: Why a rate against a rate, over a window that grows with the search: the earlier rule (the last
#: ``patience`` epochs' gain under 10 % of the total gain, a best loss that moved in 1 % steps) stopped
#: every concave learning curve by about epoch 30 whatever its slope, and a slow learner (coloured
#: scenes, 120-clip inner split) on the noise of three epochs: a fold at 0.40 accuracy against 0.77 with
#: a 3x longer search (benchmarks/results/discrepancy_stopping.md). A ratio of rates does not depend on
#: the epoch count, and a slope over many epochs is not moved by one noisy epoch.
RETURNS = 0.4
#: a scorer that has not yet gained this share of ln C (its inner loss still above half the uniform
#: guess's) has most of its gain ahead: its shortest window is scaled up (at most threefold) and its
#: threshold down by gained / HALFWAY, so it must show a longer, flatter stretch to be called converged.
#: Four flat epochs at 0.83 ln C after a step had ended a fold at 0.40 accuracy against 0.6-0.7 for the
#: others. A scorer past halfway is not affected; scaling the threshold by the gained share everywhere
#: instead cost av_digits 15 % CPU. Why not higher: at their stops, av_digits' visual scorers (3000 clips) have
#: gained 0.58-0.71 of ln C and its audio ones 0.90-0.95, but ob2's slow visual ones 0.43-0.68, so the share
#: gained does not separate a slow learner from a fast one above about half; 0.6 would also lengthen av_digits.
HALFWAY = 0.5
#: the recent rate is read optimistically, its least-squares estimate plus this many standard errors:
#: a noisy window keeps searching, a clearly flat one stops. The standard error is the larger of the
#: window's own and one from the noise of the whole search (:func:`loss_noise`): four epochs that
#: happen to lie on a line are no evidence of a plateau when the loss jumps by 0.03 between epochs
RATE_SE = 1.0
#: the recent window is this share of the epochs searched (at least ``patience`` + 1 epochs)
WINDOW_SHARE = 1 / 3
#: the anneal phase is at least this many epochs (the averaged window)
MIN_ANNEAL = 3
#: one-sided binomial p-value below which inner-validation accuracy is "clearly above chance"
CHANCE_P = 0.01
#: a training loss below this share of ln(C) also means the scorer left chance (tiny inner splits)
LEFT_CHANCE_LOSS = 0.85
#: the search may end at a plateau before ``stuck_after`` only once the inner loss is this share of ln(C) or
#: lower: a scorer a little above chance on its initial plateau (inner accuracy 0.18 for 10 classes, loss
#: still near ln C) is not done, and stopping it there was seen to leave a fold at 0.4 accuracy
STRONG_LOSS = 0.9
#: while less than ``HALFWAY`` of ln C is gained, the rate test does not end a search within ``patience`` epochs
#: of a new best: a scorer with most of its gain ahead that has just beaten its best by ``MIN_DELTA`` is still
#: improving, however flat the window's slope. A rise and return inside the window reads as flat: ot2's visual
#: fold 0 (seed 0) went 1.406, 1.446, 1.470, 1.464, 1.438, 1.383 and stopped on that new best at 0.52
#: accuracy against 0.59-0.75 for the others; held, it searched 45 epochs and reached 0.64. Replayed on the
#: kept histories of 20 runs (200 jobs), the hold touches 6 slow visual jobs and no audio or av_digits-style job
#: (stops there come past halfway), so data that learns fast is not slowed.
HOLD_BELOW_HALFWAY = True


#: the search's floors in optimiser steps: on a small set an epoch is two or three steps, and epoch counts
#: tuned on thousands of clips would end the search after a dozen updates (a 300-clip set left a fold at
#: 0.60 accuracy against 0.95 for the others)
MIN_STEPS, PATIENCE_STEPS, STUCK_STEPS = 100, 50, 250


@dataclass(frozen=True)
class ConvergenceSettings:
    """The rule's knobs (from :class:`mmcurate.score.config.ScoreConfig`)."""

    max_epochs: int = 60
    min_epochs: int = 4
    patience: int = 3
    warmup_epochs: int = 2
    stuck_after: int = 10
    anneal_ratio: float = 0.5
    restarts: int = 2

    def for_steps(self, steps_per_epoch: int) -> ConvergenceSettings:
        """These settings with the epoch floors raised to the step floors for ``steps_per_epoch``."""
        cap = self.search_cap

        def floor(epochs: int, steps: int) -> int:
            return min(max(epochs, math.ceil(steps / max(1, steps_per_epoch))), max(1, cap // 2))

        return ConvergenceSettings(
            max_epochs=self.max_epochs,
            min_epochs=floor(self.min_epochs, MIN_STEPS),
            patience=floor(self.patience, PATIENCE_STEPS),
            warmup_epochs=self.warmup_epochs,
            stuck_after=floor(self.stuck_after, STUCK_STEPS),
            anneal_ratio=self.anneal_ratio,
            restarts=self.restarts,
        )

    @property
    def search_cap(self) -> int:
        return max(1, self.max_epochs - MIN_ANNEAL)

    def anneal_epochs(self, searched: int) -> int:
        """Anneal length after ``searched`` search epochs, within the budget."""
        want = max(MIN_ANNEAL, math.ceil(self.anneal_ratio * searched))
        return max(1, min(want, self.max_epochs - searched))


def left_chance(inner_correct: int, inner_n: int, num_classes: int, train_loss: float) -> bool:
    """Whether a scorer has clearly learned something: inner-validation accuracy above chance
    (binomial test at ``CHANCE_P``), or a training loss well below the uniform guess's ln(C)."""
    if inner_n > 0 and binom.sf(inner_correct - 1, inner_n, 1.0 / num_classes) < CHANCE_P:
        return True
    return train_loss < LEFT_CHANCE_LOSS * math.log(num_classes)


@dataclass
class SearchState:
    """The search phase's bookkeeping; :meth:`after_epoch` says whether and why it ends."""

    settings: ConvergenceSettings
    num_classes: int
    epochs: int = 0
    best_loss: float = math.inf
    best_epoch: int = -1
    since_best: int = 0
    learned: bool = False
    strong: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    inner_losses: list[float] = field(default_factory=list)
    #: the last reading of the rule: the recent rate (optimistic) and the rate under which it would stop
    rate: float | None = None
    threshold: float | None = None

    @property
    def gained(self) -> float:
        """The share of ln C the best inner loss has gained over the uniform guess (0 while no better)."""
        return max(0.0, 1.0 - self.best_loss / math.log(self.num_classes))

    def after_epoch(self, train_loss: float, inner_loss: float, inner_correct: int, inner_n: int) -> str | None:
        """Record one search epoch; ``None`` to go on, else ``"plateau"``, ``"budget"`` or ``"stuck"``."""
        self.epochs += 1
        s = self.settings
        improved = math.isfinite(inner_loss) and inner_loss < self.best_loss * (1 - MIN_DELTA)
        if improved or self.best_epoch < 0:
            self.best_loss, self.best_epoch, self.since_best = inner_loss, self.epochs - 1, 0
        else:
            self.since_best += 1
        self.inner_losses.append(inner_loss)
        self.learned = self.learned or left_chance(inner_correct, inner_n, self.num_classes, train_loss)
        self.strong = self.learned and (
            self.best_loss <= STRONG_LOSS * math.log(self.num_classes)
            or train_loss < LEFT_CHANCE_LOSS * math.log(self.num_classes)
        )
        self.history.append(
            {
                "epoch": self.epochs - 1,
                "train_loss": round(train_loss, 4),
                "inner_loss": round(inner_loss, 4) if math.isfinite(inner_loss) else None,
                "inner_accuracy": round(inner_correct / inner_n, 4) if inner_n else None,
                "learned": self.learned,
            }
        )
        if self.epochs >= s.search_cap:
            return "budget"
        if inner_n == 0:  # nothing to watch: a fixed search of min_epochs x 2
            return "no inner split" if self.epochs >= 2 * s.min_epochs else None
        gained = self.gained
        ahead = min(1.0, gained / HALFWAY)  # 1 past halfway; smaller while most of the gain is ahead
        shortest = min(math.ceil((s.patience + 1) / max(ahead, 1e-3)), 3 * (s.patience + 1))
        window = max(shortest, math.ceil(WINDOW_SHARE * self.epochs))
        ready = self.strong or (self.learned and self.epochs >= s.stuck_after)
        if ready and self.epochs >= s.min_epochs and self.epochs >= window:
            if self.since_best >= max(2 * s.patience, window - 1):
                return "plateau"
            rate, se = recent_rate(self.inner_losses[-window:])
            se = max(se, loss_noise(self.inner_losses) / math.sqrt(_sxx(window)))
            average = gained * math.log(self.num_classes) / self.epochs
            self.rate, self.threshold = rate + RATE_SE * se, RETURNS * ahead * max(average, 1e-9)
            fresh = HOLD_BELOW_HALFWAY and gained < HALFWAY and self.since_best < s.patience
            if self.rate < self.threshold and not fresh:
                return "plateau"
        if not self.learned and self.since_best >= s.patience and self.epochs >= s.stuck_after:
            return "stuck"
        return None

    def note(self) -> str:
        """Why the search goes on, in words for a progress line: the rule's last reading, or (before the
        rule can judge) whether the scorer has left chance yet."""
        if self.rate is None or self.threshold is None:
            return "learning" if self.learned else "not above chance yet"
        return f"inner loss falling {self.rate:.3f}/epoch, the search ends under {self.threshold:.3f}"


def recent_rate(losses: list[float]) -> tuple[float, float]:
    """The loss's rate of decrease per epoch over ``losses`` (a least-squares slope, positive while it
    improves) and that slope's standard error. A non-finite loss (a diverged model) reads as no
    improvement at all."""
    y = np.asarray(losses, dtype=np.float64)
    if len(y) < 3 or not np.isfinite(y).all():
        return 0.0, 0.0
    x = np.arange(len(y), dtype=np.float64)
    x -= x.mean()
    sxx = _sxx(len(y))
    slope = float(x @ (y - y.mean())) / sxx
    resid = y - y.mean() - slope * x
    se = math.sqrt(float(resid @ resid) / (len(y) - 2) / sxx)
    return -slope, se


def loss_noise(losses: list[float]) -> float:
    """The epoch-to-epoch noise (standard deviation) of the inner loss over the whole search, robustly:
    the median absolute deviation of its second differences (which remove any locally linear trend;
    white noise of deviation s gives second differences of deviation s * sqrt(6)). Zero when
    fewer than four finite losses."""
    y = np.asarray(losses, dtype=np.float64)
    if len(y) < 4 or not np.isfinite(y).all():
        return 0.0
    d2 = np.diff(y, 2)
    return 1.4826 * float(np.median(np.abs(d2 - np.median(d2)))) / math.sqrt(6.0)


def _sxx(n: int) -> float:
    """Sum of squared deviations of 0..n-1 from their mean (a slope's standard error is noise / sqrt(this))."""
    return n * (n * n - 1) / 12.0


def lr_factor(step: int, warmup_steps: int) -> float:
    """Search phase: linear warm-up, then the peak rate."""
    return min(1.0, (step + 1) / max(1, warmup_steps))


def anneal_factor(step: int, total_steps: int) -> float:
    """Anneal phase: cosine from the peak rate to zero over ``total_steps``."""
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, step / max(1, total_steps))))

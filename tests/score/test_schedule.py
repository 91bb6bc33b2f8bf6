"""The convergence rule (``mmcurate.score.schedule``): when a scorer's search ends.

Each test is a property the rule must keep on loss curves shaped like the ones measured
(``benchmarks/results/discrepancy_stopping.md``): a slow learner with a noisy inner loss must keep
searching while it still improves, a fast learner must stop soon after it flattens, a rising loss
must stop it, a diverged one must not keep it going."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from mmcurate.score import runner
from mmcurate.score.config import ScoreConfig
from mmcurate.score.schedule import ConvergenceSettings, SearchState, recent_rate

SETTINGS = ConvergenceSettings(max_epochs=60, patience=3, restarts=2)


def _search(losses: list[float], num_classes: int = 10, settings: ConvergenceSettings = SETTINGS) -> tuple[int, str]:
    """Feed ``losses`` as the inner (and training) loss; the epoch count and reason the search ends."""
    state = SearchState(settings, num_classes)
    for loss in losses:
        why = state.after_epoch(loss, loss, 60, 120)
        if why is not None:
            return state.epochs, why
    return state.epochs, "running"


def _slow_learner(epochs: int, seed: int, rate: float = 0.025, noise: float = 0.025) -> list[float]:
    """ot2's visual folds: near ln 10 for the warm-up, then about 0.025 an epoch down, with epoch-to-epoch
    noise of the same size (an EMA model's loss on 120 inner clips)."""
    rng = np.random.default_rng(seed)
    t = np.arange(epochs)
    return list(2.3 - rate * np.maximum(t - 2, 0) + noise * rng.standard_normal(epochs))


@pytest.mark.parametrize("seed", range(8))
def test_a_slow_noisy_learner_searches_while_it_improves(seed: int) -> None:
    """The earlier rule (3-epoch gain under 10 % of the total, best loss in 1 % steps) ended these
    searches between epoch 11 and 27 while the loss still fell steadily: a fold at 0.40 accuracy
    where a 3x longer search reached 0.77."""
    curve = _slow_learner(45, seed) + [2.3 - 0.025 * 43] * 30
    epochs, why = _search(curve)
    assert epochs >= 40, (epochs, why)
    assert why in ("plateau", "budget")


@pytest.mark.parametrize("seed", range(4))
def test_a_fast_learner_stops_soon_after_it_flattens(seed: int) -> None:
    """av_digits-like: most of the gain in the first epochs; the search must not drag on (the issue's +10 %
    time bound on av_digits). The old rule stopped these curves at 9-10 epochs, as this one does; a
    candidate that scaled the threshold by the gained share everywhere took 10-11 (+15 % CPU on b1), one
    with a 7-epoch shortest window 11-12."""
    rng = np.random.default_rng(seed)
    t = np.arange(40)
    curve = list(0.45 + 1.85 * np.exp(-t / 2.5) + 0.015 * rng.standard_normal(40))
    epochs, why = _search(curve)
    assert why == "plateau" and epochs <= 10, (epochs, why)


def test_a_rising_loss_ends_the_search() -> None:
    curve = [2.2, 1.5, 1.0, 0.7, 0.6, 0.65, 0.72, 0.80, 0.90, 1.0, 1.1, 1.2, 1.3, 1.4]
    epochs, why = _search(curve)
    assert why == "plateau" and epochs <= 10, (epochs, why)


def test_a_diverged_loss_ends_the_search() -> None:
    curve = [2.2, 1.5, 1.0, 0.8] + [math.nan] * 30
    epochs, why = _search(curve)
    assert why == "plateau" and epochs <= 12, (epochs, why)


def test_a_chance_level_scorer_is_stuck_not_converged() -> None:
    state = SearchState(SETTINGS, 10)
    stops = [state.after_epoch(math.log(10), math.log(10), 12, 120) for _ in range(SETTINGS.search_cap)]
    assert "stuck" in stops and "plateau" not in stops[: stops.index("stuck")]


def test_recent_rate_is_the_least_squares_slope_and_its_error() -> None:
    rate, se = recent_rate([1.0, 0.9, 0.8, 0.7])
    assert math.isclose(rate, 0.1) and se < 1e-9
    y = [1.0, 0.95, 0.7, 0.75, 0.5]
    slope, intercept = np.polyfit(np.arange(5), y, 1)
    resid = np.asarray(y) - (slope * np.arange(5) + intercept)
    want_se = math.sqrt(resid @ resid / 3 / 10.0)
    rate, se = recent_rate(y)
    assert math.isclose(rate, -slope) and math.isclose(se, want_se)
    assert recent_rate([1.0, math.inf, 0.5]) == (0.0, 0.0)
    assert recent_rate([1.0, 0.5]) == (0.0, 0.0)


def test_a_result_of_another_stopping_rule_is_not_resumed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A job's identity names the convergence rule: after an upgrade that changes the rule, a resumed
    `score` trains the job again instead of mixing folds of two rules; fixed --epochs jobs are unaffected."""
    plan = runner.ScorePlan(
        None, ScoreConfig(), [], [], [], np.zeros(4), [np.array([0, 0, 1, 1])], (False, ""), False, "fp"
    )
    fixed = dataclasses.replace(plan, cfg=ScoreConfig(epochs=4))
    job = runner.ScoreJob(0, 0, "visual")
    before, before_fixed = plan.identity(job), fixed.identity(job)
    monkeypatch.setattr(runner, "STOP_RULE", "another rule")
    assert plan.identity(job) != before
    assert fixed.identity(job) == before_fixed


def test_the_progress_line_says_why_the_search_goes_on() -> None:
    """A search longer than the user expects must say why: the rule's reading is in the progress note."""
    state = SearchState(SETTINGS, 10)
    assert state.note() == "not above chance yet"
    for loss in _slow_learner(20, 0):
        assert state.after_epoch(loss, loss, 60, 120) is None
    note = state.note()
    assert note.startswith("inner loss falling ") and "the search ends under" in note
    assert state.rate is not None and state.threshold is not None and state.rate >= state.threshold


def test_a_flat_stretch_after_a_step_is_not_a_plateau_while_most_of_the_gain_is_ahead() -> None:
    """ot2's visual fold 3 (seed 0), as recorded: a step, then four flat epochs at 0.83 ln C. The rule
    without the below-halfway window ended the search here, leaving the fold at 0.40 accuracy against
    0.6-0.7 for the others (its self-check failed); searching on, it reached 0.64."""
    recorded = [2.378, 2.340, 2.302, 2.244, 2.183, 2.175, 2.050, 1.926, 1.924, 1.917, 1.934]
    state = SearchState(SETTINGS, 10)
    stops = [state.after_epoch(loss, loss, 48, 120) for loss in recorded]
    assert all(s is None for s in stops), stops


#: ot2's visual fold 0 (seed 0, 94af4d5), as recorded: (training loss, inner loss, inner accuracy) per search epoch
#: of a 1080-clip fit (17 steps an epoch) and a 120-clip inner split. The last six inner losses rise and fall.
OT2_FOLD0 = [
    (2.4371, 2.3588, 0.1583),
    (2.3787, 2.2332, 0.175),
    (2.2653, 2.1597, 0.15),
    (2.1603, 2.0847, 0.2083),
    (2.0519, 2.0302, 0.2333),
    (1.9852, 1.9544, 0.2583),
    (1.9502, 1.8555, 0.2917),
    (1.8574, 1.8211, 0.3167),
    (1.7738, 1.8421, 0.3333),
    (1.8032, 1.7541, 0.3583),
    (1.7763, 1.7163, 0.3583),
    (1.7478, 1.6647, 0.425),
    (1.6284, 1.6207, 0.4417),
    (1.6937, 1.5898, 0.3833),
    (1.6375, 1.5509, 0.4417),
    (1.5391, 1.4952, 0.4333),
    (1.5848, 1.4475, 0.4583),
    (1.5282, 1.4059, 0.4583),
    (1.4582, 1.4464, 0.475),
    (1.4558, 1.47, 0.4917),
    (1.4312, 1.4639, 0.4417),
    (1.4413, 1.4385, 0.45),
    (1.4034, 1.3825, 0.5083),
]


def test_a_new_best_below_halfway_is_not_a_plateau() -> None:
    """A rise and return inside the window made the slope flat, and the rule ended this search on the epoch
    that beat the best (the fold at 0.52 against 0.59-0.75 for the others; its self-check failed). Held, the
    search went on to 45 epochs and 0.64. Past halfway the hold does not apply: the same curve shifted down
    (most of ln C gained) still stops where it did."""
    settings = ConvergenceSettings().for_steps(17)
    state = SearchState(settings, 10)
    stops = [state.after_epoch(tl, il, round(acc * 120), 120) for tl, il, acc in OT2_FOLD0]
    assert all(s is None for s in stops), stops
    assert state.since_best == 0 and state.rate is not None and state.rate < state.threshold  # the slope is flat

    past = SearchState(settings, 10)
    shift = math.log(10) * 0.45  # the same shape with more than half of ln C gained at its best
    stops = [past.after_epoch(tl - shift, il - shift, round(acc * 120), 120) for tl, il, acc in OT2_FOLD0]
    assert "plateau" in stops, stops

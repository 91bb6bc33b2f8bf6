"""Intervals that include the test-sample variance, and paired differences on the same clips.

Each test fails when its defect is put back: an interval over seeds only (zero width when the
seeds agree), unpaired comparisons, a difference called on a handful of disagreeing clips, a
percentile interval collapsing to 0 width at 100 %.
"""

from __future__ import annotations

import numpy as np
import pytest

from mmcurate.reeval.stats import (
    Bootstrap,
    accuracy_interval,
    chance_level,
    paired_difference,
    sign_test,
    wilson_interval,
)


def _correct(n: int, right: int, seeds: int = 1, rng: np.random.Generator | None = None) -> np.ndarray:
    row = np.zeros(n, dtype=bool)
    row[:right] = True
    if rng is not None:
        row = rng.permutation(row)
    return np.tile(row, (seeds, 1))


def test_three_agreeing_seeds_still_get_the_test_sample_variance() -> None:
    """81.2 +- 0.0 appeared when three seeds scored the same 26 of 32 clips: the clips are a sample too."""
    correct = _correct(32, 26, seeds=3)
    lo, hi = accuracy_interval(correct, Bootstrap(3), "acc")
    assert lo < 26 / 32 < hi
    assert hi - lo > 0.2  # about +-13 points on 32 clips (Wilson 0.65-0.91), never a zero width
    w_lo, w_hi = wilson_interval(26, 32)
    assert lo <= w_lo + 1e-12 and hi >= w_hi - 1e-12


def test_seed_variance_widens_the_interval_beyond_one_runs() -> None:
    rng = np.random.default_rng(0)
    steady = np.concatenate([_correct(200, 140, rng=np.random.default_rng(1))] * 3)
    shaky = np.concatenate([_correct(200, k, rng=rng) for k in (110, 140, 170)])
    lo_s, hi_s = accuracy_interval(steady, Bootstrap(3), "acc")
    lo_v, hi_v = accuracy_interval(shaky, Bootstrap(3), "acc")
    assert hi_v - lo_v > 1.5 * (hi_s - lo_s)


def test_edges_keep_a_width_where_every_resample_agrees() -> None:
    lo, hi = accuracy_interval(_correct(12, 12), Bootstrap(1), "acc_bin3")
    assert hi == 1.0 and lo == pytest.approx(wilson_interval(12, 12)[0])  # 12 of 12 is not "100 % for sure"
    lo, hi = accuracy_interval(_correct(12, 0), Bootstrap(1), "acc_bin3")
    assert lo == 0.0 and hi > 0.2


def test_interval_covers_the_true_accuracy_about_95_percent_of_the_time() -> None:
    """Clips drawn with a true accuracy of 0.7, three seeds with their own shift: the interval must cover 0.7."""
    rng = np.random.default_rng(7)
    boot = Bootstrap(3, resamples=500)
    covered = 0
    trials = 120
    for _ in range(trials):
        difficulty = rng.random(80) < 0.7  # which clips this test split makes easy
        rows = [np.where(rng.random(80) < 0.9, difficulty, ~difficulty) for _ in range(3)]  # seeds disagree a little
        truth = 0.7 * 0.9 + 0.3 * 0.1
        lo, hi = accuracy_interval(np.stack(rows), boot, "acc")
        covered += lo <= truth <= hi
    assert covered / trials >= 0.88


def test_paired_difference_sees_what_two_overlapping_intervals_hide() -> None:
    """A method right on the reference's clips plus 14 more of 300: the accuracies' intervals overlap widely,
    the paired difference on the same clips is clearly above 0."""
    rng = np.random.default_rng(3)
    ref = _correct(300, 180, seeds=2, rng=rng)
    better = ref.copy()
    wrong = np.flatnonzero(~ref[0])[:14]
    better[:, wrong] = True
    boot = Bootstrap(2)
    lo_r, hi_r = accuracy_interval(ref, boot, "acc")
    lo_b, hi_b = accuracy_interval(better, boot, "acc")
    assert lo_b < hi_r  # the accuracy intervals overlap
    d = paired_difference(better, ref, boot, "acc")
    assert d.mean == pytest.approx(14 / 300) and d.wins == 14 and d.losses == 0
    assert d.ci_low > 0 and d.significant
    # unpaired (independent clip draws for the two) the same data would not be a difference
    unpaired = boot.means(better.astype(float), "acc") - boot.means(ref.astype(float), "other clips")
    assert np.quantile(unpaired, 0.025) < 0


def test_a_handful_of_disagreeing_clips_is_not_a_difference() -> None:
    """4 of 200 clips better, none worse: the percentile bootstrap's interval can exclude 0, the exact sign
    test (p = 0.125) does not; both must agree before a difference is marked."""
    ref = _correct(200, 120, seeds=1)
    better = ref.copy()
    better[:, 120:124] = True
    d = paired_difference(better, ref, Bootstrap(1), "acc")
    assert d.wins == 4 and d.losses == 0 and d.sign_p == pytest.approx(0.125)
    assert not d.significant
    better[:, 124:134] = True  # 14 clips: p = 0.0001
    assert paired_difference(better, ref, Bootstrap(1), "acc").significant


def test_identical_methods_differ_by_exactly_nothing() -> None:
    a = _correct(50, 30, seeds=3, rng=np.random.default_rng(0))
    d = paired_difference(a, a.copy(), Bootstrap(3), "acc")
    assert (d.mean, d.ci_low, d.ci_high, d.wins, d.losses, d.sign_p) == (0.0, 0.0, 0.0, 0, 0, 1.0)
    assert not d.significant


def test_draws_are_fixed_so_the_same_runs_give_the_same_bytes() -> None:
    a = _correct(40, 25, seeds=2, rng=np.random.default_rng(5))
    assert accuracy_interval(a, Bootstrap(2), "acc") == accuracy_interval(a, Bootstrap(2), "acc")


def test_sign_test_and_chance_by_hand() -> None:
    assert sign_test(4, 0) == pytest.approx(0.125) and sign_test(0, 0) == 1.0
    assert sign_test(8, 2) == pytest.approx(0.109375)
    assert chance_level(np.array([0, 0, 1, 2])) == 0.5


def test_bootstrap_draws_kept_for_reuse_stay_bounded_and_come_back_the_same() -> None:
    """Every subset, bin and threshold has its own draws (resamples x test clips); kept all, as int64,
    they made reeval's memory grow with the test split. Kept compactly and least-recently-used out past a
    byte budget, a subset asked for again gets the same draws, so the same intervals."""
    from mmcurate.reeval import stats

    values = np.random.default_rng(1).random((2, 6000))
    boot = stats.Bootstrap(2)
    first = boot.means(values, "all")
    assert boot.clip_draws("all", 6000).dtype == np.uint16  # 2000 x 6000 x 2 bytes, not x 8
    for k in range(12):  # 12 subsets of 6000 clips: 288 MB as int64
        boot.means(values, f"bin{k}")
    kept = sum(d.nbytes for d in boot._clips.values())
    assert kept <= stats.DRAW_CACHE_BYTES
    assert ("all", 6000) not in boot._clips  # evicted ...
    np.testing.assert_array_equal(boot.means(values, "all"), first)  # ... and drawn again, the same

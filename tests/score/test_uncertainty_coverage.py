"""``discrepancy_std`` is scaled to cover: a re-scoring's change of d within 1 / 2 of it on about
68 % / 95 % of clips, where the variance fit alone covers far more at 1 SE on heavy-tailed changes."""

from __future__ import annotations

import numpy as np
import pytest

from mmcurate.score.assemble import SecondOpinions, coverage_scaled
from mmcurate.score.uncertainty import (
    NOMINAL_COVERAGE,
    coverage_scale,
    moderated_variance,
    prior_degrees_of_freedom,
)


def heavy_tailed(n: int, seed: int) -> np.ndarray:
    """Most clips barely move, a few move a lot (as second opinions do), over a variance-matched SE."""
    rng = np.random.default_rng(seed)
    x = np.where(rng.random(n) < 0.8, rng.normal(0, 0.3, n), rng.normal(0, 2.0, n))
    return np.abs(x) / np.sqrt(np.mean(x**2))


def test_a_variance_matched_se_of_a_heavy_tailed_change_over_covers_and_the_scale_fixes_it() -> None:
    fit_z, check_z = heavy_tailed(4000, 0), heavy_tailed(4000, 1)
    assert (check_z < 1).mean() > NOMINAL_COVERAGE[0] + 0.1  # the defect: the variance fit alone
    k, shares = coverage_scale(fit_z)
    assert k < 1 and shares["within_1_se_unscaled"] > 0.78
    for t, nominal in zip((1.0, 2.0), NOMINAL_COVERAGE, strict=True):
        assert abs((check_z < t * k).mean() - nominal) <= 0.08, (t, k)


def test_a_normal_change_keeps_its_se() -> None:
    z = np.abs(np.random.default_rng(2).normal(0, 1, 20000))
    k, _ = coverage_scale(z)
    assert k == pytest.approx(1.0, abs=0.05)


def _opinions(rows: np.ndarray, delta: np.ndarray, sigma: float) -> SecondOpinions:
    return SecondOpinions(rows, delta, np.full(len(rows), sigma))


def _unmoderated(n: int, rows: np.ndarray) -> np.ndarray:
    """Clips without a second opinion of their own: they keep the scaled fit."""
    return ~np.isin(np.arange(n), rows)


def test_each_modality_is_scaled_on_its_own_second_opinions_and_the_spreads_add_as_variances() -> None:
    rng = np.random.default_rng(3)
    n = 1200
    rows = np.arange(0, n, 2)
    heavy = np.where(rng.random(n // 2) < 0.8, rng.normal(0, 0.01, n // 2), rng.normal(0, 0.3, n // 2))
    audio = _opinions(rows, heavy, float(np.sqrt(np.mean(heavy**2) / 2)))
    normal = rng.normal(0, 0.1 * np.sqrt(2), n // 4)  # a spread of 0.1 that is right: keeps its scale
    visual = _opinions(rows[::2], normal, 0.1)
    std_a, std_v = np.full(n, 0.2), np.full(n, 0.1)
    d_std, info = coverage_scaled(std_a, std_v, audio, visual)
    ka, kv = info["audio"]["scale"], info["visual"]["scale"]
    assert ka < 0.8 and kv == pytest.approx(1.0, abs=0.1)
    assert info["audio"]["pairs"] == n // 2 and info["visual"]["pairs"] == n // 4
    keep = _unmoderated(n, rows)
    assert keep.sum() == n // 2
    assert np.allclose(d_std[keep], np.sqrt((0.2 * ka) ** 2 + (0.1 * kv) ** 2), rtol=1e-3)


def test_a_modality_with_too_few_or_no_second_opinions_keeps_its_variance_fit() -> None:
    rows = np.arange(0, 1200, 2)
    heavy = np.where(np.arange(600) % 5 == 0, 0.5, 0.001)
    audio = _opinions(rows, heavy, float(np.sqrt(np.mean(heavy**2) / 2)))
    std_a, std_v = np.full(1200, 0.2), np.full(1200, 0.1)
    few = _opinions(rows[:10], np.zeros(10), 0.1)
    d_std, info = coverage_scaled(std_a, std_v, audio, few)
    assert info["visual"]["scale"] == 1.0 and "not fitted" in info["visual"]["method"]
    assert "prior_df" not in info["visual"]  # not moderated either
    assert info["audio"]["scale"] != 1.0
    keep = _unmoderated(1200, rows)
    assert np.allclose(d_std[keep], np.sqrt((0.2 * info["audio"]["scale"]) ** 2 + 0.1**2), rtol=1e-3)
    kept, info = coverage_scaled(std_a, std_v, None, None)
    assert "not fitted" in info["method"] and np.allclose(kept, np.sqrt(0.2**2 + 0.1**2))


def _population(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-clip true single-model spreads that scatter around the fit (log-normal, as unstable clips of
    any confidence do), and one observed second-opinion change per clip."""
    rng = np.random.default_rng(seed)
    sigma = 0.05 * np.exp(rng.normal(0.0, 1.3, n))
    return sigma, rng.normal(0.0, np.sqrt(2.0) * sigma)


def test_a_clip_s_own_second_opinion_moderates_its_spread_and_restores_coverage_between_seeds() -> None:
    """The fit knows only the population's level; a clip's own change tells which clips are unstable.
    Checked on an independent re-scoring (another draw of every clip's change): the scaled fit alone
    misses the 2-SE share by more than 8 points; the moderation brings it within 8 points (and raises
    it by at least 3), and unstable clips get the larger spreads."""
    n = 4000
    sigma, delta = _population(n, 5)
    rows = np.arange(n)
    flat = float(np.sqrt(np.mean(delta**2) / 2))
    std = np.full(n, flat)  # the fit: one level for all (R = 1)
    d_std, info = coverage_scaled(std, np.zeros(n), _opinions(rows, delta, flat), None)
    assert 0 < info["audio"]["prior_df"] < 10 and info["audio"]["moderated_clips"] == n
    rescoring = np.abs(np.random.default_rng(6).normal(0.0, np.sqrt(2.0) * sigma))
    z = rescoring / (np.sqrt(2.0) * d_std)
    z_scaled_only = rescoring / (np.sqrt(2.0) * std * info["audio"]["scale"])
    assert (z_scaled_only < 2).mean() < NOMINAL_COVERAGE[1] - 0.075  # the defect: one scale, heavy tails
    assert abs((z < 2).mean() - NOMINAL_COVERAGE[1]) <= 0.06
    assert (z < 2).mean() >= (z_scaled_only < 2).mean() + 0.03
    assert abs((z < 1).mean() - NOMINAL_COVERAGE[0]) <= 0.12
    unstable = np.abs(delta) > np.quantile(np.abs(delta), 0.9)
    assert d_std[unstable].mean() > 2 * d_std[~unstable].mean()


def test_the_prior_weight_is_recovered_from_the_scatter_of_variance_ratios() -> None:
    rng = np.random.default_rng(7)
    for d0 in (1.0, 4.0):
        true = d0 / rng.chisquare(d0, 40000)  # per-clip variances scattered around the fit (scaled inverse chi^2)
        ratios = true * rng.chisquare(1, 40000)
        assert prior_degrees_of_freedom(ratios) == pytest.approx(d0, rel=0.15)
    assert prior_degrees_of_freedom(rng.chisquare(1, 200000)) > 20  # an exact fit: barely moderated
    assert prior_degrees_of_freedom(np.array([1.0, 0.0])) == float("inf")


def test_moderated_variance_pools_prior_and_own_observations() -> None:
    out = moderated_variance(np.array([1.0, 1.0]), np.array([0.0, 9.0]), np.array([0.0, 1.0]), 2.0)
    assert out.tolist() == [1.0, pytest.approx((2 * 1.0 + 9.0) / 3)]
    assert moderated_variance(np.array([1.0]), np.array([9.0]), np.array([1.0]), float("inf")).tolist() == [1.0]


def test_a_clip_with_a_close_rival_class_gets_a_larger_spread_at_the_same_true_class_confidence() -> None:
    """Every clip has p = 0.2; on half of them one wrong class holds 0.6 and re-scorings move p a lot,
    on the other half the wrong mass is split over eight classes and p barely moves. ``p (1 - p)``
    cannot tell them apart; the rival class's ``t (1 - t)`` can."""
    from mmcurate.score.assemble import ModalityRuns, model_to_model_std
    from mmcurate.score.calibration import Calibration

    rng = np.random.default_rng(9)
    n = 800
    y = np.zeros(n, dtype=np.int64)
    rival = np.arange(n) % 2 == 0
    probs = np.where(rival[:, None], [0.2, 0.6] + [0.2 / 7] * 7, [0.2] + [0.1] * 8)
    move = np.where(rival, rng.normal(0, 0.15, n), rng.normal(0, 0.01, n))
    other = probs.copy()
    other[:, 0] = np.clip(0.2 + move, 0.001, 0.999)
    other[:, 1:] *= ((1 - other[:, 0]) / probs[:, 1:].sum(1))[:, None]
    runs = ModalityRuns.empty(1, n, 9)
    runs.add(0, np.arange(n), probs, probs[:, :1].T, np.arange(n), other)
    std, fit, pairs = model_to_model_std(np.zeros(n), probs[:, 0], runs, Calibration(probs, False), np.zeros(n), y)
    assert fit["scale_rival"] > 0 and pairs is not None and len(pairs.rows) == n
    assert std[rival].mean() > 1.3 * std[~rival].mean()  # without the rival term: equal

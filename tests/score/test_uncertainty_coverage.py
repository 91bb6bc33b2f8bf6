"""``discrepancy_std`` is scaled to cover: a re-scoring's change of d within 1 / 2 of it on about
68 % / 95 % of clips, where the variance fit alone covers far more at 1 SE on heavy-tailed changes."""

from __future__ import annotations

import numpy as np
import pytest

from mmcurate.score.assemble import SecondOpinions, coverage_scaled
from mmcurate.score.uncertainty import NOMINAL_COVERAGE, coverage_scale


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


def test_each_modality_is_scaled_on_its_own_second_opinions_and_the_spreads_add_as_variances() -> None:
    rng = np.random.default_rng(3)
    n = 600
    rows = np.arange(n)
    heavy = np.where(rng.random(n) < 0.8, rng.normal(0, 0.01, n), rng.normal(0, 0.3, n))
    audio = _opinions(rows, heavy, float(np.sqrt(np.mean(heavy**2) / 2)))
    normal = rng.normal(0, 0.1 * np.sqrt(2), n // 2)  # a spread of 0.1 that is right: keeps its scale
    visual = _opinions(rows[::2], normal, 0.1)
    std_a, std_v = np.full(n, 0.2), np.full(n, 0.1)
    d_std, info = coverage_scaled(std_a, std_v, audio, visual)
    ka, kv = info["audio"]["scale"], info["visual"]["scale"]
    assert ka < 0.8 and kv == pytest.approx(1.0, abs=0.1)
    assert info["audio"]["pairs"] == n and info["visual"]["pairs"] == n // 2
    assert np.allclose(d_std, np.sqrt((0.2 * ka) ** 2 + (0.1 * kv) ** 2), rtol=1e-3)


def test_a_modality_with_too_few_or_no_second_opinions_keeps_its_variance_fit() -> None:
    rows = np.arange(600)
    heavy = np.where(np.arange(600) % 5 == 0, 0.5, 0.001)
    audio = _opinions(rows, heavy, float(np.sqrt(np.mean(heavy**2) / 2)))
    std_a, std_v = np.full(600, 0.2), np.full(600, 0.1)
    few = _opinions(rows[:10], np.zeros(10), 0.1)
    d_std, info = coverage_scaled(std_a, std_v, audio, few)
    assert info["visual"]["scale"] == 1.0 and "not fitted" in info["visual"]["method"]
    assert info["audio"]["scale"] != 1.0
    assert np.allclose(d_std, np.sqrt((0.2 * info["audio"]["scale"]) ** 2 + 0.1**2), rtol=1e-3)
    kept, info = coverage_scaled(std_a, std_v, None, None)
    assert "not fitted" in info["method"] and np.allclose(kept, np.sqrt(0.2**2 + 0.1**2))

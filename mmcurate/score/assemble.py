"""From the jobs' held-out arrays to the per-sample score columns: averaging over repeats,
calibration, uncertainty, bin probability. A pure function of arrays, so a scheduler can run the
(repeat, fold, modality) jobs anywhere and assemble the scores once they are all in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmcurate.score.calibration import (
    Calibration,
    apply_floor,
    apply_temperature,
    calibration_slope,
    cross_fitted_calibration,
    reliability,
)
from mmcurate.score.uncertainty import (
    MIN_COVERAGE_PAIRS,
    bin_probability,
    confidence_std,
    coverage_scale,
    discrepancy_std,
    fit_epoch_ratio,
    moderated_variance,
    prior_degrees_of_freedom,
)

MODALITIES = ("audio", "visual")
#: The bins ``bin_probability`` is stored for: balance's default, 10 equal bins over [-1, 1].
DEFAULT_EDGES = np.linspace(-1.0, 1.0, 11)
#: Bin probability below this = "near a bin edge" in reports.
NEAR_EDGE = 0.5


@dataclass
class ModalityRuns:
    """One modality's out-of-fold outputs, one entry per cross-fitting repeat: ``probs`` (n, C)
    held-out softmax averaged over each job's averaged epochs; ``true_mean`` and ``true_var`` (n,)
    the mean and variance (ddof 1; NaN for one epoch) of the true-class probability over those
    epochs (jobs average different numbers of epochs when they train to convergence); ``second``
    the inner-split predictions of every job: ``(rows, probs)``, a second out-of-sample opinion on
    rows another fold scores, used to measure how much a confidence moves from model to model."""

    probs: list[np.ndarray] = field(default_factory=list)
    true_mean: list[np.ndarray] = field(default_factory=list)
    true_var: list[np.ndarray] = field(default_factory=list)
    second: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    @classmethod
    def empty(cls, repeats: int, n: int, num_classes: int) -> ModalityRuns:
        return cls(
            [np.zeros((n, num_classes)) for _ in range(repeats)],
            [np.zeros(n) for _ in range(repeats)],
            [np.full(n, np.nan) for _ in range(repeats)],
        )

    def add(
        self,
        repeat: int,
        held: np.ndarray,
        probs: np.ndarray,
        held_true: np.ndarray,
        inner: np.ndarray | None = None,
        inner_probs: np.ndarray | None = None,
    ) -> None:
        """One job's arrays: held-out probabilities, the (E, n_held) true-class window, its inner split."""
        self.probs[repeat][held] = probs
        self.true_mean[repeat][held] = held_true.mean(axis=0)
        if len(held_true) > 1:
            self.true_var[repeat][held] = held_true.var(axis=0, ddof=1)
        if inner is not None and inner_probs is not None and len(inner):
            self.second.append((np.asarray(inner, dtype=np.int64), np.asarray(inner_probs, dtype=np.float64)))


@dataclass
class Assembled:
    columns: dict[str, np.ndarray]
    metrics: dict[str, Any]


def assemble_scores(y: np.ndarray, groups: np.ndarray, runs: dict[str, ModalityRuns], calibration: str) -> Assembled:
    """Per-sample columns (calibrated and raw confidences, stds, discrepancy, bin probability)
    and metrics (accuracy, calibration before/after with reliability data, uncertainty summary).

    ``groups`` is the partition the calibration is cross-fitted over (the first repeat's folds);
    ``calibration`` is ``floor``, ``temperature`` or ``none`` (:mod:`mmcurate.score.calibration`).
    """
    rows = np.arange(len(y))
    cols: dict[str, np.ndarray] = {}
    metrics: dict[str, Any] = {"calibration": {}, "uncertainty": {}}
    second: dict[str, SecondOpinions | None] = {}
    for m in MODALITIES:
        r = runs[m]
        raw = np.mean(r.probs, axis=0)
        cal = (
            cross_fitted_calibration(raw, y, groups, calibration)
            if calibration != "none"
            else Calibration(raw, False, reason="calibration switched off (--calibration none)")
        )
        raw_true = raw[rows, y]
        cal_true = cal.probs[rows, y]
        run_means = np.stack(r.true_mean)
        epoch_vars = np.nan_to_num(np.stack(r.true_var), nan=0.0)
        std = confidence_std(run_means, epoch_vars)
        if np.isnan(np.stack(r.true_var)).all() and len(r.true_mean) == 1:
            std = np.full(len(y), np.nan)  # one model, one checkpoint: no spread to measure
        if cal.applied:
            temps = np.asarray([cal.temperature[int(g)] for g in groups])
            floors = np.asarray([cal.floor.get(int(g), 0.0) for g in groups])
            tempered_true = (cal_true - floors / raw.shape[1]) / (1.0 - floors)
            std = std * calibration_slope(raw_true, tempered_true, temps, floors)
        std, fit, second[m] = model_to_model_std(std, cal_true, r, cal, groups, y)
        metrics["uncertainty"][f"model_spread_{m}"] = fit
        cols[f"p_{m}"] = cal_true
        cols[f"p_{m}_uncalibrated"] = raw_true
        cols[f"p_{m}_std"] = std
        cols[f"probs_{m}"] = cal.probs
        summary = cal.summary(y, raw)
        summary["reliability_before"] = reliability(raw, y)
        summary["reliability_after"] = reliability(cal.probs, y)
        metrics["calibration"][m] = summary
        metrics[f"oof_accuracy_{m}"] = round(float((raw.argmax(1) == y).mean()), 4)
        metrics["uncertainty"][f"epoch_ratio_{m}"] = round(fit_epoch_ratio(run_means, epoch_vars), 4)
        metrics["uncertainty"][f"mean_p_{m}_std"] = _mean(std)
    d = cols["p_audio"] - cols["p_visual"]
    d_std, coverage = coverage_scaled(cols["p_audio_std"], cols["p_visual_std"], second["audio"], second["visual"])
    metrics["uncertainty"]["discrepancy_coverage"] = coverage
    bin_p = bin_probability(d, d_std, DEFAULT_EDGES)
    cols["discrepancy"] = d
    cols["discrepancy_std"] = d_std
    cols["bin_probability"] = bin_p
    metrics["calibrated"] = all(metrics["calibration"][m]["method"] != "none" for m in MODALITIES)
    if np.isnan(d_std).all():
        metrics["uncertainty"]["note"] = "one repeat and one averaged epoch: no spread to estimate an uncertainty from"
    metrics["uncertainty"].update(
        {
            "mean_discrepancy_std": _mean(d_std),
            "mean_bin_probability": _mean(bin_p),
            "near_bin_edge": int((np.nan_to_num(bin_p, nan=1.0) < NEAR_EDGE).sum()),
            "near_edge_threshold": NEAR_EDGE,
            "bins": len(DEFAULT_EDGES) - 1,
        }
    )
    return Assembled(cols, metrics)


def both_weak_threshold(num_classes: int) -> float:
    """Below this both confidences are "low": at most twice chance (2/C), but never below 0.2 (many
    classes) nor above 0.5 (two classes: the scorer leans to the wrong class)."""
    return float(min(0.5, max(0.2, 2.0 / num_classes)))


@dataclass(frozen=True)
class SecondOpinions:
    """Every inner-split second opinion of one modality: ``rows`` (a clip may have more than one),
    ``delta`` = the clip's calibrated out-of-fold confidence minus the other model's, ``sigma`` the
    fitted single-model spread at that clip, and ``repeats`` the models the out-of-fold confidence
    averages (so ``delta`` has variance ``(1 + 1 / repeats) sigma^2`` if the fit is right)."""

    rows: np.ndarray
    delta: np.ndarray
    sigma: np.ndarray
    repeats: int = 1

    @property
    def inflation(self) -> float:
        """Variance of ``delta`` over the single-model variance: ``1 + 1 / repeats``."""
        return 1.0 + 1.0 / self.repeats

    def first_per_clip(self) -> SecondOpinions:
        """One opinion per clip (the first), for checks that count clips, not opinions."""
        _, first = np.unique(self.rows, return_index=True)
        return SecondOpinions(self.rows[first], self.delta[first], self.sigma[first], self.repeats)


def coverage_scaled(
    std_audio: np.ndarray,
    std_visual: np.ndarray,
    audio: SecondOpinions | None,
    visual: SecondOpinions | None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """``discrepancy_std`` from each modality's spread, scaled to cover and moderated per clip; the two
    modalities' spreads add as variances.

    1. **Scale** (:func:`mmcurate.score.uncertainty.coverage_scale`): each modality's fitted spread is
       multiplied by the factor that makes a re-scoring's change of its confidence fall within 1 and 2 of
       it on about 68 % and 95 % of the clips with a second opinion (one per clip). Per modality and not one
       factor on the change of ``d``: that needs second opinions of both modalities on the same clip, about
       a third as many clips, and its factor moved between seeds (0.53 and 0.71 on one set).
    2. **Moderate** (:func:`mmcurate.score.uncertainty.moderated_variance`): a clip that has its own second
       opinion shows how far *it* moves from model to model. Its variance becomes the empirical-Bayes mix
       of the scaled fit (the prior, worth ``prior_df`` observations, estimated from how much the observed
       changes scatter around the fit) and its own squared change. Why: the fit is a function of ``p``
       only, and the changes are heavy-tailed because some clips of any ``p`` are unstable; a clip's own
       change is the best single predictor of its change under another seed (correlation 0.50-0.64 on
       the benchmark sets, against 0.33-0.63 for the fit). Between two scorer seeds this brought the
       2-SE share from 83-87 % to 88-91 % on the sets where the scale alone missed it
       (benchmarks/results/discrepancy_coverage_study.md).

    A modality with too few second opinions (small sets) keeps its variance fit, unscaled and unmoderated."""
    scaled: list[np.ndarray] = []
    info: dict[str, Any] = {
        "method": "each modality's variance fit scaled to cover 68 % / 95 % of its second-opinion changes, "
        "then moderated per clip by the clip's own second opinions (empirical Bayes)"
    }
    unfitted: list[str] = []
    for name, std, pairs in (("audio", std_audio, audio), ("visual", std_visual, visual)):
        clips = pairs.first_per_clip() if pairs is not None else None
        if pairs is None or clips is None or len(clips.rows) < MIN_COVERAGE_PAIRS:
            why = (
                "no second opinions (fixed --epochs)"
                if clips is None
                else f"{len(clips.rows)} clips have second opinions (at least {MIN_COVERAGE_PAIRS} needed)"
            )
            scaled.append(std)
            unfitted.append(f"{name}: {why}")
            info[name] = {"method": f"not fitted: {why}", "scale": 1.0}
            if clips is not None:
                info[name]["pairs"] = int(len(clips.rows))
            continue
        spread = np.sqrt(clips.inflation) * clips.sigma
        k, shares = coverage_scale(np.abs(clips.delta) / np.maximum(spread, 1e-12))
        # the moderation works on single-model variances; std is the standard error of the repeats' mean
        ratio = pairs.delta**2 / (pairs.inflation * np.maximum((k * pairs.sigma) ** 2, 1e-24))
        prior_df = prior_degrees_of_freedom(ratio)
        own = np.zeros(len(std))
        count = np.zeros(len(std))
        np.add.at(own, pairs.rows, pairs.delta**2 / pairs.inflation)
        np.add.at(count, pairs.rows, 1.0)
        single = moderated_variance((k * std) ** 2 * pairs.repeats, own, count, prior_df)
        scaled.append(np.sqrt(single / pairs.repeats))
        info[name] = {
            "scale": round(k, 4),
            "pairs": int(len(clips.rows)),
            **shares,
            "prior_df": None if not np.isfinite(prior_df) else round(prior_df, 3),
            "moderated_clips": int((count > 0).sum()) if np.isfinite(prior_df) else 0,
        }
    if len(unfitted) == 2:
        info["method"] = "not fitted: " + "; ".join(unfitted)
    return discrepancy_std(scaled[0], scaled[1]), info


def model_to_model_std(
    std: np.ndarray, p: np.ndarray, runs: ModalityRuns, cal: Calibration, groups: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, dict[str, Any], SecondOpinions | None]:
    """How far a sample's confidence moves when another model scores it, per sample.

    The spread over a job's averaged epochs (``std``) is measured on every sample but underestimates
    what re-training does: checkpoints of one run agree more than separate runs. Every job also
    scored its inner split, samples that another fold's model scores out-of-fold: a second opinion
    from a separately trained model. Their differences ``delta`` (both calibrated with the sample's
    fold's calibration; variance ``(1 + 1/R)`` times a single model's for an R-repeat mean) give the
    single-model variance, fitted per modality as ``a * std^2 * R + b * p (1 - p) + c * t (1 - t)``
    (non-negative least squares). ``p (1 - p)`` lets a sample whose checkpoints agree still move, most
    where ``p`` is near 0.5; ``t`` is the strongest wrong class's probability: a clip's true-class
    confidence also moves when one rival class competes for it (``t`` near 0.5), even at a low ``p``
    that ``p (1 - p)`` calls stable. The standard error of a sample's confidence is then the fitted
    spread over the number of repeats averaged. Without second opinions (no inner splits, fixed
    --epochs) ``std`` is returned as it is."""
    from scipy.optimize import nnls

    repeats = len(runs.probs)
    base = np.nan_to_num(std, nan=0.0)
    if not runs.second:
        return std, {"method": "epoch spread only (no second opinions)"}, None
    rows = np.concatenate([r for r, _ in runs.second])
    other = np.concatenate([q for _, q in runs.second])
    if cal.applied:
        other = calibrate_like(other, rows, cal, groups)
    q_true = other[np.arange(len(rows)), y[rows]]
    delta = p[rows] - q_true
    pbar = (p[rows] + q_true) / 2
    rival = strongest_wrong(cal.probs, y)
    tbar = (rival[rows] + strongest_wrong(other, y[rows])) / 2
    inflation = 1.0 + 1.0 / repeats
    design = np.stack([(base[rows] ** 2) * repeats, pbar * (1 - pbar), tbar * (1 - tbar)], axis=1)
    coef, _ = nnls(design, delta**2 / inflation)
    var = coef[0] * base**2 * repeats + coef[1] * p * (1 - p) + coef[2] * rival * (1 - rival)
    fit = {
        "method": "epoch spread, p(1-p) and the rival class's t(1-t), scaled to model-to-model differences "
        "on inner-split second opinions",
        "pairs": int(len(rows)),
        "scale_epoch_variance": round(float(coef[0]), 4),
        "scale_binomial": round(float(coef[1]), 4),
        "scale_rival": round(float(coef[2]), 4),
        "mean_abs_difference": round(float(np.abs(delta).mean()), 4),
    }
    pairs = SecondOpinions(rows, delta, np.sqrt(np.maximum(var[rows], 0.0)), repeats)
    return np.sqrt(np.maximum(var, 0.0) / repeats), fit, pairs


def strongest_wrong(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per sample, the highest probability of a class other than the true one."""
    rest = np.array(probs, dtype=np.float64, copy=True)
    rest[np.arange(len(rest)), y] = -np.inf
    return rest.max(axis=1) if rest.shape[1] > 1 else np.zeros(len(rest))


def calibrate_like(probs: np.ndarray, rows: np.ndarray, cal: Calibration, groups: np.ndarray) -> np.ndarray:
    """Apply to ``probs`` (of samples ``rows``) the calibration each sample's own fold received."""
    out = np.empty_like(probs)
    g = np.asarray(groups)[rows]
    for k in np.unique(g).tolist():
        m = g == k
        q = apply_temperature(probs[m], cal.temperature[int(k)])
        out[m] = apply_floor(q, cal.floor[int(k)]) if int(k) in cal.floor else q
    return out


def _mean(x: np.ndarray) -> float | None:
    return None if np.isnan(x).all() else round(float(np.nanmean(x)), 4)

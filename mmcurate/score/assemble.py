"""From the jobs' held-out arrays to the per-sample score columns: averaging over repeats,
calibration, uncertainty, bin probability. A pure function of arrays, so a scheduler can run the
(repeat, fold, modality) jobs anywhere and assemble the scores once they are all in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmcurate.score.calibration import Calibration, calibration_slope, cross_fitted_calibration, reliability
from mmcurate.score.uncertainty import bin_probability, confidence_std, discrepancy_std, fit_epoch_ratio

MODALITIES = ("audio", "visual")
#: The bins ``bin_probability`` is stored for: balance's default, 10 equal bins over [-1, 1].
DEFAULT_EDGES = np.linspace(-1.0, 1.0, 11)
#: Bin probability below this = "near a bin edge" in reports.
NEAR_EDGE = 0.5


@dataclass
class ModalityRuns:
    """One modality's out-of-fold outputs, one entry per cross-fitting repeat: ``probs`` (n, C)
    held-out softmax averaged over the window; ``window_true`` (W, n) the true-class probability
    after each averaged epoch (rows of samples a repeat has not scored yet are never read)."""

    probs: list[np.ndarray] = field(default_factory=list)
    window_true: list[np.ndarray] = field(default_factory=list)


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
        run_means = np.stack([w.mean(axis=0) for w in r.window_true])
        epoch_vars = np.stack([w.var(axis=0, ddof=1) if len(w) > 1 else np.zeros(len(y)) for w in r.window_true])
        std = confidence_std(run_means, epoch_vars)
        if len(r.window_true) == 1 and len(r.window_true[0]) == 1:
            std = np.full(len(y), np.nan)  # one model, one checkpoint: no spread to measure
        if cal.applied:
            temps = np.asarray([cal.temperature[int(g)] for g in groups])
            floors = np.asarray([cal.floor.get(int(g), 0.0) for g in groups])
            tempered_true = (cal_true - floors / raw.shape[1]) / (1.0 - floors)
            std = std * calibration_slope(raw_true, tempered_true, temps, floors)
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
    d_std = discrepancy_std(cols["p_audio_std"], cols["p_visual_std"])
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


def _mean(x: np.ndarray) -> float | None:
    return None if np.isnan(x).all() else round(float(np.nanmean(x)), 4)

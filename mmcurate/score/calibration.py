"""Calibrated confidences without leakage: cross-fitted temperature scaling (with a label-noise
floor), and the expected calibration error.

Why: the discrepancy ``d = p_audio - p_visual`` subtracts two probabilities, so each must mean
what it says: of the samples a scorer gives 0.8, about 80 % should be right. Averaging the
softmax over epochs and repeats makes a scorer under-confident, too few epochs or too much
capacity make it over-confident, and the two modalities drift differently, so the same ``d``
would mean different things on different data. Temperature scaling (Guo et al., 2017: one
parameter ``T`` per modality, ``softmax(log p / T)``) fixes the scale without changing any
prediction.

One temperature cannot calibrate a modality whose evidence contradicts the label on a share of
the clips -- exactly what this toolkit looks for (a picture of another digit, a silent or noisy
track): the scorer is rightly sure about what it sees, and wrong about the label, on those clips,
and the likelihood-optimal temperature then softens every clip (on the generated benchmark sets
plain temperature scaling made the visual scorer's ECE *worse*). The default ``floor`` method
therefore fits two numbers per modality by likelihood: a temperature and a floor ``a``, the share
of labels the modality cannot support, ``p = (1 - a) softmax(log p / T) + a / C``. The fitted
floor comes out close to the share of corrupted clips (0.12 and 0.25 on sets with 20 % and 35 %
visually corrupted clips, 0 for the audio scorer there); both modalities' ECE then fall.

No sample's calibration is fitted on its own prediction: the samples are split into groups
(the cross-fitting folds), and the temperature applied to a group is fitted on the out-of-fold
predictions of every *other* group (cross-fitting, as the scores themselves are). Everything
here is a pure function of arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize, minimize_scalar

#: Equal-width confidence bins of the expected calibration error (Guo et al. use 15).
ECE_BINS = 15
#: Fewer samples per class than this (on average, in a fitting set) and no temperature is fitted.
MIN_SAMPLES_PER_CLASS = 5
#: Temperatures are searched on a log scale within exp(-LOG_T_RANGE) .. exp(LOG_T_RANGE).
LOG_T_RANGE = 3.0
_EPS = 1e-12


#: method name -> description recorded in scores.json
METHODS = {
    "floor": "cross-fitted temperature scaling with a label-noise floor",
    "temperature": "cross-fitted temperature scaling",
}


@dataclass(frozen=True)
class Calibration:
    """The outcome of cross-fitted calibration of one modality.

    ``probs`` are the calibrated distributions (the input itself when ``applied`` is False, with
    the reason in ``reason``); ``temperature`` and ``floor`` hold each group's fitted values.
    """

    probs: np.ndarray
    applied: bool
    temperature: dict[int, float] = field(default_factory=dict)
    floor: dict[int, float] = field(default_factory=dict)
    reason: str | None = None
    method: str = "floor"

    def summary(self, y: np.ndarray, raw: np.ndarray) -> dict[str, Any]:
        """JSON-able record: method, temperatures, ECE before and after (or the reason it was skipped)."""
        out: dict[str, Any] = {
            "method": METHODS[self.method] if self.applied else "none",
            "ece_before": round(expected_calibration_error(raw, y), 4),
            "ece_after": round(expected_calibration_error(self.probs, y), 4),
            "nll_before": round(nll(raw, y), 4),
            "nll_after": round(nll(self.probs, y), 4),
        }
        if self.applied:
            out["temperature_per_group"] = {str(g): round(t, 4) for g, t in sorted(self.temperature.items())}
            if self.floor:
                out["floor_per_group"] = {str(g): round(a, 4) for g, a in sorted(self.floor.items())}
        else:
            out["reason"] = self.reason
        return out


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label ECE: over equal-width bins of the top confidence, the sample-weighted mean gap
    between accuracy and mean confidence. 0 for an empty input."""
    if len(y) == 0:
        return 0.0
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(float)
    which = np.minimum((conf * bins).astype(np.int64), bins - 1)
    total = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            total += m.sum() * abs(correct[m].mean() - conf[m].mean())
    return float(total / len(y))


def reliability(probs: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> dict[str, list[float]]:
    """Per confidence bin: mean confidence, accuracy and count (the reliability diagram's data)."""
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(float)
    which = np.minimum((conf * bins).astype(np.int64), bins - 1)
    out: dict[str, list[float]] = {"confidence": [], "accuracy": [], "count": [], "lower": [], "upper": []}
    for b in range(bins):
        m = which == b
        out["lower"].append(b / bins)
        out["upper"].append((b + 1) / bins)
        out["count"].append(int(m.sum()))
        out["confidence"].append(float(conf[m].mean()) if m.any() else float("nan"))
        out["accuracy"].append(float(correct[m].mean()) if m.any() else float("nan"))
    return out


def nll(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class."""
    if len(y) == 0:
        return 0.0
    return float(-np.log(np.clip(probs[np.arange(len(y)), y], _EPS, 1.0)).mean())


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log p / T)``: the same ranking of classes, sharper for T < 1, softer for T > 1."""
    z = np.log(np.clip(probs, _EPS, 1.0)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """The temperature that minimises the NLL of ``y`` under ``softmax(log p / T)`` (a convex
    problem in 1/T; bounded search over log T, deterministic)."""
    logp = np.log(np.clip(probs, _EPS, 1.0))
    rows = np.arange(len(y))

    def loss(log_t: float) -> float:
        z = logp / np.exp(log_t)
        m = z.max(axis=1)
        return float((m + np.log(np.exp(z - m[:, None]).sum(axis=1)) - z[rows, y]).mean())

    res = minimize_scalar(loss, bounds=(-LOG_T_RANGE, LOG_T_RANGE), method="bounded", options={"xatol": 1e-5})
    return float(np.exp(res.x))


def apply_floor(probs: np.ndarray, floor: float) -> np.ndarray:
    """``(1 - a) p + a / C``: a share ``a`` of the mass spread evenly (labels the modality cannot support)."""
    return (1.0 - floor) * probs + floor / probs.shape[1]


def fit_temperature_floor(probs: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(T, a) minimising the NLL of ``y`` under ``(1 - a) softmax(log p / T) + a / C`` (L-BFGS-B over
    log T in +-LOG_T_RANGE and logit a; deterministic)."""
    rows = np.arange(len(y))
    c = probs.shape[1]

    def loss(v: np.ndarray) -> float:
        q = apply_temperature(probs, float(np.exp(v[0])))[rows, y]
        a = 1.0 / (1.0 + np.exp(-v[1]))
        return float(-np.log(np.clip((1.0 - a) * q + a / c, _EPS, 1.0)).mean())

    t0 = np.log(fit_temperature(probs, y))
    res = minimize(loss, np.array([t0, -6.0]), method="L-BFGS-B", bounds=[(-LOG_T_RANGE, LOG_T_RANGE), (-12.0, 4.0)])
    return float(np.exp(res.x[0])), float(1.0 / (1.0 + np.exp(-res.x[1])))


def why_not_calibratable(probs: np.ndarray, y: np.ndarray) -> str | None:
    """A one-line reason why a temperature cannot be fitted on these samples, else None."""
    n, c = probs.shape
    if n == 0:
        return "no samples to fit a temperature on"
    if n / max(c, 1) < MIN_SAMPLES_PER_CLASS:
        return (
            f"too few samples per class to fit a temperature ({n} samples for {c} classes, "
            f"fewer than {MIN_SAMPLES_PER_CLASS} per class)"
        )
    conf = probs.max(axis=1)
    if float(np.ptp(conf)) < 1e-9:
        return f"every confidence is the same value ({conf[0]:.4g}); there is nothing to calibrate"
    return None


def cross_fitted_calibration(
    probs: np.ndarray, y: np.ndarray, groups: np.ndarray, method: str = "floor"
) -> Calibration:
    """Calibrate each group with a temperature (and, for ``method="floor"``, a floor) fitted on
    all *other* groups' samples.

    ``groups`` (n,) int is a partition of the samples (the cross-fitting folds). When any
    fitting set is unusable (:func:`why_not_calibratable`), nothing is calibrated and the
    reason is returned, so the caller can write the uncalibrated scores and record why.
    """
    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}")
    probs = np.asarray(probs, dtype=np.float64)
    uniq = np.unique(groups)
    if len(uniq) < 2:
        return Calibration(probs, False, reason="calibration needs at least 2 groups to cross-fit", method=method)
    out = np.empty_like(probs)
    temps: dict[int, float] = {}
    floors: dict[int, float] = {}
    for g in uniq.tolist():
        held = groups == g
        why = why_not_calibratable(probs[~held], y[~held])
        if why is not None:
            return Calibration(probs, False, reason=why, method=method)
        if method == "floor":
            temps[int(g)], floors[int(g)] = fit_temperature_floor(probs[~held], y[~held])
            out[held] = apply_floor(apply_temperature(probs[held], temps[int(g)]), floors[int(g)])
        else:
            temps[int(g)] = fit_temperature(probs[~held], y[~held])
            out[held] = apply_temperature(probs[held], temps[int(g)])
    return Calibration(out, True, temps, floors, method=method)


def calibration_slope(
    raw_true: np.ndarray, tempered_true: np.ndarray, temperature: np.ndarray, floor: np.ndarray | float = 0.0
) -> np.ndarray:
    """d(calibrated true-class probability) / d(raw true-class probability), per sample.

    For temperature scaling, when the true class's probability moves and the other classes keep
    their proportions, the derivative is ``(1/T) q (1 - q) / (p (1 - p))`` (p raw, q after the
    temperature); a floor ``a`` multiplies it by ``1 - a``. Used to carry a spread measured on raw
    probabilities onto the calibrated scale (delta method).
    """
    p = np.clip(raw_true, 1e-6, 1 - 1e-6)
    q = np.clip(tempered_true, 0.0, 1.0)
    return (1.0 - np.asarray(floor)) * q * (1 - q) / (temperature * p * (1 - p))

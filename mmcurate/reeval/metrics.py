"""Test-set metrics: overall, per modality, per discrepancy subset, per bin, per threshold.

Subsets follow the seed paper: audio-preferred (d > 0) and visual-preferred (d < 0) test
samples; each discrepancy bin; and the threshold analysis, keeping samples with d > T
(audio-dominated), d < -T (visual-dominated) or |d| > T, for T in {0, 0.2, 0.4}. Every subset
metric comes with its sample count; an empty subset gives None, never a made-up number.
"""

from __future__ import annotations

from typing import Any

import numpy as np

THRESHOLDS: tuple[float, ...] = (0.0, 0.2, 0.4)


def accuracy(pred: np.ndarray, labels: np.ndarray) -> float | None:
    """Fraction of correct predictions; None for an empty set."""
    pred, labels = np.asarray(pred), np.asarray(labels)
    return float((pred == labels).mean()) if labels.size else None


def macro_f1(pred: np.ndarray, labels: np.ndarray, num_classes: int | None = None) -> float | None:
    """Unweighted mean of per-class F1 = 2TP / (2TP + FP + FN).

    Averaged over the classes that occur in the labels or the predictions (a class that is
    neither present nor predicted has no defined F1), as scikit-learn does by default.
    """
    pred, labels = np.asarray(pred), np.asarray(labels)
    if labels.size == 0:
        return None
    k = num_classes if num_classes is not None else int(max(pred.max(), labels.max())) + 1
    scores = []
    for c in range(k):
        tp = int(np.sum((pred == c) & (labels == c)))
        fp = int(np.sum((pred == c) & (labels != c)))
        fn = int(np.sum((pred != c) & (labels == c)))
        if tp + fp + fn == 0:
            continue
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def subset_masks(discrepancy: np.ndarray) -> dict[str, np.ndarray]:
    """Named boolean masks over the test samples (unscored samples belong to none)."""
    d = np.asarray(discrepancy, dtype=np.float64)
    scored = np.isfinite(d)
    dd = np.where(scored, d, 0.0)
    masks = {"audio_pref": scored & (dd > 0), "visual_pref": scored & (dd < 0)}
    for t in THRESHOLDS:
        masks[f"audio>{t:g}"] = scored & (dd > t)
        masks[f"visual>{t:g}"] = scored & (dd < -t)
        masks[f"abs>{t:g}"] = scored & (np.abs(dd) > t)
    return masks


def evaluate_predictions(
    pred: np.ndarray,
    labels: np.ndarray,
    discrepancy: np.ndarray,
    bins: np.ndarray,
    num_bins: int,
    num_classes: int,
    pred_audio: np.ndarray | None = None,
    pred_visual: np.ndarray | None = None,
) -> dict[str, Any]:
    """All metrics of one run on the test split, as a JSON-able dict.

    ``accuracy`` maps subset name -> accuracy (overall, audio_pref, visual_pref, thresholds);
    ``counts`` the same names -> sample counts; ``bin_accuracy``/``bin_counts`` are per bin.
    ``acc_audio``/``acc_visual`` use the per-modality logits (None where the model has none).
    """
    pred, labels = np.asarray(pred), np.asarray(labels)
    bins = np.asarray(bins)
    acc: dict[str, float | None] = {"overall": accuracy(pred, labels)}
    counts: dict[str, int] = {"overall": int(labels.size)}
    for name, mask in subset_masks(discrepancy).items():
        acc[name] = accuracy(pred[mask], labels[mask])
        counts[name] = int(mask.sum())
    bin_acc = [accuracy(pred[bins == b], labels[bins == b]) for b in range(num_bins)]
    bin_counts = [int(np.sum(bins == b)) for b in range(num_bins)]
    return {
        "accuracy": acc,
        "counts": counts,
        "macro_f1": macro_f1(pred, labels, num_classes),
        "acc_audio": None if pred_audio is None else accuracy(pred_audio, labels),
        "acc_visual": None if pred_visual is None else accuracy(pred_visual, labels),
        "bin_accuracy": bin_acc,
        "bin_counts": bin_counts,
    }


def metric_keys(num_bins: int) -> list[str]:
    """The flat metric keys in their one fixed order (results.csv columns, table order).

    Fixed here rather than taken from a result's dict order: a result read back from JSON (a reused
    run) may hold its keys in another order, and the same runs must give the same bytes."""
    keys = ["acc", "macro_f1", "acc_audio", "acc_visual", "acc_audio_pref", "acc_visual_pref"]
    keys += [f"acc_{side}>{t:g}" for t in THRESHOLDS for side in ("audio", "visual", "abs")]
    keys += [f"acc_bin{b}" for b in range(num_bins)]
    return keys + list(CONTRIBUTION_KEYS)


def flat_metrics(result: dict[str, Any]) -> dict[str, float | None]:
    """``metric name -> value``, one level: the columns of results.csv and the tables (:func:`metric_keys` order)."""
    accs = result["accuracy"]
    contribution = result.get("contribution") or {}
    out: dict[str, float | None] = {}
    for key in metric_keys(len(result["bin_accuracy"])):
        if key == "acc":
            out[key] = accs["overall"]
        elif key in ("macro_f1", "acc_audio", "acc_visual"):
            out[key] = result[key]
        elif key.startswith("acc_bin"):
            out[key] = result["bin_accuracy"][int(key.removeprefix("acc_bin"))]
        elif key in CONTRIBUTION_KEYS:
            level, name = CONTRIBUTION_KEYS[key]
            out[key] = contribution.get(level, {}).get(name)
        else:
            out[key] = accs.get(key.removeprefix("acc_"))
    return out


#: flat key -> (level, key) of the modality contribution (see mmcurate.reeval.contribution)
CONTRIBUTION_KEYS: dict[str, tuple[str, str]] = {
    "shapley_audio": ("dataset", "audio"),
    "shapley_visual": ("dataset", "visual"),
    "shapley_imbalance": ("dataset", "imbalance"),
    "shapley_sample_audio": ("sample", "audio_mean"),
    "shapley_sample_visual": ("sample", "visual_mean"),
}


def metric_counts(result: dict[str, Any]) -> dict[str, int | None]:
    """Flat metric key -> number of test samples it was computed on (None: not a proportion)."""
    counts = result["counts"]
    out: dict[str, int | None] = {}
    for key in metric_keys(len(result["bin_counts"])):
        if key in ("acc", "acc_audio", "acc_visual"):
            out[key] = counts["overall"]
        elif key == "macro_f1" or key in CONTRIBUTION_KEYS:
            out[key] = None
        elif key.startswith("acc_bin"):
            out[key] = result["bin_counts"][int(key.removeprefix("acc_bin"))]
        else:
            out[key] = counts.get(key.removeprefix("acc_"))
    return out


def mean_std(values: list[float | None]) -> tuple[float | None, float | None, int]:
    """(mean, sample std, n) over the non-None values; std is None for fewer than two values (one seed
    has no spread to state: 0 would claim a certainty nobody measured)."""
    xs = [v for v in values if v is not None]
    if not xs:
        return None, None, 0
    arr = np.asarray(xs, dtype=np.float64)
    std = float(arr.std(ddof=1)) if len(xs) > 1 else None
    return float(arr.mean()), std, len(xs)

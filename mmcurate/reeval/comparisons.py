"""The numbers behind the report: per-clip outcomes of every run, intervals, paired differences, flags.

Reads each run's ``predictions.parquet`` (one row per test clip) so that intervals can include the
test-sample variance and comparisons can be paired clip by clip (:mod:`mmcurate.reeval.stats`).
Where a run's predictions are missing or belong to other test clips, that method falls back to
intervals over seeds only, and the summary says so (``ci`` names the kind of every interval).

Two references for every method, both on the same clips and seeds:

* ``joint``: plain joint training (does the method beat the baseline it modifies?);
* the *preferred unimodal model* of the subset: ``audio_only`` on audio-preferred columns (d > 0,
  d > T, bins above 0), ``visual_only`` on visual-preferred ones, and on columns with both sides
  (all clips, \\|d\\| > T, a bin across 0) the unimodal model with the higher mean validation
  accuracy (chosen without looking at test).

A method whose test accuracy is not clearly above chance (its interval reaches the share of the
most frequent test label) is flagged: its differences are shown but never marked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from mmcurate.reeval.data import ReevalData, SplitData
from mmcurate.reeval.metrics import THRESHOLDS, flat_metrics, mean_std, metric_counts, metric_keys, subset_masks
from mmcurate.reeval.stats import (
    Bootstrap,
    accuracy_interval,
    chance_level,
    paired_difference,
    t_interval,
    wilson_interval,
)
from mmcurate.reeval.trainer import RunResult, run_dir_for

#: the references every method is compared with
REFERENCES: tuple[str, ...] = ("joint", "unimodal")
UNIMODAL: tuple[str, str] = ("audio_only", "visual_only")


@dataclass
class ClipOutcomes:
    """One method's per-clip correctness on the test split, one row per seed."""

    seeds: list[int]
    fused: np.ndarray  # (seeds, clips) bool
    audio: np.ndarray | None = None  # the per-modality logits' correctness, where the model has them
    visual: np.ndarray | None = None

    def select(self, seeds: list[int]) -> ClipOutcomes:
        rows = [self.seeds.index(s) for s in seeds]
        return ClipOutcomes(
            list(seeds),
            self.fused[rows],
            None if self.audio is None else self.audio[rows],
            None if self.visual is None else self.visual[rows],
        )


def load_outcomes(out_dir: Path, runs: list[RunResult], test: SplitData) -> dict[str, ClipOutcomes]:
    """method -> its clip outcomes, for methods whose every run has predictions on exactly these test clips."""
    labels = test.labels.numpy()
    by_method: dict[str, list[RunResult]] = {}
    for r in runs:
        by_method.setdefault(r.method, []).append(r)
    out: dict[str, ClipOutcomes] = {}
    for method, method_runs in by_method.items():
        rows: dict[str, list[np.ndarray]] = {"fused": [], "audio": [], "visual": []}
        for r in method_runs:
            path = run_dir_for(out_dir, method, r.seed) / "predictions.parquet"
            try:
                table = pq.read_table(path, columns=["sample_id", "pred", "pred_audio", "pred_visual"])
            except (OSError, ValueError, KeyError):
                break
            if table.column("sample_id").to_pylist() != list(test.sample_ids):
                break
            rows["fused"].append(np.asarray(table.column("pred").to_pylist()) == labels)
            for side in ("audio", "visual"):
                col = table.column(f"pred_{side}")
                if col.null_count == 0 and len(col):
                    rows[side].append(np.asarray(col.to_pylist()) == labels)
        else:
            n = len(method_runs)
            out[method] = ClipOutcomes(
                [r.seed for r in method_runs],
                np.stack(rows["fused"]) if rows["fused"] else np.zeros((n, 0), bool),
                np.stack(rows["audio"]) if len(rows["audio"]) == n else None,
                np.stack(rows["visual"]) if len(rows["visual"]) == n else None,
            )
    return out


def column_mask(key: str, test: SplitData) -> np.ndarray | None:
    """Which test clips an accuracy column is computed on; None for a column that is not a clip accuracy."""
    n = len(test)
    if key in ("acc", "acc_audio", "acc_visual"):
        return np.ones(n, dtype=bool)
    if key.startswith("acc_bin"):
        return np.asarray(test.bins) == int(key.removeprefix("acc_bin"))
    masks = subset_masks(test.discrepancy)
    name = key.removeprefix("acc_")
    return masks.get(name) if key.startswith("acc_") else None


def column_matrix(outcome: ClipOutcomes, key: str, test: SplitData) -> np.ndarray | None:
    """(seeds, clips of the column) correctness of ``outcome`` for accuracy column ``key``; None if undefined."""
    mask = column_mask(key, test)
    if mask is None:
        return None
    if key == "acc_audio":
        return outcome.audio
    if key == "acc_visual":
        return outcome.visual
    return outcome.fused[:, mask]


def _is_proportion(key: str) -> bool:
    return key.startswith("acc")


def summarise(
    runs: list[RunResult],
    outcomes: dict[str, ClipOutcomes] | None = None,
    test: SplitData | None = None,
    boot: Bootstrap | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """method -> metric -> {mean, std, n (seeds), count (test clips), ci_low, ci_high, ci (kind)}.

    With ``outcomes`` (and ``test``) accuracy intervals are bootstrap intervals over clips and seeds
    (``ci = "bootstrap"``); without, the old intervals: Wilson over the clips for one seed, Student t
    over the seeds for several (``"wilson"``, ``"t"``), which leave out part of the variance. std is
    None for one seed.
    """
    outcomes = outcomes or {}
    rows: dict[str, list[dict[str, float | None]]] = {}
    counts: dict[str, dict[str, int | None]] = {}
    for r in runs:
        rows.setdefault(r.method, []).append(flat_metrics(r.test))
        counts.setdefault(r.method, metric_counts(r.test))
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for method, method_rows in rows.items():
        out[method] = {}
        outcome = outcomes.get(method) if test is not None else None
        local_boot = boot or (Bootstrap(len(outcome.seeds)) if outcome is not None else None)
        for k in method_rows[0]:
            values = [row.get(k) for row in method_rows]
            mean, std, n = mean_std(values)
            count = counts[method].get(k)
            ci, kind = None, None
            matrix = column_matrix(outcome, k, test) if outcome is not None and test is not None else None
            if mean is not None and matrix is not None and matrix.shape[1] and local_boot is not None:
                ci, kind = accuracy_interval(matrix, local_boot, k), "bootstrap"
            elif mean is not None and n == 1 and count and _is_proportion(k):
                ci, kind = wilson_interval(int(round(mean * count)), count), "wilson"
            elif outcome is not None and k == "macro_f1":
                pass  # an interval over seeds only would look like the others and leave out the clips: none
            elif n >= 2 and (k == "macro_f1" or _is_proportion(k)):
                ci, kind = t_interval(values), "t"
                if ci is not None:  # both live in [0, 1]
                    ci = (max(0.0, ci[0]), min(1.0, ci[1]))
            out[method][k] = {
                "mean": mean,
                "std": std,
                "n": n,
                "count": count,
                "ci_low": None if ci is None else ci[0],
                "ci_high": None if ci is None else ci[1],
                "ci": kind,
            }
    return out


def difference_keys(num_bins: int) -> list[str]:
    """The accuracy columns that get paired differences: all clips, each side, each threshold, each bin."""
    keys = ["acc", "acc_audio_pref", "acc_visual_pref"]
    keys += [f"acc_{side}>{t:g}" for t in THRESHOLDS if t > 0 for side in ("audio", "visual", "abs")]
    return keys + [f"acc_bin{b}" for b in range(num_bins)]


def column_side(key: str, bin_edges: list[float] | None) -> str | None:
    """ "audio" / "visual" for a column on one side of d = 0, None for a column with both sides."""
    if key in ("acc_audio_pref",) or key.startswith("acc_audio>"):
        return "audio"
    if key in ("acc_visual_pref",) or key.startswith("acc_visual>"):
        return "visual"
    if key.startswith("acc_bin") and bin_edges is not None:
        b = int(key.removeprefix("acc_bin"))
        lo, hi = bin_edges[b], bin_edges[b + 1]
        if lo >= 0:
            return "audio"
        if hi <= 0:
            return "visual"
    return None


def better_unimodal(runs: list[RunResult]) -> str | None:
    """The unimodal model with the higher mean validation accuracy (ties: audio_only); None if neither ran."""
    val: dict[str, list[float]] = {}
    for r in runs:
        if r.method in UNIMODAL:
            val.setdefault(r.method, []).append(r.best_val_acc)
    if not val:
        return None
    return max(UNIMODAL, key=lambda m: (np.mean(val[m]) if m in val else -1.0, m == "audio_only"))


def unimodal_reference(key: str, bin_edges: list[float] | None, better: str | None) -> str | None:
    side = column_side(key, bin_edges)
    return f"{side}_only" if side is not None else better


def differences(
    runs: list[RunResult],
    outcomes: dict[str, ClipOutcomes],
    data: ReevalData,
    boot_for: Any,
) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """reference kind -> method -> column -> paired difference (``PairedDifference.to_dict`` + ``reference``).

    ``boot_for(n_seeds)`` gives the shared :class:`Bootstrap` for that many paired seeds."""
    keys = difference_keys(data.num_bins)
    better = better_unimodal(runs)
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {kind: {} for kind in REFERENCES}
    for method, outcome in outcomes.items():
        for kind in REFERENCES:
            for key in keys:
                ref = "joint" if kind == "joint" else unimodal_reference(key, data.bin_edges, better)
                if ref is None or ref == method or ref not in outcomes:
                    continue
                seeds = [s for s in outcome.seeds if s in outcomes[ref].seeds]
                if not seeds:
                    continue
                a = column_matrix(outcome.select(seeds), key, data.test)
                b = column_matrix(outcomes[ref].select(seeds), key, data.test)
                if a is None or b is None:
                    continue
                diff = paired_difference(a, b, boot_for(len(seeds)), key)
                if diff is not None:
                    out[kind].setdefault(method, {})[key] = {**diff.to_dict(), "reference": ref}
    return out


def at_chance(summary: dict[str, dict[str, dict[str, Any]]], test: SplitData) -> dict[str, float]:
    """method -> its test accuracy, for methods whose accuracy interval reaches chance (the majority label's share)."""
    chance = chance_level(test.labels.numpy())
    flagged = {}
    for method, stats in summary.items():
        acc = stats.get("acc", {})
        low = acc.get("ci_low")
        if acc.get("mean") is None:
            continue
        if (low if low is not None else acc["mean"]) <= chance:
            flagged[method] = float(acc["mean"])
    return flagged


def ordered_keys(runs: list[RunResult]) -> list[str]:
    """The metric columns of these runs in their fixed order."""
    return metric_keys(len(runs[0].test["bin_accuracy"])) if runs else []

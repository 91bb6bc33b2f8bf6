"""Metrics on hand-computed cases, and the report's tables."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from mmcurate.reeval.metrics import (
    accuracy,
    evaluate_predictions,
    flat_metrics,
    macro_f1,
    mean_std,
    metric_keys,
    subset_masks,
)
from mmcurate.reeval.report import SUMMARY_COLUMNS, results_csv, summarise, summary_csv
from mmcurate.reeval.trainer import RunResult


def test_accuracy_and_macro_f1_by_hand() -> None:
    labels = np.array([0, 0, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 0])
    assert accuracy(pred, labels) == pytest.approx(3 / 5)
    # class 0: tp 1 fp 1 fn 1 -> 0.5; class 1: tp 2 fp 1 fn 0 -> 0.8; class 2: tp 0 fn 1 -> 0
    assert macro_f1(pred, labels, 3) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    # a class neither present nor predicted is left out of the mean
    assert macro_f1(pred, labels, 5) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert accuracy(np.array([]), np.array([])) is None and macro_f1(np.array([]), np.array([])) is None


def test_subsets_and_thresholds() -> None:
    d = np.array([0.5, -0.3, 0.1, np.nan, -0.5, 0.0])
    m = subset_masks(d)
    assert m["audio_pref"].tolist() == [True, False, True, False, False, False]
    assert m["visual_pref"].tolist() == [False, True, False, False, True, False]  # d = 0 is neither
    assert m["audio>0.2"].tolist() == [True, False, False, False, False, False]
    assert m["visual>0.2"].tolist() == [False, True, False, False, True, False]
    assert m["abs>0.4"].tolist() == [True, False, False, False, True, False]
    assert m["abs>0"].sum() == 4  # the unscored sample belongs to no subset


def test_evaluate_predictions_counts_subsets_and_bins() -> None:
    labels = np.array([0, 1, 2, 0, 1, 2])
    pred = np.array([0, 1, 0, 0, 2, 2])
    d = np.array([0.9, 0.7, -0.6, -0.8, 0.1, np.nan])
    bins = np.array([3, 3, 0, 0, 2, -1])
    r = evaluate_predictions(pred, labels, d, bins, num_bins=4, num_classes=3, pred_audio=labels, pred_visual=None)
    assert r["accuracy"]["overall"] == pytest.approx(4 / 6)
    assert r["accuracy"]["audio_pref"] == pytest.approx(2 / 3) and r["counts"]["audio_pref"] == 3
    assert r["accuracy"]["visual_pref"] == pytest.approx(1 / 2) and r["counts"]["visual_pref"] == 2
    assert r["accuracy"]["audio>0.4"] == 1.0 and r["counts"]["audio>0.4"] == 2
    assert r["bin_accuracy"] == [0.5, None, 0.0, 1.0] and r["bin_counts"] == [2, 0, 1, 2]
    assert r["acc_audio"] == 1.0 and r["acc_visual"] is None
    flat = flat_metrics(r)
    assert flat["acc_bin1"] is None and flat["acc_abs>0.2"] == pytest.approx(3 / 4)


def test_mean_std_over_seeds_and_no_std_for_one_seed() -> None:
    assert mean_std([0.5, 0.7, None]) == (pytest.approx(0.6), pytest.approx(np.std([0.5, 0.7], ddof=1)), 2)
    assert mean_std([0.5]) == (0.5, None, 1)  # one seed has no spread: never "± 0"
    assert mean_std([None]) == (None, None, 0)


def _run(method: str, seed: int, acc: float) -> RunResult:
    labels = np.array([0, 1, 0, 1])
    pred = labels.copy()
    pred[: int(round((1 - acc) * 4))] ^= 1
    test = evaluate_predictions(pred, labels, np.array([0.5, -0.5, 0.5, -0.5]), np.array([1, 0, 1, 0]), 2, 2)
    return RunResult(method, seed, 0, acc, 0.1, test, [], {})


def test_results_csv_is_one_row_per_run_and_the_summary_is_its_own_tidy_file() -> None:
    runs = [_run("joint", 0, 1.0), _run("joint", 1, 0.5), _run("audio_only", 0, 0.75)]
    s = summarise(runs)
    assert s["joint"]["acc"]["mean"] == pytest.approx(0.75) and s["joint"]["acc"]["n"] == 2
    rows = list(csv.DictReader(io.StringIO(results_csv(runs))))
    assert [(r["method"], r["seed"]) for r in rows] == [("joint", "0"), ("joint", "1"), ("audio_only", "0")]
    assert all(r["seed"].isdigit() for r in rows)  # no mean/std/interval rows mixed into the seed column
    assert list(rows[0])[:6] == ["method", "seed", "best_epoch", "best_val_acc", "acc", "macro_f1"]
    summary = list(csv.DictReader(io.StringIO(summary_csv(runs, s))))
    assert list(summary[0]) == SUMMARY_COLUMNS
    by = {(r["method"], r["metric"]): r for r in summary}
    assert by[("joint", "acc")]["mean"] == "0.750000" and by[("joint", "acc")]["seeds"] == "2"
    assert by[("joint", "acc")]["test_samples"] == "4"
    assert by[("audio_only", "acc")]["std"] == ""  # one seed: no std written, not 0
    assert by[("joint", "acc")]["std"] != ""


def test_results_csv_columns_do_not_depend_on_the_order_a_result_was_stored_in() -> None:
    run = _run("joint", 0, 0.75)
    shuffled = json.loads(json.dumps(run.test, sort_keys=True))  # as a reused run reads it back from JSON
    reread = RunResult("joint", 0, 0, 0.75, 0.1, shuffled, [], {})
    assert results_csv([run]) == results_csv([reread])
    assert list(flat_metrics(shuffled)) == metric_keys(2)

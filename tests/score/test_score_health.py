"""Scores that check themselves (issue 27): the self-check's verdicts, the convergence rule's
stop reasons, and the end-to-end behaviour on a set whose labels nothing can learn."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import run_cli, write_av_digits_manifest

from mmcurate.score.assemble import both_weak_threshold
from mmcurate.score.health import MIN_CLIPS_PER_CLASS, check_scores, wilson
from mmcurate.score.schedule import ConvergenceSettings, SearchState
from mmcurate.store.scores_health import failed_checks


def _preds(y: np.ndarray, accuracy: float, num_classes: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    right = rng.random(len(y)) < accuracy
    wrong = (y + rng.integers(1, num_classes, len(y))) % num_classes
    return np.where(right, y, wrong)


def test_scorers_clearly_above_chance_pass_and_chance_level_ones_fail() -> None:
    y = np.repeat(np.arange(10), 60)
    folds = np.tile(np.arange(5), 120)
    health = check_scores(y, folds, {"audio": _preds(y, 0.9, 10, 0), "visual": _preds(y, 0.1, 10, 1)}, 10)
    assert health["status"] == "fail"
    assert health["modalities"]["audio"]["above_chance"] is True
    assert health["modalities"]["visual"]["above_chance"] is False
    [verdict] = health["verdicts"]
    assert verdict["modality"] == "visual" and verdict["check"] == "above chance"
    assert "visual scorer is not above chance" in verdict["line"] and "\n" not in verdict["line"]


def test_barely_above_chance_fails_on_kappa() -> None:
    """Significantly above chance on many clips, but most confidences still noise (kappa < 0.2)."""
    y = np.repeat(np.arange(10), 300)
    folds = np.tile(np.arange(5), 600)
    health = check_scores(y, folds, {"audio": _preds(y, 0.9, 10, 0), "visual": _preds(y, 0.2, 10, 1)}, 10)
    visual = health["modalities"]["visual"]
    assert visual["interval"][0] > visual["chance"]  # significant
    assert health["status"] == "fail" and "barely above chance" in health["verdicts"][0]["message"]


def test_a_fold_far_below_the_others_is_named() -> None:
    y = np.repeat(np.arange(10), 100)
    folds = np.tile(np.arange(5), 200)
    visual = _preds(y, 0.9, 10, 1)
    visual[folds == 3] = _preds(y[folds == 3], 0.3, 10, 2)
    health = check_scores(y, folds, {"audio": _preds(y, 0.9, 10, 0), "visual": visual}, 10)
    failed = [v for v in health["verdicts"] if v["status"] == "fail"]
    assert [(v["modality"], v["fold"]) for v in failed] == [("visual", 3)]


def test_a_lagging_folds_advice_follows_how_its_search_ended() -> None:
    """A fold that stopped its search early is told to search longer (ot2 seed 0's visual fold 0: 35 epochs
    where the others trained 41-60), one out of epochs to raise the budget; restarts, which only recover a
    job stuck at chance, are not the advice."""
    y = np.repeat(np.arange(10), 100)
    folds = np.tile(np.arange(5), 200)
    visual = _preds(y, 0.9, 10, 1)
    visual[folds == 0] = _preds(y[folds == 0], 0.4, 10, 2)
    preds = {"audio": _preds(y, 0.9, 10, 0), "visual": visual}
    others = {
        ("visual", k): {"stop": "plateau", "epochs": e, "restarts": 0} for k, e in zip(range(1, 5), (60, 60, 60, 41))
    }

    def message(fold0: dict[str, object]) -> str:
        health = check_scores(y, folds, preds, 10, {**others, ("visual", 0): fold0}, patience=3)
        [failed] = [v for v in health["verdicts"] if v["status"] == "fail"]
        return str(failed["message"])

    early = message({"stop": "plateau", "epochs": 35, "restarts": 0})
    assert "ended after 35 epochs where the other folds trained 60" in early and "--patience 12" in early
    assert "--restarts" not in early
    assert "--max-epochs" in message({"stop": "budget", "epochs": 60, "restarts": 0})
    assert "--patience" not in message({"stop": "plateau", "epochs": 60, "restarts": 0})


def test_a_stuck_fold_fails_and_small_classes_warn() -> None:
    y = np.repeat(np.arange(4), 10)
    folds = np.tile(np.arange(2), 20)
    good = {"audio": y.copy(), "visual": y.copy()}
    health = check_scores(y, folds, good, 4, {("visual", 1): {"stop": "stuck", "restarts": 2, "epochs": 30}})
    checks = {(v["check"], v["status"], v["fold"]) for v in health["verdicts"]}
    assert ("folds agree", "fail", 1) in checks
    assert ("enough clips", "warn", None) in checks
    assert str(MIN_CLIPS_PER_CLASS) in next(v["message"] for v in health["verdicts"] if v["check"] == "enough clips")
    assert health["modalities"]["visual"]["folds"][1]["stop"] == "stuck"


def test_failed_checks_say_what_failed_not_the_checks_name() -> None:
    """balance's refusal once read "visual: above chance" for a scorer that was not."""
    y = np.repeat(np.arange(4), 10)
    folds = np.tile(np.arange(2), 20)
    rng = np.random.default_rng(0)
    noise = {"audio": rng.integers(0, 4, len(y)), "visual": y.copy()}
    health = check_scores(y, folds, noise, 4, {("visual", 1): {"stop": "stuck", "restarts": 2, "epochs": 30}})
    words = failed_checks(health)
    assert "audio: not clearly above chance" in words and "visual fold 1: folds disagree" in words, words
    assert "enough clips" not in words  # a warning, not a failure


def test_wilson_interval_covers_the_proportion() -> None:
    lo, hi = wilson(50, 100)
    assert lo < 0.5 < hi and math.isclose(lo + hi, 1.0)
    assert wilson(0, 0) == (0.0, 1.0)


def test_search_stops_stuck_on_the_chance_plateau_and_on_a_learned_plateau() -> None:
    settings = ConvergenceSettings(max_epochs=60, patience=3, restarts=2)
    chance_loss = math.log(10)
    stuck = SearchState(settings, 10)
    stops = [stuck.after_epoch(chance_loss, chance_loss, 10, 100) for _ in range(settings.search_cap)]
    assert "stuck" in stops and stops.index("stuck") + 1 >= settings.stuck_after
    learned = SearchState(settings, 10)
    losses = [2.0, 1.2, 0.7, 0.5, 0.42, 0.41, 0.41, 0.41, 0.41, 0.41, 0.41, 0.41]
    stops = [learned.after_epoch(x, x, 90, 100) for x in losses]
    assert stops[-1] == "plateau" or "plateau" in stops
    assert learned.learned and "stuck" not in stops


def test_both_weak_threshold_is_between_chance_and_a_coin() -> None:
    assert both_weak_threshold(2) == 0.5 and both_weak_threshold(10) == 0.2 and both_weak_threshold(100) == 0.2
    assert both_weak_threshold(5) == 0.4


@pytest.mark.slow
def test_unlearnable_labels_fail_the_check_strict_exits_2_and_balance_refuses(av_digits: Path, tmp_path: Path) -> None:
    """60 av_digits clips with shuffled labels: nothing can learn them. The scores are written, the
    failed checks are said in one line each, --strict exits 2, balance refuses them unless told."""
    manifest = write_av_digits_manifest(av_digits, tmp_path / "all.csv", per_format=9)
    rows = list(csv.DictReader(open(manifest)))
    classes = sorted({r["label"] for r in rows})
    random.Random(0).shuffle(rows)
    labels = [classes[i % len(classes)] for i in range(len(rows))]  # balanced, unrelated to the content
    with open(tmp_path / "shuffled.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({**r, "label": lbl} for r, lbl in zip(rows, labels))
    work = tmp_path / "work"
    proc = run_cli(
        "ingest", str(av_digits), "--manifest", str(tmp_path / "shuffled.csv"), "--workdir", str(work), "--size", "48"
    )
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("score", "--workdir", str(work), "--no-save-scorers", "--strict")
    assert proc.returncode == 2, proc.stderr
    assert "score check failed:" in proc.stderr and "not above chance" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "epoch" in proc.stderr  # epoch-level progress lines, readable in a log file
    meta = json.loads((work / "ingest" / "scores.json").read_text())
    assert meta["health"]["status"] == "fail"
    assert {v["modality"] for v in meta["health"]["verdicts"] if v["status"] == "fail"} >= {"audio", "visual"}
    folds = meta["metrics"]["folds"]
    assert all("stop" in f and "epochs" in f for f in folds)
    scores = pq.read_table(work / "ingest" / "scores.parquet")
    assert "both_weak" in scores.column_names
    assert meta["both_weak"]["count"] == sum(scores.column("both_weak").to_pylist())
    # balance refuses the scores (without rescoring them), then accepts them when told
    balance = ("balance", "--workdir", str(work), "--bins", "2")
    proc = run_cli(*balance)
    assert proc.returncode != 0 and "failed their self-check" in proc.stderr, proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.startswith("error")]) == 1
    proc = run_cli(*balance, "--accept-weak-scores", "--dry-run")
    assert "failed their self-check" in proc.stderr and "Traceback" not in proc.stderr

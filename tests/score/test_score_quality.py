"""Score quality: no held-out sample reaches the model that scores it (an index spy), calibration
without leakage, expected calibration error and bin probability on hand cases, uncertainty."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from _tensor_fixtures import random_av_tensors
from conftest import run_cli
from scipy.stats import norm
from test_score import TINY_OOF

from mmcurate.data import AVTensors
from mmcurate.score import train as train_mod
from mmcurate.score.calibration import (
    MIN_SAMPLES_PER_CLASS,
    apply_temperature,
    calibration_slope,
    cross_fitted_calibration,
    expected_calibration_error,
    fit_temperature,
    why_not_calibratable,
)
from mmcurate.score.config import ScoreConfig
from mmcurate.score.train import InMemorySource, fit_predict
from mmcurate.score.uncertainty import bin_probability, confidence_std, discrepancy_std

# --------------------------------------------------------------------------- out-of-fold index spy


class SpySource(InMemorySource):
    """An in-memory source that records every index it hands out, and whether gradients were on
    (training and input statistics) or off (prediction), and remembers the batch in flight so a
    model hook can tell which samples each forward pass saw."""

    def __init__(self, tensors: AVTensors, modality: str) -> None:
        super().__init__(tensors, modality)
        self.with_grad: set[int] = set()
        self.without_grad: set[int] = set()
        self.in_flight: list[int] = []
        self.train_mode_forwards: set[int] = set()

    def batches(self, chunks, windows=None):  # type: ignore[no-untyped-def]
        for idx, raw in zip(chunks, super().batches(chunks, windows)):
            ids = [int(i) for i in idx]
            (self.with_grad if torch.is_grad_enabled() else self.without_grad).update(ids)
            self.in_flight = ids
            yield raw

    def watch(self, model: torch.nn.Module) -> torch.nn.Module:
        """Record the samples of every forward pass made in training mode (which updates
        BatchNorm statistics even without gradients)."""

        def hook(module: torch.nn.Module, args: Any) -> None:
            if module.training:
                self.train_mode_forwards.update(self.in_flight)

        model.register_forward_pre_hook(hook)
        return model


@pytest.fixture
def spied_models(monkeypatch: pytest.MonkeyPatch) -> dict[str, SpySource]:
    """Make every model fit_predict builds report its forward passes to the spy of its modality."""
    spies: dict[str, SpySource] = {}
    real_build = train_mod.build_unimodal

    def build(modality: str, num_classes: int, width: int = 16) -> torch.nn.Module:
        return spies[modality].watch(real_build(modality, num_classes, width))

    monkeypatch.setattr(train_mod, "build_unimodal", build)
    return spies


@pytest.mark.parametrize("modality", ["audio", "visual"])
def test_fit_predict_never_shows_held_out_samples_to_the_model(
    modality: str, spied_models: dict[str, SpySource]
) -> None:
    tensors = random_av_tensors()
    spy = spied_models[modality] = SpySource(tensors, modality)
    held = np.arange(0, 48, 4)
    train = np.setdiff1d(np.arange(48), held)
    cfg = ScoreConfig(
        epochs=3, avg_last=2, width=4, image_size=16, repeats=1, batch_size=8, train_frames=1, num_frames=2
    )
    res = fit_predict(spy, train, held, 3, cfg, seed=0, device=torch.device("cpu"), n_frames=2)
    assert spy.with_grad, "the spy saw no training batches"
    assert spy.with_grad <= set(train.tolist()), (
        f"held-out samples in training batches: {sorted(spy.with_grad & set(held.tolist()))}"
    )
    assert spy.train_mode_forwards and spy.train_mode_forwards <= set(train.tolist())
    assert spy.without_grad == set(held.tolist())  # prediction reads exactly the held-out fold
    assert res.probs.shape == (len(held), 3) and res.held_true.shape == (2, len(held))
    assert np.isnan(res.train_true[:, :]).sum() < res.train_true.size  # training dynamics recorded


@pytest.mark.slow
def test_runner_scores_every_sample_only_with_models_that_never_saw_it(
    small_work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spied_models: dict[str, SpySource]
) -> None:
    """The whole score stage, spied: each (repeat, fold, modality) job's model trains and keeps
    BatchNorm statistics on the other folds only, and every sample is held out once per repeat."""
    from mmcurate.score import runner
    from mmcurate.store import IngestDir

    work = tmp_path / "w"
    shutil.copytree(small_work, work)
    jobs: list[tuple[str, set[int], set[int], set[int]]] = []
    real_fit = runner.fit_predict

    def spied_fit(source: Any, train_idx: np.ndarray, held_idx: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        spy = spied_models[source.modality] = SpySource.__new__(SpySource)
        spy.__dict__.update(source.__dict__)
        spy.with_grad, spy.without_grad, spy.in_flight, spy.train_mode_forwards = set(), set(), [], set()
        out = real_fit(spy, train_idx, held_idx, *args, **kwargs)
        jobs.append(
            (source.modality, set(held_idx.tolist()), spy.with_grad | spy.train_mode_forwards, spy.without_grad)
        )
        return out

    monkeypatch.setattr(runner, "fit_predict", spied_fit)
    monkeypatch.setattr(runner, "processes_for", lambda threads: 1)  # the spies record in this process, not a pool's
    cfg = ScoreConfig(
        **{
            "repeats": 2,
            "folds": 2,
            "epochs": 2,
            "avg_last": 1,
            "width": 4,
            "image_size": 16,
            "audio_frames": 32,
            "device": "cpu",
        }
    )
    runner.score_out_of_fold(IngestDir(work / "ingest"), cfg, save_scorers=False)  # the out-of-fold jobs only
    n = pq.read_table(work / "ingest" / "manifest.parquet").num_rows
    assert len(jobs) == 2 * 2 * 2
    for modality, held, touched_in_training, predicted in jobs:
        assert touched_in_training and not (touched_in_training & held), (
            modality,
            sorted(touched_in_training & held)[:5],
        )
        assert predicted == held
    for modality in ("audio", "visual"):
        helds = [h for m, h, _, _ in jobs if m == modality]
        assert sorted(i for h in helds for i in h) == sorted(list(range(n)) * 2)  # once per repeat


# --------------------------------------------------------------------------- calibration


def _overconfident(n: int = 600, classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities from logits that are 3x too sharp for how often they are right."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    logits = rng.normal(0, 1, (n, classes))
    logits[np.arange(n), y] += 1.0
    z = 3.0 * logits
    p = np.exp(z - z.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True), y


def test_expected_calibration_error_hand_case() -> None:
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    y = np.array([0, 1, 0, 0])
    # bin of 0.9: accuracy 1/2 vs 0.9 -> 0.4 (weight 1/2); bin of 0.6: accuracy 1/2 vs 0.6 -> 0.1 (weight 1/2)
    assert expected_calibration_error(probs, y) == pytest.approx(0.25)
    assert expected_calibration_error(np.array([[1.0, 0.0]]), np.array([0])) == 0.0


def test_temperature_scaling_fixes_overconfidence_without_changing_predictions() -> None:
    p, y = _overconfident()
    t = fit_temperature(p, y)
    assert 2.0 < t < 4.5  # logits were made 3x too sharp
    q = apply_temperature(p, t)
    assert (q.argmax(1) == p.argmax(1)).all()
    assert expected_calibration_error(q, y) < 0.5 * expected_calibration_error(p, y)


def test_the_floor_absorbs_labels_the_modality_cannot_support() -> None:
    """A scorer that is right about what it sees, on clips 20 % of whose labels contradict it (a
    picture of another digit): one temperature cannot fix that and softens everything; the floor
    comes out near the contradicted share and the calibration error falls."""
    rng = np.random.default_rng(1)
    n, c = 2000, 10
    seen = rng.integers(0, c, n)
    logits = rng.normal(0, 1, (n, c))
    logits[np.arange(n), seen] += 6.0
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    y = seen.copy()
    wrong = rng.random(n) < 0.2
    y[wrong] = (seen[wrong] + rng.integers(1, c, wrong.sum())) % c
    groups = np.arange(n) % 5
    floor = cross_fitted_calibration(p, y, groups, "floor")
    plain = cross_fitted_calibration(p, y, groups, "temperature")
    assert all(0.15 < a < 0.25 for a in floor.floor.values())
    assert expected_calibration_error(floor.probs, y) < 0.03 < expected_calibration_error(p, y)
    assert expected_calibration_error(floor.probs, y) < expected_calibration_error(plain.probs, y)


@pytest.mark.parametrize("method", ["floor", "temperature"])
def test_calibration_is_cross_fitted_never_on_the_samples_own_prediction(method: str) -> None:
    """Change everything about group 0 (its labels and predictions): the temperature and the
    calibrated probabilities of group 0 must not move, because group 0 never fits its own."""
    p, y = _overconfident()
    groups = np.arange(len(y)) % 3
    base = cross_fitted_calibration(p, y, groups, method)
    assert base.applied and set(base.temperature) == {0, 1, 2}
    y2, p2 = y.copy(), p.copy()
    g0 = groups == 0
    y2[g0] = (y[g0] + 1) % 4  # every label of group 0 now wrong for its prediction
    changed = cross_fitted_calibration(p2, y2, groups, method)
    assert changed.temperature[0] == base.temperature[0]
    np.testing.assert_array_equal(changed.probs[g0], base.probs[g0])
    assert changed.temperature[1] != base.temperature[1]  # group 0 does inform the others
    # a calibration fitted on all samples (the leak) would have moved group 0
    leaky = apply_temperature(p2[g0], fit_temperature(p2, y2))
    assert not np.allclose(leaky, base.probs[g0])


def test_calibration_refuses_degenerate_inputs_with_a_reason() -> None:
    p, y = _overconfident(n=30, classes=10)
    res = cross_fitted_calibration(p, y, np.arange(30) % 2)
    assert not res.applied and "too few samples per class" in (res.reason or "")
    np.testing.assert_array_equal(res.probs, p)
    const = np.full((200, 4), 0.25)
    assert "same value" in (why_not_calibratable(const, np.arange(200) % 4) or "")
    assert why_not_calibratable(*_overconfident(n=MIN_SAMPLES_PER_CLASS * 4, classes=4)) is None


def test_tiny_set_is_scored_uncalibrated_with_the_reason_recorded(av_digits: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    for name in ("a", "b"):
        (raw / name).mkdir(parents=True)
        for k in range(4):
            shutil.copy(
                sorted((av_digits / "mkv_h264_flac").glob(f"{k}_*.mkv"))[0 if name == "a" else 1],
                raw / name / f"{k}.mkv",
            )
    work = tmp_path / "work"
    assert run_cli("ingest", str(raw), "--workdir", str(work), "--size", "32").returncode == 0
    proc = run_cli("score", "--workdir", str(work), *TINY_OOF)
    assert proc.returncode == 0, proc.stderr
    assert "written uncalibrated: too few samples per class" in proc.stderr
    meta = json.loads((work / "ingest" / "scores.json").read_text())
    cal = meta["metrics"]["calibration"]["audio"]
    assert cal["method"] == "none" and "too few samples per class" in cal["reason"]
    t = pq.read_table(work / "ingest" / "scores.parquet")
    np.testing.assert_array_equal(t.column("p_audio").to_numpy(), t.column("p_audio_uncalibrated").to_numpy())


# --------------------------------------------------------------------------- uncertainty


def test_bin_probability_hand_cases() -> None:
    ten = np.linspace(-1, 1, 11)
    d = np.array([-0.1, -0.1, 0.95, 0.5, 0.3])
    std = np.array([0.1, 0.0, 0.1, 0.5, 0.05])
    got = bin_probability(d, std, ten)
    assert got[0] == pytest.approx(norm.cdf(1.0) - norm.cdf(-1.0))  # bin [-0.2, 0), d in its middle
    assert got[1] == 1.0  # no error: certain
    assert got[2] == pytest.approx(1 - norm.cdf(-1.5))  # top bin is open above: d cannot exceed 1
    assert got[3] == pytest.approx(norm.cdf(0.2) - norm.cdf(-0.2))  # [0.4, 0.6)
    assert got[4] == pytest.approx(norm.cdf(2.0) - norm.cdf(-2.0))  # d = 0.3 sits mid [0.2, 0.4), 2 std from each edge
    two = np.array([-1.0, 0.0, 1.0])
    assert bin_probability(np.array([0.5]), np.array([0.5]), two)[0] == pytest.approx(norm.cdf(1.0))
    assert np.isnan(bin_probability(np.array([0.9]), np.array([0.1]), np.array([-0.5, 0.0, 0.5]))[0])


def test_confidence_std_pools_repeats_and_epochs() -> None:
    runs = np.array([[0.5, 0.9], [0.7, 0.9]])  # 2 repeats x 2 samples
    epoch_vars = np.array([[0.0, 0.01], [0.0, 0.01]])
    ratio = 2.0
    got = confidence_std(runs, epoch_vars, epoch_ratio=ratio)
    # sample 0: between-repeat variance 0.02 (1 dof), within 0 -> pooled (0.02 + 0) / 3, over 2 repeats
    assert got[0] == pytest.approx(np.sqrt(0.02 / 3 / 2))
    # sample 1: between 0, within 0.01 scaled by the ratio (2 dof) -> (0 + 2 * 2 * 0.01) / 3 / 2
    assert got[1] == pytest.approx(np.sqrt(4 * 0.01 / 3 / 2))
    one = confidence_std(runs[:1], epoch_vars[:1])
    assert one == pytest.approx(np.sqrt(epoch_vars[0]))
    assert discrepancy_std(np.array([0.3]), np.array([0.4]))[0] == pytest.approx(0.5)


def test_calibration_slope_is_one_without_calibration_and_matches_finite_differences() -> None:
    p, y = _overconfident(n=50)
    rows = np.arange(50)
    assert calibration_slope(p[rows, y], p[rows, y], np.ones(50)) == pytest.approx(np.ones(50))
    t = 2.5
    eps = 1e-6
    bumped = p.copy()
    scale = (1 - p[rows, y] - eps) / (1 - p[rows, y])
    bumped *= scale[:, None]
    bumped[rows, y] = p[rows, y] + eps
    numeric = (apply_temperature(bumped, t)[rows, y] - apply_temperature(p, t)[rows, y]) / eps
    analytic = calibration_slope(p[rows, y], apply_temperature(p, t)[rows, y], np.full(50, t))
    ok = (p[rows, y] > 1e-4) & (p[rows, y] < 1 - 1e-4)
    np.testing.assert_allclose(analytic[ok], numeric[ok], rtol=1e-2, atol=1e-6)  # forward difference: O(eps) error


# --------------------------------------------------------------------------- report and balance


@pytest.mark.slow
def test_report_shows_calibration_and_uncertainty_and_balance_leaves_out_uncertain_bins(
    small_work: Path, tmp_path: Path
) -> None:
    work = tmp_path / "w"
    shutil.copytree(small_work, work)
    ingest = work / "ingest"
    spread = [
        "--repeats",
        "1",
        "--folds",
        "2",
        "--epochs",
        "2",
        "--avg-last",
        "2",
        "--width",
        "4",
        "--image-size",
        "16",
        "--audio-frames",
        "32",
        "--no-save-scorers",
    ]  # two averaged epochs: a spread to measure
    assert run_cli("score", "--workdir", str(work), *spread).returncode == 0
    scores = pq.read_table(ingest / "scores.parquet")
    std = scores.column("discrepancy_std").to_numpy()
    assert (std > 0).all() and np.isfinite(scores.column("bin_probability").to_numpy()).all()
    meta = json.loads((ingest / "scores.json").read_text())["metrics"]
    assert {"ece_before", "ece_after", "reliability_after"} <= set(meta["calibration"]["visual"])

    proc = run_cli("report", "--workdir", str(work))
    assert proc.returncode == 0, proc.stderr
    report = (ingest / "report" / "report.md").read_text()
    near = int((scores.column("bin_probability").to_numpy() < 0.5).sum())
    assert f"near a bin edge: {near} samples" in report and "## Calibration" in report
    assert (ingest / "report" / "reliability.png").stat().st_size > 1000
    # a user's own folder given as --out: refused (their report.md untouched) unless --overwrite
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "report.md").write_text("my chapter")
    (mine / "notes.txt").write_text("mine")
    proc = run_cli("report", "--workdir", str(work), "--out", str(mine))
    assert proc.returncode == 2 and "not an mmcurate report output" in " ".join(proc.stderr.split()), proc.stderr
    assert (mine / "report.md").read_text() == "my chapter" and "Traceback" not in proc.stderr
    assert run_cli("report", "--workdir", str(work), "--out", str(mine), "--overwrite").returncode == 0
    assert "## Calibration" in (mine / "report.md").read_text() and (mine / "notes.txt").read_text() == "mine"

    x = float(np.median(std))
    left_out = int((std > x).sum())
    out = tmp_path / "balanced"
    proc = run_cli(
        "balance",
        "--workdir",
        str(work),
        "--bins",
        "4",
        "--per-bin",
        "10",
        "--shortfall",
        "best-effort",
        "--out",
        str(out),
        "--max-discrepancy-std",
        str(x),
        "--accept-weak-scores",  # a small set scored in seconds: the uncertainty filter is what is tested
    )
    assert proc.returncode == 0, proc.stderr
    assert f"{left_out} samples left out: discrepancy_std above {x:g}" in proc.stderr
    summary = json.loads((out / "balance.json").read_text())["summary"]
    assert summary["uncertain_left_out"] == left_out and summary["max_discrepancy_std"] == x
    kept = set(pq.read_table(out / "selection.parquet").column("sample_id").to_pylist())
    uncertain = {sid for sid, s in zip(scores.column("sample_id").to_pylist(), std) if s > x}
    assert kept and not (kept & uncertain)
    assert f"| left out as bin-uncertain | {left_out} samples" in (out / "README.md").read_text()
    proc = run_cli(
        "balance", "--workdir", str(work), "--bins", "4", "--per-bin", "10", "--shortfall", "best-effort", "--dry-run"
    )
    assert proc.returncode == 0 and "left out" not in proc.stderr  # off by default

"""Score: folds, validation of inputs and imported scores, plugins, resume, determinism, and the
acceptance check that out-of-fold discrepancy finds av_digits' corrupted clips."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_cli, write_av_digits_manifest

from mmcurate.common.errors import MMCurateError
from mmcurate.score import register_scorer, scores_state
from mmcurate.score.folds import check_fold_feasible, group_folds, resolve_group_folds, stratified_folds

TINY = [
    "--repeats",
    "1",
    "--folds",
    "2",
    "--epochs",
    "2",
    "--avg-last",
    "1",
    "--width",
    "4",
    "--image-size",
    "16",
    "--audio-frames",
    "32",
]
#: TINY without the saved fold ensemble (the out-of-fold tests do not need it; tests/score/test_grow.py covers it)
TINY_OOF = [*TINY, "--no-save-scorers"]


def test_stratified_folds_deal_every_class_evenly() -> None:
    labels = ["a"] * 23 + ["b"] * 7 + ["c"] * 10
    folds = stratified_folds(labels, 5, seed=1)
    assert np.bincount(folds).max() - np.bincount(folds).min() <= 1
    for cls in "abc":
        per = np.bincount(folds[np.asarray(labels) == cls], minlength=5)
        assert per.max() - per.min() <= 1
    assert (stratified_folds(labels, 5, seed=1) == folds).all()
    assert not (stratified_folds(labels, 5, seed=2) == folds).all()


def test_group_folds_keep_groups_whole() -> None:
    rng = np.random.default_rng(0)
    groups = [f"g{int(x)}" for x in rng.integers(0, 12, 300)]
    folds = group_folds(["x"] * 300, groups, 4, seed=0)
    for g in set(groups):
        assert len({int(f) for f, gg in zip(folds, groups) if gg == g}) == 1
    with pytest.raises(MMCurateError, match="at least --folds 4 groups"):
        group_folds(["x"] * 6, ["a", "a", "b", "b", "c", "c"], 4, 0)


def test_infeasible_label_sets_say_what_to_change() -> None:
    with pytest.raises(MMCurateError, match="only one class"):
        check_fold_feasible(["dog"] * 20, 5)
    with pytest.raises(MMCurateError) as err:
        check_fold_feasible(["dog"] * 20 + ["cat"] * 3, 5)
    assert "'cat' has 3" in str(err.value) and "--folds 3" in str(err.value)


def test_group_folds_are_automatic_when_the_manifest_has_groups() -> None:
    many = [f"actor{i}" for i in range(12)]
    assert resolve_group_folds(None, many, 3)[0] is True
    assert resolve_group_folds(None, many[:11] + [None], 3)[0] is False  # too few groups per fold: said, not an error
    assert "only 11 groups" in resolve_group_folds(None, many[:11], 3)[1]
    assert resolve_group_folds(None, [None, None], 2) == (False, "off (the manifest has no groups)")
    assert resolve_group_folds(False, ["a", "b", "c"], 3)[0] is False
    assert resolve_group_folds(True, ["a", "b", "c"], 3)[0] is True


@pytest.mark.slow
def test_default_scoring_keeps_each_group_out_of_its_own_scorers(av_digits: Path, tmp_path: Path) -> None:
    """Issue 10 item 7: an ad-hoc ``mmcurate score`` on a manifest with enough groups (here 60
    speaker-and-digit recordings sessions for 2 folds) scores every sample with models that never
    saw its group, and says so; --no-group-folds mixes them."""
    import csv

    manifest = write_av_digits_manifest(av_digits, tmp_path / "inputs.csv", per_format=20)
    rows = list(csv.DictReader(open(manifest)))
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "split", "session"])
        for r in rows:
            w.writerow([r["path"], r["label"], r["split"], f"{r['speaker']}-{r['label']}"])
    base = tmp_path / "base"
    proc = run_cli(
        "ingest",
        str(av_digits),
        "--manifest",
        str(manifest),
        "--group-column",
        "session",
        "--workdir",
        str(base),
        "--size",
        "32",
    )
    assert proc.returncode == 0, proc.stderr
    session = dict(
        zip(*pq.read_table(base / "ingest" / "manifest.parquet", columns=["sample_id", "group"]).to_pydict().values())
    )
    assert len(set(session.values())) >= 8
    folds_of: dict[str, dict[str, set[int]]] = {}
    for name, extra in (("auto", []), ("off", ["--no-group-folds"])):
        work = tmp_path / name
        shutil.copytree(base, work)
        proc = run_cli("score", "--workdir", str(work), *TINY_OOF, *extra)
        assert proc.returncode == 0, proc.stderr
        said = " ".join(proc.stderr.split())  # the console wraps long lines
        assert ("group folds on: the manifest has" in said) is (name == "auto"), said
        meta = json.loads((work / "ingest" / "scores.json").read_text())
        assert meta["group_folds"]["used"] is (name == "auto"), meta["group_folds"]
        by_group: dict[str, set[int]] = {}
        for row in pq.read_table(work / "ingest" / "scores.parquet", columns=["sample_id", "fold"]).to_pylist():
            by_group.setdefault(session[row["sample_id"]], set()).add(row["fold"])
        folds_of[name] = by_group
    assert all(len(f) == 1 for f in folds_of["auto"].values()), folds_of["auto"]
    assert any(len(f) > 1 for f in folds_of["off"].values()), "without group folds groups span folds"


@pytest.mark.slow
def test_scores_are_deterministic_out_of_fold_and_resume(small_work: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(small_work, a)
    shutil.copytree(small_work, b)
    for work in (a, b):
        proc = run_cli("score", "--workdir", str(work), *TINY_OOF)
        assert proc.returncode == 0, proc.stderr
        assert "on cpu (no GPU found" in proc.stderr
    sa = pq.read_table(a / "ingest" / "scores.parquet")
    assert sa.equals(pq.read_table(b / "ingest" / "scores.parquet"))
    assert (a / "ingest" / "scores.parquet").read_bytes() == (b / "ingest" / "scores.parquet").read_bytes()
    rows = sa.to_pylist()
    assert len(rows) == 140 and {r["fold"] for r in rows} == {0, 1}
    for r in rows:
        assert 0 <= r["p_audio"] <= 1 and 0 <= r["p_visual"] <= 1
        assert r["discrepancy"] == pytest.approx(r["p_audio"] - r["p_visual"])
        assert r["preferred"] == ("audio" if r["discrepancy"] > 0 else "visual" if r["discrepancy"] < 0 else "tie")
    meta = json.loads((a / "ingest" / "scores.json").read_text())
    assert meta["scorer_id"] == rows[0]["scorer_id"] and meta["scorer_id"].startswith("resnet18-w4-oof2-")
    assert scores_state(a / "ingest") == "fresh"

    # resume: drop one finished (fold, modality) result; only that one is trained again
    runs = sorted((a / "ingest" / "score_runs").rglob("*.npz"))
    assert len(runs) == 4
    runs[0].unlink()
    proc = run_cli("score", "--workdir", str(a), *TINY_OOF)
    assert proc.returncode == 0, proc.stderr
    folds = json.loads((a / "ingest" / "scores.json").read_text())["metrics"]["folds"]
    assert sum(not f["resumed"] for f in folds) == 1
    assert pq.read_table(a / "ingest" / "scores.parquet").equals(sa)


@pytest.mark.slow
def test_streaming_path_gives_the_same_scores(small_work: Path, tmp_path: Path) -> None:
    """Sets too big for memory are decoded per batch; the scores must not change."""
    a, b = tmp_path / "mem", tmp_path / "stream"
    shutil.copytree(small_work, a)
    shutil.copytree(small_work, b)
    assert run_cli("score", "--workdir", str(a), *TINY_OOF).returncode == 0
    proc = run_cli(
        "score", "--workdir", str(b), *TINY_OOF, "--no-tensor-cache", "--memory-budget-gb", "0.0001", "--workers", "2"
    )
    assert proc.returncode == 0, proc.stderr
    assert "decoding per batch" in proc.stderr
    ta, tb = (pq.read_table(w / "ingest" / "scores.parquet") for w in (a, b))
    np.testing.assert_allclose(ta.column("p_audio").to_numpy(), tb.column("p_audio").to_numpy(), atol=1e-6)
    np.testing.assert_allclose(ta.column("p_visual").to_numpy(), tb.column("p_visual").to_numpy(), atol=1e-6)


@pytest.mark.slow
def test_changed_data_makes_scores_stale(small_work: Path, tmp_path: Path) -> None:
    work = tmp_path / "w"
    shutil.copytree(small_work, work)
    ingest = work / "ingest"
    scores = pa.table(
        {
            "sample_id": pq.read_table(ingest / "manifest.parquet").column("sample_id"),
            "p_audio": [0.7] * 140,
            "p_visual": [0.2] * 140,
        }
    )
    pq.write_table(scores, tmp_path / "ext.parquet")
    assert run_cli("score", "--workdir", str(work), "--scores-from", str(tmp_path / "ext.parquet")).returncode == 0
    assert scores_state(ingest) == "fresh"
    meta = json.loads((ingest / "scores.json").read_text())
    assert meta["source"] == "imported" and meta["scorer_id"].startswith("imported:ext.parquet:")
    m = pq.read_table(ingest / "manifest.parquet")
    pq.write_table(m.slice(0, 139), ingest / "manifest.parquet")  # a sample disappears
    assert scores_state(ingest).startswith("stale")


@pytest.mark.slow
def test_imported_scores_are_validated_against_the_manifest(small_work: Path, tmp_path: Path) -> None:
    ids = pq.read_table(small_work / "ingest" / "manifest.parquet").column("sample_id").to_pylist()

    def write(rows: list[tuple]) -> Path:
        path = tmp_path / "s.csv"
        with open(path, "w", newline="") as fh:
            csv.writer(fh).writerows([("sample_id", "p_audio", "p_visual"), *rows])
        return path

    cases = {
        "not in the ingest manifest": [(i, 0.5, 0.5) for i in ids] + [("nope.mp4", 0.1, 0.2)],
        "have no scores": [(i, 0.5, 0.5) for i in ids[:-3]],
        "must be probabilities in [0, 1]": [(i, 1.5 if k == 0 else 0.5, 0.5) for k, i in enumerate(ids)],
        "appears more than once": [(i, 0.5, 0.5) for i in ids] + [(ids[0], 0.5, 0.5)],
    }
    for expected, rows in cases.items():
        proc = run_cli("score", str(small_work / "ingest"), "--scores-from", str(write(rows)))
        assert proc.returncode == 2 and expected in proc.stderr and "Traceback" not in proc.stderr, (
            expected,
            proc.stderr,
        )


def test_missing_modality_and_single_class_are_refused(av_digits: Path, clips_dir: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    for name in ("a", "b"):
        (raw / name).mkdir(parents=True)
        for k in range(3):
            shutil.copy(next(iter(sorted((av_digits / "mkv_h264_flac").glob(f"{k}_*.mkv")))), raw / name / f"{k}.mkv")
    shutil.copy(clips_dir / "torchcodec/test__resources__h265_video.mp4", raw / "a" / "silent.mp4")
    work = tmp_path / "work"
    assert run_cli("ingest", str(raw), "--workdir", str(work), "--missing-modality", "zero-fill").returncode == 0
    proc = run_cli("score", "--workdir", str(work), "--folds", "2")
    assert proc.returncode == 2 and "have no audio" in proc.stderr and "--allow-missing" in proc.stderr
    one = tmp_path / "one"
    shutil.copytree(raw / "b", one / "raw" / "b")
    assert run_cli("ingest", str(one / "raw"), "--workdir", str(one)).returncode == 0
    proc = run_cli("score", "--workdir", str(one))
    assert proc.returncode == 2 and "only one class" in proc.stderr
    assert not (one / "ingest" / "scores.parquet").exists()


@pytest.mark.slow
def test_registered_scorer_plugin(small_work: Path, tmp_path: Path) -> None:
    from mmcurate.score import run_score
    from mmcurate.score.config import ScoreStageConfig
    from mmcurate.store import Workdir

    work = tmp_path / "w"
    shutil.copytree(small_work, work)
    ingest = work / "ingest"

    def constant(ingest_dir: Path, options: dict) -> pa.Table:
        ids = pq.read_table(ingest_dir / "manifest.parquet").column("sample_id")
        return pa.table({"sample_id": ids, "p_audio": [0.9] * len(ids), "p_visual": [0.3] * len(ids)})

    register_scorer("constant-test", constant)
    run_score(Workdir(work), ScoreStageConfig(scorer="constant-test"))
    table = pq.read_table(ingest / "scores.parquet")
    assert set(table.column("scorer_id").to_pylist()) == {"plugin:constant-test"}
    assert np.allclose(table.column("discrepancy").to_numpy(), 0.6)
    with pytest.raises(MMCurateError, match="unknown --scorer"):
        run_score(Workdir(work), ScoreStageConfig(scorer="no-such-scorer"))

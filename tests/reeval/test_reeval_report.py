"""The report a reviewer reads: paired differences instead of a "best" highlight, flags for methods that never
learned, the groups statement, tidy CSVs, bytes that do not depend on how runs were reused.

Runs here are scripted (predictions written as a run writes them), so the statistics are known. Each test fails
when its defect is put back (a bold best, an unflagged chance-level row, a silent group overlap, summary rows in
results.csv, std 0 for one seed).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _reeval_fixtures import tensor_data

from mmcurate.reeval.metrics import evaluate_predictions
from mmcurate.reeval.report import write_report
from mmcurate.reeval.split_audit import group_statement, small_split_warnings
from mmcurate.reeval.trainer import RunResult, run_dir_for

N_TEST = 240
CLASSES = 4


def _data(groups_shared: bool = False):  # noqa: ANN202
    data = tensor_data(n_train=40, n_val=40, n_test=N_TEST, classes=CLASSES)
    if groups_shared:  # the test clips' speakers also speak in train
        data.test.groups = [f"train-g{i % 20}" for i in range(N_TEST)]
    return data


def _run(out: Path, data, method: str, seed: int, pred: np.ndarray, val_acc: float = 0.5) -> RunResult:  # noqa: ANN001
    test = data.test
    labels = test.labels.numpy()
    metrics = evaluate_predictions(pred, labels, test.discrepancy, test.bins, data.num_bins, CLASSES)
    path = run_dir_for(out, method, seed) / "predictions.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    nulls = pa.nulls(len(test), pa.int32())
    pq.write_table(
        pa.table(
            {
                "sample_id": test.sample_ids,
                "label": pa.array(labels, pa.int32()),
                "pred": pa.array(pred, pa.int32()),
                "pred_audio": nulls,
                "pred_visual": nulls,
            }
        ),
        path,
    )
    return RunResult(method, seed, 0, val_acc, 0.1, metrics, [{"epoch": 0, "val_acc": val_acc, "val_loss": 1.0}], {})


def _wrong(labels: np.ndarray, where: np.ndarray) -> np.ndarray:
    pred = labels.copy()
    pred[where] = (pred[where] + 1) % CLASSES
    return pred


def _scripted(out: Path, data) -> list[RunResult]:  # noqa: ANN001
    """joint right on 60 %; OGM-GE right on joint's clips plus 40 more (a real difference); Greedy = joint but 3
    clips (none); PMR guesses (chance); the unimodal models each right on their side's clips."""
    labels = data.test.labels.numpy()
    rng = np.random.default_rng(0)
    joint_wrong = np.arange(N_TEST) % 5 >= 3  # 40 % wrong, spread over the bins
    runs = []
    for seed in (0, 1):
        runs.append(_run(out, data, "audio_only", seed, _wrong(labels, data.test.discrepancy < 0), 0.6))
        runs.append(_run(out, data, "visual_only", seed, _wrong(labels, data.test.discrepancy > 0), 0.4))
        runs.append(_run(out, data, "joint", seed, _wrong(labels, joint_wrong)))
        better = joint_wrong.copy()
        better[np.flatnonzero(joint_wrong)[:40]] = False
        runs.append(_run(out, data, "ogm_ge", seed, _wrong(labels, better)))
        near = joint_wrong.copy()
        near[np.flatnonzero(joint_wrong)[:3]] = False
        runs.append(_run(out, data, "greedy", seed, _wrong(labels, near)))
        runs.append(_run(out, data, "pmr", seed, rng.integers(0, CLASSES, N_TEST)))
    return runs


def test_no_best_highlight_differences_marked_only_where_they_are_differences(tmp_path: Path) -> None:
    data = _data()
    runs = _scripted(tmp_path, data)
    paths = write_report(tmp_path, data, runs, {"epochs": 1}, "cpu")
    md = paths["markdown"].read_text()
    main_table = md.split("## Overall and per subset")[1].split("## Paired differences")[0]
    assert "**" not in main_table  # no "best" bold: overlapping accuracies are no ranking
    against_joint = md.split("### Against joint training")[1].split("Per discrepancy bin:")[0]
    rows = {line.split("|")[1].strip(): line for line in against_joint.splitlines() if line.startswith("| ")}
    assert "**+16.7" in rows["OGM-GE"] and "▲" in rows["OGM-GE"]  # 40 of 240 clips better, none worse
    assert "**" not in rows["Greedy"]  # 3 clips are not a difference
    doc = json.loads(paths["json"].read_text())
    ogm = doc["differences"]["joint"]["ogm_ge"]["acc"]
    assert ogm["significant"] and ogm["wins"] == 40 and ogm["losses"] == 0 and ogm["ci_low"] > 0
    assert not doc["differences"]["joint"]["greedy"]["acc"]["significant"]
    assert doc["summary"]["joint"]["acc"]["ci"] == "bootstrap"
    diffs = list(csv.DictReader(io.StringIO(paths["differences_csv"].read_text())))
    assert {(r["method"], r["reference_kind"], r["metric"], r["significant"]) for r in diffs} >= {
        ("ogm_ge", "joint", "acc", "true"),
        ("greedy", "joint", "acc", "false"),
    }


def test_the_preferred_unimodal_model_is_the_subsets_own(tmp_path: Path) -> None:
    data = _data()
    doc = json.loads(write_report(tmp_path, data, _scripted(tmp_path, data), {}, "cpu")["json"].read_text())
    uni = doc["differences"]["unimodal"]["joint"]
    assert uni["acc_audio_pref"]["reference"] == "audio_only"
    assert uni["acc_visual>0.4"]["reference"] == "visual_only"
    assert uni["acc_bin0"]["reference"] == "visual_only" and uni["acc_bin3"]["reference"] == "audio_only"
    assert uni["acc"]["reference"] == doc["better_unimodal"] == "audio_only"  # the higher validation accuracy
    assert uni["acc_audio_pref"]["mean"] < 0 and uni["acc_audio_pref"]["significant"]  # joint loses there


def test_a_method_that_never_left_chance_is_flagged_said_and_never_marked(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = _data()
    paths = write_report(tmp_path, data, _scripted(tmp_path, data), {}, "cpu")
    err = capsys.readouterr().err
    assert "PMR" in err and "not clearly above chance" in err  # the run says so
    md = paths["markdown"].read_text()
    doc = json.loads(paths["json"].read_text())
    assert set(doc["at_chance"]) == {"pmr"}
    pmr_rows = [line for line in md.splitlines() if line.startswith("| PMR")]
    assert pmr_rows and all("(at chance)" in line and "**" not in line for line in pmr_rows)
    assert doc["differences"]["joint"]["pmr"]["acc"]["significant"]  # far below joint, yet not marked


def test_results_md_states_whether_test_is_group_disjoint_and_by_which_key(tmp_path: Path) -> None:
    data = _data()
    (tmp_path / "src").mkdir()
    (tmp_path / "ingest").mkdir()  # as balance and ingest record it: balance.json names the ingest folder
    (tmp_path / "ingest" / "config.json").write_text(json.dumps({"identity": {"group_column": "speaker"}}))
    (tmp_path / "src" / "balance.json").write_text(json.dumps({"ingest_dir": str(tmp_path / "ingest")}))
    data.source = str(tmp_path / "src")
    md = write_report(tmp_path, data, _scripted(tmp_path, data), {}, "cpu")["markdown"].read_text()
    assert "test is group-disjoint from train and validation by `speaker`" in md
    shared = _data(groups_shared=True)
    statement = group_statement(shared)
    assert not statement["disjoint"] and statement["test_groups_in_train"] == 20
    assert "**not** group-disjoint" in statement["text"]
    bare = _data()
    for split in (bare.train, bare.val, bare.test):
        split.groups = None
    assert "records none" in group_statement(bare)["text"]


def test_small_validation_and_test_splits_are_warned_about() -> None:
    data = tensor_data(n_train=40, n_val=3, n_test=3)
    lines = small_split_warnings(data)
    assert len(lines) == 2 and "validation split holds 3" in lines[0] and "test split holds 3" in lines[1]
    assert small_split_warnings(_data()) == []


def test_csvs_are_tidy_and_one_seed_has_no_std(tmp_path: Path) -> None:
    data = _data()
    runs = [r for r in _scripted(tmp_path, data) if r.seed == 0]
    paths = write_report(tmp_path, data, runs, {}, "cpu")
    rows = list(csv.DictReader(io.StringIO(paths["csv"].read_text())))
    assert len(rows) == len(runs) and all(r["seed"] == "0" for r in rows)
    summary = list(csv.DictReader(io.StringIO(paths["summary_csv"].read_text())))
    assert all(r["std"] == "" for r in summary)
    assert all(r["seeds"] == "1" for r in summary if r["metric"] == "acc")
    md = paths["markdown"].read_text()
    assert "± 0.0" not in md
    assert json.loads(paths["json"].read_text())["summary"]["joint"]["acc"]["std"] is None


def test_a_reused_run_read_back_from_json_writes_the_same_bytes(tmp_path: Path) -> None:
    data = _data()
    runs = _scripted(tmp_path, data)
    first = {k: p.read_bytes() for k, p in write_report(tmp_path, data, runs, {}, "cpu").items()}
    reread = [
        RunResult(
            r.method,
            r.seed,
            r.best_epoch,
            r.best_val_acc,
            r.best_val_loss,
            json.loads(json.dumps(r.test, sort_keys=True)),
            r.history,
            r.method_info,
        )
        for r in runs
    ]
    second = {k: p.read_bytes() for k, p in write_report(tmp_path, data, reread, {}, "cpu").items()}
    assert first == second

"""reeval's time table: per-method CPU and wall seconds, kept for runs a later call reuses."""

from __future__ import annotations

import json
from pathlib import Path

from mmcurate.reeval.timings import record_timings, time_table_rows
from mmcurate.reeval.trainer import RunResult


def _run(method: str, seed: int, status: str, seconds: float = 0.0, cpu: float = 0.0) -> RunResult:
    return RunResult(method, seed, 1, 0.5, 1.0, {}, [], {}, status=status, seconds=seconds, cpu_seconds=cpu)


def test_per_method_means_and_the_ratio_against_joint(tmp_path: Path) -> None:
    runs = [
        _run("joint", 0, "trained", 10.0, 18.0),
        _run("joint", 1, "trained", 12.0, 22.0),
        _run("ogm_ge", 0, "trained", 15.0, 30.0),
        _run("ogm_ge", 1, "resumed", 4.0, 7.0),  # partial: left out of the mean
    ]
    doc = record_timings(tmp_path, runs, "cpu")
    methods = {m["method"]: m for m in doc["methods"]}
    assert methods["joint"] == {"method": "joint", "runs_timed": 2, "seconds": 11.0, "cpu_seconds": 20.0,
                                "cpu_vs_joint": 1.0}  # fmt: skip
    assert methods["ogm_ge"]["runs_timed"] == 1 and methods["ogm_ge"]["cpu_vs_joint"] == 1.5
    assert json.loads((tmp_path / "timings.json").read_text()) == doc
    assert time_table_rows(doc)[1] == ["ogm_ge", 1, 15.0, 30.0, 1.5]


def test_a_reused_run_reports_what_it_cost_when_it_was_trained(tmp_path: Path) -> None:
    record_timings(tmp_path, [_run("joint", 0, "trained", 10.0, 19.5)], "cpu")
    again = record_timings(tmp_path, [_run("joint", 0, "cached")], "cpu")
    assert again["runs"][0] == {"method": "joint", "seed": 0, "status": "cached", "seconds": 10.0, "cpu_seconds": 19.5}
    assert again["methods"][0]["cpu_seconds"] == 19.5


def test_runs_without_a_timing_show_as_unknown(tmp_path: Path) -> None:
    doc = record_timings(tmp_path, [_run("joint", 0, "cached")], "cpu")  # finished before timings were kept
    assert time_table_rows(doc) == [["joint", 0, "-", "-", "-"]]

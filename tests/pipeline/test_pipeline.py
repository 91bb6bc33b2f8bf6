"""``mmcurate run`` and ``mmcurate demo``: recipes drive every stage; finished stages with
unchanged settings are skipped; a changed setting reruns that stage and the ones after it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import run_cli

pytestmark = pytest.mark.slow  # quick lane: python -m pytest -m 'not slow'

#: the demo recipe shrunk to seconds: 8 clips per class, tiny scorers, 2 methods for 2 epochs
SMALL = [
    "--set",
    "source.generate.n_per_class=8",
    "--set",
    "score.folds=2",
    "--set",
    "score.epochs=1",
    "--set",
    "score.repeats=1",
    "--set",
    "score.width=4",
    "--set",
    "score.image_size=16",
    "--set",
    "score.save_scorers=false",
    "--set",
    "balance.bins=2",
    "--set",
    "reeval.methods=[audio_only,joint]",
    "--set",
    "reeval.epochs=2",
    "--set",
    "reeval.width=4",
    "--set",
    "balance.accept_weak_scores=true",  # 48 clips, 1 epoch: plumbing, not scores worth trusting
]


def _stages(stderr: str) -> dict[str, str]:
    """stage -> status from the pipeline summary table."""
    out = {}
    for line in stderr.splitlines():
        cells = [c.strip() for c in line.strip("│┃ ").split("│")]
        if len(cells) >= 2 and cells[0] in ("ingest", "score", "report", "balance", "push", "reeval"):
            out[cells[0]] = cells[1]
    return out


def test_demo_runs_every_stage_then_skips_what_is_up_to_date(tmp_path: Path) -> None:
    work = tmp_path / "work"
    proc = run_cli("demo", "--workdir", str(work), *SMALL)
    assert proc.returncode == 0, proc.stderr
    assert _stages(proc.stderr) == {
        "ingest": "ran",
        "score": "ran",
        "report": "ran",
        "balance": "ran",
        "push": "not configured",
        "reeval": "ran",
    }
    for path in (
        "demo/data/demo_labels.csv",
        "ingest/manifest.parquet",
        "ingest/scores.parquet",
        "ingest/report/report.md",
        "balanced/README.md",
        "balanced/hf/dataset_dict.json",
        "reeval/results.md",
        "recipe.resolved.yaml",
    ):
        assert (work / path).exists(), path
    assert "re-evaluation table" in proc.stderr and "Re-evaluation results" in proc.stdout
    resolved = yaml.safe_load((work / "recipe.resolved.yaml").read_text())
    assert resolved["source"]["raw_dir"] == str(work / "demo" / "data")  # {workdir} filled in
    assert resolved["score"]["epochs"] == 1  # overrides recorded

    again = run_cli("demo", "--workdir", str(work), *SMALL)
    assert again.returncode == 0, again.stderr
    assert set(_stages(again.stderr).values()) == {"skipped (up to date)", "not configured"}

    # a changed scorer setting reruns score and every later stage, never ingest
    changed = run_cli("demo", "--workdir", str(work), *SMALL, "--set", "score.epochs=2")
    assert changed.returncode == 0, changed.stderr
    stages = _stages(changed.stderr)
    assert stages["ingest"] == "skipped (up to date)"
    assert stages["score"] == stages["balance"] == stages["reeval"] == "ran"
    state = json.loads((work / "pipeline_state.json").read_text())
    assert set(state) == {"ingest", "score", "report", "balance", "reeval"}


def test_run_selects_stages_and_reports_recipe_errors_in_one_line(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nsource: {raw_dir: raw}\ningest: {frames: 3, colour: red}\n")
    (tmp_path / "raw" / "a").mkdir(parents=True)
    proc = run_cli("run", str(recipe), "--workdir", str(tmp_path / "w"), "--dry-run")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "'colour' is not an option of `mmcurate ingest`" in proc.stderr
    recipe.write_text("name: r\nsource: {raw_dir: raw}\nscorer: {}\n")
    proc = run_cli("run", str(recipe), "--dry-run")
    assert proc.returncode == 2 and "unknown section(s) scorer" in proc.stderr
    recipe.write_text("name: r\nsource: {raw_dir: raw}\ningest: {frames: 3}\nscore: {epochs: 2}\n")
    proc = run_cli(
        "run", str(recipe), "--workdir", str(tmp_path / "w"), "--dry-run", "--until", "score", "--set", "score.folds=3"
    )
    assert proc.returncode == 0, proc.stderr
    stages = _stages(proc.stderr)
    assert stages["ingest"] == stages["score"] == "would run" and stages["balance"] == "not selected"

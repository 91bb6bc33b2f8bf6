"""The one stage registry (``mmcurate/stages.py``) and what each Stage carries.

Every stage is listed once; the command line, recipes and ``--help`` read what a stage is from its Stage
(recipe sections, completion, what it reads and writes, what it needs first); ``mmcurate export`` and
``mmcurate browse`` run from a recipe like the others; balance has the score stage run first through the
registry, and refuses what it would refuse anyway before any scoring.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from conftest import run_cli

from mmcurate.common.errors import MMCurateError
from mmcurate.common.options import option_fields
from mmcurate.pipeline.recipe import SECTIONS
from mmcurate.stages import NAMES, REGISTRY, load_stage, run_stage
from mmcurate.store import IngestDir, Workdir


def test_every_stage_is_registered_once_and_says_what_it_is() -> None:
    assert NAMES == ("ingest", "score", "report", "balance", "push", "reeval", "export", "browse")
    assert len({e.name for e in REGISTRY}) == len(REGISTRY)
    for name in NAMES:
        stage = load_stage(name)
        assert stage.name == name
        assert stage.reads and stage.writes
        assert set(stage.sections) <= set(SECTIONS), (name, stage.sections)
        assert list(option_fields(stage.config)), name  # options generated from its config dataclass
    owners = [s for name in NAMES for s in load_stage(name).sections]
    assert len(owners) == len(set(owners)), "a recipe section belongs to one stage"


@pytest.mark.parametrize("name", ["export", "browse", "balance"])
def test_help_ends_with_what_the_stage_reads_and_writes(name: str) -> None:
    proc = run_cli(name, "--help")
    assert proc.returncode == 0, proc.stderr
    stage = load_stage(name)
    tail = proc.stdout[proc.stdout.index("Reads:") :]
    for path in (*stage.reads, *stage.writes):
        assert path in " ".join(tail.split()), path


def test_browse_defaults_are_declared_once() -> None:
    """The command's options and defaults are BrowseOptions' fields (the build takes that dataclass), so the
    command and the build cannot disagree."""
    from mmcurate.browse.config import BrowseConfig, BrowseOptions

    fields = {f.key: f for f in option_fields(BrowseConfig)}
    for name in ("max_frames", "page_size", "hist_bins", "grid", "media"):
        assert fields[name].path == ("site", name) and fields[name].default == getattr(BrowseOptions(), name)
    assert "chunk_size" not in fields  # set by code only
    help_text = " ".join(run_cli("browse", "--help").stdout.split())
    assert "--max-frames INTEGER" in help_text and "[default: 8]" in help_text and "--no-media" in help_text


def _scores_csv(ingest: IngestDir, dest: Path) -> Path:
    """Confidences for every sample, spread over [-1, 1] (an imported scorer: no training)."""
    ids = ingest.read_manifest(["sample_id"]).column("sample_id").to_pylist()
    with open(dest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["sample_id", "p_audio", "p_visual"])
        for i, sid in enumerate(sorted(ids)):
            w.writerow([sid, round((i % 10) / 10 + 0.05, 3), round(((i * 7) % 10) / 10 + 0.05, 3)])
    return dest


@pytest.mark.slow
def test_export_and_browse_run_from_a_recipe_and_are_skipped_when_done(
    small_work: Path, av_digits: Path, tmp_path: Path
) -> None:
    pytest.importorskip("h5py", reason="h5py is not installed (pip install 'mmcurate[formats]')")
    work = tmp_path / "work"
    shutil.copytree(small_work, work)
    ingest = IngestDir(work / "ingest")
    scores = _scores_csv(ingest, tmp_path / "scores.csv")
    config = ingest.read_config()
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"name: r\nsource: {{raw_dir: {av_digits}, manifest: {config['manifest']}}}\n"
        "ingest: {group_column: speaker, size: 32}\n"
        f"score: {{scores_from: {scores}}}\n"
        "balance: {bins: 2, shortfall: best-effort, no_features: true}\n"
        "formats: {format: balancemm, audio_preset: logmel, chunk_size: 32}\n"
        "browse: {media: false}\n"
    )
    dry = run_cli("run", str(recipe), "--workdir", str(work), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    flat = " ".join(dry.stderr.split())
    assert [ln.split("│")[2].strip() for ln in dry.stderr.splitlines() if "│ export" in ln or "│ browse" in ln] == [
        "would run",
        "would run",
    ]
    assert "export: reads balanced/selection.parquet" in flat and "browse: reads" in flat
    proc = run_cli("run", str(recipe), "--workdir", str(work))
    assert proc.returncode == 0, proc.stderr
    assert (work / "balancemm" / "annotations.json").is_file()
    assert (work / "balanced" / "browse" / "index.html").is_file()
    again = run_cli("run", str(recipe), "--workdir", str(work))
    assert again.returncode == 0, again.stderr
    rows = [ln for ln in again.stderr.splitlines() if "│ export" in ln or "│ browse" in ln]
    assert len(rows) == 2 and all("skipped (up to date)" in r for r in rows), rows


@pytest.mark.slow
def test_balance_has_the_scores_made_first_through_the_registry(small_work: Path, tmp_path: Path) -> None:
    """The balance stage alone refuses stale scores; run as a stage (command, recipe) its need runs the
    score stage first, with balance's scorer options and seed."""
    from mmcurate.balance import STAGE as BALANCE
    from mmcurate.balance import BalanceConfig
    from mmcurate.common.scoring import ScoreConfig

    work = tmp_path / "work"
    shutil.copytree(small_work, work)
    (work / "ingest" / "scores.parquet").unlink(missing_ok=True)
    wd = Workdir(work)
    scoring = ScoreConfig(folds=2, epochs=1, width=4, image_size=16, audio_frames=32, device="cpu")
    cfg = BalanceConfig(
        bins=2, shortfall="best-effort", no_features=True, seed=3, scoring=scoring, accept_weak_scores=True
    )
    with pytest.raises(MMCurateError, match="scores are missing; run `mmcurate score` first"):
        BALANCE.run(wd, cfg)
    [need] = BALANCE.needs(wd, cfg)
    assert need.stage == "score" and need.fields["scorer_settings"].seed == 3
    result = run_stage(BALANCE, wd, cfg)
    meta = wd.ingest.read_scores_meta()
    assert meta["source"] == "oof" and meta["config"]["epochs"] == 1 and meta["config"]["seed"] == 3
    assert result.size > 0 and BALANCE.needs(wd, cfg) == []


@pytest.mark.slow
def test_balance_refuses_a_foreign_out_folder_before_scoring(
    small_work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "work"
    shutil.copytree(small_work, work)
    (work / "ingest" / "scores.parquet").unlink(missing_ok=True)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    proc = run_cli("balance", "--workdir", str(work), "--out", str(mine), "--bins", "2", "--epochs", "1")
    assert proc.returncode == 2 and "not an mmcurate balanced output" in " ".join(proc.stderr.split()), proc.stderr
    assert "running `mmcurate score` first" not in proc.stderr
    assert not (work / "ingest" / "scores.parquet").exists()

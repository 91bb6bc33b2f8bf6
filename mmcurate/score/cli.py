"""``mmcurate score [INGEST_DIR]``: out-of-fold unimodal confidences and discrepancy
(options from :class:`ScoreStageConfig`)."""

from __future__ import annotations

from typing import Any

import click

from mmcurate.cli_options import workdir_option
from mmcurate.common.console import info
from mmcurate.common.options import click_options, from_cli
from mmcurate.score import STAGE, ScoreStageConfig
from mmcurate.stages import run_stage
from mmcurate.store import Workdir


@click.command("score", context_settings={"show_default": True}, epilog=STAGE.epilog())
@workdir_option
@click_options(ScoreStageConfig)
def score(workdir: str | None, **options: Any) -> None:
    """Train audio-only and visual-only classifiers out-of-fold and write INGEST_DIR/scores.parquet.

    Each sample's confidence is the held-out softmax probability of its true class, from models
    that never trained on it (each trained until its own inner validation split stops improving,
    its anneal epochs averaged); the discrepancy is p_audio - p_visual. The scores check
    themselves: each modality's out-of-fold accuracy against chance, each fold against the others;
    a failed check is a warning line (exit 2 with --strict). INGEST_DIR defaults to WORKDIR/ingest.
    """
    result = run_stage(STAGE, Workdir.resolve(workdir), from_cli(ScoreStageConfig, options))
    if not result.finished:
        return
    STAGE.summarize(result)
    info(f"scores: {result.scores_path}")
    click.echo(str(result.scores_path))
    health = result.health or {}
    if health.get("status") == "fail":
        failed = sum(v["status"] == "fail" for v in health["verdicts"])
        why = f"{failed} self-check(s) failed (see the lines above and scores.json 'health')"
        if options.get("strict"):
            info(f"score: {why}; exit 2 (--strict)")
            raise SystemExit(2)
        info(f"score: {why}; balance will refuse these scores unless --accept-weak-scores")

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

    Each sample's confidence is the held-out softmax probability of its true class (averaged
    over the last --avg-last epochs), from models that never trained on it; the discrepancy is
    p_audio - p_visual. INGEST_DIR defaults to WORKDIR/ingest.
    """
    result = run_stage(STAGE, Workdir.resolve(workdir), from_cli(ScoreStageConfig, options))
    if not result.finished:
        return
    STAGE.summarize(result)
    info(f"scores: {result.scores_path}")
    click.echo(str(result.scores_path))

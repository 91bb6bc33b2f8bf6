"""``mmcurate score [INGEST_DIR]``: out-of-fold unimodal confidences and discrepancy."""

from __future__ import annotations

from pathlib import Path

import click

from mmcurate.common.cli_options import seed_option, workdir_option
from mmcurate.common.console import info
from mmcurate.common.workdir import stage_dir
from mmcurate.score.api import score_options, score_from_cli


@click.command("score", context_settings={"show_default": True})
@click.argument("ingest_dir", required=False, type=click.Path(path_type=Path))
@workdir_option
@score_options
@seed_option
@click.option("--scores-from", type=click.Path(path_type=Path), default=None,
              help="Import confidences computed elsewhere (Parquet/CSV with sample_id, p_audio, p_visual) instead of training.")
@click.option("--scorer", default="resnet18-oof",
              help="Scorer to use: the built-in out-of-fold ResNet-18, or one registered by a plugin (entry point group mmcurate.scorers).")
@click.option("--allow-missing", is_flag=True, default=False,
              help="Score samples ingested without audio or video (zero-filled) instead of refusing.")
@click.option("--overwrite", is_flag=True, default=False, help="Retrain even if finished fold results exist.")
def score(ingest_dir: Path | None, workdir: str | None, scores_from: Path | None, scorer: str, allow_missing: bool,
          overwrite: bool, **options: object) -> None:
    """Train audio-only and visual-only classifiers out-of-fold and write INGEST_DIR/scores.parquet.

    Each sample's confidence is the held-out softmax probability of its true class (averaged
    over the last --avg-last epochs), from models that never trained on it; the discrepancy is
    p_audio - p_visual. INGEST_DIR defaults to WORKDIR/ingest.
    """
    target = ingest_dir or stage_dir("ingest", workdir)
    result = score_from_cli(target, options, scores_from=scores_from, scorer=scorer, allow_missing=allow_missing, overwrite=overwrite)
    info(f"scores: {result.ingest_dir / 'scores.parquet'}")
    click.echo(str(result.ingest_dir / "scores.parquet"))

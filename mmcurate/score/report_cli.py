"""``mmcurate report [INGEST_DIR]``: modality-bias plots and a markdown summary from the scores."""

from __future__ import annotations

from pathlib import Path

import click

from mmcurate.common.cli_options import workdir_option
from mmcurate.common.console import summary_table
from mmcurate.common.workdir import stage_dir


@click.command("report", context_settings={"show_default": True})
@click.argument("ingest_dir", required=False, type=click.Path(path_type=Path))
@workdir_option
@click.option("--out", type=click.Path(path_type=Path), default=None, show_default=False,
              help="Folder for the report files (default: INGEST_DIR/report).")
@click.option("--by", multiple=True, help="Also break the numbers down by this manifest column (repeatable), e.g. --by condition.")
def report(ingest_dir: Path | None, workdir: str | None, out: Path | None, by: tuple[str, ...]) -> None:
    """Write confidence_density.png, discrepancy_hist.png, per_class.png/.csv and report.md.

    INGEST_DIR (default WORKDIR/ingest) must hold scores.parquet (run `mmcurate score`).
    """
    from mmcurate.score.report import write_report

    target = ingest_dir or stage_dir("ingest", workdir)
    out_dir = out or target / "report"
    h = write_report(target, out_dir, list(by))
    summary_table(
        f"report -> {out_dir / 'report.md'}",
        ["", "value"],
        [
            ["samples", h["samples"]],
            ["audio-preferred share", h["share_audio_preferred"]],
            ["mean |d|", h["mean_abs_discrepancy"]],
        ],
    )
    click.echo(str(out_dir / "report.md"))

"""``mmcurate report [INGEST_DIR]``: modality-bias plots and a markdown summary from the scores."""

from __future__ import annotations

from typing import Any

import click

from mmcurate.cli_options import workdir_option
from mmcurate.common.options import click_options, from_cli
from mmcurate.score.report import REPORT_STAGE, ReportConfig
from mmcurate.stages import run_stage
from mmcurate.store import Workdir


@click.command("report", context_settings={"show_default": True}, epilog=REPORT_STAGE.epilog())
@workdir_option
@click_options(ReportConfig)
def report(workdir: str | None, **options: Any) -> None:
    """Write confidence_density.png, discrepancy_hist.png, per_class.png/.csv and report.md.

    INGEST_DIR (default WORKDIR/ingest) must hold scores.parquet (run `mmcurate score`).
    """
    result = run_stage(REPORT_STAGE, Workdir.resolve(workdir), from_cli(ReportConfig, options))
    REPORT_STAGE.summarize(result)
    click.echo(str(result.report_path))

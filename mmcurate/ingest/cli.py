"""``mmcurate ingest RAW_DIR``: the command-line face of :mod:`mmcurate.ingest`
(options from :class:`IngestConfig`)."""

from __future__ import annotations

from typing import Any

import click

from mmcurate.cli_options import workdir_option
from mmcurate.common.options import click_options, from_cli
from mmcurate.ingest import STAGE, IngestConfig
from mmcurate.stages import run_stage
from mmcurate.store import Workdir


@click.command("ingest", context_settings={"show_default": True}, epilog=STAGE.epilog())
@workdir_option
@click_options(IngestConfig)
def ingest(workdir: str | None, **options: Any) -> None:
    """Decode the clips under RAW_DIR into Arrow shards with a manifest.

    Every input ends in exactly one of manifest.parquet or failures.jsonl (with a one-line
    reason). Rerunning resumes an interrupted run and does nothing after a finished one.
    """
    cfg: IngestConfig = from_cli(IngestConfig, options)
    result = run_stage(STAGE, Workdir.resolve(workdir), cfg)
    click.echo(str(result.out_dir))
    STAGE.summarize(result)  # exit status 3 when more inputs failed than --max-failures

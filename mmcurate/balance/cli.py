"""``mmcurate balance``: uniform discrepancy over bins, splits, export (options from :class:`BalanceConfig`)."""

from __future__ import annotations

from typing import Any

import click

from mmcurate.balance import STAGE, BalanceConfig
from mmcurate.cli_options import workdir_option
from mmcurate.common.console import info
from mmcurate.common.options import click_options, from_cli, option_fields
from mmcurate.stages import run_stage
from mmcurate.store import Workdir

#: the scorer options of this command (their click names)
_SCORING_KEYS = tuple(f.key for f in option_fields(BalanceConfig) if f.path[0] == "scoring")


@click.command("balance", context_settings={"show_default": True}, epilog=STAGE.epilog())
@workdir_option
@click_options(BalanceConfig)
def balance(workdir: str | None, **options: Any) -> None:
    """Build a dataset whose modality discrepancy is uniform over bins, with splits, and export it.

    Uses INGEST_DIR (default WORKDIR/ingest) and its scores, scoring first when they are missing
    or stale (the scorer options below apply then). Writes selection.parquet, a report/ folder,
    Hub-layout Parquet shards under data/, hf/ (save_to_disk) and README.md (dataset card).
    """
    ctx = click.get_current_context()
    explicit = tuple(
        k
        for k in _SCORING_KEYS
        if ctx.get_parameter_source(k)
        in (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)
    )
    cfg: BalanceConfig = from_cli(BalanceConfig, options, explicit_scoring=explicit)
    result = run_stage(STAGE, Workdir.resolve(workdir), cfg)
    if not cfg.dry_run:
        info(f"balanced dataset: {result.out_dir} (report: {result.out_dir / 'report' / 'report.md'})")
        click.echo(str(result.out_dir))

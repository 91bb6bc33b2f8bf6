"""``mmcurate export``: the command-line face of :mod:`mmcurate.formats` (options from :class:`ExportConfig`)."""

from __future__ import annotations

from typing import Any

import click

from mmcurate.cli_options import workdir_option
from mmcurate.common.options import click_options, from_cli
from mmcurate.formats.config import ExportConfig
from mmcurate.formats.export import STAGE
from mmcurate.stages import run_stage
from mmcurate.store import Workdir


@click.command("export", context_settings={"show_default": True}, epilog=STAGE.epilog())
@workdir_option
@click_options(ExportConfig)
def export(workdir: str | None, **options: Any) -> None:
    """Write the balanced dataset (BALANCED_DIR, default WORKDIR/balanced) in a layout the field's code loads.

    --format balancemm: BalanceMM's `Balance` dataset / BML release layout (annotations.json, visual/<id>.hdf5
    JPEG frames, audio/<id>.pkl spectrograms), loadable unmodified by BalanceMM's BalanceDataset. Resumable;
    the output folder is replaced only once the new export is complete.
    """
    cfg: ExportConfig = from_cli(ExportConfig, options)
    result = run_stage(STAGE, Workdir.resolve(workdir), cfg)
    STAGE.summarize(result)
    click.echo(str(result.out_dir))

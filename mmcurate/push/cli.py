"""``mmcurate push``: publish the balanced dataset's card and Parquet shards to a Hub dataset repo."""

from __future__ import annotations

from typing import Any

import click

from mmcurate.cli_options import workdir_option
from mmcurate.common.options import click_options, from_cli
from mmcurate.push import STAGE, PushConfig
from mmcurate.stages import run_stage
from mmcurate.store import Workdir


@click.command(
    "push",
    epilog=STAGE.epilog(
        "\b\nEnvironment (read when the command starts):\n"
        "  HF_TOKEN            token (else the `hf auth login` cache)\n"
        "  HF_ENDPOINT         Hub endpoint (default https://huggingface.co)\n"
        "  HF_HUB_DISABLE_XET  set to 1 for endpoints without Xet storage (same as --no-xet)\n"
        "\b\nRerunning an interrupted push resumes it: files already in the repo are compared by\n"
        "sha256 and skipped, and only missing or changed files are uploaded."
    ),
)
@workdir_option
@click_options(PushConfig)
def push(workdir: str | None, **options: Any) -> None:
    """Push DATASET_DIR (default: the work directory's balanced/ folder) to the Hub as ORG/NAME.

    Uploads exactly the Hub layout the export wrote: README.md (the dataset card) and
    data/{split}-NNNNN-of-NNNNN.parquet. Shards go up in commits of --files-per-commit, the card
    last; shards the repo has but the export no longer lists are deleted in that last commit.
    """
    result = run_stage(STAGE, Workdir.resolve(workdir), from_cli(PushConfig, options))
    STAGE.summarize(result)

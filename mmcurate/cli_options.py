"""Click options shared by several commands, so each means the same thing everywhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from mmcurate.store.workdir import WORKDIR_ENV


def workdir_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--workdir``: the work directory holding every stage's output."""
    return click.option(
        "--workdir",
        type=click.Path(file_okay=False),
        envvar=WORKDIR_ENV,
        default=None,
        help=f"Work directory holding each stage's output (default ./mmcurate-work, or ${WORKDIR_ENV}).",
    )(fn)

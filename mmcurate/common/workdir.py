"""The work directory: where every stage writes its output and finds the previous stage's.

This is what lets the commands chain with no paths repeated::

    mmcurate ingest raw/            # -> WORKDIR/ingest/
    mmcurate score                  # -> WORKDIR/ingest/scores.parquet
    mmcurate balance --bins 10      # -> WORKDIR/balanced/
    mmcurate push --repo-id ORG/NAME
    mmcurate reeval                 # -> WORKDIR/reeval/

The work directory is ``--workdir``, else ``$MMCURATE_WORKDIR``, else ``./mmcurate-work``.
"""

from __future__ import annotations

import os
from pathlib import Path

WORKDIR_ENV = "MMCURATE_WORKDIR"
DEFAULT_WORKDIR = "mmcurate-work"

#: One folder per stage inside the work directory.
STAGE_DIRS: dict[str, str] = {
    "ingest": "ingest",
    "balance": "balanced",
    "reeval": "reeval",
    "report": "report",
    "demo": "demo",
}


def resolve_workdir(workdir: str | os.PathLike[str] | None = None) -> Path:
    """The work directory: the explicit argument, else ``$MMCURATE_WORKDIR``, else ``./mmcurate-work``."""
    if workdir:
        return Path(workdir).expanduser()
    env = os.environ.get(WORKDIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path.cwd() / DEFAULT_WORKDIR


def stage_dir(stage: str, workdir: str | os.PathLike[str] | None = None) -> Path:
    """The default output folder of ``stage`` inside the work directory."""
    return resolve_workdir(workdir) / STAGE_DIRS[stage]

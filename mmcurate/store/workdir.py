"""``Workdir``: where every stage writes its output and finds the previous stage's.

This is what lets the commands chain with no paths repeated::

    mmcurate ingest raw/            # -> WORKDIR/ingest/
    mmcurate score                  # -> WORKDIR/ingest/scores.parquet
    mmcurate balance --bins 10      # -> WORKDIR/balanced/
    mmcurate push --repo-id ORG/NAME
    mmcurate reeval                 # -> WORKDIR/reeval/

The work directory is ``--workdir``, else ``$MMCURATE_WORKDIR``, else ``./mmcurate-work``. Whether a
stage's output is complete is each stage's answer (``Stage.is_complete``), from the folders' own checks
(:meth:`IngestDir.is_complete`, :meth:`BalancedDir.is_complete`, ...).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mmcurate.store.balanced_dir import BalancedDir
from mmcurate.store.ingest_dir import IngestDir

WORKDIR_ENV = "MMCURATE_WORKDIR"
DEFAULT_WORKDIR = "mmcurate-work"


def resolve_workdir(workdir: str | os.PathLike[str] | None = None) -> Path:
    """The work directory: the explicit argument, else ``$MMCURATE_WORKDIR``, else ``./mmcurate-work``."""
    if workdir:
        return Path(workdir).expanduser()
    env = os.environ.get(WORKDIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path.cwd() / DEFAULT_WORKDIR


@dataclass(frozen=True)
class Workdir:
    """The work directory and its stage folders."""

    path: Path

    INGEST = "ingest"
    BALANCED = "balanced"
    REEVAL = "reeval"
    DEMO = "demo"
    PIPELINE_STATE = "pipeline_state.json"
    RESOLVED_RECIPE = "recipe.resolved.yaml"

    @classmethod
    def resolve(cls, workdir: str | os.PathLike[str] | None = None) -> Workdir:
        return cls(resolve_workdir(workdir))

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def ingest(self) -> IngestDir:
        return IngestDir(self.path / self.INGEST)

    @property
    def balanced(self) -> BalancedDir:
        return BalancedDir(self.path / self.BALANCED)

    @property
    def reeval_dir(self) -> Path:
        return self.path / self.REEVAL

    @property
    def demo_dir(self) -> Path:
        return self.path / self.DEMO

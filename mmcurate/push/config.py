"""``mmcurate push`` settings, written once (the command line and recipes build this)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmcurate.common.errors import MMCurateError
from mmcurate.common.options import opt

DEFAULT_FILES_PER_COMMIT = 10


@dataclass(frozen=True)
class PushConfig:
    """``mmcurate push [DATASET_DIR] --repo-id ORG/NAME``: every setting of the stage."""

    dataset_dir: Path | None = opt(None, argument=True)
    repo_id: str | None = opt(
        None, "Hub dataset repository to push to; created if it does not exist.", required=True, metavar="ORG/NAME"
    )
    private: bool = opt(False, "Create the repository as private (an existing repository keeps its visibility).")
    revision: str = opt("main", "Branch to push to; it must already exist.", show_default=True)
    dry_run: bool = opt(False, "List what would be uploaded, skipped or deleted, with sizes; change nothing.")
    token: str | None = opt(
        None, "Hub token. Prefer HF_TOKEN or `hf auth login`: a token on the command line can end up in shell history."
    )
    commit_message: str | None = opt(
        None, "Commit message (default: 'Upload balanced dataset (mmcurate VERSION)')."
    )
    files_per_commit: int = opt(
        DEFAULT_FILES_PER_COMMIT,
        "Data shards per commit; every commit is a point an interrupted push resumes from.",
        show_default=True,
    )
    no_xet: bool = opt(False, "Upload with the legacy LFS protocol, for endpoints without Xet storage.")

    def __post_init__(self) -> None:
        if not 1 <= self.files_per_commit <= 1000:
            raise MMCurateError(f"--files-per-commit must be in 1..1000 (got {self.files_per_commit})")

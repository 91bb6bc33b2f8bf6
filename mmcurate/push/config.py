"""``mmcurate push`` settings, written once (the command line and recipes build this)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from mmcurate.common.errors import MMCurateError
from mmcurate.common.options import opt

DEFAULT_FILES_PER_COMMIT = 10
DEFAULT_TIMEOUT = 60.0
DEFAULT_RETRIES = 3


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
    commit_message: str | None = opt(None, "Commit message (default: 'Upload balanced dataset (mmcurate VERSION)').")
    files_per_commit: int = opt(
        DEFAULT_FILES_PER_COMMIT,
        "Data shards per commit; every commit is a point an interrupted push resumes from.",
        show_default=True,
    )
    no_xet: bool = opt(False, "Upload with the legacy LFS protocol, for endpoints without Xet storage.")
    timeout: float = opt(
        DEFAULT_TIMEOUT, "Seconds to wait for the Hub to connect, answer or accept data before a request fails."
    )
    retries: int = opt(
        DEFAULT_RETRIES,
        "Times a read request (listing, repo info) is retried, with backoff, after a timeout or a drop.",
    )

    def __post_init__(self) -> None:
        if not 1 <= self.files_per_commit <= 1000:
            raise MMCurateError(f"--files-per-commit must be in 1..1000 (got {self.files_per_commit})")
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise MMCurateError(f"--timeout must be a positive number of seconds (got {self.timeout})")
        if not 0 <= self.retries <= 20:
            raise MMCurateError(f"--retries must be in 0..20 (got {self.retries})")

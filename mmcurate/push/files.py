"""What to push and what the repository already has, compared by content hash.

Only the Hub layout goes up: ``README.md``, its ``mmcurate_config.json`` and ``data/**/*.parquet``. Not ``hf/`` (a
``save_to_disk`` copy of the same rows that the Hub cannot serve), not ``selection.parquet``
(an mmcurate-internal table whose columns are already in every shard), not ``report/`` (local
diagnostics whose numbers the card already states; plots would also turn the repo's file
listing into something ``load_dataset`` has to skip). Files are compared by what the Hub itself
keys them on: the sha256 of an LFS file and the git blob id of a regular one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmcurate.common.console import warn
from mmcurate.common.errors import MMCurateError, StageNotReadyError
from mmcurate.store import BalancedDir


@dataclass(frozen=True)
class LocalFile:
    """A file to push: where it is and its identity on the Hub."""

    rel: str  # path in the repo (POSIX)
    path: Path
    size: int
    sha256: str
    git_oid: str


@dataclass(frozen=True)
class RemoteFile:
    """A file already in the repository at the target revision."""

    rel: str
    size: int
    sha256: str | None  # set for LFS files
    git_oid: str


_CARD_FILES = (BalancedDir.CARD, BalancedDir.CONFIG_JSON)


@dataclass
class PushPlan:
    """Which local files go up, which are already there, and which remote shards are stale."""

    upload: list[LocalFile]
    skip: list[LocalFile]
    delete: list[str]

    @property
    def data_uploads(self) -> list[LocalFile]:
        return [f for f in self.upload if f.rel not in _CARD_FILES]

    @property
    def card_uploads(self) -> list[LocalFile]:
        """The card and its configuration JSON: committed last, together, so they describe the shards."""
        return [f for f in self.upload if f.rel in _CARD_FILES]

    @property
    def card_upload(self) -> LocalFile | None:
        return next((f for f in self.upload if f.rel == BalancedDir.CARD), None)


def content_ids(path: Path, chunk_size: int = 1 << 20) -> tuple[int, str, str]:
    """(size, sha256, git blob id) of a file in one streaming read.

    The Hub keys LFS files by sha256 and regular files by their git blob id; computing both in
    one pass keeps memory flat for multi-GB shards.
    """
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    git = hashlib.sha1(b"blob %d\0" % size)
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            sha256.update(chunk)
            git.update(chunk)
    return size, sha256.hexdigest(), git.hexdigest()


def collect_local_files(dataset_dir: Path) -> list[LocalFile]:
    """The card and Parquet shards of an export, checked against its ``export.json`` marker.

    A directory that looks like an mmcurate balanced directory (it has ``hf/`` or
    ``selection.parquet``) must carry a valid marker: that is what tells a finished export from
    one cut off half way. Any other Hub-layout folder is pushed as found, with a warning.
    """
    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir():
        raise StageNotReadyError(
            f"{dataset_dir}: dataset directory not found; run `mmcurate balance` first or pass DATASET_DIR"
        )
    balanced = BalancedDir(dataset_dir)
    marker: dict[str, Any] | None = balanced.read_marker()
    if marker is None and (balanced.hf_dir.exists() or balanced.selection_path.exists()):
        balanced.verify_export()  # raises: an mmcurate export without its marker did not finish
    if marker is not None:
        balanced.verify_export(check_hashes=False)
    card = balanced.card_path
    shards = sorted(balanced.data_dir.rglob("*.parquet"))
    if not card.is_file():
        raise StageNotReadyError(f"{card}: missing; a Hub dataset needs its card, rerun `mmcurate balance`")
    if not shards:
        raise StageNotReadyError(f"{balanced.data_dir}: no Parquet shards; rerun `mmcurate balance`")
    if marker is None:
        warn(f"{dataset_dir}: no {BalancedDir.EXPORT_MARKER}; pushing README.md and data/ as found")
    files = []
    config = dataset_dir / BalancedDir.CONFIG_JSON  # the card's full configuration, when the export wrote one
    for path in [card, *([config] if config.is_file() else []), *shards]:
        rel = path.relative_to(dataset_dir).as_posix()
        size, sha, git_oid = content_ids(path)
        if marker is not None and marker["files"].get(rel, {}).get("sha256") not in (None, sha):
            raise MMCurateError(f"{path}: changed since it was exported; rerun `mmcurate balance` to export again")
        files.append(LocalFile(rel=rel, path=path, size=size, sha256=sha, git_oid=git_oid))
    return files


def plan_push(local: list[LocalFile], remote: dict[str, RemoteFile]) -> PushPlan:
    """Upload what is missing or different; delete remote shards the export no longer has.

    Only ``data/**.parquet`` files are ever deleted: other remote files (``.gitattributes``,
    anything a maintainer added) are left alone.
    """
    upload, skip = [], []
    for f in local:
        r = remote.get(f.rel)
        same = r is not None and r.size == f.size and (r.sha256 == f.sha256 if r.sha256 else r.git_oid == f.git_oid)
        (skip if same else upload).append(f)
    wanted = {f.rel for f in local}
    delete = sorted(
        p for p in remote if p.startswith(BalancedDir.DATA_DIR + "/") and p.endswith(".parquet") and p not in wanted
    )
    return PushPlan(upload=upload, skip=skip, delete=delete)


def batches(files: list[LocalFile], files_per_commit: int, bytes_per_commit: int) -> list[list[LocalFile]]:
    """Consecutive groups of at most ``files_per_commit`` files and about ``bytes_per_commit`` bytes."""
    out: list[list[LocalFile]] = []
    current: list[LocalFile] = []
    size = 0
    for f in files:
        if current and (len(current) >= files_per_commit or size + f.size > bytes_per_commit):
            out.append(current)
            current, size = [], 0
        current.append(f)
        size += f.size
    if current:
        out.append(current)
    return out

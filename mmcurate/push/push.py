"""``push_dataset``: publish an export's card and Parquet shards to a Hub dataset repository.

A push is a sequence of commits: data shards in batches (each commit is a resume point), then
the card together with the deletion of shards the export no longer has, so the card that
describes the new shards lands last. Before uploading, the repository's file listing at the
target branch is compared with the local files by sha256 (LFS) or git blob id (regular files),
and only what is missing or different goes up: a push cut off half way completes on rerun
without re-sending what was committed, and LFS objects uploaded but not yet committed are not
re-sent either, because the LFS batch endpoint reports them as present.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mmcurate
from mmcurate.common.console import info, progress_enabled, warn
from mmcurate.common.errors import MMCurateError
from mmcurate.common.progress import progress_bar
from mmcurate.push.config import DEFAULT_FILES_PER_COMMIT, DEFAULT_RETRIES, DEFAULT_TIMEOUT, PushConfig
from mmcurate.push.files import (
    LocalFile,
    PushPlan,
    RemoteFile,
    batches,
    collect_local_files,
    plan_push,
)
from mmcurate.push.repo_id import validate_repo_id
from mmcurate.store import Workdir

#: Upper bound on the bytes one commit covers, next to --files-per-commit: commits are the
#: resume points, so large shards are committed a few at a time.
BYTES_PER_COMMIT = 2_000_000_000


@dataclass
class PushResult:
    """What a push did (or, for a dry run, would do)."""

    repo_id: str
    endpoint: str
    revision: str
    plan: PushPlan
    dry_run: bool
    #: what the plan was compared against: "repo" (its file listing), "absent" (no repo yet),
    #: "unchecked" (dry run without a token)
    remote_state: str
    commit_urls: list[str] = field(default_factory=list)
    repo_url: str = ""

    @property
    def uploaded_bytes(self) -> int:
        return sum(f.size for f in self.plan.upload)

    @property
    def skipped_bytes(self) -> int:
        return sum(f.size for f in self.plan.skip)

    @property
    def commit_url(self) -> str | None:
        return self.commit_urls[-1] if self.commit_urls else None


def resolve_token(explicit: str | None) -> str | None:
    """``--token`` if given, else ``HF_TOKEN`` / the login cache (``hf auth login``), else None."""
    if explicit:
        return explicit.strip()
    from huggingface_hub import get_token

    return get_token()


def resolve_endpoint(explicit: str | None = None) -> str:
    """The Hub endpoint: the argument, else ``HF_ENDPOINT`` as ``huggingface_hub`` read it at import."""
    if explicit:
        return explicit.rstrip("/")
    from huggingface_hub import constants

    return constants.ENDPOINT.rstrip("/")


def push_dataset(
    dataset_dir: Path,
    repo_id: str,
    *,
    token: str | None = None,
    endpoint: str | None = None,
    private: bool = False,
    revision: str = "main",
    dry_run: bool = False,
    commit_message: str | None = None,
    files_per_commit: int = DEFAULT_FILES_PER_COMMIT,
    use_xet: bool | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
) -> PushResult:
    """Push ``dataset_dir``'s README.md and data/**/*.parquet to the dataset repo ``repo_id``.

    Raises :class:`MMCurateError` (one line, token masked) for a malformed repo id (before any
    network call), an unfinished export, a missing or rejected token, an unreachable endpoint,
    a missing revision, or any server error part way (rerun to resume).
    ``use_xet=False`` uploads with the legacy LFS protocol for endpoints without Xet storage.
    Every request waits at most ``timeout`` seconds for the endpoint; reads are retried ``retries``
    times (:mod:`mmcurate.push.http`), so a stalled endpoint ends in a one-line error, not a hang.
    """
    repo_id = validate_repo_id(repo_id)
    revision = (revision or "main").strip()
    if files_per_commit < 1:
        raise MMCurateError(f"--files-per-commit must be at least 1, got {files_per_commit}")
    local = collect_local_files(Path(dataset_dir))
    token = resolve_token(token)
    endpoint = resolve_endpoint(endpoint)
    if token is None:
        if dry_run:
            warn("no Hugging Face token: the dry run lists every file without checking what the repo already has")
            return PushResult(repo_id, endpoint, revision, plan_push(local, {}), True, "unchecked")
        raise MMCurateError("no Hugging Face token found; set HF_TOKEN, run `hf auth login`, or pass --token")

    from huggingface_hub import HfApi, constants

    from mmcurate.push.http import bounded_hub_client

    api = HfApi(endpoint=endpoint, token=token, library_name="mmcurate", library_version=mmcurate.__version__)
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    xet_disabled_before = constants.HF_HUB_DISABLE_XET
    if use_xet is not None:  # the hub client reads this switch at call time, not only at import
        constants.HF_HUB_DISABLE_XET = not use_xet
    hub_bars_were_off = are_progress_bars_disabled()
    if not progress_enabled():  # MMCURATE_NO_PROGRESS silences the hub's per-file bars too
        disable_progress_bars()
    try:
        with bounded_hub_client(timeout, retries):
            return _push(
                api, local, repo_id, endpoint, token, private, revision, dry_run, commit_message, files_per_commit
            )
    finally:
        constants.HF_HUB_DISABLE_XET = xet_disabled_before
        if not hub_bars_were_off:
            enable_progress_bars()


def _push(
    api: Any,
    local: list[LocalFile],
    repo_id: str,
    endpoint: str,
    token: str,
    private: bool,
    revision: str,
    dry_run: bool,
    commit_message: str | None,
    files_per_commit: int,
) -> PushResult:
    from mmcurate.push.hub_errors import hub_errors
    from mmcurate.push.secrets import masking_hub_logs

    done: dict[str, int] = {"commits": 0, "planned": 0}

    def progress_note() -> str:
        if not done["planned"]:
            return ""
        return f"stopped after {done['commits']} of {done['planned']} commits: "

    with (
        masking_hub_logs(token),
        hub_errors(endpoint=endpoint, repo_id=repo_id, revision=revision, token=token, progress=progress_note),
    ):
        api.whoami()  # a bad token or an unreachable endpoint fails here, before anything changes
        exists, exists_private = _repo_state(api, repo_id)
        if revision != "main":
            _require_branch(api, repo_id, revision, exists)
        if dry_run:
            remote = _remote_files(api, repo_id, revision) if exists else {}
            return PushResult(
                repo_id, endpoint, revision, plan_push(local, remote), True, "repo" if exists else "absent"
            )
        if not exists:
            api.create_repo(repo_id, repo_type="dataset", private=private or None, exist_ok=True)
            info(f"created {'private ' if private else ''}dataset repo {repo_id} at {endpoint}")
        elif private and not exists_private:
            warn(f"{repo_id} already exists and is public; --private only applies when the repo is created")
        plan = plan_push(local, _remote_files(api, repo_id, revision))
        repo_url = f"{endpoint}/datasets/{repo_id}" + (f"/tree/{revision}" if revision != "main" else "")
        result = PushResult(
            repo_id, endpoint, revision, plan, False, "repo" if exists else "absent", repo_url=repo_url
        )
        message = commit_message or f"Upload balanced dataset (mmcurate {mmcurate.__version__})"
        _commit_plan(api, result, message, files_per_commit, done)
    return result


def _repo_state(api: Any, repo_id: str) -> tuple[bool, bool]:
    """(exists, private) of the dataset repo."""
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        repo = api.repo_info(repo_id, repo_type="dataset")
    except RepositoryNotFoundError:
        return False, False
    return True, bool(repo.private)


def _require_branch(api: Any, repo_id: str, revision: str, exists: bool) -> None:
    """Fail unless ``revision`` is an existing branch (commits go to branches, not tags or shas)."""
    branches = {b.name for b in api.list_repo_refs(repo_id, repo_type="dataset").branches} if exists else set()
    if revision not in branches:
        raise MMCurateError(
            f"revision '{revision}' is not a branch of dataset repo {repo_id}; create it first "
            "(`hf repo branch create`) or push to main by leaving out --revision"
        )


def _remote_files(api: Any, repo_id: str, revision: str) -> dict[str, RemoteFile]:
    """Every file in the repo at ``revision``: path -> size, LFS sha256, git blob id."""
    from huggingface_hub.hf_api import RepoFile

    out: dict[str, RemoteFile] = {}
    for entry in api.list_repo_tree(repo_id, repo_type="dataset", revision=revision, recursive=True):
        if isinstance(entry, RepoFile):
            out[entry.path] = RemoteFile(
                rel=entry.path,
                size=entry.size,
                sha256=entry.lfs.sha256 if entry.lfs is not None else None,
                git_oid=entry.blob_id,
            )
    return out


def _add_op(f: LocalFile) -> Any:
    """An add operation that reuses the sha256 computed when planning (no second read of the file)."""
    from huggingface_hub import CommitOperationAdd

    op = CommitOperationAdd(path_in_repo=f.rel, path_or_fileobj=str(f.path))
    op.upload_info.sha256 = bytes.fromhex(f.sha256)
    return op


def _commit_plan(api: Any, result: PushResult, message: str, files_per_commit: int, done: dict[str, int]) -> None:
    """Data batches first, then the card with stale-shard deletions; each a separate commit.

    ``done`` counts planned and finished commits, for the error message of a push cut off.
    """
    from huggingface_hub import CommitOperationDelete

    plan = result.plan
    data_batches = batches(plan.data_uploads, files_per_commit, BYTES_PER_COMMIT)
    card_files = plan.card_uploads
    total = len(plan.upload) + len(plan.delete)
    if total == 0:
        info(f"{result.repo_id}@{result.revision} already has every file; nothing to upload")
        return
    final_ops: list[Any] = [CommitOperationDelete(path_in_repo=p) for p in plan.delete]
    final_ops[:0] = [_add_op(f) for f in card_files]
    done["planned"] = len(data_batches) + (1 if final_ops else 0)
    with progress_bar(f"push {result.repo_id}", total=total) as advance:
        for k, batch in enumerate(data_batches, start=1):
            ops = [_add_op(f) for f in batch]
            suffix = f" (data {k}/{len(data_batches)})" if len(data_batches) > 1 or final_ops else ""
            commit = api.create_commit(
                result.repo_id,
                operations=ops,
                commit_message=message + suffix,
                repo_type="dataset",
                revision=result.revision,
            )
            result.commit_urls.append(commit.commit_url)
            done["commits"] += 1
            advance(len(batch))
        if final_ops:
            title = message if not data_batches else message + " (card)"
            if plan.delete:
                title += f", remove {len(plan.delete)} stale shard(s)"
            commit = api.create_commit(
                result.repo_id,
                operations=final_ops,
                commit_message=title,
                repo_type="dataset",
                revision=result.revision,
            )
            result.commit_urls.append(commit.commit_url)
            done["commits"] += 1
            advance(len(final_ops))


def run_push(workdir: Workdir, cfg: PushConfig) -> PushResult:
    """The ``mmcurate push`` stage: DATASET_DIR (default WORKDIR/balanced) to the Hub as ``cfg.repo_id``."""
    if not cfg.repo_id:
        raise MMCurateError("push needs --repo-id ORG/NAME")
    return push_dataset(
        cfg.dataset_dir if cfg.dataset_dir is not None else workdir.balanced.path,
        cfg.repo_id,
        token=cfg.token,
        private=cfg.private,
        revision=cfg.revision,
        dry_run=cfg.dry_run,
        commit_message=cfg.commit_message,
        files_per_commit=cfg.files_per_commit,
        use_xet=False if cfg.no_xet else None,
        timeout=cfg.timeout,
        retries=cfg.retries,
    )

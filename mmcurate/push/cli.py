"""``mmcurate push``: publish the balanced dataset's card and Parquet shards to a Hub dataset repo."""

from __future__ import annotations

from pathlib import Path

import click

from mmcurate.common.cli_options import workdir_option
from mmcurate.common.console import err_console, out_console, summary_table
from mmcurate.common.workdir import stage_dir
from mmcurate.push.push import DEFAULT_FILES_PER_COMMIT, PushResult, push_dataset


@click.command(
    "push",
    epilog=(
        "\b\nEnvironment (read when the command starts):\n"
        "  HF_TOKEN            token (else the `hf auth login` cache)\n"
        "  HF_ENDPOINT         Hub endpoint (default https://huggingface.co)\n"
        "  HF_HUB_DISABLE_XET  set to 1 for endpoints without Xet storage (same as --no-xet)\n"
        "\b\nRerunning an interrupted push resumes it: files already in the repo are compared by\n"
        "sha256 and skipped, and only missing or changed files are uploaded."
    ),
)
@click.argument("dataset_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--repo-id", required=True, metavar="ORG/NAME", help="Hub dataset repository to push to; created if it does not exist.")
@workdir_option
@click.option("--private", is_flag=True, help="Create the repository as private (an existing repository keeps its visibility).")
@click.option("--revision", default="main", show_default=True, help="Branch to push to; it must already exist.")
@click.option("--dry-run", is_flag=True, help="List what would be uploaded, skipped or deleted, with sizes; change nothing.")
@click.option(
    "--token",
    default=None,
    help="Hub token. Prefer HF_TOKEN or `hf auth login`: a token on the command line can end up in shell history.",
)
@click.option("--commit-message", default=None, help="Commit message (default: 'Upload balanced dataset (mmcurate VERSION)').")
@click.option(
    "--files-per-commit",
    type=click.IntRange(1, 1000),
    default=DEFAULT_FILES_PER_COMMIT,
    show_default=True,
    help="Data shards per commit; every commit is a point an interrupted push resumes from.",
)
@click.option("--no-xet", is_flag=True, help="Upload with the legacy LFS protocol, for endpoints without Xet storage.")
def push(
    dataset_dir: Path | None,
    repo_id: str,
    workdir: str | None,
    private: bool,
    revision: str,
    dry_run: bool,
    token: str | None,
    commit_message: str | None,
    files_per_commit: int,
    no_xet: bool,
) -> None:
    """Push DATASET_DIR (default: the work directory's balanced/ folder) to the Hub as ORG/NAME.

    Uploads exactly the Hub layout the export wrote: README.md (the dataset card) and
    data/{split}-NNNNN-of-NNNNN.parquet. Shards go up in commits of --files-per-commit, the card
    last; shards the repo has but the export no longer lists are deleted in that last commit.
    """
    folder = dataset_dir if dataset_dir is not None else stage_dir("balance", workdir)
    result = push_dataset(
        folder,
        repo_id,
        token=token,
        private=private,
        revision=revision,
        dry_run=dry_run,
        commit_message=commit_message,
        files_per_commit=files_per_commit,
        use_xet=False if no_xet else None,
    )
    _report(result)


def _report(result: PushResult) -> None:
    plan = result.plan
    if result.dry_run:
        note = {
            "repo": "",
            "absent": " (the repo does not exist yet: it would be created)",
            "unchecked": " (no token, repo not checked: every file listed as an upload)",
        }[result.remote_state]
        _out(f"dry run: {result.repo_id}@{result.revision} at {result.endpoint}{note}")
        for f in plan.upload:
            _out(f"  upload  {_size(f.size):>10}  {f.rel}")
        for f in plan.skip:
            _out(f"  skip    {_size(f.size):>10}  {f.rel}  (already in the repo)")
        for p in plan.delete:
            _out(f"  delete  {'':>10}  {p}  (stale shard)")
    title = f"push {result.repo_id}@{result.revision}" + (" (dry run: nothing changed)" if result.dry_run else "")
    verb = "to upload" if result.dry_run else "uploaded"
    rows = [
        [verb, len(plan.upload), _size(result.uploaded_bytes)],
        ["skipped (already there)", len(plan.skip), _size(result.skipped_bytes)],
        ["stale shards " + ("to delete" if result.dry_run else "deleted"), len(plan.delete), ""],
    ]
    if not result.dry_run:
        rows.append(["commits", len(result.commit_urls), ""])
    summary_table(title, ["", "files", "bytes"], rows)
    if not result.dry_run:
        err_console.print(f"last commit: {result.commit_url or 'none (the repo was already up to date)'}", soft_wrap=True, markup=False)
        _out(result.repo_url)


def _out(text: str) -> None:
    """A result line on stdout, never wrapped (paths and URLs must stay copyable)."""
    out_console.print(text, soft_wrap=True, markup=False, highlight=False)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"

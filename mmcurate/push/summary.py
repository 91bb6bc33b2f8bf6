"""What ``mmcurate push`` prints: the dry-run listing, the summary table, the repository URL."""

from __future__ import annotations

from mmcurate.common.console import err_console, out_console, summary_table
from mmcurate.push.push import PushResult


def report(result: PushResult) -> None:
    """The end-of-run listing and summary table of a push."""
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
        err_console.print(
            f"last commit: {result.commit_url or 'none (the repo was already up to date)'}",
            soft_wrap=True,
            markup=False,
        )
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

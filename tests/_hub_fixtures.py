"""Shared pieces for the export and push tests: a real export on disk, the CLI in a subprocess.

The push tests run ``mmcurate push`` the way a user does: a fresh process whose environment
(``HF_ENDPOINT``, ``HF_HUB_DISABLE_XET``, ``HF_HOME``...) is set before ``huggingface_hub`` and
``datasets`` are imported, pointing only at the local test server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from _fixtures_ingest import fixture_provenance, make_ingest_dir, make_selection

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Small enough that the fixture's train split needs several shards.
SMALL_SHARD = "100KB"


@dataclass(frozen=True)
class ExportFixture:
    ingest_dir: Path
    selection: pa.Table
    balanced_dir: Path
    workdir: Path


def build_export(
    root: Path, max_shard_size: str | int = SMALL_SHARD, n: int = 30, **ingest_kwargs: object
) -> ExportFixture:
    """An ingest fixture plus its export at ``root/work/balanced`` (the work directory layout)."""
    from mmcurate.export import export_balanced

    ingest_dir = make_ingest_dir(root / "work" / "ingest", n=n, missing_audio=(5,), **ingest_kwargs)  # type: ignore[arg-type]
    selection = make_selection(ingest_dir)
    balanced = root / "work" / "balanced"
    export_balanced(
        ingest_dir, selection, balanced, fixture_provenance(), max_shard_size=max_shard_size, show_summary=False
    )
    return ExportFixture(ingest_dir, selection, balanced, root / "work")


def run_mmcurate(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m mmcurate ARGS`` in a fresh process with exactly the Hub variables of ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE_"))}
    return subprocess.run(
        [sys.executable, "-m", "mmcurate", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        cwd=str(REPO_ROOT),
        timeout=timeout,
    )


def run_python(
    code: str, args: list[str], env: dict[str, str], timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """A Python snippet in a fresh process with the Hub environment set before any import."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE_"))}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env={**base, **env, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "tests")])},
        capture_output=True,
        text=True,
        cwd=str(REPO_ROOT),
        timeout=timeout,
    )


def error_lines(stderr: str) -> list[str]:
    """The ``error:`` lines the CLI printed."""
    return [line for line in stderr.splitlines() if line.startswith("error:")]

"""Stage 1, ``mmcurate ingest``: decode raw clips into Arrow shards with a manifest.

Public surface:

* :func:`run_ingest` / :class:`IngestRequest`: the whole stage (resumable, deterministic);
* :func:`process_clip`: the pure per-file step, for other executors (Ray Data, Slurm);
* :class:`IngestConfig`: what the output depends on;
* :func:`read_manifest`, :func:`read_classes`: read a finished ingest folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mmcurate.common.errors import StageNotReadyError
from mmcurate.ingest.clip import ClipResult, process_clip
from mmcurate.ingest.config import IngestConfig
from mmcurate.ingest.items import Discovery, Failure, InputItem, make_sample_id
from mmcurate.ingest.runner import CLASSES, MANIFEST, IngestRequest, IngestResult, run_ingest


def require_ingest(ingest_dir: Path) -> Path:
    """``ingest_dir`` if it holds a finished ingest, else a clear error saying how to make one."""
    if not (ingest_dir / MANIFEST).is_file():
        raise StageNotReadyError(
            f"no finished ingest in {ingest_dir} (manifest.parquet missing); run `mmcurate ingest RAW_DIR` first "
            "or point to an ingest folder"
        )
    return ingest_dir


def read_manifest(ingest_dir: Path) -> pa.Table:
    """The manifest of a finished ingest."""
    return pq.read_table(require_ingest(ingest_dir) / MANIFEST)


def read_classes(ingest_dir: Path) -> list[str]:
    """The class list (ClassLabel order) of a finished ingest."""
    return list(json.loads((require_ingest(ingest_dir) / CLASSES).read_text(encoding="utf-8")))


__all__ = [
    "ClipResult", "Discovery", "Failure", "IngestConfig", "IngestRequest", "IngestResult", "InputItem",
    "make_sample_id", "process_clip", "read_classes", "read_manifest", "require_ingest", "run_ingest",
]

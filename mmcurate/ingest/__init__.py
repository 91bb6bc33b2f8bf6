"""Stage 1, ``mmcurate ingest``: decode raw clips into Arrow shards with a manifest.

Public surface:

* :data:`STAGE` / :func:`run_ingest` with :class:`IngestConfig`: the whole stage (resumable, deterministic);
* :func:`process_clip` with :class:`DecodeConfig`: the pure per-file step, which any executor maps
  (this machine's process pool, an array-job part, a cluster engine).

A finished ingest folder is read through :class:`mmcurate.store.IngestDir`.
"""

from __future__ import annotations

from mmcurate.common.stage import Stage
from mmcurate.ingest.clip import ClipResult, process_clip
from mmcurate.ingest.config import DecodeConfig, IngestConfig
from mmcurate.ingest.runner import IngestResult, run_ingest, summarize

STAGE: Stage[IngestConfig, IngestResult] = Stage(
    name="ingest",
    config=IngestConfig,
    reads=("RAW_DIR (clips, an input manifest or a release layout)",),
    writes=(
        "ingest/manifest.parquet",
        "ingest/shards/*.arrow",
        "ingest/chunks/*.json",
        "ingest/failures.jsonl",
        "ingest/classes.json",
        "ingest/config.json",
        "ingest/stats.json",
    ),
    run=run_ingest,
    summarize=summarize,
)

__all__ = ["STAGE", "ClipResult", "DecodeConfig", "IngestConfig", "IngestResult", "process_clip", "run_ingest"]

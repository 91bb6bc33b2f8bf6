"""Stage 1, ``mmcurate ingest``: decode raw clips into Arrow shards with a manifest.

Public surface:

* :data:`STAGE` / :func:`run_ingest` with :class:`IngestConfig`: the whole stage (resumable, deterministic);
* :func:`process_clip` with :class:`DecodeConfig`: the pure per-file step, which any executor maps
  (this machine's process pool, an array-job part, a cluster engine).

A finished ingest folder is read through :class:`mmcurate.store.IngestDir`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmcurate.common.stage import Stage
from mmcurate.ingest.clip import ClipResult, process_clip
from mmcurate.ingest.config import DecodeConfig, IngestConfig
from mmcurate.ingest.runner import IngestResult, run_ingest, summarize
from mmcurate.store import IngestDir, Workdir


def recipe_settings(resolved: Mapping[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Ingest's options in a recipe: its own section, plus where the raw data is and how it is laid out
    (the ``source`` section: ``raw_dir``, ``layout``, ``layout_options``, ``manifest``)."""
    section = dict(resolved.get("ingest") or {})
    source = resolved.get("source") or {}
    layout = source.get("layout")
    if layout and layout != "manifest" and "layout" not in section:
        section["layout"] = layout
    if source.get("layout_options"):
        section.setdefault("layout_option", source["layout_options"])
    if source.get("manifest") and "manifest" not in section:
        section["manifest"] = source["manifest"]
    return section, {"raw_dir": Path(str(source["raw_dir"]))}


def is_complete(workdir: Workdir, cfg: IngestConfig) -> bool:
    return IngestDir(cfg.out or workdir.ingest.path).is_complete()


STAGE: Stage[IngestConfig, IngestResult] = Stage(
    name="ingest",
    config=IngestConfig,
    claims_folder=True,  # --overwrite: write into a folder mmcurate did not make
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
    is_complete=is_complete,
    sections=("ingest", "source"),
    recipe_settings=recipe_settings,
    on_change={"replace_changed": True},  # not --overwrite: a folder that is no ingest output stays refused
)

__all__ = ["STAGE", "ClipResult", "DecodeConfig", "IngestConfig", "IngestResult", "process_clip", "run_ingest"]

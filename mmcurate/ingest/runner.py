"""Run ingest: discover inputs, decode them on all cores, write shards, resume, finalize.

Executors are kept apart from the per-file step (:func:`mmcurate.ingest.clip.process_clip`):
this module is the local executor (a process pool), and an array job is the same executor run
with ``--num-shards/--shard-index`` on each node.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mmcurate import __version__
from mmcurate.common.atomic import atomic_path, atomic_write_json, atomic_write_text, clean_stale_temporaries
from mmcurate.common.console import info, progress_bar, summary_table, warn
from mmcurate.common.errors import MMCurateError
from mmcurate.common.hashing import config_hash
from mmcurate.ingest.clip import ClipResult, process_clip
from mmcurate.ingest.config import IngestConfig
from mmcurate.ingest.discovery import apply_class_list, discover, read_class_file
from mmcurate.ingest.items import Failure, InputItem
from mmcurate.ingest.shards import (
    CHUNKS_DIR,
    SHARDS_DIR,
    marker_path,
    media_table,
    read_marker,
    shard_name,
    write_marker,
    write_shard,
)
from mmcurate.schemas import MANIFEST_SCHEMA

MANIFEST = "manifest.parquet"
FAILURES = "failures.jsonl"
CLASSES = "classes.json"
CONFIG = "config.json"
STATS = "stats.json"


@dataclass
class IngestRequest:
    """Everything one ``mmcurate ingest`` invocation was asked to do."""

    raw_dir: Path
    out_dir: Path
    config: IngestConfig = field(default_factory=IngestConfig)
    manifest: Path | None = None
    layout: str | None = None
    layout_options: dict[str, Any] = field(default_factory=dict)
    group_column: str | None = None
    classes_file: Path | None = None
    overwrite: bool = False
    max_failures: int | None = None
    source: dict[str, Any] = field(default_factory=dict)  # dataset name, licence: provenance for the card


@dataclass
class IngestResult:
    out_dir: Path
    finalized: bool
    n_inputs: int
    n_ok: int
    n_failed: int
    n_unlisted: int
    chunks_done_before: int
    chunks_written: int
    elapsed: float
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def failed_over_limit(self) -> bool:
        limit = self.stats.get("max_failures")
        return limit is not None and self.n_failed > limit


def identity(req: IngestRequest, classes: list[str]) -> dict[str, Any]:
    """What the output content depends on, besides the input files themselves."""
    return {
        "config": req.config.content_dict(),
        "layout": req.layout or ("manifest" if req.manifest else "folders"),
        "layout_options": req.layout_options,
        "manifest": str(req.manifest.name) if req.manifest else None,
        "group_column": req.group_column,
        "classes": classes,
    }


def _fingerprint(raw_dir: Path, item: InputItem) -> list[Any]:
    try:
        st = (raw_dir / item.path).stat()
        return [item.sample_id, st.st_size, st.st_mtime_ns]
    except OSError:
        return [item.sample_id, None, None]


def _check_existing(out_dir: Path, ident: dict[str, Any], overwrite: bool) -> None:
    cfg_path = out_dir / CONFIG
    if not cfg_path.is_file():
        return
    try:
        old = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        old = {}
    if old.get("identity_hash") == config_hash(ident):
        return
    if overwrite:
        info(f"--overwrite: removing the previous ingest output in {out_dir}")
        for name in (SHARDS_DIR, CHUNKS_DIR):
            shutil.rmtree(out_dir / name, ignore_errors=True)
        for name in (MANIFEST, FAILURES, CLASSES, STATS, CONFIG, "scores.parquet", "scores.json"):
            (out_dir / name).unlink(missing_ok=True)
        return
    changed = _diff(old.get("identity", {}), ident)
    raise MMCurateError(
        f"{out_dir} holds ingest output made with different settings ({changed}); "
        "pass --overwrite to replace it, or --out for a new folder"
    )


def _diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> str:
    diffs = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            inner = _diff(a, b, f"{prefix}{key}.")
            if inner:
                diffs.append(inner)
        elif a != b:
            if isinstance(a, list) or isinstance(b, list):
                diffs.append(f"{prefix}{key} changed")
            else:
                diffs.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return ", ".join(diffs[:5])


def _worker_count(requested: int) -> int:
    if requested and requested > 0:
        return requested
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


# Worker-process globals (set once per worker by the pool initializer).
_W_RAW: str = ""
_W_CFG: IngestConfig | None = None


def _init_worker(raw_dir: str, cfg: IngestConfig) -> None:
    global _W_RAW, _W_CFG
    _W_RAW, _W_CFG = raw_dir, cfg
    if cfg.features:  # only then do workers need torch (importing it costs a second per worker)
        import torch

        torch.set_num_threads(1)


def _work(item: InputItem) -> ClipResult:
    assert _W_CFG is not None
    return process_clip(_W_RAW, item, _W_CFG, threads=1)


@contextlib.contextmanager
def local_executor(raw_dir: Path, cfg: IngestConfig, workers: int) -> Iterator[Callable[[list[InputItem]], Iterator[ClipResult]]]:
    """The local executor: a process pool (or inline for one worker) mapping items to results
    in input order. The pool starts before any progress bar thread, so forking is clean."""
    if workers <= 1:
        yield lambda items: (process_clip(raw_dir, it, cfg, threads=0) for it in items)
        return
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    with ctx.Pool(workers, initializer=_init_worker, initargs=(str(raw_dir), cfg)) as pool:
        yield lambda items: pool.imap(_work, items, chunksize=4)


def run_ingest(req: IngestRequest) -> IngestResult:
    """Ingest ``req.raw_dir`` into ``req.out_dir``; resumable, idempotent, deterministic."""
    t_start = time.monotonic()
    cfg = req.config
    if cfg.features:
        from mmcurate.ingest.features_cache import feature_config

        feature_config(cfg)  # fail fast on a bad preset or sample-rate mismatch
    found = discover(req.raw_dir, req.manifest, req.layout, req.layout_options, req.group_column)
    class_list = read_class_file(req.classes_file) if req.classes_file else None
    found, classes = apply_class_list(found, class_list)
    ident = identity(req, classes)
    out = req.out_dir
    _check_existing(out, ident, req.overwrite)
    (out / SHARDS_DIR).mkdir(parents=True, exist_ok=True)
    (out / CHUNKS_DIR).mkdir(parents=True, exist_ok=True)
    for folder in (out, out / SHARDS_DIR, out / CHUNKS_DIR):
        clean_stale_temporaries(folder)
    atomic_write_json(
        out / CONFIG,
        {
            "mmcurate_version": __version__,
            "identity_hash": config_hash(ident),
            "identity": ident,
            "raw_dir": str(req.raw_dir.resolve()),
            "manifest": str(req.manifest.resolve()) if req.manifest else None,
            "classes_file": str(req.classes_file) if req.classes_file else None,
            "source": req.source,
            "execution": {"workers": cfg.workers, "num_shards": cfg.num_shards, "shard_index": cfg.shard_index},
        },
    )

    items = found.items
    chunks = [items[i : i + cfg.shard_size] for i in range(0, len(items), cfg.shard_size)]
    ident_hash = config_hash(ident)
    mine = [k for k in range(len(chunks)) if k % cfg.num_shards == cfg.shard_index]
    fingerprints = {k: [_fingerprint(req.raw_dir, it) for it in chunks[k]] for k in range(len(chunks))}

    def is_done(k: int) -> bool:
        marker = read_marker(out, k)
        return (
            marker is not None
            and marker.get("identity_hash") == ident_hash
            and marker.get("inputs") == fingerprints[k]
            and (out / SHARDS_DIR / shard_name(k)).is_file()
        )

    pending = [k for k in mine if not is_done(k)]
    done_before = len(mine) - len(pending)
    workers = _worker_count(cfg.workers)
    pending_items = [it for k in pending for it in chunks[k]]
    if pending:
        info(
            f"ingest: {len(items)} inputs in {len(chunks)} shards; {done_before} shards already done, "
            f"decoding {len(pending_items)} clips on {workers} worker(s)"
        )
    written = 0
    if pending_items:
        with local_executor(req.raw_dir, cfg, min(workers, len(pending_items))) as run_map:
            results = iter(run_map(pending_items))
            with progress_bar("decoding", len(pending_items)) as advance:
                for k in pending:
                    chunk_results = []
                    for _ in chunks[k]:
                        chunk_results.append(next(results))
                        advance()
                    _write_chunk(out, k, chunk_results, ident_hash, fingerprints[k])
                    written += 1

    all_done = all(is_done(k) for k in range(len(chunks)))
    stats: dict[str, Any] = {}
    n_ok = n_failed = 0
    if all_done:
        # the finished outputs are a function of this fingerprint: skip rewriting them when it is unchanged
        final_key = config_hash(
            [ident_hash, fingerprints, [f.to_json() for f in found.failures], found.unlisted], length=32
        )
        stats = _read_stats(out) if written == 0 else {}
        if stats.get("finalize_key") != final_key or not (out / MANIFEST).is_file():
            stats = _finalize(out, req, found.failures, found.unlisted, classes, len(chunks))
            stats["finalize_key"] = final_key
        n_ok, n_failed = stats["samples"], stats["failures"]
    else:
        missing = [k for k in range(len(chunks)) if not is_done(k)]
        info(
            f"ingest: this task's shards are done; {len(missing)} of {len(chunks)} shards belong to other "
            "array tasks and are not finished yet; the last task to finish writes manifest.parquet "
            "(or rerun without --shard-index to finish them here)"
        )
    elapsed = time.monotonic() - t_start
    result = IngestResult(
        out_dir=out,
        finalized=all_done,
        n_inputs=len(items) + len(found.failures),
        n_ok=n_ok,
        n_failed=n_failed,
        n_unlisted=len(found.unlisted),
        chunks_done_before=done_before,
        chunks_written=written,
        elapsed=elapsed,
        stats={**stats, "max_failures": req.max_failures},
    )
    if all_done:
        stats["last_run"] = {
            "elapsed_seconds": round(elapsed, 3),
            "clips_decoded": len(pending_items),
            "clips_per_second": round(len(pending_items) / elapsed, 3) if elapsed > 0 and pending_items else None,
            "workers": workers,
            "shards_written": written,
            "shards_already_done": done_before,
        }
        atomic_write_json(out / STATS, stats)
    return result


def _read_stats(out: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((out / STATS).read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError):
        return {}


def _write_chunk(out: Path, k: int, results: list[ClipResult], ident_hash: str, fingerprint: list[Any]) -> None:
    ok = [r for r in results if r.failure is None]
    media = [r.media for r in ok]
    rows = []
    for i, r in enumerate(ok):
        row = dict(r.row or {})
        row["shard"] = shard_name(k)
        row["shard_row"] = i
        rows.append(row)
    write_shard(out / SHARDS_DIR / shard_name(k), media_table(media))  # type: ignore[arg-type]
    write_marker(
        out,
        k,
        {
            "identity_hash": ident_hash,
            "shard": shard_name(k),
            "inputs": fingerprint,
            "rows": rows,
            "failures": [r.failure.to_json() for r in results if r.failure is not None],
        },
    )


def manifest_table(rows: list[dict[str, Any]], extra: list[str] | None = None) -> pa.Table:
    """manifest.parquet: MANIFEST_SCHEMA columns, then any carried input-manifest columns (strings)."""
    if extra is None:
        extra = sorted({k for r in rows for k in r} - set(MANIFEST_SCHEMA.names))
    schema = pa.schema(list(MANIFEST_SCHEMA) + [pa.field(k, pa.string()) for k in extra])
    return pa.Table.from_pylist([{**{k: None for k in extra}, **r} for r in rows], schema=schema)


def _finalize(
    out: Path, req: IngestRequest, discover_failures: list[Failure], unlisted: list[str], classes: list[str], n_chunks: int
) -> dict[str, Any]:
    # The manifest is built one chunk at a time as Arrow (a few hundred bytes a row): all rows as
    # Python dicts at once cost about 2.5 KB each, 75 MB of peak memory at 30k inputs.
    failures: list[dict[str, Any]] = [f.to_json() for f in discover_failures]
    columns: set[str] = set()
    for k in range(n_chunks):
        marker = read_marker(out, k) or {}
        columns.update(key for r in marker.get("rows", []) for key in r)
        failures.extend(marker.get("failures", []))
    extra = sorted(columns - set(MANIFEST_SCHEMA.names))
    chunks, ids_sorted, last_id = [], True, ""
    for k in range(n_chunks):
        rows = (read_marker(out, k) or {}).get("rows", [])
        ids = [r["sample_id"] for r in rows]
        ids_sorted = ids_sorted and all(a < b for a, b in zip([last_id, *ids], ids))
        last_id = ids[-1] if ids else last_id
        chunks.append(manifest_table(rows, extra))
    table = pa.concat_tables(chunks) if chunks else manifest_table([], extra)
    del chunks
    if not ids_sorted:  # chunks hold inputs in sample-id order, so this is only a safeguard
        table = table.sort_by("sample_id")
    failures.sort(key=lambda f: (f["file"], f.get("sample_id") or ""))
    # shards and markers beyond the current chunk count belong to inputs that are gone
    for stale in sorted((out / SHARDS_DIR).glob("shard-*.arrow")):
        if int(stale.stem.split("-")[1]) >= n_chunks:
            stale.unlink()
            marker_path(out, int(stale.stem.split("-")[1])).unlink(missing_ok=True)
    with atomic_path(out / MANIFEST) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    atomic_write_text(out / FAILURES, "".join(json.dumps(f, sort_keys=True) + "\n" for f in failures))
    atomic_write_json(out / CLASSES, classes)
    by_stage = Counter(f["stage"] for f in failures)
    by_label = Counter(table.column("label").to_pylist())
    by_split = Counter(s or "(none)" for s in table.column("split").to_pylist())
    total_bytes = sum((out / SHARDS_DIR / shard_name(k)).stat().st_size for k in range(n_chunks))
    n_rows = table.num_rows
    return {
        "inputs": n_rows + len(failures),
        "samples": n_rows,
        "failures": len(failures),
        "failures_by_stage": dict(sorted(by_stage.items())),
        "unlisted_files": len(unlisted),
        "unlisted_examples": unlisted[:20],
        "classes": len(classes),
        "samples_per_label": dict(sorted(by_label.items())),
        "samples_per_split": dict(sorted(by_split.items())),
        "with_audio": sum(1 for v in table.column("has_audio").to_pylist() if v),
        "with_video": sum(1 for v in table.column("has_video").to_pylist() if v),
        "total_hours": round(sum(table.column("duration").to_pylist()) / 3600.0, 4),
        "shards": n_chunks,
        "shard_bytes": total_bytes,
    }


def print_summary(result: IngestResult) -> None:
    """The end-of-run summary table."""
    s = result.stats
    if not result.finalized:
        summary_table("ingest (partial: array task)", ["shards written", "already done"], [[result.chunks_written, result.chunks_done_before]])
        return
    rows = [
        ["inputs", s.get("inputs")],
        ["samples in manifest", s.get("samples")],
        ["failures", s.get("failures")],
        *[[f"  failed at {stage}", n] for stage, n in s.get("failures_by_stage", {}).items()],
        ["unlisted files (not in the input manifest)", s.get("unlisted_files")],
        ["classes", s.get("classes")],
        ["with audio / with video", f"{s.get('with_audio')} / {s.get('with_video')}"],
        ["hours of media", s.get("total_hours")],
        ["shards (written now / reused)", f"{s.get('shards')} ({result.chunks_written} / {result.chunks_done_before})"],
        ["shard size (MB)", round(s.get("shard_bytes", 0) / 1e6, 2)],
        ["wall time (s)", round(result.elapsed, 2)],
    ]
    summary_table(f"ingest -> {result.out_dir}", ["", "value"], rows)
    if result.chunks_written == 0 and result.chunks_done_before:
        info("ingest: everything was already done; nothing was decoded")
    if s.get("failures"):
        warn(f"{s['failures']} input(s) failed; reasons in {result.out_dir / FAILURES}")

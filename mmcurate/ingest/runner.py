"""Run ingest: discover inputs, decode them through an executor, write shards, resume, finalize.

The per-file step (:func:`mmcurate.ingest.clip.process_clip`) is a pure function of (file, item,
decode settings); the executor (:mod:`mmcurate.execution`: this machine's cores, or one part of
an array job) maps it over shards of items; this module writes each finished shard and its
completion marker through the store, and the manifest once every shard is done.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmcurate import __version__
from mmcurate.common.atomic import clean_stale_temporaries
from mmcurate.common.console import info, progress_bar, summary_table, warn
from mmcurate.common.errors import MMCurateError
from mmcurate.common.hashing import config_hash
from mmcurate.execution import WorkUnit, make_executor, make_units
from mmcurate.ingest.clip import ClipResult, process_clip
from mmcurate.ingest.config import DecodeConfig, IngestConfig
from mmcurate.recipes import apply_class_list, discover, item_processor, read_class_file
from mmcurate.store import IngestDir, Workdir
from mmcurate.store.ingest_dir import shard_name, shard_table
from mmcurate.store.items import Failure, InputItem


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


def identity(cfg: IngestConfig, classes: list[str]) -> dict[str, Any]:
    """What the output content depends on, besides the input files themselves."""
    return {
        "config": cfg.decode.content_dict(),
        "layout": cfg.layout or ("manifest" if cfg.manifest else "folders"),
        "layout_options": cfg.layout_options,
        "manifest": str(cfg.manifest.name) if cfg.manifest else None,
        "group_column": cfg.group_column,
        "classes": classes,
    }


def _item_fingerprint(raw_dir: Path, item: InputItem) -> list[Any]:
    """Everything about one input that its shard row depends on: the item itself (label, split,
    group, segment, carried columns) and the file's size and modification time."""
    try:
        st = (raw_dir / item.path).stat()
        stat: list[Any] = [st.st_size, st.st_mtime_ns]
    except OSError:
        stat = [None, None]
    return [item.sample_id, item.label, item.split, item.group, item.start, item.end, [list(kv) for kv in item.extra], *stat]


def _check_existing(out: IngestDir, ident: dict[str, Any], overwrite: bool) -> None:
    if not out.file(IngestDir.CONFIG).is_file():
        return
    try:
        old = out.read_config()
    except MMCurateError:
        old = {}
    if old.get("identity_hash") == config_hash(ident):
        return
    if overwrite:
        info(f"--overwrite: removing the previous ingest output in {out.path}")
        out.clear()
        return
    changed = _diff(old.get("identity", {}), ident)
    raise MMCurateError(
        f"{out.path} holds ingest output made with different settings ({changed}); "
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


def _init_worker(features: bool) -> None:
    if features:  # only then do workers need torch (importing it costs a second per worker)
        import torch

        torch.set_num_threads(1)


def run_ingest(workdir: Workdir, cfg: IngestConfig) -> IngestResult:
    """Ingest ``cfg.raw_dir`` into ``cfg.out`` (default ``WORKDIR/ingest``); resumable, idempotent, deterministic."""
    t_start = time.monotonic()
    if cfg.raw_dir is None:
        raise MMCurateError("ingest needs RAW_DIR, the folder holding the raw clips")
    raw_dir, decode = Path(cfg.raw_dir), cfg.decode
    if decode.features:
        from mmcurate.ingest.features_cache import feature_config

        feature_config(decode)  # fail fast on a bad preset or sample-rate mismatch
    executor = make_executor(cfg.workers, cfg.array, cfg.execution)
    found = discover(raw_dir, cfg.manifest, cfg.layout, cfg.layout_options, cfg.group_column)
    if found.features is not None:  # the layout's items carry their audio features ready-made
        cfg = dataclasses.replace(cfg, decode=_with_layout_features(cfg.decode, found.features))
        decode = cfg.decode
    class_list = read_class_file(cfg.classes) if cfg.classes else found.classes
    found, classes = apply_class_list(found, class_list)
    ident = identity(cfg, classes)
    ident_hash = config_hash(ident)
    out = IngestDir(cfg.out or workdir.ingest.path)
    _check_existing(out, ident, cfg.overwrite)
    out.shards_dir.mkdir(parents=True, exist_ok=True)
    out.chunks_dir.mkdir(parents=True, exist_ok=True)
    for folder in (out.path, out.shards_dir, out.chunks_dir):
        clean_stale_temporaries(folder)
    num_shards, shard_index = cfg.array.resolved()
    out.write_config(
        {
            "mmcurate_version": __version__,
            "identity_hash": ident_hash,
            "identity": ident,
            "raw_dir": str(raw_dir.resolve()),
            "manifest": str(cfg.manifest.resolve()) if cfg.manifest else None,
            "classes_file": str(cfg.classes) if cfg.classes else None,
            "source": cfg.source,
            "execution": {"engine": cfg.execution.engine, "workers": cfg.workers, "num_shards": num_shards,
                          "shard_index": shard_index},
        }
    )

    units = make_units(found.items, decode.shard_size, shard_name)
    unit_identity = {
        u.index: config_hash([ident_hash, [_item_fingerprint(raw_dir, it) for it in u.items]], length=32) for u in units
    }

    def is_done(unit: WorkUnit[InputItem]) -> bool:
        return out.chunk_marker(unit.index).read(unit_identity[unit.index]) is not None

    mine = [u for u in units if executor.owns(u)]
    pending = [u for u in mine if not is_done(u)]
    done_before = len(mine) - len(pending)
    n_pending = sum(len(u.items) for u in pending)
    if pending:
        info(
            f"ingest: {len(found.items)} inputs in {len(units)} shards; {done_before} shards already done, "
            f"decoding {n_pending} clips ({executor.describe()})"
        )
    written = 0
    if pending:
        parallel = min(executor.workers, n_pending) > 1
        job = functools.partial(_process, item_processor(cfg.layout) or process_clip, str(raw_dir), decode, 1 if parallel else 0)
        with progress_bar("decoding", n_pending) as advance:
            for unit, results in executor.map_units(job, pending, initializer=_init_worker, initargs=(bool(decode.features),)):
                _write_chunk(out, unit, results, unit_identity[unit.index])
                written += 1
                advance(len(unit.items))

    all_done = all(is_done(u) for u in units)
    stats: dict[str, Any] = {}
    n_ok = n_failed = 0
    if all_done:
        # the finished outputs are a function of this key: skip rewriting them when it is unchanged
        final_key = config_hash(
            [ident_hash, unit_identity, [f.to_json() for f in found.failures], found.unlisted], length=32
        )
        stats = out.read_stats() if written == 0 else {}
        if stats.get("finalize_key") != final_key or not out.is_complete():
            stats = _finalize(out, found.failures, found.unlisted, classes, len(units))
            stats["finalize_key"] = final_key
        n_ok, n_failed = stats["samples"], stats["failures"]
    else:
        missing = [u for u in units if not is_done(u)]
        info(
            f"ingest: this task's shards are done; {len(missing)} of {len(units)} shards belong to other "
            "array tasks and are not finished yet; the last task to finish writes manifest.parquet "
            "(or rerun without --shard-index to finish them here)"
        )
    elapsed = time.monotonic() - t_start
    result = IngestResult(
        out_dir=out.path,
        finalized=all_done,
        n_inputs=len(found.items) + len(found.failures),
        n_ok=n_ok,
        n_failed=n_failed,
        n_unlisted=len(found.unlisted),
        chunks_done_before=done_before,
        chunks_written=written,
        elapsed=elapsed,
        stats={**stats, "max_failures": cfg.max_failures},
    )
    if all_done:
        stats["last_run"] = {
            "elapsed_seconds": round(elapsed, 3),
            "clips_decoded": n_pending,
            "clips_per_second": round(n_pending / elapsed, 3) if elapsed > 0 and n_pending else None,
            "workers": executor.workers,
            "shards_written": written,
            "shards_already_done": done_before,
        }
        out.write_stats(stats)
    return result


def _process(fn: Callable[..., ClipResult], raw_dir: str, decode: DecodeConfig, threads: int, item: InputItem) -> ClipResult:
    return fn(raw_dir, item, decode, threads=threads)


def _with_layout_features(decode: DecodeConfig, features: dict[str, Any]) -> DecodeConfig:
    """Decode settings whose feature cache is the layout's ready-made features (``features``, a
    resolved feature config); ``--features`` may only name the same config."""
    if decode.features is not None:
        from mmcurate.features import resolve_feature_config

        if resolve_feature_config(decode.features).to_dict() != features:
            raise MMCurateError(
                f"--features {decode.features}: this layout's clips carry their own audio features, which no other "
                "preset can be computed from (there is no waveform); leave --features out"
            )
    return decode.replace(features=features, sample_rate=int(features["sample_rate"]))


def _write_chunk(out: IngestDir, unit: WorkUnit[InputItem], results: list[ClipResult], identity_hash: str) -> None:
    """Write one shard, then its marker (its manifest rows and failures are the marker's payload)."""
    ok = [r for r in results if r.failure is None]
    rows = []
    for i, r in enumerate(ok):
        row = dict(r.row or {})
        row["shard"] = shard_name(unit.index)
        row["shard_row"] = i
        rows.append(row)
    path = out.write_shard(unit.index, shard_table([r.media for r in ok]))  # type: ignore[misc]
    out.chunk_marker(unit.index).record(
        identity_hash,
        [path],
        {"rows": rows, "failures": [r.failure.to_json() for r in results if r.failure is not None]},
    )


def _finalize(
    out: IngestDir, discover_failures: list[Failure], unlisted: list[str], classes: list[str], n_chunks: int
) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = [f.to_json() for f in discover_failures]
    for k in range(n_chunks):
        payload = out.chunk_marker(k).read_payload()
        rows.extend(payload.get("rows", []))
        failures.extend(payload.get("failures", []))
    rows.sort(key=lambda r: r["sample_id"])
    failures.sort(key=lambda f: (f["file"], f.get("sample_id") or ""))
    # shards and markers beyond the current chunk count belong to inputs that are gone
    for k in out.shard_indices():
        if k >= n_chunks:
            out.shard_path(k).unlink()
            out.chunk_marker(k).clear()
    out.write_manifest(rows)
    out.write_failures(failures)
    out.write_classes(classes)
    by_stage = Counter(f["stage"] for f in failures)
    by_label = Counter(r["label"] for r in rows)
    by_split = Counter(r["split"] or "(none)" for r in rows)
    total_bytes = sum(out.shard_path(k).stat().st_size for k in range(n_chunks))
    return {
        "inputs": len(rows) + len(failures),
        "samples": len(rows),
        "failures": len(failures),
        "failures_by_stage": dict(sorted(by_stage.items())),
        "unlisted_files": len(unlisted),
        "unlisted_examples": unlisted[:20],
        "classes": len(classes),
        "samples_per_label": dict(sorted(by_label.items())),
        "samples_per_split": dict(sorted(by_split.items())),
        "with_audio": sum(1 for r in rows if r["has_audio"]),
        "with_video": sum(1 for r in rows if r["has_video"]),
        "total_hours": round(sum(r["duration"] for r in rows) / 3600.0, 4),
        "shards": n_chunks,
        "shard_bytes": total_bytes,
    }


def check_failure_limit(result: IngestResult) -> None:
    """Exit status 3 (a one-line error) when more inputs failed than ``--max-failures`` allows."""
    if result.failed_over_limit:
        err = MMCurateError(f"{result.n_failed} inputs failed, more than --max-failures {result.stats['max_failures']}")
        err.exit_code = 3
        raise err


def summarize(result: IngestResult) -> None:
    """The end-of-run summary, then exit status 3 when more inputs failed than ``--max-failures`` allows."""
    print_summary(result)
    check_failure_limit(result)


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
        warn(f"{s['failures']} input(s) failed; reasons in {result.out_dir / IngestDir.FAILURES}")

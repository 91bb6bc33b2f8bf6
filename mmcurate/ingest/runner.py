"""Run ingest: discover inputs, decode them through an executor, write shards, resume, finalize.

The per-file step (:func:`mmcurate.ingest.clip.process_clip`) is a pure function of (file, item,
decode settings); the executor (:mod:`mmcurate.execution`: this machine's cores, or one part of
an array job) maps it over shards of items; this module writes each finished shard and its
completion marker through the store, and the manifest once every shard is done.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from mmcurate import __version__
from mmcurate.common.console import info, summary_table, warn
from mmcurate.common.errors import MMCurateError
from mmcurate.common.hashing import config_hash
from mmcurate.execution import Executor, WorkUnit, make_executor, make_units
from mmcurate.execution.driver import Completion, UnitDriver, Written
from mmcurate.ingest.clip import ClipResult, process_clip
from mmcurate.ingest.config import DecodeConfig, IngestConfig
from mmcurate.recipes import apply_class_list, discover, item_processor, read_class_file
from mmcurate.store import IngestDir, Workdir
from mmcurate.store.ingest_dir import shard_name, shard_table
from mmcurate.store.items import Discovery, InputItem
from mmcurate.store.lock import FileLock
from mmcurate.store.ownership import check_output_path, make_output_dir


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
    return [
        item.sample_id,
        item.label,
        item.split,
        item.group,
        item.start,
        item.end,
        [list(kv) for kv in item.extra],
        *stat,
    ]


def _check_existing(out: IngestDir, ident: dict[str, Any], overwrite: bool) -> bool:
    """Whether the folder holds output made with other settings and ``overwrite`` says to clear it
    (the caller clears it); a one-line refusal without ``overwrite``.

    The class list is part of the identity (shards are redone when it changes) but not a setting:
    labels edited in the input manifest change it, and that is new input to ingest, not a reason
    to refuse the folder.
    """
    if not out.file(IngestDir.CONFIG).is_file():
        return False
    try:
        old = out.read_config()
    except MMCurateError:
        old = {}
    if old.get("identity_hash") == config_hash(ident):
        return False
    old_ident = old.get("identity") if isinstance(old.get("identity"), dict) else {}
    if old_ident and _settings(old_ident) == _settings(ident):
        return False
    if overwrite:
        return True
    changed = _diff(old_ident or {}, ident)
    raise MMCurateError(
        f"{out.path} holds ingest output made with different settings ({changed}); "
        "pass --overwrite to replace it, or --out for a new folder"
    )


def _settings(ident: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ident.items() if k != "classes"}


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
    """Ingest ``cfg.raw_dir`` into ``cfg.out`` (default ``WORKDIR/ingest``); resumable, idempotent, deterministic.

    The output folder is locked for the run (shared by the parts of an array job), must be empty,
    an ingest output or given with ``--overwrite``, and may not contain RAW_DIR nor be it; an
    output inside RAW_DIR (and a work directory inside it) is left out of discovery.
    """
    if cfg.raw_dir is None:
        raise MMCurateError("ingest needs RAW_DIR, the folder holding the raw clips")
    raw_dir = Path(cfg.raw_dir)
    out = IngestDir(cfg.out or workdir.ingest.path)
    check_output_path(out.path)
    excluded = _outputs_inside(raw_dir, out.path, workdir.path)
    num_shards, _ = cfg.array.resolved()
    out.claim(cfg.overwrite, write=False)  # a refused folder is left untouched (no lock file either)
    lock = out.lock()
    make_output_dir(out.path)
    # a plain run owns the folder; parts of an array job share it (each writes its own shards)
    lock.acquire_for_run(num_shards)
    try:
        return _run_locked(workdir, cfg, raw_dir, out, excluded, lock)
    finally:
        lock.release()


def _outputs_inside(raw_dir: Path, out: Path, workdir: Path) -> list[str]:
    """RAW_DIR-relative paths of the outputs that lie inside RAW_DIR (discovery leaves them out);
    a one-line error when the output folder is RAW_DIR or holds it."""
    if not raw_dir.is_dir():
        return []  # discovery says what is wrong with it
    raw_real = Path(os.path.realpath(raw_dir))
    out_real = Path(os.path.realpath(out))
    if out_real == raw_real:
        raise MMCurateError(
            f"{out}: the output folder is RAW_DIR itself; ingest would write (and with --overwrite delete) among "
            "the raw clips; choose another --out"
        )
    if out_real in raw_real.parents:
        raise MMCurateError(f"{raw_dir}: RAW_DIR is inside the output folder {out}; choose another --out")
    inside = []
    for path in (out_real, Path(os.path.realpath(workdir))):
        if raw_real in path.parents:
            inside.append(path.relative_to(raw_real).as_posix())
    return sorted(set(inside))


def _run_locked(
    workdir: Workdir, cfg: IngestConfig, raw_dir: Path, out: IngestDir, excluded: list[str], lock: FileLock
) -> IngestResult:
    t_start = time.monotonic()
    decode = cfg.decode
    if decode.features:
        from mmcurate.ingest.features_cache import feature_config

        feature_config(decode)  # fail fast on a bad preset or sample-rate mismatch
    executor = make_executor(cfg.workers, cfg.array, cfg.execution)
    # fork the workers while this process is small: they would otherwise start with its copy of
    # the input list (memory that grows with the number of inputs, in every worker)
    executor.prestart()
    try:
        return _run_with(workdir, cfg, raw_dir, out, excluded, lock, executor, t_start)
    finally:
        executor.close()


def _run_with(
    workdir: Workdir,
    cfg: IngestConfig,
    raw_dir: Path,
    out: IngestDir,
    excluded: list[str],
    lock: FileLock,
    executor: Executor,
    t_start: float,
) -> IngestResult:
    cfg, found, classes = _discover(cfg, raw_dir, excluded)
    decode = cfg.decode
    ident = identity(cfg, classes)
    ident_hash = config_hash(ident)
    _prepare_folder(out, cfg, raw_dir, ident, lock)
    units = make_units(found.items, decode.shard_size, shard_name)
    unit_identity = {
        u.index: config_hash([ident_hash, [_item_fingerprint(raw_dir, it) for it in u.items]], length=32)
        for u in units
    }
    driver = UnitDriver("ingest", "shard", units, _shard_completion(out, unit_identity), executor)
    driver.announce(f"{len(found.items)} inputs", "decoding", "clips")
    n_pending = driver.pending_items

    def job() -> Callable[[InputItem], ClipResult]:
        threads = 1 if min(executor.workers, n_pending) > 1 else 0
        return functools.partial(_process, item_processor(cfg.layout) or process_clip, str(raw_dir), decode, threads)

    written = driver.run(
        job,
        lambda unit, results: _write_chunk(out, unit, results, unit_identity[unit.index]),
        progress="decoding",
        count_items=True,
        initializer=_init_worker,
        initargs=(bool(decode.features),),
    )
    all_done = driver.finish("manifest.parquet")
    stats: dict[str, Any] = {}
    if all_done:
        # the finished outputs are a function of this key: skip rewriting them when it is unchanged
        final_key = config_hash(
            [ident_hash, unit_identity, [f.to_json() for f in found.failures], found.unlisted, found.skipped, classes],
            length=32,
        )
        stats = out.read_stats() if written == 0 else {}
        if stats.get("finalize_key") != final_key or not out.is_complete():
            unit_ids = [unit_identity[u.index] for u in units]
            stats = {**_finalize(out, found, classes, unit_ids, ident_hash), "finalize_key": final_key}
    elapsed = time.monotonic() - t_start
    result = IngestResult(
        out_dir=out.path,
        finalized=all_done,
        n_inputs=len(found.items) + len(found.failures),
        n_ok=stats.get("samples", 0),
        n_failed=stats.get("failures", 0),
        n_unlisted=len(found.unlisted),
        chunks_done_before=driver.done_before,
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
            "shards_already_done": driver.done_before,
        }
        out.write_stats(stats)
    return result


def _discover(cfg: IngestConfig, raw_dir: Path, excluded: list[str]) -> tuple[IngestConfig, Discovery, list[str]]:
    """The inputs under RAW_DIR checked against the class list; the config takes a layout's ready-made features."""
    found = discover(raw_dir, cfg.manifest, cfg.layout, cfg.layout_options, cfg.group_column, exclude=excluded)
    if excluded:
        info(f"ingest: {', '.join(excluded)} inside RAW_DIR holds mmcurate output; left out of discovery")
    if found.features is not None:  # the layout's items carry their audio features ready-made
        cfg = dataclasses.replace(cfg, decode=_with_layout_features(cfg.decode, found.features))
    class_list = read_class_file(cfg.classes) if cfg.classes else found.classes
    found, classes = apply_class_list(found, class_list)
    return cfg, found, classes


def _prepare_folder(out: IngestDir, cfg: IngestConfig, raw_dir: Path, ident: dict[str, Any], lock: FileLock) -> None:
    """Claim the folder, clear output made with other settings (``--overwrite``), remove a killed run's
    temporaries, and record the settings; then let the other parts of an array job in."""
    num_shards, shard_index = cfg.array.resolved()
    out.claim(cfg.overwrite)
    # clearing and cleaning need the folder to ourselves: a live run's temporary looks like debris
    alone = lock.mode == "exclusive" or lock.try_exclusive()
    if _check_existing(out, ident, cfg.overwrite or cfg.replace_changed):
        if not alone:
            raise MMCurateError(
                f"{out.path}: other array parts are running on this folder; --overwrite can only replace it "
                "when none is (rerun this part once they have finished)"
            )
        info(f"--overwrite: removing the previous ingest output in {out.path}")
        out.clear()
    if alone:
        out.clean_temporaries()
    out.shards_dir.mkdir(parents=True, exist_ok=True)
    out.chunks_dir.mkdir(parents=True, exist_ok=True)
    out.write_config(
        {
            "mmcurate_version": __version__,
            "identity_hash": config_hash(ident),
            "identity": ident,
            "raw_dir": str(raw_dir.resolve()),
            "manifest": str(cfg.manifest.resolve()) if cfg.manifest else None,
            "classes_file": str(cfg.classes) if cfg.classes else None,
            "source": cfg.source,
            "execution": {
                "engine": cfg.execution.engine,
                "workers": cfg.workers,
                "num_shards": num_shards,
                "shard_index": shard_index,
            },
        }
    )
    if num_shards > 1 and lock.mode == "exclusive":
        lock.acquire(exclusive=False)  # let the other parts in


def _process(
    fn: Callable[..., ClipResult], raw_dir: str, decode: DecodeConfig, threads: int, item: InputItem
) -> ClipResult:
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


def _shard_completion(out: IngestDir, unit_identity: dict[int, str]) -> Completion[InputItem]:
    """A shard is done when its marker matches and the shard opens with the rows the marker lists."""
    return Completion(
        marker=lambda unit: out.chunk_marker(unit.index),
        identity=lambda unit: unit_identity[unit.index],
        intact=lambda unit, payload: out.shard_intact(unit.index, payload),
    )


def _write_chunk(out: IngestDir, unit: WorkUnit[InputItem], results: list[ClipResult], unit_id: str) -> Written:
    """Write one shard, tagged with its unit's identity ``unit_id`` (the manifest records it, readers compare);
    its manifest rows and failures are its marker's payload."""
    ok = [r for r in results if r.failure is None]
    rows = []
    for i, r in enumerate(ok):
        row = dict(r.row or {})
        row["shard"] = shard_name(unit.index)
        row["shard_row"] = i
        rows.append(row)
    path = out.write_shard(unit.index, shard_table([r.media for r in ok]), unit_id)  # type: ignore[misc]
    return Written([path], {"rows": rows, "failures": [r.failure.to_json() for r in results if r.failure is not None]})


def _finalize(
    out: IngestDir, found: Discovery, classes: list[str], unit_ids: list[str], ident_hash: str
) -> dict[str, Any]:
    """Write the failures, the class list and, last, the manifest; the manifest records the run's settings,
    class list and shards (:meth:`IngestDir.generation`), so readers refuse a mixture of two runs."""
    n_chunks = len(unit_ids)
    failures: list[dict[str, Any]] = [f.to_json() for f in found.failures]
    for k in range(n_chunks):
        failures.extend(out.chunk_marker(k).read_payload().get("failures", []))
    failures.sort(key=lambda f: (f["file"], f.get("sample_id") or ""))
    # shards and markers beyond the current chunk count belong to inputs that are gone
    kept = out.remove_stale_shards(n_chunks)
    if kept:
        warn(f"{out.shards_dir}: {', '.join(kept[:3])} not written by this ingest; left in place, not used")
    out.write_failures(failures)
    out.write_classes(classes)
    generation = {
        "identity_hash": ident_hash,
        "classes": config_hash(classes),
        "shards": {shard_name(k): unit_ids[k] for k in range(n_chunks)},
    }
    table = out.write_manifest_chunks(
        lambda: (out.chunk_marker(k).read_payload().get("rows", []) for k in range(n_chunks)), generation
    )
    by_stage = Counter(f["stage"] for f in failures)
    by_label = Counter(table.column("label").to_pylist())
    by_split = Counter(s or "(none)" for s in table.column("split").to_pylist())
    by_skip = Counter(why for _, why in found.skipped)
    same_content = _same_content(table)
    native = table.column("native_frame_count").to_pylist()
    stored = table.column("num_frames").to_pylist()
    ids = table.column("sample_id").to_pylist()
    repeated = [sid for sid, n, k in zip(ids, native, stored, strict=True) if n and k > n]
    total_bytes = sum(out.shard_path(k).stat().st_size for k in range(n_chunks))
    n_rows = table.num_rows
    return {
        "inputs": n_rows + len(failures),
        "samples": n_rows,
        "failures": len(failures),
        "failures_by_stage": dict(sorted(by_stage.items())),
        "unlisted_files": len(found.unlisted),
        "unlisted_examples": found.unlisted[:20],
        "skipped_entries": len(found.skipped),
        "skipped_by_reason": dict(sorted(by_skip.items())),
        "skipped_examples": [f"{path} ({why})" for path, why in found.skipped[:20]],
        "same_content_groups": len(same_content),
        "same_content_examples": same_content[:10],
        "frames_repeated": len(repeated),
        "frames_repeated_examples": repeated[:10],
        "classes": len(classes),
        "samples_per_label": dict(sorted(by_label.items())),
        "samples_per_split": dict(sorted(by_split.items())),
        "with_audio": sum(1 for v in table.column("has_audio").to_pylist() if v),
        "with_video": sum(1 for v in table.column("has_video").to_pylist() if v),
        "total_hours": round(sum(table.column("duration").to_pylist()) / 3600.0, 4),
        "shards": n_chunks,
        "shard_bytes": total_bytes,
    }


def _same_content(manifest: pa.Table) -> list[list[str]]:
    """Sample ids of different files with identical bytes (sha256), grouped: a copy under two labels
    or splits is worth knowing about (segments of one file share a hash, and are not reported)."""
    by_hash: dict[str, dict[str, str]] = {}
    cols = (manifest.column(c).to_pylist() for c in ("sha256", "path", "sample_id"))
    for sha, path, sid in zip(*cols, strict=True):
        if sha:
            by_hash.setdefault(sha, {}).setdefault(path, sid)
    return [sorted(paths.values()) for _, paths in sorted(by_hash.items()) if len(paths) > 1]


def check_failure_limit(result: IngestResult) -> None:
    """Exit status 3 (a one-line error) when more inputs failed than ``--max-failures`` allows."""
    if result.failed_over_limit:
        err = MMCurateError(
            f"{result.n_failed} inputs failed, more than --max-failures {result.stats['max_failures']}"
        )
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
        summary_table(
            "ingest (partial: array task)",
            ["shards written", "already done"],
            [[result.chunks_written, result.chunks_done_before]],
        )
        return
    rows = [
        ["inputs", s.get("inputs")],
        ["samples in manifest", s.get("samples")],
        ["failures", s.get("failures")],
        *[[f"  failed at {stage}", n] for stage, n in s.get("failures_by_stage", {}).items()],
        ["unlisted files (not in the input manifest)", s.get("unlisted_files")],
        ["not searched (hidden, links to folders, unreadable)", s.get("skipped_entries", 0)],
        ["classes", s.get("classes")],
        ["with audio / with video", f"{s.get('with_audio')} / {s.get('with_video')}"],
        ["hours of media", s.get("total_hours")],
        [
            "shards (written now / reused)",
            f"{s.get('shards')} ({result.chunks_written} / {result.chunks_done_before})",
        ],
        ["shard size (MB)", round(s.get("shard_bytes", 0) / 1e6, 2)],
        ["wall time (s)", round(result.elapsed, 2)],
    ]
    summary_table(f"ingest -> {result.out_dir}", ["", "value"], rows)
    if result.chunks_written == 0 and result.chunks_done_before:
        info("ingest: everything was already done; nothing was decoded")
    if s.get("failures"):
        warn(f"{s['failures']} input(s) failed; reasons in {result.out_dir / IngestDir.FAILURES}")
    if s.get("skipped_entries"):
        reasons = ", ".join(f"{n} {why}" for why, n in s.get("skipped_by_reason", {}).items())
        warn(f"{s['skipped_entries']} entries under RAW_DIR were not searched ({reasons}); listed in stats.json")
    if s.get("same_content_groups"):
        first = s["same_content_examples"][0]
        warn(
            f"{s['same_content_groups']} group(s) of different files have identical content "
            f"(e.g. {', '.join(first)}); listed in stats.json"
        )
    if s.get("frames_repeated"):
        warn(
            f"{s['frames_repeated']} clip(s) have fewer frames than requested; their frames repeat "
            f"(e.g. {s['frames_repeated_examples'][0]}); see native_frame_count in manifest.parquet"
        )

"""``mmcurate export``: the balanced selection written in a layout the field's code loads.

Reads the balanced folder (``selection.parquet``, ``balance.json``) and its ingest folder through the
store, and writes ``WORKDIR/<format>/`` (BalanceMM: :mod:`mmcurate.formats.balancemm`).

Atomic and resumable, the way the other stages are:

* everything is built in a staging folder beside the output (``.<name>.partial``), which a killed
  run leaves in place and the next run continues: clips go in units of ``--chunk-size``, each unit's
  files written atomically and then its completion marker (:class:`mmcurate.store.UnitMarker`:
  the unit's identity, its files' sizes and hashes); a unit whose marker is valid is not redone;
* the annotation file, the card and the export's own marker come last, then the staging folder
  replaces the output in one rename; the output is therefore always either the previous complete
  export or the new one, never a mixture BalanceMM would load without noticing;
* an unchanged rerun finds the output complete for its identity and writes nothing.

Same selection, ingest and settings give byte-identical files.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from mmcurate import __version__
from mmcurate.common.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text, install_dir
from mmcurate.common.console import info, summary_table
from mmcurate.common.errors import MMCurateError
from mmcurate.common.hashing import canonical_json, config_hash
from mmcurate.common.stage import Stage
from mmcurate.execution import WorkUnit, make_executor, make_units
from mmcurate.execution.driver import Completion, UnitDriver, Written
from mmcurate.formats.balancemm import ANNOTATIONS, AUDIO_DIR, FORMAT_VERSION, VISUAL_DIR, dumps_annotations
from mmcurate.formats.balancemm_export import (
    ClipJob,
    EncodedClip,
    build_annotations,
    check_clip_id,
    clip_files,
    encode_clip,
    provenance_block,
    release_shards,
    render_card,
)
from mmcurate.formats.config import ExportConfig
from mmcurate.store import BalancedDir, IngestDir, UnitMarker, Workdir
from mmcurate.store.lock import LOCK_NAME, FileLock
from mmcurate.store.ownership import OWNER_FILE, check_output_path, make_output_dir, owner_kind
from mmcurate.store.splits import SPLITS

STATE_DIR = ".mmcurate"
CARD = "README.md"
#: the owner-file kind of an export's staging folder (``.<out>.partial``)
STAGING_KIND = "export-staging"


@dataclass
class ExportFormatResult:
    out_dir: Path
    format: str
    clips: int
    split_counts: dict[str, int]
    units_written: int
    units_done_before: int
    already_complete: bool
    elapsed: float
    stats: dict[str, Any] = field(default_factory=dict)
    #: False for an array-job part that left units to the other parts (nothing installed yet)
    finished: bool = True


def export_marker(root: Path) -> UnitMarker:
    """The whole export's completion marker (its files: the annotation file and the card)."""
    return UnitMarker(root / STATE_DIR / "export.json", root)


def unit_marker(root: Path, index: int) -> UnitMarker:
    """The completion marker of clip unit ``index`` (its files: the unit's HDF5 and .pkl files)."""
    return UnitMarker(root / STATE_DIR / "units" / f"unit-{index:05d}.json", root)


def is_complete(root: Path, identity: str | None = None) -> bool:
    """Whether ``root`` holds a finished export (for ``identity``, when given) with every file intact (sizes)."""
    doc = _read_doc(export_marker(root).path)
    if doc is None:
        return False
    identity = identity or doc.get("identity")
    payload = export_marker(root).read(identity)
    if payload is None:
        return False
    return all(unit_marker(root, int(k)).read(v) is not None for k, v in payload.get("units", {}).items())


def _read_doc(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def run_export(workdir: Workdir, cfg: ExportConfig) -> ExportFormatResult:
    """The ``mmcurate export`` stage (see the module docstring), holding the output's run lock."""
    out = Path(cfg.out or workdir.path / cfg.format)
    check_output_path(out)
    lock = export_lock(out).acquire_for_run(1)
    try:
        return _run_export(workdir, cfg)
    finally:
        lock.release()


def export_lock(out: Path) -> FileLock:
    """The run lock of export folder ``out``: two exports into one folder would build one staging folder
    and install each other's halves. The folder is replaced by a rename when an export finishes, so its lock
    file lives beside it (``.<name>.mmcurate.lock``; lock files are never deleted)."""
    return FileLock(out.parent / f".{out.name}{LOCK_NAME}", f"export folder {out}")


def _run_export(workdir: Workdir, cfg: ExportConfig) -> ExportFormatResult:
    t0 = time.monotonic()
    plan = ExportPlan.of(workdir, cfg)
    out, rows, n_units = plan.out, plan.rows, len(plan.units)
    if is_complete(out, plan.identity):
        info(f"export: {out} is already complete for this selection and these settings; nothing to do")
        elapsed = time.monotonic() - t0
        return ExportFormatResult(out, cfg.format, len(rows), plan.split_counts, 0, n_units, True, elapsed)
    _check_out(out)
    staging = _staging_dir(out)
    completion: Completion[ClipJob] = Completion(
        marker=lambda unit: unit_marker(staging, unit.index), identity=lambda unit: plan.unit_identity[unit.index]
    )
    driver = UnitDriver("export", "unit", plan.units, completion, make_executor(cfg.workers))
    driver.announce(f"{len(rows)} clips", "encoding", "clips")
    n_pending = driver.pending_items
    try:
        driver.run(
            lambda: encode_clip,
            lambda unit, results: _write_unit(staging, results),
            progress="export: encoding clips",
            count_items=True,
            initializer=_init_worker,
        )
    finally:
        release_shards()  # no memory map outlives the run (a shard rewritten in place later would fault)
    done = driver.finish(ANNOTATIONS)
    result = ExportFormatResult(
        out, cfg.format, len(rows), plan.split_counts, driver.written, driver.done_before, False, 0.0, finished=done
    )
    if done:
        clip_stats = _install_export(plan, staging)
        frames = Counter(s["frames_written"] for s in clip_stats)
        result.stats = {
            "frames_per_clip": dict(sorted(frames.items())),
            "loader_reads_index_1_only": sum(n for k, n in frames.items() if k <= 6),
            "audio_from": dict(Counter(s["audio_from"] for s in clip_stats)),
        }
    result.elapsed = time.monotonic() - t0
    rate = n_pending / result.elapsed if n_pending and result.elapsed > 0 else None
    result.stats = {"clips_per_second": round(rate, 3) if rate is not None else None, **result.stats}
    return result


@dataclass(frozen=True)
class ExportPlan:
    """What one export writes: the selection's rows joined with their media, the audio recipe, the units of
    clips with their identities, and the annotation file (all fixed before anything is written)."""

    cfg: ExportConfig
    out: Path
    meta: dict[str, Any]
    classes: list[str]
    rows: list[dict[str, Any]]
    preset: str | None
    features: dict[str, Any]
    provenance: dict[str, Any]
    annotations_text: str
    units: list[WorkUnit[ClipJob]]
    unit_identity: dict[int, str]
    identity: str

    @property
    def split_counts(self) -> dict[str, int]:
        return dict(Counter(r["split"] for r in self.rows))

    @classmethod
    def of(cls, workdir: Workdir, cfg: ExportConfig) -> ExportPlan:
        from mmcurate.data.shards import ingest_features_config
        from mmcurate.features import preset_name_of, resolve_feature_config

        balanced = BalancedDir(cfg.balanced_dir or workdir.balanced.path)
        selection = balanced.read_selection()
        meta = balanced.read_meta()
        ingest = IngestDir(cfg.ingest_dir or _recorded_ingest(meta) or workdir.ingest.path).require()
        balanced.check_ingest(ingest)
        out = Path(cfg.out or workdir.path / cfg.format)
        check_output_path(out)  # before minutes of work, not after
        classes = ingest.read_classes()
        rows = _joined_rows(selection, ingest, classes, str(balanced.selection_path))

        fcfg = resolve_feature_config(cfg.audio_preset)
        preset = preset_name_of(fcfg)
        features = fcfg.to_dict()
        try:
            cached = ingest_features_config(ingest.path)
        except MMCurateError:  # features made with settings no one can name are never used
            cached = None
        use_cache = cached is not None and cached == fcfg
        _check_audio(ingest, rows, fcfg, preset or cfg.audio_preset, use_cache, cached)

        settings = {"format": FORMAT_VERSION, "features": features, "max_frames": cfg.max_frames}
        base = config_hash([settings, ingest.identity_hash()], length=32)
        chunks = make_units(rows, cfg.chunk_size, lambda k: f"unit-{k:05d}")
        unit_identity = {
            u.index: config_hash(
                [base, [(r["sample_id"], r["sha256"], r["shard"], r["shard_row"]) for r in u.items]], length=32
            )
            for u in chunks
        }
        units = [
            WorkUnit(u.key, u.index, tuple(_job(ingest, r, features, use_cache, cfg.max_frames) for r in u.items))
            for u in chunks
        ]
        provenance = provenance_block(
            toolkit_version=__version__,
            preset=preset,
            features=features,
            max_frames=cfg.max_frames,
            balance_meta=meta,
        )
        annotations_text = dumps_annotations(build_annotations(classes, rows, provenance))
        return cls(
            cfg,
            out,
            meta,
            classes,
            rows,
            preset,
            features,
            provenance,
            annotations_text,
            units,
            unit_identity,
            config_hash([base, unit_identity, annotations_text], length=32),
        )


def _install_export(plan: ExportPlan, staging: Path) -> list[dict[str, Any]]:
    """Every unit is done: drop what an earlier selection left, write the annotation file, the card and the
    export's marker, then put the staging folder in place of the output. Returns the clips' stats."""
    clip_stats = []
    for u in plan.units:
        clip_stats.extend(unit_marker(staging, u.index).read_payload().get("clips", []))
    _remove_unlisted(staging, {f for r in plan.rows for f in clip_files(r["sample_id"])})
    for marker in (staging / STATE_DIR / "units").glob("unit-*.json"):  # units of a larger, earlier selection
        if int(marker.stem.split("-")[1]) >= len(plan.units):
            marker.unlink()
    meta = plan.meta
    card = render_card(
        name=(meta.get("pretty_name") or (meta.get("config") or {}).get("pretty_name") or "mmcurate balanced dataset"),
        classes=plan.classes,
        split_counts=plan.split_counts,
        clip_stats=clip_stats,
        preset=plan.preset,
        features=plan.features,
        max_frames=plan.cfg.max_frames,
        provenance=plan.provenance,
    )
    atomic_write_text(staging / ANNOTATIONS, plan.annotations_text)
    atomic_write_text(staging / CARD, card)
    export_marker(staging).record(
        plan.identity,
        [staging / ANNOTATIONS, staging / CARD],
        {
            "format": plan.cfg.format,
            "clips": len(plan.rows),
            "splits": plan.split_counts,
            "audio_preset": plan.preset,
            "units": {str(u.index): plan.unit_identity[u.index] for u in plan.units},
        },
    )
    (staging / OWNER_FILE).unlink(missing_ok=True)  # the staging owner file: the installed export is not staging
    install_dir(staging, plan.out)
    return clip_stats


def _recorded_ingest(meta: dict[str, Any]) -> Path | None:
    """The ingest folder balance.json names, when it still exists."""
    recorded = meta.get("ingest_dir")
    return Path(recorded) if recorded and Path(recorded).is_dir() else None


def _joined_rows(selection: pa.Table, ingest: IngestDir, classes: list[str], name: str) -> list[dict[str, Any]]:
    """Selection rows with their manifest fields (sha256, shard location, duration, audio flags), by sample id."""
    from mmcurate.export.inputs import join_manifest

    joined = join_manifest(selection, ingest, classes, name)
    extra = ingest.read_manifest(["sample_id", "duration", "has_audio", "num_audio_samples"])
    joined = joined.join(extra, "sample_id", join_type="left outer").sort_by("sample_id")
    rows = joined.to_pylist()
    for r in rows:
        check_clip_id(r["sample_id"])
        if r["split"] not in SPLITS:
            raise MMCurateError(f"{name}: split {r['split']!r} of {r['sample_id']!r} is not train, val or test")
    return rows


def _check_audio(
    ingest: IngestDir, rows: list[dict[str, Any]], fcfg: Any, preset: str, use_cache: bool, cached: Any
) -> None:
    """Refuse, before writing anything, what cannot be computed: a preset other than the cached one
    for clips stored without a waveform, or a preset for another sample rate."""
    features_only = [r["sample_id"] for r in rows if r.get("has_audio") and not r.get("num_audio_samples")]
    if features_only and not use_cache:
        from mmcurate.features import preset_name_of

        have = (preset_name_of(cached) or "custom settings") if cached is not None else "none"
        raise MMCurateError(
            f"{ingest.path}: {len(features_only)} selected clips have no waveform, only cached audio features "
            f"({have}), so --audio-preset {preset} cannot be computed; export with --audio-preset {have}"
            if cached is not None
            else f"{ingest.path}: {len(features_only)} selected clips have neither a waveform nor cached features"
        )
    if use_cache:
        return
    by_shard: dict[str, list[int]] = {}
    for r in rows:
        if r.get("num_audio_samples"):
            by_shard.setdefault(r["shard"], []).append(int(r["shard_row"]))
    rates = set()
    for name, positions in sorted(by_shard.items()):
        column = ingest.open_shard(name).column("audio_sample_rate")
        rates |= {int(column[i].as_py()) for i in positions if i < len(column)}
    wrong = sorted(rates - {fcfg.sample_rate})
    if wrong:
        raise MMCurateError(
            f"--audio-preset {preset} needs {fcfg.sample_rate} Hz audio but {ingest.path} stored it at {wrong[0]} Hz; "
            f"ingest again with --sample-rate {fcfg.sample_rate}, or pick a preset made for {wrong[0]} Hz"
        )


def _job(ingest: IngestDir, r: dict[str, Any], features: dict[str, Any], use_cache: bool, max_frames: int) -> ClipJob:
    return ClipJob(
        ingest_dir=str(ingest.path),
        sample_id=r["sample_id"],
        shard=r["shard"],
        row=int(r["shard_row"]),
        duration=r.get("duration"),
        features=canonical_json(features),
        use_cache=use_cache,
        max_frames=max_frames,
    )


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _write_unit(root: Path, results: list[EncodedClip]) -> Written:
    """Write one unit's files atomically (the clips' frame and audio stats are its marker's payload)."""
    files = []
    for clip in results:
        hdf5, pkl = clip_files(clip.sample_id)
        for rel, data in ((hdf5, clip.hdf5), (pkl, clip.pkl)):
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, data)
            files.append(path)
    return Written(files, {"clips": [{"sample_id": c.sample_id, **c.stats()} for c in results]})


def _remove_unlisted(root: Path, listed: set[str]) -> None:
    """Drop clip files a previous, different selection left in the staging folder."""
    for folder in (VISUAL_DIR, AUDIO_DIR):
        base = root / folder
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*"), reverse=True):
            rel = path.relative_to(root).as_posix()
            if path.is_file() and rel not in listed:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()


def _check_out(out: Path) -> None:
    """Never replace a folder mmcurate did not write."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not export_marker(out).path.is_file())):
        raise MMCurateError(f"{out} exists and is not an mmcurate export; choose another --out or remove it")


def _staging_dir(out: Path) -> Path:
    """The staging folder beside ``out`` (``.<name>.partial``), where a killed export is resumed. It carries an
    owner file from the moment it is made: a folder of that name without one is a user's, and is refused
    rather than filled, pruned and renamed."""
    staging = out.with_name(f".{out.name}.partial")
    if staging.is_symlink() or (staging.exists() and not staging.is_dir()):
        raise MMCurateError(f"{staging}: exists and is not a staging folder mmcurate made; move it away")
    if staging.is_dir() and owner_kind(staging) != STAGING_KIND:
        if any(staging.iterdir()) and not _has_export_state(staging):
            raise MMCurateError(
                f"{staging}: a folder with the name of the export's staging folder, not made by mmcurate "
                "export (no owner file); move it away, or choose another --out"
            )
    make_output_dir(staging, shown=out)
    atomic_write_json(staging / OWNER_FILE, {"kind": STAGING_KIND})
    return staging


def _has_export_state(staging: Path) -> bool:
    """Whether a staging folder without an owner file holds an export's markers: one made before owner files
    were written, or one whose owner file was dropped just before it was installed (a kill in between)."""
    return (staging / STATE_DIR / "units").is_dir() or (staging / STATE_DIR / "export.json").is_file()


def print_summary(result: ExportFormatResult) -> None:
    if result.already_complete:
        return
    if not result.finished:
        summary_table(
            "export (partial: array part)",
            ["units written", "already done"],
            [[result.units_written, result.units_done_before]],
        )
        return
    s = result.stats
    rows = [
        ["clips", result.clips],
        *[[f"  {split}", result.split_counts.get(split, 0)] for split in SPLITS],
        ["units written now / reused", f"{result.units_written} / {result.units_done_before}"],
        ["frames per clip (clips)", ", ".join(f"{k}: {n}" for k, n in s.get("frames_per_clip", {}).items())],
        ["clips the loader reads frame 1 of only", s.get("loader_reads_index_1_only")],
        ["spectrograms from", ", ".join(f"{k} {v}" for k, v in sorted(s.get("audio_from", {}).items()))],
        ["wall time (s)", round(result.elapsed, 2)],
    ]
    summary_table(f"export ({result.format}) -> {result.out_dir}", ["", "value"], rows)


def _is_complete(workdir: Workdir, cfg: ExportConfig) -> bool:
    return is_complete(Path(cfg.out or workdir.path / cfg.format))


STAGE: Stage[ExportConfig, ExportFormatResult] = Stage(
    name="export",
    config=ExportConfig,
    reads=("balanced/selection.parquet", "balanced/balance.json", "ingest/manifest.parquet", "ingest/shards/*.arrow"),
    writes=("<format>/ (balancemm: annotations.json, visual/*.hdf5, audio/*.pkl, README.md, .mmcurate/)",),
    run=run_export,
    summarize=print_summary,
    is_complete=_is_complete,
    # a recipe's ``export`` section is the Hugging Face dataset's (balance writes it); this stage's is ``formats``
    sections=("formats",),
    optional=True,
)

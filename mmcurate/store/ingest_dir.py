"""``IngestDir``: the ingest folder, the one place that knows its files, reads and writes them.

Layout (``WORKDIR/ingest`` by default; tables in :mod:`mmcurate.store.schemas`)::

    manifest.parquet            one row per ingested sample (MANIFEST_SCHEMA)
    shards/shard-NNNNN.arrow    decoded media, Arrow IPC files (SHARD_SCHEMA)
    chunks/shard-NNNNN.json     completion marker of each shard (mmcurate.store.completion)
    failures.jsonl              one JSON object per input that failed (FAILURE_FIELDS)
    classes.json                the class list, in ClassLabel order
    config.json, stats.json     resolved config (with the identity hash) and run statistics
    scores.parquet, scores.json mmcurate score (SCORES_SCHEMA) and its provenance
    score_runs/<scorer>/        the scorer's finished training jobs (resume)
    scorers/<scorer>/           the fold ensemble that scores new clips (mmcurate.score.scorers)
    report/                     mmcurate report
    .mmcurate-output.json       owner file: this folder is an ingest output (mmcurate.store.ownership)
    .mmcurate.lock              the lock a running ingest holds (mmcurate.store.lock)

Every stage that reads an ingest folder goes through this class: the manifest, the class list,
the shards (one memory-mapped opener), the scores and their freshness. Errors name the file and
say what to rerun.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mmcurate.common.atomic import atomic_path, atomic_write_json, atomic_write_text, clean_stale_temporaries
from mmcurate.common.errors import MMCurateError, StageNotReadyError, one_line
from mmcurate.common.hashing import config_hash
from mmcurate.store.completion import UnitMarker, file_entry, files_match
from mmcurate.store.io import consecutive_runs, open_ipc_file, read_json, read_parquet, require_columns
from mmcurate.store.lock import FileLock, folder_lock
from mmcurate.store.ownership import check_output_path, claim_folder
from mmcurate.store.schemas import MANIFEST_SCHEMA, SCORES_SCHEMA, SHARD_SCHEMA

FIX_INGEST = "rerun `mmcurate ingest`"
FIX_SCORE = "rerun `mmcurate score`"

#: schema metadata: the run a manifest belongs to (IngestDir.generation), and the unit a shard was written as
GENERATION_KEY = b"mmcurate.generation"
UNIT_KEY = b"mmcurate.unit"

#: Shard columns the export copies (frames, audio and its rate, optional features).
MEDIA_COLUMNS = ("frames", "audio", "audio_sample_rate", "audio_features")


def shard_name(index: int) -> str:
    """``shard-00003.arrow``: the file name of shard ``index``."""
    return f"shard-{index:05d}.arrow"


#: the names ingest gives shards and their markers (nothing else in shards/ or chunks/ is ours)
SHARD_FILE = re.compile(r"^shard-(\d{5,})\.arrow$")
MARKER_FILE = re.compile(r"^shard-(\d{5,})\.json$")


def manifest_table(rows: list[dict[str, Any]], extra: list[str] | None = None) -> pa.Table:
    """manifest.parquet: MANIFEST_SCHEMA columns, then any carried input-manifest columns (strings)."""
    if extra is None:
        extra = sorted({k for r in rows for k in r} - set(MANIFEST_SCHEMA.names))
    schema = pa.schema(list(MANIFEST_SCHEMA) + [pa.field(k, pa.string()) for k in extra])
    return pa.Table.from_pylist([{**{k: None for k in extra}, **r} for r in rows], schema=schema)


def _nested_float16(arrays: Sequence[np.ndarray | None]) -> pa.Array:
    """``list<list<float16>>`` column from 2-D float16 arrays (bins x frames), nulls allowed."""
    inner_offsets = [0]
    outer_offsets = [0]
    values: list[np.ndarray] = []
    mask = []
    for arr in arrays:
        if arr is None:
            outer_offsets.append(outer_offsets[-1])
            mask.append(True)
            continue
        arr = np.asarray(arr, dtype=np.float16)
        for row in arr:
            values.append(row)
            inner_offsets.append(inner_offsets[-1] + row.size)
        outer_offsets.append(outer_offsets[-1] + arr.shape[0])
        mask.append(False)
    flat = pa.array(np.concatenate(values) if values else np.zeros(0, np.float16), type=pa.float16())
    inner = pa.ListArray.from_arrays(pa.array(inner_offsets, pa.int32()), flat)
    outer = pa.ListArray.from_arrays(
        pa.array(outer_offsets, pa.int32()), inner, mask=pa.array(mask, pa.bool_()) if any(mask) else None
    )
    return outer


def shard_table(media: Sequence[dict[str, Any]]) -> pa.Table:
    """The shard table of decoded media dicts (one per sample, keys as SHARD_SCHEMA's columns)."""
    cols = {
        "sample_id": pa.array([m["sample_id"] for m in media], pa.string()),
        "label": pa.array([m["label"] for m in media], pa.string()),
        "frames": pa.array([m["frames"] for m in media], pa.list_(pa.binary())),
        "frame_times": pa.array([m["frame_times"] for m in media], pa.list_(pa.float64())),
        "audio": pa.array([m["audio"] for m in media], pa.binary()),
        "audio_sample_rate": pa.array([m["audio_sample_rate"] for m in media], pa.int32()),
        "audio_num_samples": pa.array([m["audio_num_samples"] for m in media], pa.int64()),
        "audio_features": _nested_float16([m.get("audio_features") for m in media]),
    }
    return pa.Table.from_arrays([cols[f.name] for f in SHARD_SCHEMA], schema=SHARD_SCHEMA)


@dataclass(frozen=True)
class IngestDir:
    """An ingest output folder (it need not exist yet: ingest creates it)."""

    path: Path

    MANIFEST = "manifest.parquet"
    FAILURES = "failures.jsonl"
    CLASSES = "classes.json"
    CONFIG = "config.json"
    STATS = "stats.json"
    SHARDS_DIR = "shards"
    CHUNKS_DIR = "chunks"
    SCORES = "scores.parquet"
    SCORES_META = "scores.json"
    SCORE_RUNS = "score_runs"
    SCORERS = "scorers"
    REPORT_DIR = "report"
    #: scores.json's record of the scores.parquet it describes (size and sha256)
    SCORES_ENTRY = "scores_file"
    #: every name ingest writes (what ``--overwrite`` replaces; scores belong to the old data)
    OWN_FILES = (MANIFEST, FAILURES, CLASSES, STATS, CONFIG, SCORES, SCORES_META)
    OWN_DIRS = (SHARDS_DIR, CHUNKS_DIR)

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    # -- where things are --------------------------------------------------------------------------
    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def manifest_path(self) -> Path:
        return self.path / self.MANIFEST

    @property
    def shards_dir(self) -> Path:
        return self.path / self.SHARDS_DIR

    @property
    def chunks_dir(self) -> Path:
        return self.path / self.CHUNKS_DIR

    @property
    def scores_path(self) -> Path:
        return self.path / self.SCORES

    @property
    def report_dir(self) -> Path:
        return self.path / self.REPORT_DIR

    def shard_path(self, index: int) -> Path:
        return self.shards_dir / shard_name(index)

    def chunk_marker(self, index: int) -> UnitMarker:
        """Completion marker of shard ``index`` (its output paths are relative to the ingest folder)."""
        return UnitMarker(self.chunks_dir / f"shard-{index:05d}.json", self.path)

    def score_runs(self, scorer_id: str) -> Path:
        return self.path / self.SCORE_RUNS / scorer_id

    def scorers(self, scorer_id: str) -> Path:
        """Folder of the fold ensemble ``mmcurate score`` saves (``--candidates`` scores new clips with them)."""
        return self.path / self.SCORERS / scorer_id

    # -- state ------------------------------------------------------------------------------------
    def is_complete(self) -> bool:
        """Whether a finished ingest is here (the manifest is written last)."""
        return self.manifest_path.is_file()

    def require(self) -> IngestDir:
        """This folder if it holds a finished ingest of one run (:meth:`check_generation`), else an error
        saying how to make one."""
        if not self.path.is_dir():
            raise StageNotReadyError(
                f"{self.path}: ingest directory not found; "
                "run `mmcurate ingest RAW_DIR` first or pass the right --workdir"
            )
        if not self.is_complete():
            raise StageNotReadyError(
                f"{self.path}: no finished ingest here (manifest.parquet missing); "
                "run `mmcurate ingest RAW_DIR` first or point to an ingest folder"
            )
        self.check_generation()
        return self

    # -- one generation ------------------------------------------------------------------------------
    def generation(self) -> dict[str, Any]:
        """What manifest.parquet (written last) records of the run that wrote it: the settings' identity
        hash, the class list's hash and each shard's unit identity. Empty for folders from before it was
        recorded (and for manifests written by other tools)."""
        try:
            meta = pq.read_schema(self.manifest_path).metadata or {}
            doc = json.loads(meta.get(GENERATION_KEY, b"{}"))
        except (OSError, ValueError, pa.ArrowException):
            return {}  # reading the manifest itself says what is wrong with it
        return doc if isinstance(doc, dict) else {}

    def check_generation(self) -> None:
        """A one-line error when config.json or classes.json are not of the run that wrote the manifest: an
        ingest killed part way leaves its new settings (or class list) beside the previous manifest."""
        gen = self.generation()
        if not gen:
            return
        if "identity_hash" in gen and self.identity_hash() != gen["identity_hash"]:
            raise MMCurateError(
                f"{self.path / self.CONFIG}: its settings are not those manifest.parquet was made with (an ingest run "
                f"was interrupted, or the file was replaced); {FIX_INGEST} to finish it"
            )
        if "classes" in gen and config_hash(self.read_classes()) != gen["classes"]:
            raise MMCurateError(
                f"{self.path / self.CLASSES}: not the class list manifest.parquet was made with (an ingest run was "
                f"interrupted, or the file was replaced); {FIX_INGEST} to finish it"
            )

    # -- ownership, locking, cleaning ----------------------------------------------------------------
    def lock(self) -> FileLock:
        """This folder's lock (not yet taken): exclusive for a run, shared for an array-job part."""
        return folder_lock(self.path, f"ingest folder {self.path}")

    def claim(self, overwrite: bool, write: bool = True) -> None:
        """Make this folder an ingest output, refusing a non-empty folder that is not one unless
        ``overwrite``, and a ``shards/`` or ``chunks/`` that is a link (writes would land elsewhere).
        ``write=False`` only checks."""
        check_output_path(self.path)
        for name in self.OWN_DIRS:
            sub = self.path / name
            if sub.is_symlink() or (sub.exists() and not sub.is_dir()):
                raise MMCurateError(
                    f"{sub}: is a symbolic link or a file, not a folder ingest made; remove it or choose another --out"
                )
        claim_folder(self.path, "ingest", overwrite, legacy=lambda: self.identity_hash() is not None, write=write)

    def clear(self) -> None:
        """Remove what ingest wrote here (``--overwrite`` with other settings), and nothing else:
        the files named :data:`OWN_FILES`, the shards a completion marker vouches for, and the
        markers; a file that merely has a shard's name stays."""
        for name in self.OWN_FILES:
            (self.path / name).unlink(missing_ok=True)
        for k in self.shard_indices():
            if self.chunk_marker(k).wrote(self.shard_path(k)):
                self.shard_path(k).unlink(missing_ok=True)
        if self.chunks_dir.is_dir():
            for p in self.chunks_dir.iterdir():
                if MARKER_FILE.match(p.name) and UnitMarker(p, self.path).exists():
                    p.unlink(missing_ok=True)
        self.clean_temporaries()
        for folder in (self.shards_dir, self.chunks_dir):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty (lock files of array parts may remain)

    def clean_temporaries(self) -> int:
        """Remove the temporary files a killed ingest left, of the names ingest writes only. The
        caller holds this folder's lock exclusively: that proves no live run is writing them."""
        return (
            clean_stale_temporaries(self.path, lambda d: d in self.OWN_FILES)
            + clean_stale_temporaries(self.shards_dir, lambda d: SHARD_FILE.match(d) is not None)
            + clean_stale_temporaries(self.chunks_dir, lambda d: MARKER_FILE.match(d) is not None)
        )

    def shard_done(self, index: int, identity: str) -> Any:
        """The completion payload of shard ``index`` when it is done for ``identity`` and its file is
        intact (:meth:`shard_intact`), else None."""
        payload = self.chunk_marker(index).read(identity)
        return payload if payload is not None and self.shard_intact(index, payload) else None

    def shard_intact(self, index: int, payload: Any) -> bool:
        """Besides its marker's size check, shard ``index`` must open as an Arrow IPC file holding as many
        rows as the marker's ``payload`` lists: damage that keeps the size (a clobbered footer) is redone on
        resume instead of trusted until score trips over it."""
        try:
            with pa.memory_map(str(self.shard_path(index)), "r") as source:
                reader = pa.ipc.open_file(source)
                rows = sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))
        except (OSError, pa.ArrowException):
            return False
        return rows == len(payload.get("rows", []))

    def remove_stale_shards(self, n_shards: int) -> list[str]:
        """Remove shards (and markers) with an index of ``n_shards`` or more, left by inputs that are
        gone, but only those whose marker vouches that ingest wrote them; return what was kept."""
        kept = []
        for k in self.shard_indices():
            if k < n_shards:
                continue
            marker = self.chunk_marker(k)
            if marker.wrote(self.shard_path(k)):
                marker.clear()
                self.shard_path(k).unlink(missing_ok=True)
            else:
                kept.append(shard_name(k))
        return kept

    # -- manifest, classes, config, failures, stats --------------------------------------------------
    def read_manifest(self, columns: Sequence[str] | None = None) -> pa.Table:
        """The manifest of a finished ingest (only ``columns`` when given)."""
        self.require()
        return read_parquet(self.manifest_path, what="the ingest manifest", fix=FIX_INGEST, columns=columns)

    def write_manifest(self, rows: list[dict[str, Any]]) -> pa.Table:
        """Write manifest.parquet (rows sorted by sample_id) atomically; it marks the ingest finished."""
        table = manifest_table(sorted(rows, key=lambda r: r["sample_id"]))
        check_schema(table, MANIFEST_SCHEMA, "manifest.parquet")
        with atomic_path(self.manifest_path) as tmp:
            pq.write_table(table, tmp, compression="zstd")
        return table

    def write_manifest_chunks(
        self, chunks: Callable[[], Iterable[list[dict[str, Any]]]], generation: dict[str, Any] | None = None
    ) -> pa.Table:
        """Write manifest.parquet from rows given chunk by chunk (each sorted, chunks in order); returns it.

        ``chunks()`` is called twice (the carried columns first, then the rows), so only one chunk of
        Python rows is alive at a time: every row as a dict at once costs about 2.5 KB, 75 MB of peak
        memory at 30k inputs, where the Arrow table costs a few hundred bytes a row.
        """
        columns = {key for rows in chunks() for r in rows for key in r}
        extra = sorted(columns - set(MANIFEST_SCHEMA.names))
        parts = [manifest_table(rows, extra) for rows in chunks()]
        table = pa.concat_tables(parts) if parts else manifest_table([], extra)
        del parts
        ids = table.column("sample_id").to_pylist()
        if any(a >= b for a, b in zip(ids, ids[1:])):  # shards hold inputs in sample-id order: a safeguard
            table = table.sort_by("sample_id")
        check_schema(table, MANIFEST_SCHEMA, "manifest.parquet")
        if generation is not None:  # what readers check the other files against (:meth:`check_generation`)
            table = table.replace_schema_metadata(
                {**(table.schema.metadata or {}), GENERATION_KEY: json.dumps(generation, sort_keys=True).encode()}
            )
        with atomic_path(self.manifest_path) as tmp:
            pq.write_table(table, tmp, compression="zstd")
        return table

    def read_classes(self) -> list[str]:
        """The class list (ClassLabel order): a non-empty JSON list of distinct, non-empty names."""
        path = self.path / self.CLASSES
        classes = read_json(path, what="the class list", fix=FIX_INGEST)
        if not (isinstance(classes, list) and classes and all(isinstance(c, str) and c for c in classes)):
            raise MMCurateError(f"{path}: must be a non-empty JSON list of class-name strings; {FIX_INGEST}")
        if len(set(classes)) != len(classes):
            raise MMCurateError(f"{path}: class names must be unique; {FIX_INGEST}")
        return list(classes)

    def write_classes(self, classes: list[str]) -> None:
        atomic_write_json(self.path / self.CLASSES, classes)

    def read_config(self) -> dict[str, Any]:
        """config.json (the resolved ingest config); empty when absent."""
        doc = read_json(self.path / self.CONFIG, what="the ingest config", fix=FIX_INGEST, required=False)
        if doc is None:
            return {}
        if not isinstance(doc, dict):
            raise MMCurateError(f"{self.path / self.CONFIG}: must hold a JSON object (the resolved ingest config)")
        return doc

    def write_config(self, doc: dict[str, Any]) -> None:
        atomic_write_json(self.path / self.CONFIG, doc)

    def identity_hash(self) -> str | None:
        """The hash of the settings the ingest ran with (None for a foreign or damaged config)."""
        try:
            return self.read_config().get("identity_hash")
        except MMCurateError:
            return None

    def features_spec(self) -> Any:
        """The cached ``audio_features``' config as config.json records it (a resolved dict, or a
        preset name), or None when the ingest cached no features. Resolving it is the data layer's job."""
        cfg = self.read_config()
        for keys in _FEATURES_PATHS:
            node: Any = cfg
            for key in keys:
                node = node.get(key) if isinstance(node, dict) else None
            if node is not None:
                return node
        return None

    def write_failures(self, failures: list[dict[str, Any]]) -> None:
        atomic_write_text(self.path / self.FAILURES, "".join(json.dumps(f, sort_keys=True) + "\n" for f in failures))

    def read_failures(self) -> list[dict[str, Any]]:
        path = self.path / self.FAILURES
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def read_stats(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.path / self.STATS).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return {}

    def write_stats(self, stats: dict[str, Any]) -> None:
        atomic_write_json(self.path / self.STATS, stats)

    # -- shards ------------------------------------------------------------------------------------
    def write_shard(self, index: int, table: pa.Table, unit: str | None = None) -> Path:
        """Write shard ``index`` atomically (Arrow IPC, no compression: readers memory-map it). ``unit`` (the
        unit's identity) goes into its metadata: the manifest records it, and readers compare the two."""
        check_schema(table, SHARD_SCHEMA, shard_name(index))
        if unit is not None:
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), UNIT_KEY: unit.encode()})
        path = self.shard_path(index)
        with atomic_path(path) as tmp:
            with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
                writer.write_table(table)
        return path

    def open_shard(self, name: str) -> pa.Table:
        """A shard by file name, memory-mapped, with its required columns checked."""
        table = open_ipc_file(self.shards_dir / name, fix=FIX_INGEST)
        wanted = (self.generation().get("shards") or {}).get(name)
        written = (table.schema.metadata or {}).get(UNIT_KEY)
        if wanted is not None and written is not None and written.decode(errors="replace") != wanted:
            raise MMCurateError(
                f"{self.shards_dir / name}: written by another ingest run than manifest.parquet (an ingest run was "
                f"interrupted part way); {FIX_INGEST} to finish it"
            )
        require_columns(
            table.column_names,
            ("sample_id", "frames", "audio", "audio_sample_rate"),
            self.shards_dir / name,
            FIX_INGEST,
        )
        return table

    def shard_indices(self) -> list[int]:
        """Indices of the ``shard-NNNNN.arrow`` files present."""
        if not self.shards_dir.is_dir():
            return []
        out = []
        for p in self.shards_dir.iterdir():
            m = SHARD_FILE.match(p.name)
            if m is not None:
                out.append(int(m.group(1)))
        return sorted(out)

    def read_media(self, sample_ids: Sequence[str] | None = None) -> pa.Table:
        """Shard rows as one memory-mapped table: every sample in manifest order, or exactly
        ``sample_ids`` in the given order (an id twice gives the row twice).

        Rows are located through the manifest's ``shard``/``shard_row`` columns; runs of
        consecutive rows of one shard become zero-copy slices of the mapped file, so reading all
        of a large ingest costs address space, not RAM.
        """
        manifest = self.read_manifest(["sample_id", "shard", "shard_row"])
        ids = manifest.column("sample_id").to_pylist()
        shard_names = manifest.column("shard").to_pylist()
        shard_rows = manifest.column("shard_row").to_numpy()
        if sample_ids is None:
            wanted = np.arange(len(ids))
        else:
            position = {sid: i for i, sid in enumerate(ids)}
            missing = [sid for sid in sample_ids if sid not in position]
            if missing:
                more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
                raise MMCurateError(
                    f"{self.manifest_path}: {len(missing)} requested sample(s) are not in the manifest "
                    f"({', '.join(map(repr, missing[:3]))}{more}); were they ingested into this folder?"
                )
            wanted = np.asarray([position[sid] for sid in sample_ids], dtype=np.int64)
        names = sorted(set(shard_names))
        code_of = {name: k for k, name in enumerate(names)}
        codes = np.asarray([code_of[name] for name in shard_names], dtype=np.int64)[wanted]
        rows = shard_rows[wanted].astype(np.int64)
        opened: dict[int, pa.Table] = {}
        for code in np.unique(codes).tolist():
            opened[code] = self.open_shard(names[code])
            top = int(rows[codes == code].max())
            if top >= opened[code].num_rows:
                raise MMCurateError(
                    f"{self.shards_dir / names[code]}: the manifest points at row {top} but the shard has "
                    f"{opened[code].num_rows} rows; the ingest output is inconsistent, {FIX_INGEST}"
                )
        pieces = [opened[int(codes[a])].slice(int(rows[a]), b - a) for a, b in consecutive_runs(rows, codes)]
        if not pieces:
            result = SHARD_SCHEMA.empty_table()
        else:
            try:
                result = pa.concat_tables(pieces, promote_options="permissive") if len(pieces) > 1 else pieces[0]
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise MMCurateError(f"{self.shards_dir}: shards have incompatible schemas ({one_line(exc)})") from None
        got = result.column("sample_id").to_pylist()
        expected = [ids[i] for i in wanted]
        if got != expected:
            bad = next(i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b)
            raise MMCurateError(
                f"{self.path}: manifest says {expected[bad]!r} is at {shard_names[wanted[bad]]} row "
                f"{int(shard_rows[wanted[bad]])}, but that row holds {got[bad]!r}; {FIX_INGEST}"
            )
        return result

    def media_for(self, rows: pa.Table, with_features: bool) -> pa.Table:
        """Media columns (:data:`MEDIA_COLUMNS`) for ``rows`` (which carry sample_id, shard and
        shard_row), in the same row order; only the rows asked for are copied out of the shards."""
        shards = rows["shard"].to_pylist()
        positions = rows["shard_row"].to_pylist()
        ids = rows["sample_id"].to_pylist()
        wanted_cols = [c for c in MEDIA_COLUMNS if c != "audio_features" or with_features]
        pieces: list[pa.Table] = []
        order: list[int] = []
        by_shard: dict[str, list[int]] = {}
        for i, name in enumerate(shards):
            by_shard.setdefault(name, []).append(i)
        for name in sorted(by_shard):
            idx = by_shard[name]
            shard = self.open_shard(name)
            take = [positions[i] for i in idx]
            if max(take) >= shard.num_rows or min(take) < 0:
                raise MMCurateError(
                    f"{self.shards_dir / name}: manifest points to row {max(take)} but the shard has "
                    f"{shard.num_rows} rows; the ingest directory is inconsistent, {FIX_INGEST}"
                )
            cols = [c for c in wanted_cols if c in shard.column_names]
            got = shard.select(["sample_id", *cols]).take(pa.array(take, pa.int64()))
            for i, gid in zip(idx, got["sample_id"].to_pylist(), strict=True):
                if gid != ids[i]:
                    raise MMCurateError(
                        f"{self.shards_dir / name}: row {positions[i]} holds '{gid}' but the manifest says "
                        f"'{ids[i]}'; the ingest directory is inconsistent, {FIX_INGEST}"
                    )
            if with_features and "audio_features" not in got.column_names:
                got = got.append_column("audio_features", pa.nulls(got.num_rows, pa.list_(pa.list_(pa.float16()))))
            pieces.append(got.select(list(wanted_cols)))
            order.extend(idx)
        combined = pa.concat_tables(pieces).combine_chunks()
        inverse = [0] * len(order)
        for pos, i in enumerate(order):
            inverse[i] = pos
        return combined.take(pa.array(inverse, pa.int64()))

    def any_features(self, shard_names: Sequence[str]) -> bool:
        """Whether any of these shards carries non-null cached audio features."""
        for name in sorted(set(shard_names)):
            shard = self.open_shard(name)
            if "audio_features" in shard.column_names and shard["audio_features"].null_count < shard.num_rows:
                return True
        return False

    # -- scores -------------------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """Identity of the ingested data that scores belong to: ingest settings + every sample's id,
        source hash and label. Scores are stale when it changes."""
        table = self.read_manifest(["sample_id", "sha256", "label"])
        return config_hash([self.identity_hash(), table.to_pydict()], length=16)

    def groups_fingerprint(self) -> str:
        """Identity of the manifest's groups: out-of-fold scores trained with groups kept in one fold
        (``--group-folds``) are stale when they change."""
        table = self.read_manifest(["sample_id", "group"])
        return config_hash(table.to_pydict(), length=16)

    def has_scores(self) -> bool:
        return self.scores_path.is_file() and (self.path / self.SCORES_META).is_file()

    def read_scores(self) -> pa.Table:
        """scores.parquet, checked to be the one scores.json describes (:meth:`scores_mismatch`)."""
        if not self.scores_path.is_file():
            raise StageNotReadyError(f"no scores in {self.path}; run `mmcurate score` first")
        problem = self.scores_mismatch()
        if problem is not None:
            raise MMCurateError(f"{self.scores_path}: {problem}; {FIX_SCORE}")
        return read_parquet(self.scores_path, what="the scores", fix=FIX_SCORE)

    def scores_mismatch(self) -> str | None:
        """Why scores.parquet and scores.json are not one scoring run's output, or None. scores.json is
        written last and records the table's size and sha256: a run killed between the two files leaves a
        new table beside the old provenance (another scorer, other calibration). Scores from before the
        record existed are not checked."""
        entry = self.read_scores_meta().get(self.SCORES_ENTRY)
        if not isinstance(entry, dict):
            return None
        if files_match(self.path, {self.SCORES: entry}, "sha256") is not None:
            return (
                f"not the table {self.SCORES_META} describes (a scoring run was interrupted between the two files, "
                "or the table was replaced)"
            )
        return None

    def read_scores_meta(self) -> dict[str, Any]:
        """scores.json (the scorer's provenance and metrics); empty when absent or unreadable."""
        try:
            doc = json.loads((self.path / self.SCORES_META).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    def write_scores(self, table: pa.Table, meta: dict[str, Any]) -> None:
        """scores.parquet then scores.json (the metadata names the data fingerprint it belongs to)."""
        check_schema(table, SCORES_SCHEMA, "scores.parquet")
        with atomic_path(self.scores_path) as tmp:
            pq.write_table(table, tmp, compression="zstd")
        atomic_write_json(self.path / self.SCORES_META, {**meta, self.SCORES_ENTRY: file_entry(self.scores_path)})

    def scores_state(self, config_hash_for: Callable[[bool], str] | None = None) -> str:
        """``"fresh"``, ``"missing"`` or ``"stale: <why>"`` for the scores here.

        ``config_hash_for(on_gpu)`` gives the scorer-config hash the caller wants; scores trained
        with another config are then stale. Imported scores stay fresh while the data is unchanged.
        """
        if not self.has_scores():
            return "missing"
        try:
            meta = json.loads((self.path / self.SCORES_META).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return "stale: scores.json is unreadable"
        if not isinstance(meta, dict) or meta.get("manifest_fingerprint") != self.fingerprint():
            return "stale: the ingested data changed since scoring"
        problem = self.scores_mismatch()
        if problem is not None:
            return f"stale: {self.SCORES} is {problem}"
        if (
            meta.get("source") == "oof"
            and "groups_fingerprint" in meta
            and (meta.get("config") or {}).get("group_folds", False) is not False  # on, or automatic (None)
            and meta["groups_fingerprint"] != self.groups_fingerprint()
        ):
            return "stale: the manifest's groups changed since scoring (folds follow the groups)"
        if config_hash_for is not None and meta.get("source") == "oof":
            on_gpu = str(meta.get("device", "cpu")).startswith("cuda")
            if meta.get("config_hash") != config_hash_for(on_gpu):
                return "stale: scored with different scorer settings"
        return "fresh"

    def scored_pool(self) -> tuple[pa.Table, dict[str, Any]]:
        """Manifest rows (sample_id, label, group) joined with their scores; every sample must be scored."""
        manifest = self.read_manifest(["sample_id", "label", "group"])
        scores = self.read_scores()
        require_columns(
            scores.column_names,
            ("sample_id", "p_audio", "p_visual", "discrepancy", "scorer_id"),
            self.scores_path,
            FIX_SCORE,
        )
        extra = [
            c for c in ("discrepancy_std", "both_weak") if c in scores.column_names
        ]  # per-sample uncertainty, when scored
        scores = scores.select(["sample_id", "p_audio", "p_visual", "discrepancy", "scorer_id", *extra])
        joined = manifest.join(scores, "sample_id", join_type="inner").sort_by("sample_id")
        if joined.num_rows != manifest.num_rows:
            raise MMCurateError(
                f"scores.parquet covers {joined.num_rows} of {manifest.num_rows} ingested samples; "
                "rerun `mmcurate score`"
            )
        for col in ("p_audio", "p_visual", "discrepancy"):
            values = joined.column(col).to_numpy(zero_copy_only=False).astype(float)
            bad = np.flatnonzero(~np.isfinite(values))
            if bad.size:
                first = joined.column("sample_id")[int(bad[0])].as_py()
                raise MMCurateError(
                    f"{self.scores_path}: {bad.size} sample(s) have no finite {col} (e.g. {first!r}); the scores are "
                    f"unusable, {FIX_SCORE} (with a lower --lr if training diverged)"
                )
        return joined, self.read_scores_meta()

    def scores_by_id(self) -> dict[str, float | None]:
        """sample_id -> discrepancy of the scores here (for sources that may be partly scored)."""
        problem = self.scores_mismatch()
        if problem is not None:
            raise MMCurateError(f"{self.scores_path}: {problem}; {FIX_SCORE}")
        scores = read_parquet(self.scores_path, what="the scores", fix=FIX_SCORE, columns=("sample_id", "discrepancy"))
        return dict(zip(scores.column("sample_id").to_pylist(), scores.column("discrepancy").to_pylist(), strict=True))


#: Where config.json may hold the cache's feature config, most specific first: a resolved config
#: dict (``features_config``) beats a preset name, which could be redefined later.
_FEATURES_PATHS = (
    ("features_config",),
    ("identity", "config", "features_config"),
    ("config", "features_config"),
    ("features",),
    ("identity", "config", "features"),
    ("config", "features"),
)


def check_schema(table: pa.Table, schema: pa.Schema, what: str) -> None:
    """A table about to be written starts with exactly ``schema``'s columns (names, order, types).

    A writer that drifted from the documented schema is a bug, not a user error: it must never
    reach the disk, where every later stage would trust it.
    """
    got = [(f.name, f.type) for f in table.schema][: len(schema)]
    want = [(f.name, f.type) for f in schema]
    if got != want:
        raise ValueError(f"{what}: columns {table.schema.names} do not follow its schema {schema.names}")

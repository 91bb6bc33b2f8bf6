"""Find and read the dataset a re-evaluation runs on.

Three kinds of source, all normalised to the ingest shard layout before decoding:

* ``balanced``: a balanced export (``WORKDIR/balanced/``): Hub-layout Parquet shards
  ``data/{split}-XXXXX-of-YYYYY.parquet`` (read with pyarrow; class names from the ``datasets``
  metadata in the Parquet schema), or ``hf/`` (``datasets.load_from_disk``) when there are none.
* ``hub``: a Hugging Face Hub repo id ``ORG/NAME``, loaded with ``datasets.load_dataset``. Media
  columns are read in their stored form ({bytes, path}); nothing is decoded by ``datasets``
  (its Audio decoding would need torchcodec).
* ``ingest``: an ingest+score directory (``manifest.parquet``, ``shards/*.arrow``,
  ``scores.parquet``, ``classes.json``): the original, biased data. Bins are equal-width.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mmcurate.common.errors import MMCurateError, StageNotReadyError
from mmcurate.data import FEATURES_METADATA_KEY, read_shards
from mmcurate.reeval.data import ReevalData, assemble, resolve_splits
from mmcurate.reeval.settings import TensorSettings
from mmcurate.store import BalancedDir, IngestDir, Workdir
from mmcurate.store.bins import assign_bins, make_edges
from mmcurate.store.io import read_parquet, require_columns
from mmcurate.store.splits import normalize_splits

#: export columns (mmcurate.store.schemas.EXPORT_COLUMNS) a re-evaluation cannot do without
EXPORT_REQUIRED: tuple[str, ...] = ("sample_id", "label", "frames", "audio", "discrepancy", "bin")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_source(source: str | None, workdir: Workdir | None) -> tuple[str, str]:
    """(kind, location) of a SOURCE argument; None means the work directory's balanced dataset."""
    if source is None:
        default = (workdir or Workdir.resolve()).balanced.path
        if not default.is_dir():
            raise StageNotReadyError(
                f"no balanced dataset at {default}; run `mmcurate balance` first, or pass SOURCE "
                "(a balanced dataset directory, a Hub repo id ORG/NAME, or an ingest+score directory)"
            )
        source = str(default)
    path = Path(source).expanduser()
    if path.is_dir():
        kind = _dir_kind(path)
        if kind is not None:
            return kind, str(path)
        for sub, sub_kind in (("balanced", "balanced"), ("ingest", "ingest")):
            if (path / sub).is_dir() and _dir_kind(path / sub) == sub_kind:
                return sub_kind, str(path / sub)
        raise MMCurateError(
            f"{path}: neither a balanced dataset (data/*.parquet or hf/) nor an ingest+score directory "
            "(manifest.parquet); pass one of those, or a Hub repo id ORG/NAME"
        )
    if path.exists():
        raise MMCurateError(f"{path}: is a file; SOURCE must be a dataset directory or a Hub repo id ORG/NAME")
    if _REPO_ID.match(source):
        return "hub", source
    raise MMCurateError(f"{source}: no such directory, and not a Hub repo id of the form ORG/NAME")


def _dir_kind(path: Path) -> str | None:
    if BalancedDir(path).has_data():
        return "balanced"
    if IngestDir(path).is_complete():
        return "ingest"
    return None


def load_source(
    kind: str,
    location: str,
    settings: TensorSettings,
    bins: int = 10,
    cache_dir: str | None = None,
    scratch: Path | None = None,
) -> ReevalData:
    """Read and decode a source found by :func:`resolve_source`; ``scratch``: where the decoded tensors
    are memory-mapped from (None: held in RAM; see :func:`mmcurate.reeval.data.assemble`)."""
    if kind == "balanced":
        return load_balanced_dir(Path(location), settings, scratch=scratch)
    if kind == "hub":
        return load_hub_dataset(location, settings, cache_dir=cache_dir, scratch=scratch)
    if kind == "ingest":
        return load_ingest_dir(Path(location), settings, bins=bins, scratch=scratch)
    raise ValueError(f"unknown source kind {kind!r}")


# --------------------------------------------------------------------------- balanced export / Hub


def load_balanced_dir(path: Path, settings: TensorSettings, scratch: Path | None = None) -> ReevalData:
    """A balanced export: ``data/*.parquet`` (preferred) or ``hf/`` (save_to_disk)."""
    balanced = BalancedDir(path)
    if balanced.is_ours():  # a balanced output (not a bare dataset copy): only a finished export of one run
        balanced.verify_export(check_hashes=False)
    shards = balanced.hub_shards()
    if not shards:
        if (balanced.hf_dir / "dataset_dict.json").is_file():
            return _from_dataset_dict(
                _load_from_disk(balanced.hf_dir), settings, str(balanced.hf_dir), "balanced", scratch
            )
        raise MMCurateError(
            f"{path}: no data/*.parquet shards and no hf/ dataset; run `mmcurate balance` to export one"
        )
    tables: list[pa.Table] = []
    split_of_rows: list[str] = []
    names: list[str] | None = None
    fix = "is this a mmcurate balanced export? rerun `mmcurate balance`"
    for split, f in shards:
        table = read_parquet(f, what="an exported shard", fix=fix)
        require_columns(table.column_names, EXPORT_REQUIRED, f, fix)
        names = names or _class_names_from_metadata(table.schema)
        tables.append(table)
        split_of_rows += [split] * table.num_rows
    table = _concat(tables, str(path / "data"))
    table = _with_selection_groups(table, balanced)
    return _from_hf_table(
        table, split_of_rows, names, settings, str(path), "balanced", balanced.bin_edges(), scratch=scratch
    )


def load_hub_dataset(
    repo_id: str, settings: TensorSettings, cache_dir: str | None = None, scratch: Path | None = None
) -> ReevalData:
    """A dataset on the Hugging Face Hub (or anything ``datasets.load_dataset`` accepts)."""
    import datasets

    try:
        dd = datasets.load_dataset(repo_id, cache_dir=cache_dir)
    except Exception as exc:  # not found, offline, auth: all user-fixable, all one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise MMCurateError(
            f"could not load Hub dataset {repo_id!r} ({type(exc).__name__}: {first}); check the repo id, "
            "HF_TOKEN for private repos, HF_ENDPOINT and the network"
        ) from None
    return _from_dataset_dict(dd, settings, repo_id, "hub", scratch)


def _load_from_disk(path: Path):  # noqa: ANN202 - a datasets.DatasetDict
    import datasets

    try:
        return datasets.load_from_disk(str(path))
    except Exception as exc:
        raise MMCurateError(f"{path}: not a readable datasets folder ({type(exc).__name__}: {exc})") from None


def _from_dataset_dict(  # noqa: ANN001 - dd: a datasets.DatasetDict
    dd, settings: TensorSettings, origin: str, kind: str, scratch: Path | None = None
) -> ReevalData:
    """A DatasetDict -> ReevalData, reading stored Arrow columns (no decoding by ``datasets``)."""
    import datasets

    if not isinstance(dd, datasets.DatasetDict):
        dd = datasets.DatasetDict({"train": dd})
    tables, split_of_rows = [], []
    names: list[str] | None = None
    for split_name in sorted(dd):
        ds = dd[split_name]
        label_feature = ds.features.get("label")
        if isinstance(label_feature, datasets.ClassLabel):
            names = names or list(label_feature.names)
        table = ds.with_format("arrow")[:]
        tables.append(table)
        split_of_rows += [split_name] * table.num_rows
    return _from_hf_table(_concat(tables, origin), split_of_rows, names, settings, origin, kind, scratch=scratch)


def _class_names_from_metadata(schema: pa.Schema) -> list[str] | None:
    """ClassLabel names from the ``huggingface`` metadata ``datasets`` writes into Parquet."""
    meta = (schema.metadata or {}).get(b"huggingface")
    if not meta:
        return None
    try:
        feature = json.loads(meta)["info"]["features"]["label"]
    except (KeyError, ValueError, TypeError):
        return None
    return list(feature["names"]) if feature.get("_type") == "ClassLabel" else None


def _concat(tables: list[pa.Table], origin: str) -> pa.Table:
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise MMCurateError(f"{origin}: shards have incompatible columns ({exc})") from None


def _with_selection_groups(table: pa.Table, balanced: BalancedDir) -> pa.Table:
    """The export rows with their ``group`` from selection.parquet (the export itself does not carry it)."""
    if "group" in table.column_names or not balanced.selection_path.is_file():
        return table
    selection = balanced.read_selection()
    group_of = dict(zip(selection.column("sample_id").to_pylist(), selection.column("group").to_pylist()))
    return table.append_column(
        "group", pa.array([group_of.get(s) for s in table.column("sample_id").to_pylist()], pa.string())
    )


def _from_hf_table(
    table: pa.Table,
    file_splits: list[str],
    names: list[str] | None,
    settings: TensorSettings,
    origin: str,
    kind: str,
    recorded_edges: list[float] | None = None,
    scratch: Path | None = None,
) -> ReevalData:
    """Export columns (schemas.EXPORT_COLUMNS) -> shard layout + discrepancy, bins and splits.

    Bins are the export's ``bin`` column (assigned by ``mmcurate balance``); their edges are the ones
    balance recorded (``recorded_edges``) or, for a dataset without that record, equal-width edges
    when they reproduce every bin, else unknown.
    """
    missing = [c for c in EXPORT_REQUIRED if c not in table.column_names]
    if missing:
        raise MMCurateError(f"{origin}: missing column(s) {', '.join(missing)}; is this a mmcurate balanced export?")
    raw_labels = table.column("label").to_pylist()
    if pa.types.is_integer(table.schema.field("label").type):
        classes = names or [str(i) for i in range(max(raw_labels) + 1)]
        if any(label is None or not 0 <= label < len(classes) for label in raw_labels):
            raise MMCurateError(f"{origin}: label indices outside the {len(classes)} class names")
        labels = [classes[i] for i in raw_labels]
    else:
        labels = [str(x) for x in raw_labels]
        classes = names or sorted(set(labels))
    if len(set(file_splits)) == 1 and "split" in table.column_names:
        file_splits = table.column("split").to_pylist()  # one file/split holding a split column
    splits = normalize_splits(file_splits, origin)
    splits, note = resolve_splits(splits, labels, origin, _groups(table))
    discrepancy = np.array(
        [np.nan if d is None else d for d in table.column("discrepancy").to_pylist()], dtype=np.float64
    )
    bins = np.array([-1 if b is None else b for b in table.column("bin").to_pylist()], dtype=np.int64)
    num_bins = int(bins.max()) + 1 if (bins >= 0).any() else 0
    edges = recorded_edges
    if edges is None and num_bins and _bins_are_equal_width(discrepancy, bins, num_bins):
        edges = [float(e) for e in make_edges(num_bins)]
    media = pa.table(
        {
            "sample_id": table.column("sample_id").cast(pa.string()),
            "label": pa.array(labels, pa.string()),
            "frames": _frames_as_bytes(table.column("frames"), origin),
            "audio": _audio_as_bytes(table.column("audio"), origin),
            "audio_sample_rate": _sample_rates(table),
            **({"audio_features": table.column("audio_features")} if "audio_features" in table.column_names else {}),
        }
    )
    cache_config = (table.schema.metadata or {}).get(FEATURES_METADATA_KEY)
    if cache_config is not None and "audio_features" in media.column_names:  # the export named the cache's config
        media = media.replace_schema_metadata({FEATURES_METADATA_KEY: cache_config})
    return assemble(
        media,
        classes,
        splits,
        discrepancy,
        bins,
        num_bins=num_bins,
        bin_edges=edges,
        settings=settings,
        source=origin,
        source_kind=kind,
        split_note=note,
        groups=_groups(table),
        scratch=scratch,
    )


def _bins_are_equal_width(d: np.ndarray, bins: np.ndarray, num_bins: int) -> bool:
    ok = (bins >= 0) & np.isfinite(d)
    return bool(ok.any()) and bool(np.all(assign_bins(d[ok], make_edges(num_bins)) == bins[ok]))


def _frames_as_bytes(col: pa.ChunkedArray, origin: str) -> pa.Array:
    """list<struct<bytes, path>> (Image) or list<binary> -> list<binary>."""
    arr = col.combine_chunks()
    if not pa.types.is_list(arr.type) and not pa.types.is_large_list(arr.type):
        raise MMCurateError(f"{origin}: column 'frames' has type {arr.type}, expected a list of images")
    values = arr.values
    if pa.types.is_struct(values.type):
        values = values.field("bytes")
    if not (pa.types.is_binary(values.type) or pa.types.is_large_binary(values.type)):
        raise MMCurateError(f"{origin}: column 'frames' holds {values.type}, expected JPEG bytes")
    return pa.ListArray.from_arrays(arr.offsets.cast(pa.int32()), values.cast(pa.binary()))


def _audio_as_bytes(col: pa.ChunkedArray, origin: str) -> pa.Array:
    """struct<bytes, path> (Audio) or binary -> binary (null where absent)."""
    arr = col.combine_chunks()
    if pa.types.is_struct(arr.type):
        arr = pc.struct_field(arr, "bytes")
    if not (pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type) or pa.types.is_null(arr.type)):
        raise MMCurateError(f"{origin}: column 'audio' has type {arr.type}, expected FLAC bytes")
    return arr.cast(pa.binary())


def _sample_rates(table: pa.Table) -> pa.Array:
    if "audio_sample_rate" in table.column_names:
        return table.column("audio_sample_rate").combine_chunks().cast(pa.int32())
    return pa.array([0] * table.num_rows, pa.int32())  # decoders read the rate from the FLAC header


# --------------------------------------------------------------------------- ingest + score


def load_ingest_dir(path: Path, settings: TensorSettings, bins: int = 10, scratch: Path | None = None) -> ReevalData:
    """An ingest+score work directory: the original (biased) data with its scores."""
    ingest = IngestDir(path).require()
    if not ingest.scores_path.is_file():
        raise StageNotReadyError(f"{ingest.scores_path} not found; run `mmcurate score` on {path} first")
    manifest = ingest.read_manifest(["sample_id", "label", "split", "group", "shard", "shard_row"])
    classes = ingest.read_classes()
    score_of = ingest.scores_by_id()
    ids = manifest.column("sample_id").to_pylist()
    media = read_shards(path)
    notes: list[str] = []
    unscored = sum(sid not in score_of for sid in ids)
    if unscored:
        notes.append(f"{unscored} samples have no score: they count in overall metrics only")
    discrepancy = np.array([np.nan if score_of.get(s) is None else score_of[s] for s in ids], dtype=np.float64)
    labels = manifest.column("label").to_pylist()
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise MMCurateError(
            f"{ingest.file(IngestDir.CLASSES)}: labels {unknown[:5]} of the manifest are not in the class list"
        )
    splits = normalize_splits(manifest.column("split").to_pylist(), str(ingest.manifest_path))
    splits, note = resolve_splits(splits, labels, str(ingest.manifest_path), _groups(manifest))
    return assemble(
        media,
        classes,
        splits,
        discrepancy,
        assign_bins(discrepancy, make_edges(bins)),
        num_bins=bins,
        bin_edges=[float(e) for e in make_edges(bins)],
        settings=settings,
        source=str(path),
        source_kind="ingest",
        split_note=note,
        notes=notes,
        groups=_groups(manifest),
        scratch=scratch,
    )


def _groups(table: pa.Table) -> list[str | None] | None:
    """The ``group`` column as strings (None where null); None when the table has no such column."""
    if "group" not in table.column_names:
        return None
    return [None if g is None else str(g) for g in table.column("group").to_pylist()]

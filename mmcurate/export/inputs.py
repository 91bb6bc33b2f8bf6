"""Read and check what the export receives: the ingest directory and the balanced selection.

Everything a user can get wrong here (a missing file, a selection that names a sample the
ingest never produced, a shard that does not hold the row the manifest points to) becomes a
one-line :class:`MMCurateError` naming the file, so a bad work directory never surfaces as a
pyarrow traceback half way through an export.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from mmcurate.common.errors import MMCurateError, StageNotReadyError
from mmcurate.schemas import MANIFEST_SCHEMA, SELECTION_SCHEMA

#: Columns of a shard the export copies (frames, audio and its rate, optional features).
MEDIA_COLUMNS = ("frames", "audio", "audio_sample_rate", "audio_features")


@dataclass(frozen=True)
class IngestInputs:
    """The parts of an ingest directory the export reads."""

    ingest_dir: Path
    classes: list[str]
    manifest: pa.Table
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def shards_dir(self) -> Path:
        return self.ingest_dir / "shards"


def read_ingest(ingest_dir: Path) -> IngestInputs:
    """Load manifest, class list and config of an ingest directory, checking each is usable."""
    ingest_dir = Path(ingest_dir)
    if not ingest_dir.is_dir():
        raise StageNotReadyError(f"{ingest_dir}: ingest directory not found; run `mmcurate ingest` first or pass the right --workdir")
    manifest_path = ingest_dir / "manifest.parquet"
    if not manifest_path.is_file():
        raise StageNotReadyError(f"{manifest_path}: missing; the ingest did not finish, rerun `mmcurate ingest`")
    try:
        manifest = pq.read_table(manifest_path)
    except (OSError, pa.ArrowException) as exc:
        raise MMCurateError(f"{manifest_path}: not a readable Parquet file ({_one_line(exc)}); rerun `mmcurate ingest`") from None
    _require_columns(manifest, ("sample_id", "path", "sha256", "label", "shard", "shard_row"), manifest_path, MANIFEST_SCHEMA)

    classes_path = ingest_dir / "classes.json"
    classes = _read_json(classes_path, required=True)
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) and c for c in classes)):
        raise MMCurateError(f"{classes_path}: must be a non-empty JSON list of class-name strings")
    if len(set(classes)) != len(classes):
        raise MMCurateError(f"{classes_path}: class names must be unique")
    config = _read_json(ingest_dir / "config.json", required=False) or {}
    if not isinstance(config, dict):
        raise MMCurateError(f"{ingest_dir / 'config.json'}: must hold a JSON object (the resolved ingest config)")
    return IngestInputs(ingest_dir=ingest_dir, classes=list(classes), manifest=manifest, config=config)


def read_selection(selection: Path | pa.Table) -> tuple[pa.Table, str]:
    """The selection as a table plus a name for messages; checks columns and unique ids."""
    if isinstance(selection, pa.Table):
        table, name = selection, "selection table"
    else:
        path = Path(selection)
        name = str(path)
        if not path.is_file():
            raise StageNotReadyError(f"{path}: selection not found; run `mmcurate balance` first")
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as exc:
            raise MMCurateError(f"{path}: not a readable Parquet file ({_one_line(exc)})") from None
    _require_columns(table, tuple(SELECTION_SCHEMA.names[:7]), name, SELECTION_SCHEMA)
    if table.num_rows == 0:
        raise MMCurateError(f"{name}: the selection is empty; nothing to export")
    if pc.count_distinct(table["sample_id"]).as_py() != table.num_rows:
        raise MMCurateError(f"{name}: sample_id values repeat; each sample may be selected once")
    for col in ("sample_id", "label", "split", "bin"):
        if table[col].null_count:
            raise MMCurateError(f"{name}: column '{col}' has nulls; every selected row needs one")
    return table, name


def join_manifest(selection: pa.Table, inputs: IngestInputs, selection_name: str) -> pa.Table:
    """Selection rows with the manifest's source path, sha256 and shard location added."""
    wanted = inputs.manifest.select(["sample_id", "path", "sha256", "shard", "shard_row"])
    joined = selection.join(wanted, keys="sample_id", join_type="left outer")
    missing = pc.filter(joined["sample_id"], pc.is_null(joined["shard"]))
    if len(missing):
        first = missing[0].as_py()
        raise MMCurateError(
            f"{selection_name}: {len(missing)} selected sample(s) are not in {inputs.ingest_dir / 'manifest.parquet'} "
            f"(first: '{first}'); the selection was made from another ingest, rerun `mmcurate balance`"
        )
    unknown = sorted(set(joined["label"].to_pylist()) - set(inputs.classes))
    if unknown:
        raise MMCurateError(
            f"{selection_name}: label(s) {unknown[:5]} are not in {inputs.ingest_dir / 'classes.json'}; "
            "the selection and the ingest disagree, rerun `mmcurate balance`"
        )
    return joined


class ShardReader:
    """Reads media rows out of the ingest's Arrow IPC shards, one memory-mapped file at a time.

    Shards are memory-mapped, so taking a few rows from a large shard copies only those rows.
    """

    def __init__(self, inputs: IngestInputs) -> None:
        self._inputs = inputs
        self._tables: dict[str, pa.Table] = {}

    def _shard(self, name: str) -> pa.Table:
        if name not in self._tables:
            path = self._inputs.shards_dir / name
            if not path.is_file():
                raise StageNotReadyError(f"{path}: shard named by the manifest is missing; rerun `mmcurate ingest`")
            try:
                self._tables[name] = ipc.open_file(pa.memory_map(str(path), "r")).read_all()
            except (OSError, pa.ArrowException) as exc:
                raise MMCurateError(f"{path}: not a readable Arrow IPC file ({_one_line(exc)}); rerun `mmcurate ingest`") from None
            _require_columns(self._tables[name], ("sample_id", "frames", "audio", "audio_sample_rate"), path, None)
        return self._tables[name]

    def media_for(self, rows: pa.Table, with_features: bool) -> pa.Table:
        """Media columns for ``rows`` (which carry shard and shard_row), in the same row order."""
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
            shard = self._shard(name)
            take = [positions[i] for i in idx]
            if max(take) >= shard.num_rows or min(take) < 0:
                raise MMCurateError(
                    f"{self._inputs.shards_dir / name}: manifest points to row {max(take)} but the shard has "
                    f"{shard.num_rows} rows; the ingest directory is inconsistent, rerun `mmcurate ingest`"
                )
            cols = [c for c in wanted_cols if c in shard.column_names]
            got = shard.select(["sample_id", *cols]).take(pa.array(take, pa.int64()))
            got_ids = got["sample_id"].to_pylist()
            for i, gid in zip(idx, got_ids, strict=True):
                if gid != ids[i]:
                    raise MMCurateError(
                        f"{self._inputs.shards_dir / name}: row {positions[i]} holds '{gid}' but the manifest says "
                        f"'{ids[i]}'; the ingest directory is inconsistent, rerun `mmcurate ingest`"
                    )
            if with_features and "audio_features" not in got.column_names:
                got = got.append_column(
                    "audio_features", pa.nulls(got.num_rows, pa.list_(pa.list_(pa.float16())))
                )
            pieces.append(got.select([c for c in wanted_cols]))
            order.extend(idx)
        combined = pa.concat_tables(pieces).combine_chunks()
        # Put rows back in the caller's order.
        inverse = [0] * len(order)
        for pos, i in enumerate(order):
            inverse[i] = pos
        return combined.take(pa.array(inverse, pa.int64()))

    def any_features(self, shard_names: list[str]) -> bool:
        """Whether any of these shards carries non-null cached audio features."""
        for name in sorted(set(shard_names)):
            shard = self._shard(name)
            if "audio_features" in shard.column_names and shard["audio_features"].null_count < shard.num_rows:
                return True
        return False


def _require_columns(table: pa.Table, names: tuple[str, ...], where: object, schema: pa.Schema | None) -> None:
    missing = [n for n in names if n not in table.column_names]
    if missing:
        hint = " (see mmcurate/schemas.py)" if schema is not None else ""
        raise MMCurateError(f"{where}: missing column(s) {missing}{hint}; it was not written by this mmcurate version")


def _read_json(path: Path, required: bool) -> Any:
    if not path.is_file():
        if required:
            raise StageNotReadyError(f"{path}: missing; rerun `mmcurate ingest`")
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MMCurateError(f"{path}: not valid JSON ({_one_line(exc)})") from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]

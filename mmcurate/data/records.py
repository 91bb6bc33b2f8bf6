"""One sample's stored media, whatever table it came from.

Ingest shards (``SHARD_SCHEMA``: label is a class name, frames are JPEG bytes, audio is FLAC
bytes) and exported Hugging Face rows (label is a ClassLabel index, frames are ``{bytes, path}``
images, audio is a ``{bytes, path}`` cell) both become :class:`SampleRecord`, so decoding is
written once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mmcurate.common.errors import MMCurateError

REQUIRED_COLUMNS = ("sample_id", "label", "frames")


@dataclass(frozen=True)
class SampleRecord:
    """What decoding one sample needs. ``audio`` is None when the sample has no audio;
    ``cached`` is the stored ``(bins, time)`` float16 features, if any."""

    sample_id: str
    label: int
    frames: Sequence[Any]
    audio: Any | None
    audio_sample_rate: int | None = None
    audio_num_samples: int | None = None
    cached: np.ndarray | None = None


class LabelIndexer:
    """Label (class name or ClassLabel index) -> index into ``classes``, with a clear error."""

    def __init__(self, classes: Sequence[str]):
        if len(classes) == 0:
            raise MMCurateError("the class list is empty; pass the classes from classes.json")
        self.classes = list(classes)
        self._index = {name: i for i, name in enumerate(self.classes)}
        if len(self._index) != len(self.classes):
            raise MMCurateError("the class list names a class twice; fix classes.json")

    def __call__(self, label: Any, sample_id: str) -> int:
        if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
            if 0 <= int(label) < len(self.classes):
                return int(label)
            raise MMCurateError(
                f"sample {sample_id!r}: label index {int(label)} is outside the {len(self.classes)} classes"
            )
        if isinstance(label, str) and label in self._index:
            return self._index[label]
        raise MMCurateError(
            f"sample {sample_id!r}: label {label!r} is not in the class list "
            f"({', '.join(self.classes[:8])}{', ...' if len(self.classes) > 8 else ''}); "
            "pass the classes.json written by ingest"
        )


def records_from_table(table: pa.Table, classes: Sequence[str]) -> list[SampleRecord]:
    """Records of every row of an ingest shard table or an exported dataset table."""
    check_columns(table.column_names, "the table")
    labels = LabelIndexer(classes)
    n = table.num_rows
    ids = table.column("sample_id").to_pylist()
    raw_labels = table.column("label").to_pylist()
    frames = table.column("frames").to_pylist()
    audio = table.column("audio").to_pylist() if "audio" in table.column_names else [None] * n
    rates = table.column("audio_sample_rate").to_pylist() if "audio_sample_rate" in table.column_names else [None] * n
    counts = table.column("audio_num_samples").to_pylist() if "audio_num_samples" in table.column_names else [None] * n
    cached = (
        cached_features_column(table.column("audio_features"), ids)
        if "audio_features" in table.column_names
        else [None] * n
    )
    return [
        SampleRecord(
            sample_id=str(ids[i]),
            label=labels(raw_labels[i], str(ids[i])),
            frames=frames[i] or [],
            audio=_audio_cell(audio[i]),
            audio_sample_rate=rates[i],
            audio_num_samples=counts[i],
            cached=cached[i],
        )
        for i in range(n)
    ]


def length_records_from_table(table: pa.Table, classes: Sequence[str]) -> list[SampleRecord]:
    """Records carrying only what choosing the audio length needs: no frames, and, where the
    ``audio_num_samples`` column gives a length, an empty placeholder instead of the audio
    bytes, so sizing a large memory-mapped set does not read its media."""
    check_columns(table.column_names, "the table")
    labels = LabelIndexer(classes)
    n = table.num_rows
    names = table.column_names
    ids = [str(x) for x in table.column("sample_id").to_pylist()]
    raw_labels = table.column("label").to_pylist()
    audio = table.column("audio") if "audio" in names else None
    present = _audio_present(audio) if audio is not None else np.zeros(n, dtype=bool)
    counts = table.column("audio_num_samples").to_pylist() if "audio_num_samples" in names else [None] * n
    cached = cached_features_column(table.column("audio_features"), ids) if "audio_features" in names else [None] * n
    records = []
    for i in range(n):
        if not present[i]:
            cell = None
        elif counts[i] is not None:
            cell = b""  # placeholder: the length is known without the bytes
        else:
            assert audio is not None
            cell = _audio_cell(audio[i].as_py())  # only this header will be read
        records.append(
            SampleRecord(
                sample_id=ids[i],
                label=labels(raw_labels[i], ids[i]),
                frames=[],
                audio=cell,
                audio_num_samples=counts[i],
                cached=cached[i],
            )
        )
    return records


def _audio_present(column: pa.ChunkedArray) -> np.ndarray:
    """Per row: audio bytes are there (not null, and for a {bytes, path} struct, bytes not null)."""
    valid = pc.is_valid(column)
    if pa.types.is_struct(column.type) and column.type.get_field_index("bytes") >= 0:
        valid = pc.and_(valid, pc.is_valid(pc.struct_field(column, "bytes")))
    return np.asarray(valid.to_numpy(zero_copy_only=False), dtype=bool)


def records_from_dicts(rows: Iterable[Mapping[str, Any]], classes: Sequence[str]) -> list[SampleRecord]:
    """Records of dict rows (``datasets`` rows with ``Audio(decode=False)``, or hand-made ones)."""
    labels = LabelIndexer(classes)
    return [record_from_dict(row, labels, i) for i, row in enumerate(rows)]


def record_from_dict(row: Mapping[str, Any], labels: LabelIndexer, position: int) -> SampleRecord:
    """One dict row -> record; ``position`` only names the row in errors."""
    missing = [c for c in REQUIRED_COLUMNS if c not in row]
    if missing:
        raise MMCurateError(f"row {position} lacks {', '.join(missing)}; rows need sample_id, label, frames and audio")
    sample_id = str(row["sample_id"])
    cached = row.get("audio_features")
    if cached is not None:
        cached = _as_feature_array(cached, sample_id)
    return SampleRecord(
        sample_id=sample_id,
        label=labels(row["label"], sample_id),
        frames=row["frames"] or [],
        audio=_audio_cell(row.get("audio")),
        audio_sample_rate=row.get("audio_sample_rate"),
        audio_num_samples=row.get("audio_num_samples"),
        cached=cached,
    )


def check_columns(names: Sequence[str], what: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise MMCurateError(
            f"{what} lacks column(s) {', '.join(missing)}; expected an ingest shard or an exported mmcurate dataset"
        )


def _audio_cell(value: Any) -> Any | None:
    """None for absent audio (null, or a {bytes: None} cell), else the stored value."""
    if value is None:
        return None
    if isinstance(value, dict) and value.get("bytes") is None:
        return None
    return value


def _as_feature_array(value: Any, sample_id: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float16)
    except (ValueError, TypeError):
        raise MMCurateError(f"sample {sample_id!r}: audio_features is not a rectangular bins x time array") from None
    if arr.ndim != 2:
        raise MMCurateError(f"sample {sample_id!r}: audio_features must be bins x time, got shape {arr.shape}")
    return arr


def cached_features_column(
    column: pa.ChunkedArray | pa.Array, sample_ids: Sequence[str] | None = None
) -> list[np.ndarray | None]:
    """``list<list<float16>>`` cells -> ``(bins, time)`` float16 arrays, without building Python
    lists of floats (a cache of 3000 clips holds ~20 M values): each cell is a reshaped slice of
    the flat child buffer. Null cells give None; a ragged cell gives an error."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    out: list[np.ndarray | None] = []
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        if not (pa.types.is_list(chunk.type) or pa.types.is_large_list(chunk.type)):
            raise MMCurateError(f"audio_features column has type {chunk.type}, expected list<list<float16>>")
        outer = chunk.offsets.to_numpy()
        inner_list = chunk.values
        inner = inner_list.offsets.to_numpy()
        flat = inner_list.values.to_numpy(zero_copy_only=False).astype(np.float16, copy=False)
        valid = chunk.is_valid().to_numpy(zero_copy_only=False)
        for i in range(len(chunk)):
            if not valid[i]:
                out.append(None)
                continue
            b0, b1 = int(outer[i]), int(outer[i + 1])
            bins = b1 - b0
            if bins == 0:
                out.append(np.zeros((0, 0), dtype=np.float16))
                continue
            starts = inner[b0 : b1 + 1]
            lengths = np.diff(starts)
            if not np.all(lengths == lengths[0]):
                who = f"sample {sample_ids[len(out)]!r}: " if sample_ids is not None else ""
                raise MMCurateError(f"{who}audio_features is ragged (bins of different lengths); re-run ingest")
            out.append(flat[starts[0] : starts[-1]].reshape(bins, int(lengths[0])))
    return out

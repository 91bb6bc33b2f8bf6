"""The exported columns as Hugging Face ``datasets`` features, and the Arrow table that holds them.

The table is built directly in each feature's storage layout (``{bytes, path}`` structs for
images and audio, int64 class indices) rather than through ``Dataset.from_dict``: encoding an
``Audio`` value through ``datasets`` needs torchcodec, while casting a ``{bytes, path}`` struct
does not, and building the arrays ourselves keeps the bytes exactly those ingest wrote.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Audio, ClassLabel, Features, Image, List, Value

#: Leading bytes of audio containers a Hub ``Audio`` decoder reads from bytes alone.
_AUDIO_MAGIC = (b"fLaC", b"RIFF", b"OggS", b"ID3", b"\xff\xf1", b"\xff\xf9", b"\xff\xfb")


def audio_is_hub_encodable(audio: pa.ChunkedArray | pa.Array) -> bool:
    """True when every non-null audio blob is a container the Hub's Audio type decodes.

    Ingest writes FLAC, so this is normally true; anything else (raw PCM, say) is exported as
    plain bytes next to ``audio_sample_rate`` instead of being mislabelled as playable audio.
    """
    prefixes = pc.unique(pc.binary_slice(audio, 0, 4).drop_null()).to_pylist()  # a few bytes, not all audio
    return all(p.startswith(_AUDIO_MAGIC) for p in prefixes)


def single_sample_rate(rates: pa.ChunkedArray | pa.Array) -> int | None:
    """The one sample rate all rows share, or None when they differ (Audio then decodes natively)."""
    distinct = pc.unique(rates).to_pylist()
    return int(distinct[0]) if len(distinct) == 1 and distinct[0] is not None else None


def build_features(
    classes: list[str], sample_rate: int | None, audio_as_hub_type: bool, with_features: bool, with_pool: bool = False
) -> Features:
    """The export schema (``mmcurate.store.schemas.EXPORT_COLUMNS``) as ``datasets.Features``.

    Audio is the Hub's ``Audio`` type declared with ``decode=False``: a row reads as
    ``{"bytes": <FLAC>, "path": ...}`` on the documented install, because ``datasets`` decodes
    audio only through torchcodec, which is not a dependency (``ds["train"][0]`` raised
    ImportError with decoding on). The bytes are exactly ingest's lossless FLAC; ``soundfile``
    decodes them, and ``with_audio_decoding(ds, True)`` (or ``cast_column``) turns datasets'
    decoding on where torchcodec is installed.
    ``with_pool`` adds the ``pool`` column (which scored folder a row came from) when several
    pools were balanced together.
    """
    cols: dict[str, object] = {
        "sample_id": Value("string"),
        "label": ClassLabel(names=list(classes)),
        "frames": List(Image()),
        "audio": Audio(sampling_rate=sample_rate, decode=False) if audio_as_hub_type else Value("binary"),
        "audio_sample_rate": Value("int32"),
    }
    if with_features:
        cols["audio_features"] = List(List(Value("float16")))
    cols.update(
        {
            "p_audio": Value("float64"),
            "p_visual": Value("float64"),
            "discrepancy": Value("float64"),
            "bin": Value("int32"),
            "split": Value("string"),
            "path": Value("string"),
            "sha256": Value("string"),
        }
    )
    if with_pool:
        cols["pool"] = Value("string")
    return Features(cols)


def build_export_table(rows: pa.Table, media: pa.Table, features: Features, classes: list[str]) -> pa.Table:
    """One split's rows in the feature storage layout, with the features in the schema metadata.

    ``rows`` holds the selection joined with the manifest; ``media`` the shard columns for the
    same rows in the same order. The schema metadata is what lets ``load_dataset("parquet")``
    recover ClassLabel names and the Image/Audio types from the Parquet files alone.
    """
    schema = features.arrow_schema
    class_index = {name: i for i, name in enumerate(classes)}
    ids = rows["sample_id"].to_pylist()
    arrays: dict[str, pa.Array] = {
        "sample_id": pa.array(ids, pa.string()),
        "label": pa.array([class_index[x] for x in rows["label"].to_pylist()], pa.int64()),
        "frames": _frames_as_images(media["frames"]),
        "audio": _audio_column(media["audio"], ids, isinstance(features["audio"], Audio)),
        "audio_sample_rate": media["audio_sample_rate"].combine_chunks().cast(pa.int32()),
    }
    if "audio_features" in features:
        arrays["audio_features"] = media["audio_features"].combine_chunks().cast(schema.field("audio_features").type)
    for name in ("p_audio", "p_visual", "discrepancy", "bin", "split", "path", "sha256", "pool"):
        if name in schema.names:
            arrays[name] = rows[name].combine_chunks().cast(schema.field(name).type)
    return pa.Table.from_arrays([arrays[n] for n in schema.names], schema=schema)


def row_nbytes(table: pa.Table) -> np.ndarray:
    """Approximate in-memory bytes of each row: the budget that shard sizes are planned from."""
    sizes = np.zeros(table.num_rows, dtype=np.int64)
    for col in table.columns:
        sizes += _column_row_bytes(col.combine_chunks())
    return sizes


def _column_row_bytes(arr: pa.Array) -> np.ndarray:
    t = arr.type
    n = len(arr)
    if pa.types.is_struct(t):
        total = np.zeros(n, dtype=np.int64)
        for i in range(t.num_fields):
            total += _column_row_bytes(arr.field(i))
        return total
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        offsets = arr.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
        child = _column_row_bytes(arr.values)
        csum = np.concatenate([[0], np.cumsum(child)])
        return csum[offsets[1:]] - csum[offsets[:-1]] + 8
    if pa.types.is_binary(t) or pa.types.is_string(t) or pa.types.is_large_binary(t) or pa.types.is_large_string(t):
        lengths = pc.binary_length(arr).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        return lengths + 8
    width = max(1, t.bit_width // 8) if hasattr(t, "bit_width") else 8
    return np.full(n, width, dtype=np.int64)


def _frames_as_images(frames: pa.ChunkedArray) -> pa.Array:
    """list<binary> JPEG frames -> list<struct<bytes, path>>, the storage of ``List(Image())``."""
    arr = frames.combine_chunks().cast(pa.list_(pa.binary()))  # large_list/large_binary too
    if arr.offset:  # a sliced array's offsets do not start at zero
        arr = pa.concat_arrays([arr])
    values = arr.values
    structs = pa.StructArray.from_arrays(
        [values.cast(pa.binary()), pa.nulls(len(values), pa.string())], names=["bytes", "path"]
    )
    return pa.ListArray.from_arrays(arr.offsets, structs, mask=arr.is_null() if arr.null_count else None)


def _audio_column(audio: pa.ChunkedArray, ids: list[str], as_hub_type: bool) -> pa.Array:
    """FLAC bytes -> ``{bytes, path}`` structs (null where a clip has no audio), or plain bytes."""
    arr = audio.combine_chunks().cast(pa.binary())
    if not as_hub_type:
        return arr
    names = pa.array(
        [None if b is None else f"{_safe_name(i)}.flac" for i, b in zip(ids, arr.to_pylist(), strict=True)],
        pa.string(),
    )
    return pa.StructArray.from_arrays([arr, names], names=["bytes", "path"], mask=arr.is_null())


def _safe_name(sample_id: str) -> str:
    """A file name derived from a sample id: it tells Audio decoders the format, nothing more."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", sample_id).strip("._") or "audio"

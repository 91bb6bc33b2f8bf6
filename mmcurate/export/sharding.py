"""Split a table into Parquet shards under a byte budget, named as the Hub expects.

Shards are contiguous runs of rows packed greedily so that each stays under the budget (a row
larger than the budget gets a shard of its own). The Hub layout is
``data/{split}-{index:05d}-of-{count:05d}.parquet``, the names ``push_to_hub`` writes, which
the Hub's and ``load_dataset``'s split inference recognise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mmcurate.common.errors import MMCurateError

#: Rows per Parquet row group: small groups keep random access into media rows cheap
#: (the value ``datasets`` uses for image and audio datasets).
ROW_GROUP_SIZE = 100


def parse_shard_size(value: str | int) -> int:
    """``"500MB"``, ``"2GB"``, ``"64KiB"`` or a byte count -> bytes (decimal units, as ``datasets``)."""
    from datasets.utils.py_utils import convert_file_size_to_int

    try:
        size = convert_file_size_to_int(value)
    except (ValueError, TypeError):
        size = 0
    if not isinstance(size, int) or size <= 0:
        raise MMCurateError(f"max shard size '{value}' is not a positive size; use e.g. 500MB, 2GB or a byte count")
    return size


def plan_shards(row_bytes: np.ndarray, max_bytes: int) -> list[tuple[int, int]]:
    """Contiguous ``[start, stop)`` row ranges, each at most ``max_bytes`` (or one oversized row)."""
    ranges: list[tuple[int, int]] = []
    start, acc = 0, 0
    for i, size in enumerate(row_bytes.tolist()):
        if i > start and acc + size > max_bytes:
            ranges.append((start, i))
            start, acc = i, 0
        acc += size
    if len(row_bytes):
        ranges.append((start, len(row_bytes)))
    return ranges


def shard_file_name(split: str, index: int, count: int) -> str:
    """``train-00000-of-00003.parquet``."""
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


def write_shards(table: pa.Table, split: str, ranges: list[tuple[int, int]], data_dir: Path) -> list[Path]:
    """Write one Parquet file per range into ``data_dir``; returns the paths in order.

    Writer options are fixed here so that the same table always gives the same bytes.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, (start, stop) in enumerate(ranges):
        path = data_dir / shard_file_name(split, k, len(ranges))
        pq.write_table(
            table.slice(start, stop - start),
            path,
            row_group_size=ROW_GROUP_SIZE,
            compression="snappy",
            use_dictionary=["split"],
            write_statistics=True,
            store_schema=True,
        )
        paths.append(path)
    return paths

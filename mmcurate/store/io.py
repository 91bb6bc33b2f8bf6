"""Reading the work directory's files with one-line errors that name the file and the reason.

Every reader of a stage's output goes through these, so a damaged or foreign file gives the same
kind of message everywhere ("<path>: not a readable Parquet file (...); rerun `mmcurate ingest`")
instead of a pyarrow or json traceback half way through a stage.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from mmcurate.common.errors import MMCurateError, StageNotReadyError, one_line


def read_json(path: Path, *, what: str, fix: str, required: bool = True) -> Any:
    """The JSON content of ``path``; None when it is absent and not ``required``.

    ``what`` names the file in messages ("the class list"); ``fix`` says what to rerun.
    """
    if not path.is_file():
        if required:
            raise StageNotReadyError(f"{path}: {what} is missing; {fix}")
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:  # a planted file nested deeper than Python's parser recurses
        raise MMCurateError(f"{path}: {what} is not valid JSON (nested too deeply); {fix}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # ValueError: also an integer of 5000 digits
        raise MMCurateError(f"{path}: {what} is not valid JSON ({one_line(exc)}); {fix}") from None


def read_parquet(path: Path, *, what: str, fix: str, columns: Sequence[str] | None = None) -> pa.Table:
    """A Parquet table (only ``columns`` when given), or a one-line error naming the file."""
    if not path.is_file():
        raise StageNotReadyError(f"{path}: {what} is missing; {fix}")
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise MMCurateError(f"{path}: not a readable Parquet file ({one_line(exc)}); {fix}") from None
    if columns is not None:
        require_columns(schema.names, columns, path, fix)
    try:
        return pq.read_table(path, columns=list(columns) if columns is not None else None)
    except (OSError, pa.ArrowException) as exc:
        raise MMCurateError(f"{path}: not a readable Parquet file ({one_line(exc)}); {fix}") from None


def require_columns(present: Sequence[str], needed: Sequence[str], where: object, fix: str) -> None:
    """A one-line error when any of ``needed`` is not among ``present``."""
    missing = [c for c in needed if c not in present]
    if missing:
        raise MMCurateError(f"{where}: missing column(s) {', '.join(missing)} (see mmcurate/store/schemas.py); {fix}")


def open_ipc_file(path: Path, *, fix: str) -> pa.Table:
    """An Arrow IPC file, memory-mapped: buffers are pages of the file, so opening costs address
    space, not RAM, and only the rows a caller touches are read."""
    if not path.is_file():
        raise StageNotReadyError(f"{path}: shard named by the manifest is missing; {fix}")
    try:
        with pa.memory_map(str(path), "r") as source:
            return ipc.open_file(source).read_all()
    except (OSError, pa.ArrowException) as exc:
        raise MMCurateError(f"{path}: not a readable Arrow IPC shard ({one_line(exc)}); {fix}") from None


def consecutive_runs(rows: np.ndarray, groups: np.ndarray | None = None) -> list[tuple[int, int]]:
    """``(start, end)`` positions of the runs of ``rows`` that step by one (and, with ``groups``, stay in
    one group): each run is one zero-copy slice of a table."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        return []
    step = np.diff(rows) != 1
    if groups is not None:
        step |= np.diff(np.asarray(groups)) != 0
    breaks = (np.flatnonzero(step) + 1).tolist()
    return list(zip([0, *breaks], [*breaks, len(rows)], strict=True))


def rows_at(table: pa.Table, rows: np.ndarray) -> pa.Table:
    """Rows ``rows`` of ``table``, in that order, as zero-copy slices (one per run of consecutive rows).

    Why not ``table.take``: on a table of many chunks Arrow's take may first concatenate each column's
    chunks, copying a memory-mapped shard table's media (every frame and FLAC) into private memory for each
    few hundred rows taken (measured: score's peak private memory at 30k clips rose from 1270 to 1818 MB)."""
    rows = np.asarray(rows, dtype=np.int64)
    runs = consecutive_runs(rows)
    if not runs:
        return table.slice(0, 0)
    return pa.concat_tables([table.slice(int(rows[a]), b - a) for a, b in runs])

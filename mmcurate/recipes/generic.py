"""The two generic layouts: label folders, and an input manifest (CSV/TSV/JSONL).

Like the dataset adapters, each turns a raw directory into :class:`~mmcurate.store.items.Discovery`:
items to decode, inputs that already failed (with a reason), and files a manifest did not name.
Nothing found under the raw directory is dropped silently.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path, PurePosixPath

from mmcurate.common.errors import MMCurateError, one_line
from mmcurate.common.files import list_files, open_regular, os_reason, parse_json, regular_file_problem
from mmcurate.common.media_probe import media_file_problem
from mmcurate.store.items import Discovery, InputItem
from mmcurate.store.schemas import MANIFEST_SCHEMA

#: Input-manifest columns with a meaning; any other column is carried into manifest.parquet.
MANIFEST_COLUMNS = ("path", "label", "split", "group", "start", "end")
#: Column names that other columns may not shadow (they are manifest.parquet columns).
RESERVED_COLUMNS = frozenset(MANIFEST_SCHEMA.names)


def check_raw_dir(raw_dir: Path) -> None:
    """A clear error for a missing or unusable raw directory."""
    if not raw_dir.exists():
        raise MMCurateError(f"raw directory {raw_dir} does not exist")
    if not raw_dir.is_dir():
        raise MMCurateError(f"raw directory {raw_dir} is not a directory")


def discover_folders(raw_dir: Path) -> Discovery:
    """``RAW_DIR/<label>/<clip>.<ext>``: the label is the first folder under RAW_DIR.

    Files directly in RAW_DIR (no label folder) and files FFmpeg does not recognise as audio or
    video (by extension, else by probing their content) are reported as failures, so every file
    is accounted for.
    """
    found = Discovery()
    for rel in list_files(raw_dir):
        parts = PurePosixPath(rel).parts
        problem = media_file_problem(raw_dir / rel)
        if problem is not None:
            found.fail(rel, f"not a media file ({problem})")
        elif len(parts) < 2:
            found.fail(rel, "not inside a label folder (expected RAW_DIR/<label>/<clip>)", sample_id=rel)
        else:
            found.items.append(InputItem(path=rel, label=parts[0]))
    return found


def read_input_manifest(manifest: Path) -> list[dict[str, str]]:
    """Rows of a CSV (header required) or JSON-lines input manifest, as strings."""
    problem = regular_file_problem(manifest)
    if problem == "not found":
        raise MMCurateError(f"input manifest {manifest} does not exist")
    if problem is not None:
        raise MMCurateError(f"input manifest {manifest}: cannot read it ({problem})")
    suffix = manifest.suffix.lower()
    try:
        if suffix in (".jsonl", ".ndjson", ".json"):
            rows = []
            with open_regular(manifest, "r", encoding="utf-8") as fh:
                for lineno, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    obj = parse_json(line, f"input manifest {manifest}, line {lineno}")
                    if not isinstance(obj, dict):
                        raise MMCurateError(f"input manifest {manifest}, line {lineno}: expected a JSON object")
                    rows.append({str(k): "" if v is None else str(v) for k, v in obj.items()})
            return rows
        with open_regular(
            manifest, "r", encoding="utf-8-sig", newline=""
        ) as fh:  # -sig: a BOM (Excel's UTF-8) is not a column name
            reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
            if reader.fieldnames is None:
                raise MMCurateError(
                    f"input manifest {manifest} is empty (expected a header row: path,label[,split][,start,end])"
                )
            # values are kept exactly: a file name may end in a space (discover_manifest trims the others)
            return [{k.strip(): v or "" for k, v in row.items() if k is not None} for row in reader]
    except UnicodeDecodeError:
        raise MMCurateError(f"input manifest {manifest} is not UTF-8 text") from None
    except csv.Error as exc:  # e.g. a field larger than the csv module's limit
        raise MMCurateError(f"input manifest {manifest}: not a readable CSV file ({one_line(exc)})") from None
    except OSError as exc:
        raise MMCurateError(f"input manifest {manifest}: cannot read it ({os_reason(exc)})") from None


def discover_manifest(
    raw_dir: Path,
    manifest: Path,
    group_column: str | None = None,
    label_column: str = "label",
    path_column: str = "path",
) -> Discovery:
    """Inputs listed by a CSV/JSONL manifest with ``path,label[,split][,group][,start,end]`` columns.

    Paths are relative to RAW_DIR. Rows naming absent files, empty labels or bad times are
    failures; files under RAW_DIR that no row names are reported as ``unlisted``.
    """
    rows = read_input_manifest(manifest)
    if not rows:
        raise MMCurateError(f"input manifest {manifest} has no rows")
    columns = set(rows[0])
    for needed in (path_column, label_column):
        if needed not in columns:
            raise MMCurateError(
                f"input manifest {manifest} has no '{needed}' column (columns: {', '.join(sorted(columns))})"
            )
    if group_column and group_column not in columns:
        raise MMCurateError(f"--group-column {group_column!r} is not a column of {manifest}")
    found = Discovery()
    listed: set[str] = set()
    raw_resolved = raw_dir.resolve()
    for lineno, row in enumerate(rows, 2):
        row = {k: v if k == path_column else v.strip() for k, v in row.items()}
        raw_path = row.get(path_column, "")
        if raw_path != raw_path.strip() and regular_file_problem(raw_dir / raw_path) == "not found":
            raw_path = raw_path.strip()  # padding around a CSV value, not part of the name
        where = f"{manifest.name} row {lineno}"
        if not raw_path:
            found.fail(f"<{where}>", "empty path")
            continue
        rel = _relative_to_raw(raw_path, raw_dir, raw_resolved)
        if rel is None:
            found.fail(raw_path, f"path is outside the raw directory {raw_dir} ({where})")
            continue
        listed.add(rel)
        label = row.get(label_column, "")
        try:
            start = _parse_time(row.get("start", ""))
            end = _parse_time(row.get("end", ""))
        except ValueError as exc:
            found.fail(rel, f"{exc} ({where})")
            continue
        if start is not None and end is not None and end <= start:
            found.fail(rel, f"segment end {end:g} s is not after start {start:g} s ({where})")
            continue
        group = row.get(group_column or "group", "") or None
        extra = tuple(
            (k, v)
            for k, v in sorted(row.items())
            if k not in MANIFEST_COLUMNS and k not in (path_column, label_column) and k not in RESERVED_COLUMNS
        )
        item = InputItem(
            path=rel, label=label, split=row.get("split", "") or None, group=group, start=start, end=end, extra=extra
        )
        problem = regular_file_problem(raw_dir / rel) if label else None
        if not label:
            found.fail(rel, f"empty label ({where})", stage="label", sample_id=item.sample_id)
        elif problem == "not found":
            found.fail(rel, f"file not found: {raw_dir / rel} ({where})", sample_id=item.sample_id)
        elif problem is not None:
            found.fail(rel, f"cannot read it: {problem} ({where})", sample_id=item.sample_id)
        else:
            found.items.append(item)
    try:
        manifest_rel = manifest.resolve().relative_to(raw_resolved).as_posix()
    except ValueError:
        manifest_rel = None
    found.unlisted = [f for f in list_files(raw_dir) if f not in listed and f != manifest_rel]
    return found


def _relative_to_raw(raw_path: str, raw_dir: Path, raw_resolved: Path) -> str | None:
    p = Path(raw_path)
    if p.is_absolute():
        try:
            return p.resolve().relative_to(raw_resolved).as_posix()
        except ValueError:
            return None
    norm = PurePosixPath(os.path.normpath(raw_path.replace("\\", "/")))
    if norm.parts and norm.parts[0] == "..":
        return None
    return norm.as_posix()


def _parse_time(text: str) -> float | None:
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"time {text!r} is not a number of seconds") from None
    if value < 0:
        raise ValueError(f"time {value:g} s is negative")
    return value

"""``BalancedDir``: the balanced dataset folder, the one place that knows its files.

Layout (``WORKDIR/balanced`` by default)::

    selection.parquet                      the balanced sample with bins and splits (SELECTION_SCHEMA)
    balance.json                           balance settings, bin edges, per-bin targets, provenance
    report/                                balance report
    data/{split}-XXXXX-of-YYYYY.parquet    the export in Hub layout (EXPORT_COLUMNS)
    hf/                                    datasets.DatasetDict.save_to_disk of the same rows
    README.md                              the dataset card
    export.json                            the export's completion marker, written last
    .mmcurate-output.json, .mmcurate.lock  owner file and the lock a running balance holds

The export cannot swap the whole folder (selection and report live there too), so it builds
``data/``, ``hf/`` and ``README.md`` in a staging folder, removes ``export.json``, moves the three
into place and writes the marker last. A run killed at any point leaves either the old export
with its marker, or files without a valid marker, which :meth:`BalancedDir.verify_export` (and so
``mmcurate push`` and ``mmcurate reeval``) refuses and a rerun replaces.

Installing replaces ``data/``, ``hf/`` and ``README.md`` wholesale, so it happens only in a folder
that is a balanced output (or empty, or given with ``--overwrite``): never in a user's folder that
merely has a README. Each staging folder is locked while an export builds it, so cleaning the
debris of killed exports never removes a live one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mmcurate.common.atomic import TMP_PREFIX, atomic_path, atomic_write_json, fsync_dir, make_temp_dir
from mmcurate.common.errors import MMCurateError, StageNotReadyError, one_line
from mmcurate.store.completion import file_entry, files_match
from mmcurate.store.io import read_json, read_parquet, require_columns
from mmcurate.store.lock import FileLock, FolderBusyError, folder_lock
from mmcurate.store.ownership import claim_folder, claim_locked, owner_kind
from mmcurate.store.schemas import SELECTION_SCHEMA

FIX_BALANCE = "rerun `mmcurate balance` to export again"
EXPORT_MARKER_FORMAT = "mmcurate-export/1"
#: Hub-layout shard names: ``{split}-XXXXX-of-YYYYY.parquet``
HUB_SHARD_NAME = re.compile(r"^(?P<split>[A-Za-z_0-9]+)-\d+-of-\d+\.parquet$")


@dataclass(frozen=True)
class BalancedDir:
    """A balanced dataset folder (it need not exist yet: balance creates it)."""

    path: Path

    SELECTION = "selection.parquet"
    BALANCE_META = "balance.json"
    EXPORT_MARKER = "export.json"
    DATA_DIR = "data"
    HF_DIR = "hf"
    CARD = "README.md"
    #: the card's machine-readable record (resolved configuration), uploaded with it
    CONFIG_JSON = "mmcurate_config.json"
    REPORT_DIR = "report"
    STAGING_PREFIX = TMP_PREFIX + "export."

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    # -- where things are ----------------------------------------------------------------------------
    @property
    def selection_path(self) -> Path:
        return self.path / self.SELECTION

    @property
    def meta_path(self) -> Path:
        return self.path / self.BALANCE_META

    @property
    def marker_path(self) -> Path:
        return self.path / self.EXPORT_MARKER

    @property
    def data_dir(self) -> Path:
        return self.path / self.DATA_DIR

    @property
    def hf_dir(self) -> Path:
        return self.path / self.HF_DIR

    @property
    def card_path(self) -> Path:
        return self.path / self.CARD

    @property
    def report_dir(self) -> Path:
        return self.path / self.REPORT_DIR

    def looks_like_export(self) -> bool:
        """Whether this folder holds (or held) an mmcurate balanced dataset."""
        return (
            self.marker_path.is_file()
            or self.selection_path.is_file()
            or (self.hf_dir / "dataset_dict.json").is_file()
        )

    def is_ours(self) -> bool:
        """Whether this folder is a balanced output (owner file, or what older versions left)."""
        kind = owner_kind(self.path)
        if kind is not None:
            return kind == "balanced"
        return self.marker_path.is_file() or self.selection_path.is_file() or self.meta_path.is_file()

    def claim(self, overwrite: bool, write: bool = True) -> None:
        """Make this folder a balanced output; a non-empty folder that is not one is refused unless
        ``overwrite`` (its README.md, data/ and hf/ would be replaced). ``write=False`` only checks."""
        claim_folder(self.path, "balanced", overwrite, legacy=self.is_ours, write=write)

    def lock(self) -> FileLock:
        """This folder's lock (not yet taken); balance holds it exclusively while it writes."""
        return folder_lock(self.path, f"balanced folder {self.path}")

    def claim_locked(self, overwrite: bool) -> FileLock:
        """:meth:`claim` for a balance run, with this folder's lock taken (and returned, held)."""
        return claim_locked(self.path, "balanced", overwrite, self.lock(), legacy=self.is_ours)

    def has_data(self) -> bool:
        """Whether there is a dataset to read: Hub-layout shards or a save_to_disk folder."""
        return any(self.data_dir.glob("*.parquet")) or (self.hf_dir / "dataset_dict.json").is_file()

    # -- selection and balance.json ------------------------------------------------------------------
    def write_selection(self, table: pa.Table) -> None:
        if table.schema != SELECTION_SCHEMA:
            raise ValueError(f"selection table {table.schema.names} does not follow SELECTION_SCHEMA")
        with atomic_path(self.selection_path) as tmp:
            pq.write_table(table, tmp, compression="zstd")

    def read_selection(self) -> pa.Table:
        """selection.parquet, checked: required columns, unique sample ids, no nulls where needed."""
        table = read_parquet(self.selection_path, what="the balanced selection", fix="run `mmcurate balance` first")
        return check_selection(table, str(self.selection_path))

    def write_meta(self, doc: dict[str, Any]) -> None:
        atomic_write_json(self.meta_path, doc)

    def read_meta(self) -> dict[str, Any]:
        """balance.json; empty when absent."""
        doc = read_json(self.meta_path, what="the balance settings", fix="rerun `mmcurate balance`", required=False)
        return doc if isinstance(doc, dict) else {}

    def bin_edges(self) -> list[float] | None:
        """The discrepancy bin edges the balance recorded (None when it recorded none)."""
        meta = self.read_meta()
        edges = meta.get("bin_edges") or (meta.get("summary") or {}).get("edges")
        if not edges:
            return None
        return [float(e) for e in edges]

    # -- export: staging, install, marker, verification ---------------------------------------------
    def new_staging_dir(self) -> Path:
        """A fresh staging folder inside the balanced folder (same filesystem, so moves are renames),
        locked until it is installed or this process ends."""
        self.path.mkdir(parents=True, exist_ok=True)
        staging = make_temp_dir(self.STAGING_PREFIX, self.path)
        _STAGING_LOCKS[str(staging)] = FileLock(staging / _STAGING_LOCK, f"staging folder {staging}").acquire()
        return staging

    def clean_stale_staging(self) -> None:
        """Remove staging folders left by a killed export: only the export's own debris, and only
        those no live export holds."""
        if not self.path.is_dir():
            return
        for p in self.path.iterdir():
            if not p.name.startswith(self.STAGING_PREFIX) or str(p) in _STAGING_LOCKS:
                continue
            if p.is_dir() and not p.is_symlink():
                try:
                    FileLock(p / _STAGING_LOCK, str(p)).acquire().release()
                except FolderBusyError:
                    continue  # a live export in another process
                except OSError:
                    pass
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)

    def invalidate_export(self) -> None:
        """Remove the export marker: what follows (a new selection, a new export) must never be
        mistaken for a finished export until the new marker is written."""
        self.marker_path.unlink(missing_ok=True)

    def install_export(self, staging: Path, marker: dict[str, Any]) -> None:
        """Move ``staging``'s data/, hf/ and README.md into place; write the marker last.

        Only in a balanced output folder (or an empty one, which becomes one): the names replaced
        here may be a user's own README.md and data/ anywhere else.
        """
        if not self.is_ours():
            self.claim(overwrite=False)
        self.invalidate_export()
        old = staging / ".old"
        old.mkdir()
        for name in (self.DATA_DIR, self.HF_DIR, self.CARD, self.CONFIG_JSON):
            dest = self.path / name
            if dest.exists() or dest.is_symlink():
                os.replace(dest, old / name)
            if (staging / name).exists() or name != self.CONFIG_JSON:
                os.replace(staging / name, dest)
        fsync_dir(self.path)
        atomic_write_json(self.marker_path, marker)
        shutil.rmtree(staging, ignore_errors=True)
        lock = _STAGING_LOCKS.pop(str(staging), None)
        if lock is not None:
            lock.release()

    def read_marker(self) -> dict[str, Any] | None:
        """The export marker, or None when there is none."""
        if not self.marker_path.is_file():
            return None
        try:
            marker = json.loads(self.marker_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MMCurateError(
                f"{self.marker_path}: unreadable export marker ({one_line(exc)}); {FIX_BALANCE}"
            ) from None
        if (
            not isinstance(marker, dict)
            or marker.get("format") != EXPORT_MARKER_FORMAT
            or not isinstance(marker.get("files"), dict)
        ):
            raise MMCurateError(
                f"{self.marker_path}: not an mmcurate export marker ({EXPORT_MARKER_FORMAT}); {FIX_BALANCE}"
            )
        return marker

    def verify_export(self, check_hashes: bool = True) -> dict[str, Any]:
        """The marker, after checking that the export is complete and exactly as the marker lists it.

        Raises when the marker is missing (an export that never finished), a file is missing or
        differs, or ``data/`` holds Parquet files the export did not write (they would be
        published as part of a split).
        """
        marker = self.read_marker()
        if marker is None:
            raise StageNotReadyError(
                f"{self.marker_path}: missing, so the export in {self.path} is absent or did not finish; "
                "rerun `mmcurate balance` to export again"
            )
        for rel, entry in sorted(marker["files"].items()):
            problem = files_match(self.path, {rel: entry}, "sha256" if check_hashes else "size")
            if problem is not None:
                path = self.path / rel
                if not path.is_file():
                    raise MMCurateError(f"{path}: listed in {self.EXPORT_MARKER} but missing; {FIX_BALANCE}")
                raise MMCurateError(f"{path}: changed since it was exported; {FIX_BALANCE}")
        listed = {rel for rel in marker["files"] if rel.startswith(self.DATA_DIR + "/")}
        present = {p.relative_to(self.path).as_posix() for p in self.data_dir.rglob("*.parquet")}
        extra = sorted(present - listed)
        if extra:
            raise MMCurateError(
                f"{self.path / extra[0]}: not written by the export ({len(extra)} such file(s)); remove them or "
                "rerun `mmcurate balance`"
            )
        return marker

    def is_complete(self) -> bool:
        """Whether a finished, intact export is here (sizes checked; hashes are push's job)."""
        try:
            self.verify_export(check_hashes=False)
        except MMCurateError:
            return False
        return True

    def hub_shards(self) -> list[tuple[str, Path]]:
        """(file split name, path) of every Hub-layout shard under data/, sorted by name."""
        out = []
        for f in sorted(self.data_dir.glob("*.parquet")):
            m = HUB_SHARD_NAME.match(f.name)
            if m is None:
                raise MMCurateError(f"{f}: shard name is not {{split}}-XXXXX-of-YYYYY.parquet")
            out.append((m.group("split"), f))
        return out


#: staging folders this process is building, with the lock that tells other processes so
_STAGING_LOCKS: dict[str, FileLock] = {}
_STAGING_LOCK = ".staging.lock"


def check_selection(table: pa.Table, name: str) -> pa.Table:
    """A selection table checked: required columns, non-empty, unique ids, no nulls where needed."""
    require_columns(table.column_names, tuple(SELECTION_SCHEMA.names[:7]), name, "rerun `mmcurate balance`")
    if table.num_rows == 0:
        raise MMCurateError(f"{name}: the selection is empty; nothing to export")
    if pc.count_distinct(table["sample_id"]).as_py() != table.num_rows:
        raise MMCurateError(f"{name}: sample_id values repeat; each sample may be selected once")
    for col in ("sample_id", "label", "split", "bin"):
        if table[col].null_count:
            raise MMCurateError(f"{name}: column '{col}' has nulls; every selected row needs one")
    return table


__all__ = ["BalancedDir", "EXPORT_MARKER_FORMAT", "HUB_SHARD_NAME", "check_selection", "file_entry"]

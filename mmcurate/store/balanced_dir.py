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

One generation: a balance writes ``selection.parquet``, then ``balance.json`` (which records the
selection's size and sha256, and the fingerprint of each ingest folder it sampled), then the export,
whose marker records both files' hashes. Every reader checks the links it relies on (the selection
against balance.json, the export against both, the ingest folder against its recorded fingerprint),
so a balance killed half way (a new selection beside the old bin edges and the old ``data/``) is
refused in one line instead of read as one dataset.

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
from mmcurate.store.ownership import OWNER_FILE, claim_folder, claim_locked, owner_kind
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
    #: what an export is made from (its marker records their hashes)
    INPUTS = (SELECTION, BALANCE_META)
    #: balance.json's record of the selection it belongs to, and of the ingest folders it sampled
    SELECTION_ENTRY = "selection_file"
    INGEST_FINGERPRINTS = "ingest_fingerprints"

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
        """selection.parquet, checked: of the same balance run as balance.json, required columns, unique
        sample ids, no nulls where needed."""
        self.check_generation()
        table = read_parquet(self.selection_path, what="the balanced selection", fix="run `mmcurate balance` first")
        return check_selection(table, str(self.selection_path))

    def write_meta(self, doc: dict[str, Any]) -> None:
        """balance.json, after selection.parquet: it records the selection's size and sha256, so the two
        are known to be one run's (:meth:`check_generation`)."""
        entry = file_entry(self.selection_path) if self.selection_path.is_file() else None
        atomic_write_json(self.meta_path, {**doc, self.SELECTION_ENTRY: entry})

    def read_meta(self) -> dict[str, Any]:
        """balance.json (empty when absent), checked to belong to the selection beside it."""
        self.check_generation()
        return self._raw_meta()

    def _raw_meta(self) -> dict[str, Any]:
        doc = read_json(self.meta_path, what="the balance settings", fix="rerun `mmcurate balance`", required=False)
        return doc if isinstance(doc, dict) else {}

    def check_generation(self) -> None:
        """A one-line error when selection.parquet and balance.json come from two balance runs (one that was
        killed after writing the selection keeps the previous run's balance.json: other bin edges, other
        targets). Folders from before balance.json recorded its selection are not checked."""
        entry = self._raw_meta().get(self.SELECTION_ENTRY)
        if not isinstance(entry, dict) or not self.selection_path.is_file():
            return
        if files_match(self.path, {self.SELECTION: entry}, "sha256") is not None:
            raise MMCurateError(
                f"{self.selection_path}: not the selection {self.BALANCE_META} describes (a balance run was "
                f"interrupted after writing it, or the file was replaced); {FIX_BALANCE}"
            )

    def check_ingest(self, ingest: Any, pool: str | None = None) -> None:
        """A one-line error when ``ingest`` (an :class:`~mmcurate.store.IngestDir`) no longer holds the data
        this balance sampled (ingested again since, with other settings or inputs): its media would be joined
        with a selection made from other clips. ``pool`` names it among several pools."""
        recorded = self._raw_meta().get(self.INGEST_FINGERPRINTS)
        if not isinstance(recorded, dict) or not recorded:
            return
        want = recorded.get(pool) if pool is not None else next(iter(recorded.values()))
        if want is None and len(recorded) == 1:
            want = next(iter(recorded.values()))
        if want is not None and ingest.fingerprint() != want:
            raise MMCurateError(
                f"{ingest.path}: the ingest changed since {self.path} was balanced from it (other inputs or "
                f"settings); {FIX_BALANCE}, or pass the ingest folder it was made from"
            )

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
        staging = make_temp_dir(self.STAGING_PREFIX, self.path)  # a fresh, random name, created exclusively
        atomic_write_json(staging / OWNER_FILE, {"kind": STAGING_KIND})  # what makes it ours to clean later
        _STAGING_LOCKS[str(staging)] = FileLock(staging / _STAGING_LOCK, f"staging folder {staging}").acquire()
        return staging

    def clean_stale_staging(self) -> None:
        """Remove staging folders left by a killed export: only folders that carry the staging owner file
        (a user's ``.tmp-export.notes`` file or folder is not debris), and only those no live export holds."""
        if not self.path.is_dir():
            return
        for p in self.path.iterdir():
            if not p.name.startswith(self.STAGING_PREFIX) or str(p) in _STAGING_LOCKS:
                continue
            if not p.is_dir() or p.is_symlink() or owner_kind(p) != STAGING_KIND:
                continue
            try:
                FileLock(p / _STAGING_LOCK, str(p)).acquire().release()
            except FolderBusyError:
                continue  # a live export in another process
            except OSError:
                pass
            shutil.rmtree(p, ignore_errors=True)

    def invalidate_export(self) -> None:
        """Remove the export marker: what follows (a new selection, a new export) must never be
        mistaken for a finished export until the new marker is written."""
        self.marker_path.unlink(missing_ok=True)

    def install_export(self, staging: Path, marker: dict[str, Any]) -> None:
        """Move ``staging``'s data/, hf/ and README.md into place; write the marker last. The marker also
        records the selection.parquet and balance.json the export was made from (:meth:`verify_export`).

        Only in a balanced output folder (or an empty one, which becomes one): the names replaced
        here may be a user's own README.md and data/ anywhere else.
        """
        if not self.is_ours():
            self.claim(overwrite=False)
        inputs = {name: file_entry(self.path / name) for name in self.INPUTS if (self.path / name).is_file()}
        marker = {**marker, "inputs": inputs}
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
        # the marker is written whole inside the staging folder, then renamed into place: a kill while it is
        # written leaves its temporary in staging (removed with it by clean_stale_staging), not beside data/
        atomic_write_json(staging / self.EXPORT_MARKER, marker)
        os.replace(staging / self.EXPORT_MARKER, self.marker_path)
        fsync_dir(self.path)
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
        inputs = marker.get("inputs")
        for rel, entry in sorted((inputs if isinstance(inputs, dict) else {}).items()):
            if files_match(self.path, {rel: entry}, "sha256") is not None:
                raise MMCurateError(
                    f"{self.path / rel}: not the one this export was made from (a later balance run was interrupted, "
                    f"or the file was replaced), so data/ and README.md describe another selection; {FIX_BALANCE}"
                )
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
#: the owner-file kind of an export's staging folder
STAGING_KIND = "balanced-export-staging"


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

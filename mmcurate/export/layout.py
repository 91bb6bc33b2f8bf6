"""Where the export's files live in the balanced directory, and how a new export replaces an old one.

The balanced directory also holds files other stages write (``selection.parquet``, ``report/``),
so the export cannot swap the whole directory. Instead it builds ``data/``, ``hf/`` and
``README.md`` in a staging folder, removes the completion marker ``export.json``, moves the
three into place, and writes the marker last. A run killed at any point therefore leaves either
the old export with its marker, or files without a valid marker, which :func:`verify_export`
(and so ``mmcurate push``) refuses and a rerun replaces: never a half export that looks whole.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mmcurate.common.atomic import TMP_PREFIX, atomic_write_json, fsync_dir
from mmcurate.common.errors import MMCurateError, StageNotReadyError
from mmcurate.common.hashing import file_sha256

#: Completion marker: the list of exported files with sizes and sha256, written last.
EXPORT_MARKER = "export.json"
MARKER_FORMAT = "mmcurate-export/1"
DATA_DIR = "data"
HF_DIR = "hf"
CARD = "README.md"
#: Selection split names renamed to the Hub's canonical split names (the Hub and
#: ``load_dataset`` infer ``validation`` from a ``val-*`` file name anyway, so both
#: ways of loading agree only if the export uses the canonical name itself).
HUB_SPLIT_NAMES = {"val": "validation", "valid": "validation", "dev": "validation"}
_STAGING_PREFIX = TMP_PREFIX + "export."


def hub_split_name(split: str) -> str:
    """The Hub split name for a selection split (``val`` -> ``validation``)."""
    name = HUB_SPLIT_NAMES.get(split, split)
    if not name.replace("_", "").isalnum():
        raise MMCurateError(f"split name '{split}' cannot be a Hub split; use letters, digits and underscores")
    return name


def new_staging_dir(out_dir: Path) -> Path:
    """A fresh staging folder inside ``out_dir`` (same filesystem, so moves are renames)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=out_dir))


def clean_stale_staging(out_dir: Path) -> None:
    """Remove staging folders left by a killed export (only the export's own debris)."""
    if not out_dir.is_dir():
        return
    for p in out_dir.iterdir():
        if not p.name.startswith(_STAGING_PREFIX):
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def install_export(staging: Path, out_dir: Path, marker: dict[str, Any]) -> None:
    """Move ``staging``'s data/, hf/ and README.md into ``out_dir``; write the marker last."""
    (out_dir / EXPORT_MARKER).unlink(missing_ok=True)
    old = staging / ".old"
    old.mkdir()
    for name in (DATA_DIR, HF_DIR, CARD):
        dest = out_dir / name
        if dest.exists() or dest.is_symlink():
            os.replace(dest, old / name)
        os.replace(staging / name, dest)
    fsync_dir(out_dir)
    atomic_write_json(out_dir / EXPORT_MARKER, marker)
    shutil.rmtree(staging, ignore_errors=True)


def file_entry(path: Path) -> dict[str, Any]:
    """Size and sha256 of one exported file (what the marker and push compare against)."""
    return {"size": path.stat().st_size, "sha256": file_sha256(path)}


def read_marker(dataset_dir: Path) -> dict[str, Any] | None:
    """The export marker of ``dataset_dir``, or None when there is none."""
    path = dataset_dir / EXPORT_MARKER
    if not path.is_file():
        return None
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise MMCurateError(f"{path}: unreadable export marker ({exc}); rerun the export (mmcurate balance)") from None
    if not isinstance(marker, dict) or marker.get("format") != MARKER_FORMAT or not isinstance(marker.get("files"), dict):
        raise MMCurateError(f"{path}: not an mmcurate export marker ({MARKER_FORMAT}); rerun the export (mmcurate balance)")
    return marker


def verify_export(dataset_dir: Path, check_hashes: bool = True) -> dict[str, Any]:
    """Check that ``dataset_dir`` holds a complete export exactly as its marker lists it.

    Returns the marker. Raises :class:`MMCurateError` when the marker is missing (an export
    that never finished), a file is missing or differs, or ``data/`` holds Parquet files the
    export did not write (they would be published as part of a split).
    """
    dataset_dir = Path(dataset_dir)
    marker = read_marker(dataset_dir)
    if marker is None:
        raise StageNotReadyError(
            f"{dataset_dir / EXPORT_MARKER}: missing, so the export in {dataset_dir} is absent or did not finish; "
            "rerun `mmcurate balance` to export again"
        )
    for rel, entry in sorted(marker["files"].items()):
        path = dataset_dir / rel
        if not path.is_file():
            raise MMCurateError(f"{path}: listed in {EXPORT_MARKER} but missing; rerun `mmcurate balance` to export again")
        if path.stat().st_size != entry["size"] or (check_hashes and file_sha256(path) != entry["sha256"]):
            raise MMCurateError(f"{path}: changed since it was exported; rerun `mmcurate balance` to export again")
    listed = {rel for rel in marker["files"] if rel.startswith(DATA_DIR + "/")}
    present = {p.relative_to(dataset_dir).as_posix() for p in (dataset_dir / DATA_DIR).rglob("*.parquet")}
    extra = sorted(present - listed)
    if extra:
        raise MMCurateError(
            f"{dataset_dir / extra[0]}: not written by the export ({len(extra)} such file(s)); remove them or rerun `mmcurate balance`"
        )
    return marker

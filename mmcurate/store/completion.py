"""Completion markers: the one resume scheme of every stage's work units.

A work unit (an ingest shard, one scorer's training job, one re-evaluation run) writes its
output files atomically, then a marker naming them: the unit's *identity* (a hash of everything
its output depends on: settings and inputs), each output's size and sha256, and a small JSON
payload (manifest rows, metrics). A unit counts as done only when its marker exists, its identity
equals the one the current run computes, and every listed file is present with the recorded size
(or sha256, when asked). So a run killed at any instant resumes by redoing exactly the units that
did not finish, a unit whose inputs or settings changed is redone, and a damaged output is redone
instead of trusted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mmcurate.common.atomic import atomic_write_json
from mmcurate.common.hashing import file_sha256

MARKER_FORMAT = "mmcurate-unit/1"

Verify = Literal["size", "sha256"]


def file_entry(path: Path) -> dict[str, Any]:
    """Size and sha256 of one output file (what markers record and checks compare against)."""
    return {"size": path.stat().st_size, "sha256": file_sha256(path)}


def files_match(root: Path, entries: dict[str, dict[str, Any]], verify: Verify = "size") -> str | None:
    """None when every file listed in ``entries`` (paths relative to ``root``) is as recorded, else why not."""
    for rel, entry in sorted(entries.items()):
        path = root / rel
        try:
            size = path.stat().st_size
        except OSError:
            return f"{path} is missing"
        if size != entry.get("size"):
            return f"{path} has {size} bytes, {entry.get('size')} were written"
        if verify == "sha256" and file_sha256(path) != entry.get("sha256"):
            return f"{path} changed since it was written"
    return None


@dataclass(frozen=True)
class UnitMarker:
    """The marker of one work unit: ``path`` is the marker file, output paths are relative to ``root``."""

    path: Path
    root: Path

    def record(self, identity: str, files: Iterable[Path] = (), payload: Any = None) -> None:
        """Mark the unit done; call after its ``files`` are written (atomically) and in place."""
        entries = {Path(os.path.relpath(f, self.root)).as_posix(): file_entry(Path(f)) for f in files}
        atomic_write_json(
            self.path, {"format": MARKER_FORMAT, "identity": identity, "files": entries, "payload": payload}
        )

    def read(self, identity: str, verify: Verify = "size") -> Any:
        """The payload when the unit is done for ``identity`` and its files are intact, else None.

        A payload of None is returned as ``{}`` so that "done" is always truthy.
        """
        doc = self._load()
        if doc is None or doc.get("identity") != identity:
            return None
        if files_match(self.root, doc.get("files") or {}, verify) is not None:
            return None
        payload = doc.get("payload")
        return {} if payload is None else payload

    def read_payload(self) -> Any:
        """The recorded payload whatever the identity (for a caller that has just checked it), else ``{}``."""
        doc = self._load()
        payload = doc.get("payload") if doc is not None else None
        return {} if payload is None else payload

    def wrote(self, path: Path, verify: Verify = "size") -> bool:
        """Whether this marker vouches that ``path`` is the file the unit wrote (same size, or also
        the same sha256): the proof a stage needs before it deletes the file."""
        doc = self._load()
        if doc is None:
            return False
        rel = Path(os.path.relpath(path, self.root)).as_posix()
        entry = (doc.get("files") or {}).get(rel)
        return isinstance(entry, dict) and files_match(self.root, {rel: entry}, verify) is None

    def exists(self) -> bool:
        """Whether a marker of this scheme is there (whatever its identity)."""
        return self._load() is not None

    def clear(self) -> None:
        """Forget the unit (its marker goes first, so a half-replaced output is never trusted)."""
        self.path.unlink(missing_ok=True)

    def _load(self) -> dict[str, Any] | None:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        if not isinstance(doc, dict) or doc.get("format") != MARKER_FORMAT:
            return None
        return doc

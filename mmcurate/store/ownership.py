"""Which output folders are mmcurate's: a stage writes (and ever deletes) only inside its own.

An output folder carries an owner file (``.mmcurate-output.json``, ``{"kind": "ingest"}``) written
before anything else. A stage may write into a folder that is missing, empty, or owned by the
same kind of output; a non-empty folder that is not (a user's project, a raw-data folder, another
stage's output) is refused unless the user passes ``--overwrite``, and even then the stage only
replaces the names it writes. Folders made before owner files existed are recognised by what they
hold (a stage passes that test as ``legacy``).
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

from mmcurate.common.atomic import atomic_write_json, temporary_dests
from mmcurate.common.errors import MMCurateError
from mmcurate.common.files import os_reason
from mmcurate.store.lock import LOCK_NAME, FileLock

OWNER_FILE = ".mmcurate-output.json"
#: names that do not make a folder "non-empty" (our own bookkeeping)
BOOKKEEPING = frozenset({OWNER_FILE, LOCK_NAME})


def owner_kind(folder: Path) -> str | None:
    """The kind of mmcurate output the owner file says ``folder`` is, or None."""
    try:
        doc = json.loads((Path(folder) / OWNER_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    kind = doc.get("kind") if isinstance(doc, dict) else None
    return kind if isinstance(kind, str) else None


def check_output_path(folder: Path, flag: str = "--out") -> None:
    """A one-line error when ``folder`` exists but is not a folder, or lies under a file (it could
    never be created there). Nothing is created: a refused folder is left untouched."""
    folder = Path(folder)
    try:
        os.lstat(folder)
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise MMCurateError(f"{folder}: {os_reason(exc)}; give {flag} a shorter name") from None
    if _lexists(folder) and not _is_dir(folder):
        raise MMCurateError(f"{folder}: exists and is not a folder; give {flag} a folder (it is created if missing)")
    ancestor = Path(os.path.abspath(folder)).parent
    while not _lexists(ancestor) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not _is_dir(folder) and _lexists(ancestor) and not _is_dir(ancestor):
        raise MMCurateError(
            f"{folder}: cannot be created, {ancestor} is a file, not a folder; give {flag} a folder (it is created "
            "if missing)"
        )


def make_output_dir(folder: Path, flag: str = "--out", shown: Path | None = None) -> None:
    """Create the output ``folder`` (and its parents), or a one-line error saying why it cannot be
    (under a file, in a read-only or virtual file system such as /proc, no permission); ``shown``
    names it in the message when ``folder`` is a staging folder next to it."""
    check_output_path(shown or folder, flag)
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MMCurateError(
            f"{shown or folder}: cannot create the output folder ({os_reason(exc)}); give {flag} a folder that can "
            "be written"
        ) from None


def _is_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except (OSError, ValueError):  # a name too long for the file system is no folder either
        return False


def _lexists(path: Path) -> bool:
    try:
        os.lstat(path)
    except (OSError, ValueError):
        return False
    return True


def claim_folder(
    folder: Path,
    kind: str,
    overwrite: bool,
    legacy: Callable[[], bool] = lambda: False,
    flag: str = "--out",
    *,
    write: bool = True,
) -> None:
    """Make sure ``folder`` may hold a ``kind`` output, then mark it so.

    Refuses (one line) a non-empty folder that is neither marked as ``kind`` nor recognised by
    ``legacy`` unless ``overwrite``. Call it while holding the folder's lock; ``write=False`` only
    checks (a stage does that before it takes the lock, so a refused folder is left untouched).
    """
    folder = Path(folder)
    check_output_path(folder, flag)
    if not folder.is_dir():
        if write:
            make_output_dir(folder, flag)
        else:
            return
    found = owner_kind(folder)
    if found == kind:
        return
    others = sorted(p.name for p in folder.iterdir() if p.name not in BOOKKEEPING and not temporary_dests(p.name))
    if others and not overwrite and not (found is None and legacy()):
        what = f"an mmcurate {found} output" if found else "not an mmcurate " + kind + " output"
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise MMCurateError(
            f"{folder}: folder is not empty ({shown}) and is {what}; choose another {flag}, or pass --overwrite "
            f"to write the {kind} output there (only the files mmcurate writes are replaced)"
        )
    if write:
        atomic_write_json(folder / OWNER_FILE, {"kind": kind})


def claim_locked(
    folder: Path,
    kind: str,
    overwrite: bool,
    lock: FileLock,
    legacy: Callable[[], bool] = lambda: False,
) -> FileLock:
    """:func:`claim_folder` for a stage run: check first (a refused folder is left untouched, no
    lock file either), then take ``lock`` (the folder's, not yet held) exclusively and mark the
    folder. Returns the held lock; the caller releases it when the run ends."""
    claim_folder(folder, kind, overwrite, legacy, write=False)
    lock.acquire(exclusive=True)
    try:
        claim_folder(folder, kind, overwrite, legacy)
    except BaseException:
        lock.release()
        raise
    return lock

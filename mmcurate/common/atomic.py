"""Atomic file writes: write to a temporary file in the same directory, fsync, then rename.

A reader (or a resumed run after SIGKILL) therefore sees either the old file or the complete
new one, never a half-written file. Temporary files carry a ``.tmp-`` prefix so that a crash
leaves only debris that :func:`clean_stale_temporaries` can remove.

``tempfile.mkstemp``/``mkdtemp`` create files 0600 and folders 0700 whatever the umask; an output
must get the permissions any other file the user creates gets, so temporaries are set to
``0666``/``0777`` minus the umask before they are renamed into place.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

TMP_PREFIX = ".tmp-"
#: what follows ``.tmp-<dest name>.`` in the temporaries :func:`atomic_path`/:func:`atomic_dir`
#: make: mkstemp's or mkdtemp's 8 random characters (and the destination's suffix). Every temporary
#: is created exclusively under a fresh random name, so none is ever a file a user already had
_TMP_TAIL = re.compile(r"^[a-z0-9_]{8}(?:\.[^/]*)?$")


def current_umask() -> int:
    """The process umask, read without changing it where the system allows (Linux ``/proc``)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: set and restore (brief, at one call site)
    os.umask(mask)
    return mask


def follow_umask(path: str | os.PathLike[str], directory: bool = False) -> None:
    """Give a temporary made by mkstemp (0600) or mkdtemp (0700) the mode a plain create would give."""
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


def make_temp_dir(prefix: str, dir: str | os.PathLike[str]) -> Path:  # noqa: A002 - tempfile's name
    """``tempfile.mkdtemp`` whose folder follows the umask (it becomes an output when renamed)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=dir))
    follow_umask(tmp, directory=True)
    return tmp


def temporary_dests(name: str) -> list[str]:
    """The destination names a temporary called ``name`` may have been made for; empty when ``name``
    is not one of ours (a user's ``.tmp-notes`` is not debris)."""
    if not name.startswith(TMP_PREFIX):
        return []
    body = name[len(TMP_PREFIX) :]
    return [body[:i] for i, ch in enumerate(body) if ch == "." and i and _TMP_TAIL.match(body[i + 1 :])]


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; on success rename it over ``dest``.

    Use it for writers that want a path (``pyarrow.parquet.write_table``, ``savefig``). The
    temporary keeps ``dest``'s suffix so that libraries which infer a format from it still work.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + dest.name + ".", suffix=suffix or dest.suffix, dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    follow_umask(tmp_path)
    try:
        yield tmp_path
        _fsync_file(tmp_path)
        os.replace(tmp_path, dest)
        fsync_dir(dest.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_bytes(dest: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``dest`` atomically."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(dest: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``dest`` atomically."""
    atomic_write_bytes(dest, text.encode("utf-8"))


def atomic_write_json(dest: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON (stable bytes for equal content)."""
    atomic_write_text(dest, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


@contextlib.contextmanager
def atomic_dir(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory; on success replace ``dest`` with it.

    Used for outputs that are folders (``datasets.save_to_disk``, a report folder). An existing
    ``dest`` is moved aside first and deleted only once the new folder is in place.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(TMP_PREFIX + dest.name + ".", dest.parent)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    install_dir(tmp, dest)


def install_dir(finished: str | os.PathLike[str], dest: str | os.PathLike[str]) -> None:
    """Replace the folder ``dest`` with the complete folder ``finished`` (on the same filesystem).

    The one install step of every folder output (:func:`atomic_dir`, a resumable export's staging folder):
    an existing ``dest`` is moved aside into a fresh folder of a random name made for it
    (``.tmp-<name>.<random>``, never a name a user may have, debris :func:`clean_stale_temporaries`
    recognises) and deleted only once the new folder is in place, so ``dest`` is at every instant the old
    folder or the new one."""
    finished, dest = Path(finished), Path(dest)
    aside = None
    if dest.exists():
        aside = make_temp_dir(TMP_PREFIX + dest.name + ".", dest.parent)
        os.replace(dest, aside / dest.name)
    os.replace(finished, dest)
    fsync_dir(dest.parent)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def clean_stale_temporaries(
    folder: str | os.PathLike[str],
    owned: Callable[[str], bool] | None = None,
    older_than: float | None = None,
) -> int:
    """Remove the temporaries a killed run left in ``folder``; return how many were removed.

    Without ``owned``, every ``.tmp-*`` entry goes (for a folder the caller owns outright, such as
    a browse site). With ``owned``, only names this module makes (``.tmp-<dest>.<random>``) whose
    destination name it accepts: in a folder a user may share, their ``.tmp-notes`` is not debris.
    The caller must know that no live run is writing there (it holds the folder's lock): a live
    run's temporary looks exactly like debris. Where live runs may share the folder (several ranks),
    ``older_than`` (seconds) keeps every temporary modified more recently than that.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    n = 0
    now = time.time()
    for p in folder.iterdir():
        if owned is None:
            ours = p.name.startswith(TMP_PREFIX)
        else:
            ours = any(owned(d) for d in temporary_dests(p.name))
        if ours and older_than is not None:
            try:
                ours = now - p.stat().st_mtime > older_than
            except OSError:
                ours = False
        if ours:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
            n += 1
    return n


def _fsync_file(path: Path) -> None:
    if path.is_dir():
        return
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (best effort where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

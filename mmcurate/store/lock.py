"""Locks on output folders, so two runs never write (or clean) one folder at the same time.

A stage holds its output folder's lock for the whole run: exclusive for a plain run, shared for a
part of an array job (parts write disjoint units, and each holds an exclusive lock on the unit it
writes). Knowing no other run is live is also what makes debris removable: a temporary file found
while holding the exclusive lock cannot belong to a live run, so it belongs to a dead one.

Locks are ``fcntl.flock`` locks on a lock file inside the folder (``.mmcurate.lock``): the kernel
drops them when the process dies, however it dies, so a SIGKILL never leaves a folder locked.
Lock files are never deleted (deleting one while another process waits on it would give two
holders). Where ``flock`` does not exist (Windows) locking is a no-op.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

from mmcurate.common.console import warn
from mmcurate.common.errors import MMCurateError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".mmcurate.lock"
#: seconds a part of an array job waits for another part's short exclusive hold (claiming, cleaning)
ARRAY_LOCK_WAIT = 120.0
#: errors that mean "no locks here", not "locked"
_NO_LOCKS = frozenset(getattr(errno, name) for name in ("ENOLCK", "EOPNOTSUPP", "ENOSYS") if hasattr(errno, name))
_unsupported: dict[str, bool] = {}


class FolderBusyError(MMCurateError):
    """Another live run holds the lock."""


class FileLock:
    """An flock on ``path`` (created when absent); ``what`` names the locked thing in messages."""

    def __init__(self, path: Path, what: str) -> None:
        self.path, self.what = Path(path), what
        self._fd: int | None = None
        self.mode: str | None = None  # "shared" or "exclusive" while held

    def acquire(self, exclusive: bool = True, wait: float = 0.0) -> FileLock:
        """Take the lock (or convert the held one), waiting up to ``wait`` seconds for another run to
        let go; :class:`FolderBusyError` when it does not."""
        if self._fd is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                raise MMCurateError(
                    f"{self.path}: cannot create the lock file of {self.what} ({exc.strerror})"
                ) from None
        if fcntl is not None and not _unsupported.get(str(self.path.parent)):
            flags = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(self._fd, flags)
                    break
                except OSError as exc:
                    if exc.errno in _NO_LOCKS:  # a file system without flock (some network mounts)
                        _unsupported[str(self.path.parent)] = True
                        warn(
                            f"{self.path.parent}: this file system does not support locks; make sure no "
                            "other mmcurate run writes this folder at the same time"
                        )
                        break
                    if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                        raise
                    if time.monotonic() >= deadline:
                        self.release()
                        raise FolderBusyError(
                            f"{self.what} is in use by another mmcurate run (lock {self.path}); wait for it to "
                            "finish, or write to another folder"
                        ) from None
                    time.sleep(0.05)
        self.mode = "exclusive" if exclusive else "shared"
        return self

    def acquire_for_run(self, parts: int) -> FileLock:
        """Take the lock as a stage run holds its output: exclusive for a plain run; shared for
        one of ``parts`` > 1 parts of an array job, waiting up to :data:`ARRAY_LOCK_WAIT` for another
        part's short exclusive hold (claiming, cleaning)."""
        alone = parts == 1
        return self.acquire(exclusive=alone, wait=0.0 if alone else ARRAY_LOCK_WAIT)

    def try_exclusive(self) -> bool:
        """Convert a held lock to exclusive when no other run holds it. When another does, return
        False holding the lock as before (converting is not atomic, so it is taken again, after any
        run that held it exclusively has let go)."""
        previous = self.mode
        try:
            self.acquire(exclusive=True)
        except FolderBusyError:
            if previous is not None:
                self.acquire(exclusive=previous == "exclusive", wait=math.inf)
            return False
        return True

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
        self.mode = None

    def __enter__(self) -> FileLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def folder_lock(folder: Path, what: str | None = None) -> FileLock:
    """The lock of an output folder (not yet taken)."""
    return FileLock(Path(folder) / LOCK_NAME, what or str(folder))


@contextlib.contextmanager
def locked_folder(folder: Path, exclusive: bool = True, what: str | None = None) -> Iterator[FileLock]:
    """Hold ``folder``'s lock for the duration of the block (created with the folder if needed)."""
    lock = folder_lock(folder, what)
    lock.acquire(exclusive=exclusive)
    try:
        yield lock
    finally:
        lock.release()

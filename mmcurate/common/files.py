"""Walking a raw data folder the same way everywhere (folder discovery and dataset adapters).

Every input under RAW_DIR must be accounted for, so every layout sees the same files: sorted
POSIX paths relative to RAW_DIR, hidden files and folders skipped (a release cloned with git
carries a ``.git/`` of thousands of objects), symlinked files included, symlinked folders not
followed (a tree linking back to itself cannot loop), and only regular files listed: a FIFO,
socket or device file is never opened (reading a FIFO waits forever for a writer). What the walk
leaves out is listed by :func:`skipped_entries`, so discovery can report it instead of letting it
vanish from every count.

Every reader of a user's file opens it through :func:`open_regular` (or the helpers built on
it), which refuses anything but a regular file before reading a byte, and parses JSON with
:func:`parse_json`, which turns every way a hostile document can fail into a one-line error.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path, PurePosixPath
from typing import IO, Any

from mmcurate.common.errors import MMCurateError, one_line

#: File extensions treated as media (lower case, with dot): video containers and audio files.
MEDIA_EXTENSIONS = frozenset(
    ".mp4 .m4v .mov .mkv .webm .avi .flv .ts .mts .m2ts .mpg .mpeg .ogv .ogg .3gp .wmv .asf .vob .mxf .dv"
    " .wav .flac .mp3 .m4a .aac .opus .oga .wma .aiff .aif".split()
)


def skipped_entries(raw_dir: Path) -> list[tuple[str, str]]:
    """What :func:`list_files` does not see, with why: hidden files, hidden folders (once, not their
    content), symbolic links to folders, and folders that cannot be read. Sorted by path.

    Discovery reports these so that nothing under RAW_DIR vanishes from every count.
    """
    raw_dir = Path(raw_dir)
    out: list[tuple[str, str]] = []

    def rel(path: str) -> str:
        return Path(path).relative_to(raw_dir).as_posix()

    def unreadable(exc: OSError) -> None:
        if exc.filename is not None and Path(exc.filename) != raw_dir:
            out.append((rel(exc.filename), f"folder cannot be read: {exc.strerror or type(exc).__name__}"))

    for root, dirs, files in os.walk(raw_dir, onerror=unreadable):
        kept = []
        for d in sorted(dirs):
            full = os.path.join(root, d)
            if d.startswith("."):
                out.append((rel(full), "hidden folder"))
            elif os.path.islink(full):
                out.append((rel(full), "link to a folder, not followed"))
            else:
                kept.append(d)
        dirs[:] = kept
        for name in files:
            full = os.path.join(root, name)
            if name.startswith("."):
                out.append((rel(full), "hidden file"))
            elif _special_kind(full) is not None:
                out.append((rel(full), f"not a regular file ({_special_kind(full)}), not opened"))
    out.sort()
    return out


def list_files(raw_dir: Path) -> list[str]:
    """Every non-hidden file under ``raw_dir``, as sorted POSIX paths relative to it."""
    raw_dir = Path(raw_dir)
    out: list[str] = []
    for root, dirs, files in os.walk(raw_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel_root = Path(root).relative_to(raw_dir)
        for name in files:
            if name.startswith(".") or _special_kind(os.path.join(root, name)) is not None:
                continue
            out.append((rel_root / name).as_posix() if str(rel_root) != "." else name)
    out.sort()
    return out


def is_media_name(path: str) -> bool:
    """Whether the file name has a known audio/video extension."""
    return PurePosixPath(path).suffix.lower() in MEDIA_EXTENSIONS


# ----------------------------------------------------------------------------- reading users' files


class NotRegularFileError(OSError):
    """A path that names a FIFO, socket, device or folder where a file was expected. An OSError, so
    every reader's ``except OSError`` reports it like any unreadable file (``strerror`` says why)."""


def _kind_of(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _special_kind(path: str) -> str | None:
    """What ``path`` is when it (or what its link points to) exists and is neither a regular file
    nor a folder: a FIFO, a socket, a device; None otherwise (broken links included: they fail
    later with a reason, like any unreadable file)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return _kind_of(mode)


def os_reason(exc: OSError) -> str:
    """A short reason for an OSError, without the path (messages name the file themselves)."""
    if exc.errno == errno.ENAMETOOLONG:
        return "file name too long for the file system"
    return str(exc.strerror or type(exc).__name__)


def regular_file_problem(path: str | os.PathLike[str]) -> str | None:
    """None when ``path`` is a regular file (or a link to one), else why it cannot be read as one
    ("not found", "a FIFO, not a regular file", "file name too long..."). Never raises."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return "not found" if exc.errno in (errno.ENOENT, errno.ENOTDIR) else os_reason(exc)
    except ValueError:  # a NUL byte in the name
        return "not a valid file name"
    if stat.S_ISREG(mode):
        return None
    return f"{_kind_of(mode)}, not a regular file"


def open_regular(
    path: str | os.PathLike[str], mode: str = "rb", *, encoding: str | None = None, newline: str | None = None
) -> IO[Any]:
    """``open(path, mode)`` for reading, refusing anything but a regular file before reading.

    The path is checked, then opened without blocking (opening a FIFO for reading otherwise waits
    for a writer) and checked again on the open descriptor (a file swapped in between is caught),
    then switched back to blocking reads. Raises :class:`NotRegularFileError` (an OSError) for a
    FIFO, socket, device or folder, and OSError for anything that cannot be opened.
    """
    if any(c in mode for c in "wax+"):
        raise ValueError("open_regular opens files for reading only")
    problem = regular_file_problem(path)
    if problem is not None and problem.endswith("not a regular file"):
        raise NotRegularFileError(errno.EINVAL, problem, os.fspath(path))
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st_mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(st_mode):
            raise NotRegularFileError(errno.EINVAL, f"{_kind_of(st_mode)}, not a regular file", os.fspath(path))
        os.set_blocking(fd, True)
        return open(fd, mode, encoding=encoding, newline=newline)  # noqa: SIM115 - the caller closes it
    except BaseException:
        os.close(fd)
        raise


def read_regular_bytes(path: str | os.PathLike[str], limit: int | None = None, what: str = "file") -> bytes:
    """The bytes of a regular file (:func:`open_regular`); with ``limit``, a file larger than that
    is refused (an OSError saying so) before anything is read or allocated."""
    with open_regular(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        if limit is not None and size > limit:
            raise OSError(errno.EFBIG, f"{what} of {size:,} bytes is larger than the {limit:,} allowed", str(path))
        data = fh.read()
    return data  # type: ignore[no-any-return]


def read_regular_text(path: str | os.PathLike[str], encoding: str = "utf-8") -> str:
    """The text of a regular file (:func:`open_regular`); raises OSError or UnicodeDecodeError."""
    with open_regular(path, "r", encoding=encoding) as fh:
        return fh.read()  # type: ignore[no-any-return]


def parse_json(text: str | bytes, what: str) -> Any:
    """``json.loads(text)``, with every way a hostile document fails as a one-line error naming
    ``what``: syntax errors, nesting deeper than Python's recursion limit (RecursionError), and
    integers longer than Python converts (ValueError)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise MMCurateError(f"{what}: not valid JSON (nested too deeply)") from None
    except json.JSONDecodeError as exc:
        raise MMCurateError(f"{what}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except (ValueError, UnicodeDecodeError) as exc:  # e.g. an integer of more than 4300 digits
        raise MMCurateError(f"{what}: not valid JSON ({one_line(exc)})") from None

"""Walking a raw data folder the same way everywhere (folder discovery and dataset adapters).

Every input under RAW_DIR must be accounted for, so every layout sees the same files: sorted
POSIX paths relative to RAW_DIR, hidden files and folders skipped (a release cloned with git
carries a ``.git/`` of thousands of objects), symlinked files included, symlinked folders not
followed (a tree linking back to itself cannot loop). What the walk leaves out is listed by
:func:`skipped_entries`, so discovery can report it instead of letting it vanish from every count.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

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
        out.extend((rel(os.path.join(root, name)), "hidden file") for name in files if name.startswith("."))
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
            if name.startswith("."):
                continue
            out.append((rel_root / name).as_posix() if str(rel_root) != "." else name)
    out.sort()
    return out


def is_media_name(path: str) -> bool:
    """Whether the file name has a known audio/video extension."""
    return PurePosixPath(path).suffix.lower() in MEDIA_EXTENSIONS

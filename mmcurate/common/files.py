"""Walking a raw data folder the same way everywhere (folder discovery and dataset adapters).

Every input under RAW_DIR must be accounted for, so every layout sees the same files: sorted
POSIX paths relative to RAW_DIR, hidden files and folders skipped (a release cloned with git
carries a ``.git/`` of thousands of objects), symlinked files included, symlinked folders not
followed (a tree linking back to itself cannot loop).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

#: File extensions treated as media (lower case, with dot): video containers and audio files.
MEDIA_EXTENSIONS = frozenset(
    ".mp4 .m4v .mov .mkv .webm .avi .flv .ts .mts .m2ts .mpg .mpeg .ogv .ogg .3gp .wmv .asf .vob .mxf .dv"
    " .wav .flac .mp3 .m4a .aac .opus .oga .wma .aiff .aif".split()
)


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

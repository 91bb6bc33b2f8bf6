"""The cards' media files: stored JPEG frames and FLAC audio, copied byte for byte, reused across builds.

Each file is named by a hash of its bytes (``media/ab/ab12....jpg``), so a rebuild reuses every
file whose content is unchanged and can never show a stale one: changed bytes get a new name.
A file is written under a ``.tmp-`` name and renamed into place, so a killed build leaves no
partial file under a final name. Files are not fsynced one by one (that would cost minutes on
100k samples); instead a file is reused only when its size matches, so one truncated by a crash
is written again by the next build. Files no longer referenced are removed at the end.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mmcurate.common.atomic import TMP_PREFIX, follow_umask

MEDIA_DIR = "media"
_NAME = re.compile(r"^[0-9a-f]{20}\.(jpg|flac)$")
#: a temporary :meth:`MediaStore.put` made (mkstemp's 8 random characters after the name)
_TMP_NAME = re.compile(r"^\.tmp-[0-9a-f]{20}\.(jpg|flac)\.[a-z0-9_]{8}$")


@dataclass
class MediaStats:
    """What a build did with media files."""

    written: int = 0
    reused: int = 0
    removed: int = 0
    bytes_written: int = 0
    bytes_total: int = 0

    @property
    def files(self) -> int:
        return self.written + self.reused


class MediaStore:
    """Content-addressed media files under ``SITE/media``; :meth:`put` returns the relative path."""

    def __init__(self, site: Path) -> None:
        self.site = site
        self.root = site / MEDIA_DIR
        self.sizes: dict[str, int] = {}
        self.stats = MediaStats()

    def put(self, data: bytes, ext: str) -> str:
        digest = hashlib.blake2b(data, digest_size=10).hexdigest()
        rel = f"{MEDIA_DIR}/{digest[:2]}/{digest}.{ext}"
        if rel in self.sizes:  # the same bytes twice in this build (a repeated frame)
            return rel
        self.sizes[rel] = len(data)
        self.stats.bytes_total += len(data)
        path = self.site / rel
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_size == len(data):
                self.stats.reused += 1
                return rel
        path.parent.mkdir(parents=True, exist_ok=True)
        # a fresh random name, created exclusively: never a file (or a link) someone put there
        fd, tmp_name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}.", dir=path.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            follow_umask(tmp)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        self.stats.written += 1
        self.stats.bytes_written += len(data)
        return rel

    def prune(self) -> int:
        """Remove media files this build did not reference, and temporaries of killed builds."""
        if not self.root.is_dir():
            return 0
        removed = 0
        for sub in sorted(self.root.iterdir()):
            if not sub.is_dir() or not re.fullmatch(r"[0-9a-f]{2}", sub.name):
                continue
            for f in sub.iterdir():
                rel = f"{MEDIA_DIR}/{sub.name}/{f.name}"
                if rel in self.sizes or not (_TMP_NAME.match(f.name) or _NAME.match(f.name)):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    f.unlink()
                    removed += 1
            with contextlib.suppress(OSError):
                sub.rmdir()  # only when empty
        self.stats.removed = removed
        return removed


def pick_frames(count: int, limit: int) -> list[int]:
    """Indices of at most ``limit`` frames spread evenly over ``count`` (all when ``limit`` is 0)."""
    if limit <= 0 or count <= limit:
        return list(range(count))
    if limit == 1:
        return [count // 2]
    return sorted({round(k * (count - 1) / (limit - 1)) for k in range(limit)})

"""Stable hashes of files and configs: the identity that resume and staleness checks rely on."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from mmcurate.common.files import open_regular


def file_sha256(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open_regular(path) as fh:  # never a FIFO or device (a read that never ends)
        while chunk := fh.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def bytes_sha256(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: equal content gives equal text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(obj: Any, length: int = 12) -> str:
    """Short hex digest of a JSON-able config; changes exactly when the content changes."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()[:length]

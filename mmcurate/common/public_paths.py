"""Paths in what mmcurate publishes: relative to the raw folder, never the machine's.

A dataset card is pushed to a Hub and a browse site is shared; both used to carry the user's
absolute paths (``/home/alice/projects/raw``, the input manifest's folder, the work directory).
They say nothing a reader can use and a good deal about the machine. Before such a document is
written, every absolute path in it (whole values, and paths inside longer text) is rewritten: a
path inside the raw folder becomes relative to it, the raw folder itself its own name, and any
other path its last name (``/home/alice/labels.csv`` -> ``labels.csv``). Local bookkeeping
(``config.json``, ``balance.json``) keeps real paths: stages need them to find each other.
"""

from __future__ import annotations

import os
import posixpath
import re
from typing import Any

#: an absolute POSIX path (or a ``~/`` one) standing on its own in text: not the tail of a URL
#: (``https://host/x``), of a relative path (``a/b``) or of a ratio (``80/10/10``)
_ABSOLUTE = re.compile(r"(?<![\w.:/\\~-])(?:~)?/[^\s\"'`|<>,;()\[\]{}*]*")


def public_path(path: str, raw_dir: str | os.PathLike[str] | None) -> str:
    """``path`` as it may be published: relative to ``raw_dir`` when inside it, else its last name."""
    text = str(path)
    if not text.startswith(("/", "~/")):
        return text
    norm = posixpath.normpath(text)
    if raw_dir:
        raw = posixpath.normpath(str(raw_dir))
        if norm == raw:
            return posixpath.basename(raw) or "."
        if norm.startswith(raw.rstrip("/") + "/"):
            return posixpath.relpath(norm, raw)
    return posixpath.basename(norm) or "."


def public_text(text: str, raw_dir: str | os.PathLike[str] | None) -> str:
    """``text`` with every absolute path in it made public (:func:`public_path`)."""
    if "/" not in text:
        return text
    if text.startswith(("/", "~/")) and "\n" not in text:  # a whole value that is a path (spaces and all)
        return public_path(text, raw_dir)
    return _ABSOLUTE.sub(lambda m: public_path(m.group(0), raw_dir), text)


def public_paths(value: Any, raw_dir: str | os.PathLike[str] | None) -> Any:
    """A JSON-like ``value`` (dicts, lists, strings, numbers) with every string made public; keys too."""
    if isinstance(value, str):
        return public_text(value, raw_dir)
    if isinstance(value, dict):
        return {public_paths(k, raw_dir): public_paths(v, raw_dir) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [public_paths(v, raw_dir) for v in value]
    if isinstance(value, os.PathLike):
        return public_path(os.fspath(value), raw_dir)
    return value


__all__ = ["public_path", "public_paths", "public_text"]

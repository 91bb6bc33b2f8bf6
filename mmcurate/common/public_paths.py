"""Paths in what mmcurate publishes: short names and relative paths, never the machine's folders.

Why: a dataset card and its configuration are pushed to a Hub, and a browse site is shared; both used to carry
the user's absolute paths (``/home/alice/projects/raw``, the input manifest's folder, the work directory). They
say nothing a reader can use and a good deal about the machine. Before such a document is written, every
absolute path in it (whole values, and paths inside longer text; dictionary keys too) is rewritten:

- a path inside the raw folder becomes relative to it (``/data/raw/cat/1.mp4`` -> ``cat/1.mp4``), the raw
  folder itself ``<raw>``;
- the known folders become short names: the export folder ``.``, each ingest folder ``ingest`` or its pool
  name, the home folder ``~`` (a path inside one keeps its tail: ``ingest/manifest.parquet``);
- any other absolute path becomes its last name (``/home/alice/labels.csv`` -> ``labels.csv``).

Local bookkeeping (``config.json``, ``balance.json``) keeps real paths: stages need them to find each other.
One module does this for every caller (the export's card and configuration, the card renderer, browse).
"""

from __future__ import annotations

import functools
import os
import posixpath
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: what the raw folder itself is shown as
RAW = "<raw>"

#: the characters a path in text runs over (it stops at white space, quotes, brackets and separators)
_PATH_CHARS = r"[^\s\"'`|<>,;()\[\]{}*]"
#: an absolute POSIX path (or a ``~/`` one) standing on its own in text: not the tail of a URL
#: (``https://host/x``), of a relative path (``a/b``), of a ratio (``80/10/10``) or of a short name (``<raw>/``)
_ABSOLUTE = re.compile(r"(?<![\w.:/\\~<>-])(?:~)?/" + _PATH_CHARS + "*")


def path_roots(
    out_dir: str | os.PathLike[str] | None = None,
    ingest_dirs: Mapping[str, str | os.PathLike[str]] | None = None,
    raw_dir: str | os.PathLike[str] | None = None,
    *,
    home: bool = True,
) -> dict[str, str]:
    """Absolute folder -> the name it is shown under, longest first (so that the deepest match wins).

    Each folder is entered as given and resolved (a symlinked temporary folder is found either way)."""
    roots: dict[str, str] = {}

    def add(path: str | os.PathLike[str], name: str) -> None:
        for form in (posixpath.normpath(str(Path(path).absolute())), str(Path(path).resolve())):
            if form != "/":
                roots[form] = name

    for name, path in (ingest_dirs or {}).items():
        add(path, name)
    if raw_dir:
        add(raw_dir, RAW)
    if out_dir:
        add(out_dir, ".")
    home_dir = os.path.expanduser("~")
    if home and home_dir and home_dir != "/":
        add(home_dir, "~")
    return dict(sorted(roots.items(), key=lambda kv: -len(kv[0])))


@functools.lru_cache(maxsize=64)
def _raw_roots(raw_dir: str | None) -> tuple[tuple[str, str], ...]:
    if not raw_dir or not raw_dir.startswith("/"):  # no folder, or one already published (``<raw>``)
        return ()
    return tuple(path_roots(raw_dir=raw_dir, home=False).items())


Roots = Mapping[str, str] | str | os.PathLike[str] | None


def _as_roots(roots: Roots) -> Mapping[str, str]:
    """A mapping from :func:`path_roots`, or a raw folder alone (``None``: no known folder)."""
    if isinstance(roots, Mapping):
        return roots
    return dict(_raw_roots(os.fspath(roots) if roots else None))


def _shown(name: str, rest: str) -> str:
    """How ``ROOT + rest`` is shown, ``ROOT`` being shown as ``name``."""
    if not rest.strip("/"):
        return name
    return rest.lstrip("/") if name in (RAW, ".") else name + "/" + rest.lstrip("/")


def public_path(path: str | os.PathLike[str], roots: Roots) -> str:
    """``path`` as it may be published (see the module doc); relative paths are returned as they are."""
    text = os.fspath(path)
    if not text.startswith(("/", "~/")):
        return text
    norm = posixpath.normpath(text)
    for root, name in _as_roots(roots).items():
        if norm == root or norm.startswith(root.rstrip("/") + "/"):
            return _shown(name, norm[len(root) :])
    return posixpath.basename(norm) or "."


def public_text(text: str, roots: Roots) -> str:
    """``text`` with every absolute path in it made public (:func:`public_path`)."""
    if "/" not in text:
        return text
    mapping = _as_roots(roots)
    if text.startswith(("/", "~/")) and "\n" not in text:  # a whole value that is a path (spaces and all)
        return public_path(text, mapping)
    for root, name in mapping.items():  # known folders first: their paths may hold spaces
        if root in text:
            pattern = r"(?<![\w.:/\\~-])" + re.escape(root) + "(/" + _PATH_CHARS + "*)?(?!" + _PATH_CHARS + ")"
            text = re.sub(pattern, lambda m, name=name: _shown(name, m.group(1) or ""), text)
    return _ABSOLUTE.sub(lambda m: public_path(m.group(0), mapping), text)


def public_paths(value: Any, roots: Roots) -> Any:
    """A JSON-like ``value`` (dicts, lists, strings, numbers) with every string made public; keys too."""
    mapping = _as_roots(roots)
    if isinstance(value, str):
        return public_text(value, mapping)
    if isinstance(value, Mapping):
        return {public_paths(k, mapping): public_paths(v, mapping) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [public_paths(v, mapping) for v in value]
    if isinstance(value, os.PathLike):
        return public_path(value, mapping)
    return value


__all__ = ["RAW", "path_roots", "public_path", "public_paths", "public_text"]

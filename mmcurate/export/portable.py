"""Paths as a published dataset may show them: relative, never the maker's absolute folders.

Why: the card and its configuration go to the Hub; ``/home/alice/projects/...`` or a temporary
folder there says nothing to a reader and tells the world about the maker's machine. Known folders
become short names (the export folder ``.``, each ingest folder ``ingest`` or its pool name, the raw
folder ``<raw>``, the home folder ``~``); any other absolute path is cut to ``<local>/`` and its
last name, inside longer strings too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: an absolute POSIX path inside a longer string (not a ratio such as 80/10/10: it starts after no word)
_ABSOLUTE = re.compile(r"(?<![\w~<>.:/-])/(?:[\w.+@-]+/)*[\w.+@-]+")


def path_roots(out_dir: Path, ingest_dirs: Mapping[str, Path], raw_dir: str | None) -> dict[str, str]:
    """Absolute folder -> the name it is shown under, longest first (so that the deepest match wins)."""
    roots: dict[str, str] = {}
    for name, path in ingest_dirs.items():
        roots[str(Path(path).resolve())] = name
        roots[str(Path(path).absolute())] = name
    if raw_dir:
        roots[str(Path(raw_dir).resolve())] = "<raw>"
        roots[str(Path(raw_dir))] = "<raw>"
    roots[str(Path(out_dir).resolve())] = "."
    roots[str(Path(out_dir).absolute())] = "."
    home = os.path.expanduser("~")
    if home and home != "/":
        roots[str(Path(home).resolve())] = "~"
        roots[home] = "~"
    return dict(sorted(roots.items(), key=lambda kv: -len(kv[0])))


def portable(value: Any, roots: Mapping[str, str]) -> Any:
    """``value`` (JSON-like) with every absolute path made relative (see the module doc)."""
    if isinstance(value, str):
        return portable_text(value, roots)
    if isinstance(value, Mapping):
        return {k: portable(v, roots) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(v, roots) for v in value]
    return value


def portable_text(text: str, roots: Mapping[str, str]) -> str:
    for root, name in roots.items():
        if root and root != "/" and root in text:
            text = re.sub(re.escape(root) + r"(?=[/\s'\"),;:|\]]|$)", name, text)
    return _ABSOLUTE.sub(lambda m: "<local>/" + m.group(0).rstrip("/").rsplit("/", 1)[-1], text)

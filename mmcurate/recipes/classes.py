"""The class lists shipped with mmcurate, one text file per dataset.

The field's code disagrees on class lists (Kinetics-Sounds alone has 31-, 32-, 33- and 34-class
versions in circulation), so each list is a file with its provenance in a comment header, and
its order is the ClassLabel order the exports use. The canonical copies live inside the package
(``mmcurate/recipes/classes/``) so an installed mmcurate finds them; ``manifests/classes/`` in
the repository holds identical copies for readers, and a test keeps the two in sync.
"""

from __future__ import annotations

from pathlib import Path

from mmcurate.common.errors import MMCurateError

#: Folder of the packaged class lists.
CLASSES_DIR = Path(__file__).resolve().parent / "classes"


def available_class_lists() -> list[str]:
    """Names accepted by :func:`class_list` (file stems under ``classes/``)."""
    return sorted(p.stem for p in CLASSES_DIR.glob("*.txt"))


def class_list_path(name: str) -> Path:
    """The packaged file holding class list ``name``."""
    path = CLASSES_DIR / f"{name}.txt"
    if not path.is_file():
        raise MMCurateError(
            f"no class list named '{name}' (looked for {path}); available: {', '.join(available_class_lists())}"
        )
    return path


def parse_class_list(text: str) -> list[str]:
    """One class name per line; ``#`` starts a comment line; blank lines are skipped.

    Names are kept exactly (inner spaces, commas and parentheses are part of e.g. VGGSound's
    "male speech, man speaking"); only surrounding whitespace is dropped.
    """
    names: list[str] = []
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        names.append(s)
    return names


def class_list(name: str) -> list[str]:
    """The class names of dataset ``name`` (e.g. ``"cremad"``), in ClassLabel order."""
    path = class_list_path(name)
    names = parse_class_list(path.read_text(encoding="utf-8"))
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise MMCurateError(f"{path}: class list repeats {', '.join(dup)}")
    return names

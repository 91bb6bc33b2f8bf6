"""Dataset adapters for the field's audio-visual benchmarks, and their class lists.

``mmcurate ingest RAW_DIR --layout NAME`` looks up ``LAYOUTS[NAME]`` and calls
``discover(raw_dir, **options)``; each adapter turns an official release, laid out as its
authors ship it, into :class:`~mmcurate.ingest.items.InputItem` s (label, split, group,
segment) and :class:`~mmcurate.ingest.items.Failure` s, and lists the files it ignores.
:func:`run_layout` is the checked entry point for options coming from the command line or a
YAML recipe (unknown names and badly typed values become one-line errors).

The generic ``folders`` and ``manifest`` layouts live in :mod:`mmcurate.ingest`.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from pathlib import Path

from mmcurate.common.errors import MMCurateError
from mmcurate.ingest.items import Discovery
from mmcurate.recipes import ave, cremad, kinetics_sounds, vggsound
from mmcurate.recipes.classes import available_class_lists, class_list, class_list_path

#: layout name -> ``discover(raw_dir, **options) -> Discovery``
LAYOUTS: dict[str, Callable[..., Discovery]] = {
    "cremad": cremad.discover,
    "kinetics_sounds": kinetics_sounds.discover,
    "vggsound": vggsound.discover,
    "ave": ave.discover,
}

#: layout name -> the class list it labels with (``class_list(CLASS_LISTS[name])``)
CLASS_LISTS: dict[str, str] = {name: name for name in LAYOUTS}

__all__ = [
    "CLASS_LISTS",
    "LAYOUTS",
    "available_class_lists",
    "class_list",
    "class_list_path",
    "layout_options",
    "run_layout",
]


def layout_options(name: str) -> dict[str, object]:
    """The options adapter ``name`` accepts, with their defaults (for ``--help`` and errors)."""
    fn = _layout(name)
    return {
        p.name: p.default
        for p in inspect.signature(fn).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def run_layout(name: str, raw_dir: Path, options: Mapping[str, object] | None = None) -> Discovery:
    """Run adapter ``name`` on ``raw_dir`` with ``options`` checked and converted.

    Option names may use dashes or underscores. Values may be strings (``--layout-option
    val_fraction=0.2``) or YAML scalars; they are converted to the parameter's type, and
    ``none``/``null`` or an empty string give None where the option allows it.
    """
    fn = _layout(name)
    accepted = layout_options(name)
    hints = typing.get_type_hints(fn)
    kwargs: dict[str, object] = {}
    for raw_key, value in (options or {}).items():
        key = str(raw_key).replace("-", "_")
        if key not in accepted:
            listing = ", ".join(f"{k}={v!r}" for k, v in accepted.items()) or "none"
            raise MMCurateError(f"layout '{name}' has no option '{raw_key}'; its options are: {listing}")
        kwargs[key] = _convert(name, key, value, hints.get(key))
    return fn(Path(raw_dir), **kwargs)


def _layout(name: str) -> Callable[..., Discovery]:
    try:
        return LAYOUTS[name]
    except KeyError:
        raise MMCurateError(f"unknown dataset layout '{name}'; known adapters: {', '.join(sorted(LAYOUTS))}") from None


def _convert(layout: str, key: str, value: object, hint: object) -> object:
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
        if optional:
            return None
        if base is str and isinstance(value, str) and value.strip() == "":
            return ""
        raise MMCurateError(f"layout '{layout}' option {key} needs a value")
    try:
        if base is float:
            return float(value)  # type: ignore[arg-type]
        if base is int:
            return int(str(value).strip())
        if base is str:
            return str(value)
    except ValueError:
        kind = "a number" if base is float else "an integer"
        raise MMCurateError(f"layout '{layout}' option {key}={value!r} is not {kind}") from None
    return value

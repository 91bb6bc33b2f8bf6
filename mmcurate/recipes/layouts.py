"""The dataset adapters by name: ``--layout NAME`` and ``--layout-option KEY=VALUE`` resolved.

:data:`LAYOUTS` maps each adapter's name to its ``discover(raw_dir, **options) -> Discovery``; an
adapter's module (and what it needs: h5py and the BalanceMM format for ``balancemm``) is imported only
when that layout is used, so an ingest of plain folders or a manifest loads none of them.
:func:`run_layout` is the checked entry point for options from the command line or a YAML recipe.
"""

from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from mmcurate.common.errors import MMCurateError
from mmcurate.store.items import ClipResult, Discovery

#: layout name -> the module holding its ``discover`` (and, for items that are not media files, ``process_item``)
ADAPTER_MODULES: dict[str, str] = {
    "cremad": "mmcurate.recipes.cremad",
    "kinetics_sounds": "mmcurate.recipes.kinetics_sounds",
    "vggsound": "mmcurate.recipes.vggsound",
    "ave": "mmcurate.recipes.ave",
    "balancemm": "mmcurate.recipes.balancemm",
}


class _Adapters(Mapping[str, Callable[..., Discovery]]):
    """``name -> module.<attr>``, the module imported on first use of that name."""

    def __init__(self, modules: Mapping[str, str], attr: str) -> None:
        self._modules, self._attr = dict(modules), attr

    def __getitem__(self, name: str) -> Callable[..., Discovery]:
        return getattr(importlib.import_module(self._modules[name]), self._attr)  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __len__(self) -> int:
        return len(self._modules)


#: layout name -> ``discover(raw_dir, **options) -> Discovery``
LAYOUTS: Mapping[str, Callable[..., Discovery]] = _Adapters(ADAPTER_MODULES, "discover")

#: layout name -> the shipped class list it labels with (``class_list(CLASS_LISTS[name])``); a
#: layout not listed takes its classes from the release (BalanceMM's ``labels``)
CLASS_LISTS: dict[str, str] = {name: name for name in ("cremad", "kinetics_sounds", "vggsound", "ave")}

#: layout name -> its per-item function, for layouts whose items are not media files (the
#: others are decoded by ``mmcurate.ingest.process_clip``)
PROCESSORS: Mapping[str, Callable[..., ClipResult]] = _Adapters(
    {"balancemm": ADAPTER_MODULES["balancemm"]}, "process_item"
)


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

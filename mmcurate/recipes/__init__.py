"""Finding the inputs: the generic layouts, the dataset adapters of the field's benchmarks, class lists.

``mmcurate ingest RAW_DIR`` calls :func:`discover`: label folders (default), an input manifest
(``--manifest``), or a dataset adapter (``--layout NAME``: ``LAYOUTS[NAME]`` called as
``discover(raw_dir, **options)`` through :func:`run_layout`, the checked entry point for options
from the command line or a YAML recipe). Each turns a release, laid out as its authors ship it,
into :class:`~mmcurate.store.items.InputItem` s (label, split, group, segment) and
:class:`~mmcurate.store.items.Failure` s, and lists the files it ignores. :func:`apply_class_list`
then checks labels against a class list (a file, or a list shipped here by name).

The adapter contract: an adapter is its ``discover`` function. Most items are media files, which
ingest decodes with :func:`mmcurate.ingest.process_clip`; an adapter whose items are not (a
BalanceMM release: HDF5 frames and pickled spectrograms) also registers its own per-item function
in :data:`PROCESSORS`, with ``process_clip``'s signature ``(raw_dir, item, decode_cfg, threads)``
and result (:class:`~mmcurate.store.items.ClipResult`). Its :class:`~mmcurate.store.items.Discovery`
may name the release's own class list (``classes``) and the config of the audio features its
items carry instead of a waveform (``features``), which ingest records as its feature cache's.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from mmcurate.common.errors import MMCurateError
from mmcurate.common.files import os_reason, read_regular_text, regular_file_problem, skipped_entries
from mmcurate.recipes import ave, balancemm, cremad, kinetics_sounds, vggsound
from mmcurate.recipes.classes import (
    available_class_lists,
    class_list,
    class_list_path,
    parse_class_list,
)
from mmcurate.recipes.generic import check_raw_dir, discover_folders, discover_manifest
from mmcurate.store.items import ClipResult, Discovery, Failure, InputItem

#: layout name -> ``discover(raw_dir, **options) -> Discovery``
LAYOUTS: dict[str, Callable[..., Discovery]] = {
    "cremad": cremad.discover,
    "kinetics_sounds": kinetics_sounds.discover,
    "vggsound": vggsound.discover,
    "ave": ave.discover,
    "balancemm": balancemm.discover,
}

#: layout name -> the shipped class list it labels with (``class_list(CLASS_LISTS[name])``); a
#: layout not listed takes its classes from the release (BalanceMM's ``labels``)
CLASS_LISTS: dict[str, str] = {name: name for name in ("cremad", "kinetics_sounds", "vggsound", "ave")}

#: layout name -> its per-item function, for layouts whose items are not media files (the
#: others are decoded by ``mmcurate.ingest.process_clip``)
PROCESSORS: dict[str, Callable[..., ClipResult]] = {"balancemm": balancemm.process_item}

__all__ = [
    "CLASS_LISTS",
    "LAYOUTS",
    "PROCESSORS",
    "apply_class_list",
    "available_class_lists",
    "class_list",
    "class_list_path",
    "discover",
    "item_processor",
    "layout_options",
    "read_class_file",
    "run_layout",
]


def item_processor(layout: str | None) -> Callable[..., ClipResult] | None:
    """The per-item function of ``layout`` when its items are not media files, else None."""
    return PROCESSORS.get(layout) if layout else None


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


def discover(
    raw_dir: Path,
    manifest: Path | None = None,
    layout: str | None = None,
    layout_options: Mapping[str, object] | None = None,
    group_column: str | None = None,
    exclude: Iterable[str] = (),
) -> Discovery:
    """The inputs under ``raw_dir`` by the right layout, duplicate sample ids dropped (each reported once).

    ``exclude`` names folders (relative to ``raw_dir``) that hold mmcurate's own output and are no
    input. Entries the walk does not search (hidden, links to folders, unreadable) are listed in
    ``skipped``; an input whose folder resolves outside ``raw_dir`` and a second input that is the
    same file (by real path) as another are failures.
    """
    check_raw_dir(raw_dir)
    if manifest is not None:
        if layout not in (None, "manifest"):
            raise MMCurateError("--manifest and --layout cannot be combined; a manifest defines the layout")
        found = discover_manifest(raw_dir, manifest, group_column=group_column)
    elif layout in (None, "folders"):
        found = discover_folders(raw_dir)
    else:
        if layout not in LAYOUTS:
            names = ", ".join(["folders", "manifest", *sorted(LAYOUTS)])
            raise MMCurateError(f"unknown --layout {layout!r}; choose one of: {names}")
        found = run_layout(layout, raw_dir, layout_options)
    found = _without(found, list(exclude))
    listed = {it.path for it in found.items}
    found.skipped = [(path, why) for path, why in skipped_entries(raw_dir) if path not in listed]
    found.skipped = _without(Discovery(skipped=found.skipped), list(exclude)).skipped
    if not found.items and not found.failures:
        raise MMCurateError(f"no input files found under {raw_dir}")
    return dedupe(found, raw_dir)


def _without(found: Discovery, folders: list[str]) -> Discovery:
    """``found`` without anything inside ``folders`` (RAW_DIR-relative POSIX paths)."""
    if not folders:
        return found

    def inside(path: str) -> bool:
        return any(path == f or path.startswith(f + "/") for f in folders)

    return Discovery(
        items=[it for it in found.items if not inside(it.path)],
        failures=[f for f in found.failures if not inside(f.file)],
        unlisted=[u for u in found.unlisted if not inside(u)],
        skipped=[s for s in found.skipped if not inside(s[0])],
    )


def dedupe(found: Discovery, raw_dir: Path | None = None) -> Discovery:
    """Keep the first item of each sample id; later ones become failures.

    With ``raw_dir``, files are also compared by real path: an input reached through a link to a
    folder that resolves outside ``raw_dir`` fails, and one file listed twice (under two paths
    through links, so under two sample ids) is one input, not two samples that would leak across
    splits. Segments of one file (their own start/end) are different inputs.
    """
    seen: dict[str, InputItem] = {}
    by_real: dict[tuple[str, float | None, float | None], InputItem] = {}
    raw_real = os.path.realpath(raw_dir) if raw_dir is not None else None
    items: list[InputItem] = []
    failures = list(found.failures)
    for item in found.items:
        sid = item.sample_id
        if sid in seen:
            failures.append(Failure(item.path, "discover", f"duplicate input for sample id {sid!r}", sid))
            continue
        if raw_dir is not None and raw_real is not None:
            full = os.path.join(raw_dir, item.path)
            folder = os.path.realpath(os.path.dirname(full))
            if folder != raw_real and not folder.startswith(raw_real.rstrip(os.sep) + os.sep):
                failures.append(
                    Failure(item.path, "discover", f"its folder resolves to {folder}, outside the raw directory", sid)
                )
                continue
            key = (os.path.realpath(full), item.start, item.end)
            first = by_real.get(key)
            if first is not None:
                failures.append(
                    Failure(
                        item.path, "discover", f"same file as {first.path!r} (by real path); listed once only", sid
                    )
                )
                continue
            by_real[key] = item
        seen[sid] = item
        items.append(item)
    items.sort(key=lambda it: it.sample_id)
    return dataclasses.replace(found, items=items, failures=failures)


def apply_class_list(found: Discovery, classes: Iterable[str] | None) -> tuple[Discovery, list[str]]:
    """Validate labels against a class list (or derive the sorted list); unknown labels fail."""
    if classes is None:
        return found, sorted({it.label for it in found.items})
    class_names = list(classes)
    allowed = set(class_names)
    keep: list[InputItem] = []
    failures = list(found.failures)
    for it in found.items:
        if it.label in allowed:
            keep.append(it)
        else:
            failures.append(Failure(it.path, "label", f"label {it.label!r} is not in the class list", it.sample_id))
    return dataclasses.replace(found, items=keep, failures=failures), class_names


def read_class_file(spec: Path) -> list[str]:
    """A class list from a file (one name per line, ``#`` comments, order kept) or, when no such
    file exists, a list shipped with mmcurate by name (``cremad``, ``kinetics_sounds``, ...)."""
    problem = regular_file_problem(spec)
    if problem is None:
        try:
            names = parse_class_list(read_regular_text(spec))
        except (OSError, UnicodeDecodeError) as exc:
            reason = os_reason(exc) if isinstance(exc, OSError) else "not UTF-8 text"
            raise MMCurateError(f"class list {spec}: cannot read it ({reason})") from None
    elif problem != "not found":
        raise MMCurateError(f"class list {spec}: cannot read it ({problem})")
    elif str(spec) in available_class_lists():
        return class_list(str(spec))
    else:
        raise MMCurateError(
            f"class list {spec} does not exist "
            f"(neither a file nor a shipped list: {', '.join(available_class_lists())})"
        )
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise MMCurateError(f"class list {spec} names {', '.join(dupes)} more than once")
    if not names:
        raise MMCurateError(f"class list {spec} is empty")
    return names

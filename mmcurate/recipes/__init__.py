"""Finding the inputs: the generic layouts, the dataset adapters of the field's benchmarks, class lists.

``mmcurate ingest RAW_DIR`` calls :func:`discover`: label folders (default), an input manifest
(``--manifest``), or a dataset adapter (``--layout NAME``: ``LAYOUTS[NAME]`` called as
``discover(raw_dir, **options)`` through :func:`~mmcurate.recipes.layouts.run_layout`, the checked entry
point for options from the command line or a YAML recipe; :mod:`mmcurate.recipes.layouts` and the
adapter's module load only when a layout names one). Each turns a release, laid out as its authors ship it,
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
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from mmcurate.common.errors import MMCurateError
from mmcurate.common.files import os_reason, read_regular_text, regular_file_problem, skipped_entries
from mmcurate.recipes.classes import (
    available_class_lists,
    class_list,
    class_list_path,
    parse_class_list,
)
from mmcurate.recipes.generic import check_raw_dir, discover_folders, discover_manifest
from mmcurate.store.items import ClipResult, Discovery, InputItem

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
    """The per-item function of ``layout`` when its items are not media files, else None (the adapters'
    resolution, :mod:`mmcurate.recipes.layouts`, is loaded only for a layout that names an adapter)."""
    if layout in (None, "folders", "manifest"):
        return None
    from mmcurate.recipes.layouts import PROCESSORS

    return PROCESSORS.get(layout)


def __getattr__(name: str) -> object:
    """The adapters' names and resolution (:mod:`mmcurate.recipes.layouts`), loaded when first asked for."""
    if name in _LAYOUT_NAMES:
        from mmcurate.recipes import layouts

        return getattr(layouts, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_LAYOUT_NAMES = ("CLASS_LISTS", "LAYOUTS", "PROCESSORS", "layout_options", "run_layout")


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
        from mmcurate.recipes.layouts import LAYOUTS, run_layout

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
    out = dataclasses.replace(found, items=[], failures=list(found.failures))
    for item in found.items:
        sid = item.sample_id
        if sid in seen:
            out.fail(item.path, f"duplicate input for sample id {sid!r}", sample_id=sid)
            continue
        if raw_dir is not None and raw_real is not None:
            full = os.path.join(raw_dir, item.path)
            folder = os.path.realpath(os.path.dirname(full))
            if folder != raw_real and not folder.startswith(raw_real.rstrip(os.sep) + os.sep):
                out.fail(item.path, f"its folder resolves to {folder}, outside the raw directory", sample_id=sid)
                continue
            key = (os.path.realpath(full), item.start, item.end)
            first = by_real.get(key)
            if first is not None:
                out.fail(item.path, f"same file as {first.path!r} (by real path); listed once only", sample_id=sid)
                continue
            by_real[key] = item
        seen[sid] = item
        out.items.append(item)
    out.items.sort(key=lambda it: it.sample_id)
    return out


def apply_class_list(found: Discovery, classes: Iterable[str] | None) -> tuple[Discovery, list[str]]:
    """Validate labels against a class list (or derive the sorted list); unknown labels fail."""
    if classes is None:
        return found, sorted({it.label for it in found.items})
    class_names = list(classes)
    allowed = set(class_names)
    out = dataclasses.replace(found, items=[], failures=list(found.failures))
    for it in found.items:
        if it.label in allowed:
            out.items.append(it)
        else:
            out.fail(it.path, f"label {it.label!r} is not in the class list", stage="label", sample_id=it.sample_id)
    return out, class_names


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

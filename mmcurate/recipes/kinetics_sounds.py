"""Kinetics-Sounds adapter: the 31 Kinetics-400 classes of the reference code, from a Kinetics download.

Kinetics-Sounds is not distributed on its own: it is the subset of Kinetics-400 whose classes
are in ``classes/kinetics_sounds.txt``. Get Kinetics-400 from the CVDF mirror
(https://github.com/cvdfoundation/kinetics-dataset: ``bash k400_downloader.sh`` then
``bash k400_extractor.sh``). Two layouts are understood:

1. The CVDF download, flat folders plus the official annotation CSVs::

       k400/                                  <- RAW_DIR
         annotations/train.csv, val.csv, test.csv   label,youtube_id,time_start,time_end,split
         train/-3EZyImLCXk_000003_000013.mp4
         val/..., test/...

   Labels and splits come from the CSVs (found automatically under RAW_DIR, or ``annotations=``).

2. Class folders, as made by ``arrange_by_classes.py`` or the ActivityNet downloader, no CSV::

       RAW_DIR/{train,val,test}/<class name>/<youtube_id>_<start:06d>_<end:06d>.mp4

   The class comes from the folder (``playing bagpipes`` or ``playing_bagpipes``), the split from
   the folder above it when that is a split name.

Clip files are already cut to the 10-s segment ``[time_start, time_end]`` of the YouTube video,
so items use the whole file (``start``/``end`` unset); the YouTube times are kept in ``extra``.
Group = YouTube id (several segments of one video must stay in one split). Clips of the other
369 Kinetics classes are reported as unlisted.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

from mmcurate.common.errors import MMCurateError
from mmcurate.common.files import open_regular
from mmcurate.recipes.classes import class_list
from mmcurate.recipes.scan import (
    display_name,
    is_media,
    list_files,
    match_clip_name,
    read_text_lines,
    relative_to_raw,
    require_dir,
    resolve_option_path,
)
from mmcurate.store.items import Discovery, InputItem
from mmcurate.store.splits import normalize_split

#: ``{youtube_id}_{start:06d}_{end:06d}``; YouTube ids are 11 characters of [A-Za-z0-9_-].
CLIP_NAME = re.compile(r"^(?P<ytid>[A-Za-z0-9_-]{11})_(?P<start>\d{6})_(?P<end>\d{6})$")
KINETICS_NAME = "{youtube_id}_{start:06d}_{end:06d} as in the Kinetics download"
#: Columns every official Kinetics annotation CSV starts with (newer ones add ``is_cc``).
CSV_COLUMNS = ("label", "youtube_id", "time_start", "time_end", "split")


def label_key(name: str) -> str:
    """A Kinetics label as the class list spells it: ``"playing bagpipes"`` -> ``playing_bagpipes``."""
    return name.strip().strip('"').strip().lower().replace(" ", "_")


@dataclass(frozen=True)
class _Row:
    label: str
    split: str | None
    start: int
    end: int
    where: str  # "annotations/train.csv line 12"
    split_dir: str  # folder the CVDF layout puts the clip in


def _is_kinetics_csv(path: Path) -> bool:
    try:
        with open_regular(path, "r", encoding="utf-8-sig") as fh:
            header = fh.readline()
    except (OSError, UnicodeDecodeError):
        return False
    cols = tuple(c.strip() for c in header.strip().split(","))
    return cols[: len(CSV_COLUMNS)] == CSV_COLUMNS


def _csv_paths(raw_dir: Path, files: list[str], annotations: str | None) -> list[Path]:
    if annotations is None or str(annotations) == "":
        return [raw_dir / p for p in files if p.lower().endswith(".csv") and _is_kinetics_csv(raw_dir / p)]
    paths: list[Path] = []
    for part in str(annotations).split(","):
        p = resolve_option_path(raw_dir, part.strip())
        if p.is_dir():
            found = sorted(p.glob("*.csv"))
            if not found:
                raise MMCurateError(f"{p}: no .csv files in this annotations folder")
            paths.extend(found)
        elif p.is_file():
            paths.append(p)
        else:
            raise MMCurateError(f"{p}: Kinetics annotation CSV not found (layout option annotations=)")
    for p in paths:
        if not _is_kinetics_csv(p):
            raise MMCurateError(
                f"{p}: not a Kinetics annotation CSV (its header must start with {','.join(CSV_COLUMNS)})"
            )
    return paths


def _read_rows(
    raw_dir: Path, paths: list[Path], classes: set[str], disc: Discovery
) -> tuple[dict[tuple[str, int], _Row], set[tuple[str, int]]]:
    """Kinetics-Sounds rows by (youtube_id, start second), and the keys of all other rows."""
    wanted: dict[tuple[str, int], _Row] = {}
    others: set[tuple[str, int]] = set()
    for path in paths:
        name = display_name(raw_dir, path)
        lines = read_text_lines(path, "Kinetics annotation CSV")
        reader = csv.DictReader(io.StringIO("\n".join(lines)))
        for lineno, row in enumerate(reader, start=2):
            try:
                ytid = row["youtube_id"].strip()
                start = int(float(row["time_start"]))
                end = int(float(row["time_end"]))
                label = label_key(row["label"])
            except (AttributeError, KeyError, TypeError, ValueError):
                disc.fail(name, f"line {lineno}: malformed row {list(row.values())!r}")
                continue
            key = (ytid, start)
            if label not in classes:
                others.add(key)
                continue
            split_raw = (row.get("split") or "").strip()
            where = f"{name} line {lineno}"
            if key in wanted and wanted[key].label != label:
                disc.fail(
                    name,
                    f"line {lineno}: {ytid} at {start}s is labelled {label} here "
                    f"but {wanted[key].label} in {wanted[key].where}",
                    stage="label",
                )
                continue
            wanted.setdefault(key, _Row(label, normalize_split(split_raw), start, end, where, split_raw or "unsplit"))
    return wanted, others


def discover(raw_dir: Path, *, annotations: str | None = None) -> Discovery:
    """Find the Kinetics-Sounds clips of a Kinetics-400 download.

    Options:
      annotations: the official annotation CSV(s) (``label,youtube_id,time_start,time_end,split``):
        a file, a folder of CSVs, or a comma-separated list; relative to RAW_DIR or absolute.
        Default: every CSV under RAW_DIR with that header; with none, class folders are used.

    With CSVs, a clip file is matched to its row by YouTube id and start second, wherever it
    sits under RAW_DIR; a Kinetics-Sounds row without a file is a failure naming the path the
    CVDF layout would use (``{split}/{youtube_id}_{start:06d}_{end:06d}.mp4``). A second copy of
    the same clip (e.g. ``arrange_by_classes.py``'s symlinks next to the flat files) is unlisted.
    """
    raw_dir = require_dir(raw_dir)
    classes = set(class_list("kinetics_sounds"))
    files = list_files(raw_dir)
    csv_paths = _csv_paths(raw_dir, files, annotations)
    csv_rel = {r for r in (relative_to_raw(raw_dir, p) for p in csv_paths) if r}
    disc = Discovery()
    used: set[tuple[str, int]] = set()

    if csv_paths:
        wanted, others = _read_rows(raw_dir, csv_paths, classes, disc)
        csv_names = ", ".join(display_name(raw_dir, p) for p in csv_paths)
        for path in files:
            if path in csv_rel or not is_media(path, raw_dir):
                disc.unlisted.append(path)
                continue
            m = match_clip_name(disc, path, CLIP_NAME, KINETICS_NAME)
            if m is None:
                continue
            key = (m["ytid"], int(m["start"]))
            if key in used:
                disc.unlisted.append(path)  # another copy of a clip already taken
                continue
            row = wanted.get(key)
            if row is None:
                if key in others:
                    disc.unlisted.append(path)  # a Kinetics class outside Kinetics-Sounds
                else:
                    disc.fail(path, f"not listed in {csv_names}", sample_id=path)
                continue
            used.add(key)
            disc.items.append(_item(path, row.label, row.split, m))
        for key, row in sorted(wanted.items()):
            if key not in used:
                expected = f"{row.split_dir}/{key[0]}_{row.start:06d}_{row.end:06d}.mp4"
                disc.fail(expected, f"listed in {row.where} but the clip file is missing", sample_id=expected)
    else:
        for path in files:
            if not is_media(path, raw_dir):
                disc.unlisted.append(path)
                continue
            parts = path.split("/")
            folder = label_key(parts[-2]) if len(parts) >= 2 else ""
            if not folder or normalize_split(folder) is not None:
                disc.fail(
                    path,
                    "no Kinetics annotation CSV under RAW_DIR and the clip is not in a class folder; "
                    "add annotations/{train,val,test}.csv or pass annotations=PATH",
                    stage="label",
                    sample_id=path,
                )
                continue
            if folder not in classes:
                disc.unlisted.append(path)  # a Kinetics class outside Kinetics-Sounds
                continue
            m = match_clip_name(disc, path, CLIP_NAME, KINETICS_NAME)
            if m is None:
                continue
            key = (m["ytid"], int(m["start"]))
            if key in used:
                disc.unlisted.append(path)
                continue
            used.add(key)
            split = normalize_split(parts[-3]) if len(parts) >= 3 else None
            disc.items.append(_item(path, folder, split, m))
    disc.failures.sort(key=lambda f: (f.file, f.reason))
    return disc


def _item(path: str, label: str, split: str | None, m: re.Match[str]) -> InputItem:
    return InputItem(
        path=path,
        label=label,
        split=split,
        group=m["ytid"],
        extra=(("youtube_id", m["ytid"]), ("yt_end", str(int(m["end"]))), ("yt_start", str(int(m["start"])))),
    )

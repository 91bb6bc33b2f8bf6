"""VGGSound adapter: clips named by YouTube id and start second, labels and splits from vggsound.csv.

Get the annotation file from the VGGSound page (https://www.robots.ox.ac.uk/~vgg/data/vggsound/,
``vggsound.csv``; CC BY 4.0) and the clips from the authors' release or a mirror (the clips are
YouTube videos, copyright of their uploaders). Expected layout::

    VGGSound/                              <- RAW_DIR
      vggsound.csv                         no header: youtube_id,start_seconds,label,split
      video/---g-f_I2yQ_000001.mp4         {youtube_id}_{start:06d}.mp4, 10 s from start_seconds

Clips may sit in any sub-folders (``train-videos/``, ``test-videos/``, ...): a file is matched to
its row by YouTube id and start second. OGM-GE's preprocessing names files without zero padding
(``---g-f_I2yQ_1.mp4``, ``item[0] + '_' + item[1]``); those are matched too.

Each clip already is the 10-s segment, so items use the whole file; the YouTube times are kept
in ``extra``. Group = YouTube id. Labels must be in ``classes/vggsound.txt`` (309 classes).
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mmcurate.common.errors import MMCurateError
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

#: ``{youtube_id}_{start}`` with the start second zero-padded to 6 digits (official) or not (OGM-GE).
CLIP_NAME = re.compile(r"^(?P<ytid>[A-Za-z0-9_-]{11})_(?P<start>\d{1,6})$")
VGGSOUND_NAME = "{youtube_id}_{start:06d} as in the VGGSound release"
#: Every VGGSound clip is 10 s long.
CLIP_SECONDS = 10


@dataclass(frozen=True)
class _Row:
    label: str
    split: str | None
    lineno: int
    problem: str | None  # why the row cannot become an item (bad label, bad split)


def _read_csv(path: Path, name: str, classes: set[str], disc: Discovery) -> dict[tuple[str, int], _Row]:
    rows: dict[tuple[str, int], _Row] = {}
    lines = read_text_lines(path, "VGGSound annotation CSV")
    for lineno, fields in enumerate(csv.reader(io.StringIO("\n".join(lines))), start=1):
        if not fields or all(not f.strip() for f in fields):
            continue
        if len(fields) != 4:
            disc.fail(
                name, f"line {lineno}: expected 4 fields youtube_id,start_seconds,label,split, got {len(fields)}"
            )
            continue
        ytid, start_s, label, split_raw = (f.strip() for f in fields)
        try:
            start = int(start_s)
        except ValueError:
            if lineno == 1:  # a header row added by some mirrors
                continue
            disc.fail(name, f"line {lineno}: start second {start_s!r} is not an integer")
            continue
        split = normalize_split(split_raw)
        problem = None
        if label not in classes:
            problem = f"label '{label}' (line {lineno} of {name}) not in the VGGSound class list"
        elif split not in ("train", "test"):
            problem = f"split '{split_raw}' (line {lineno} of {name}) is not train or test"
        key = (ytid, start)
        if key in rows and rows[key].label != label:
            first = rows[key]
            rows[key] = _Row(
                first.label, first.split, first.lineno, f"lines {first.lineno} and {lineno} of {name} give two labels"
            )
            continue
        rows.setdefault(key, _Row(label, split, lineno, problem))
    return rows


def discover(raw_dir: Path, *, annotations: str = "vggsound.csv", video_dir: str | None = None) -> Discovery:
    """Find the VGGSound clips under ``raw_dir`` and label them from ``vggsound.csv``.

    Options:
      annotations: the official annotation CSV, relative to RAW_DIR or absolute; default ``vggsound.csv``.
      video_dir: folder (relative to RAW_DIR) that missing clips are reported under; default the
        folder holding most of the clips found (clips themselves are found anywhere).

    A row whose clip file is absent is a failure naming ``{video_dir}/{youtube_id}_{start:06d}.mp4``;
    a clip file the CSV does not list is a failure too.
    """
    raw_dir = require_dir(raw_dir)
    csv_path = resolve_option_path(raw_dir, annotations)
    if not csv_path.is_file():
        raise MMCurateError(
            f"{csv_path}: VGGSound annotation CSV not found; "
            "put the official vggsound.csv in RAW_DIR or pass annotations=PATH"
        )
    csv_name = display_name(raw_dir, csv_path)
    csv_rel = relative_to_raw(raw_dir, csv_path)
    classes = set(class_list("vggsound"))
    disc = Discovery()
    rows = _read_csv(csv_path, csv_name, classes, disc)

    used: set[tuple[str, int]] = set()
    folders: Counter[str] = Counter()
    for path in list_files(raw_dir):
        if path == csv_rel or not is_media(path, raw_dir):
            disc.unlisted.append(path)
            continue
        m = match_clip_name(disc, path, CLIP_NAME, VGGSOUND_NAME)
        if m is None:
            continue
        key = (m["ytid"], int(m["start"]))
        row = rows.get(key)
        if row is None:
            disc.fail(path, f"not listed in {csv_name}", sample_id=path)
            continue
        if key in used:
            disc.unlisted.append(path)  # a second copy of a clip already taken
            continue
        used.add(key)
        folders[str(PurePosixPath(path).parent)] += 1
        if row.problem is not None:
            disc.fail(path, row.problem, stage="label", sample_id=path)
            continue
        disc.items.append(
            InputItem(
                path=path,
                label=row.label,
                split=row.split,
                group=m["ytid"],
                extra=(
                    ("youtube_id", m["ytid"]),
                    ("yt_end", str(key[1] + CLIP_SECONDS)),
                    ("yt_start", str(key[1])),
                ),
            )
        )

    if video_dir is None:
        video_dir = min(folders, key=lambda f: (-folders[f], f)) if folders else ""
    prefix = "" if video_dir in ("", ".") else video_dir.strip("/") + "/"
    for key, row in sorted(rows.items()):
        if key in used:
            continue
        expected = f"{prefix}{key[0]}_{key[1]:06d}.mp4"
        reason = f"listed in {csv_name} (line {row.lineno}) but the clip file is missing"
        if row.problem is not None:
            reason = f"{row.problem}; the clip file is missing too"
        disc.fail(expected, reason, sample_id=expected)
    disc.failures.sort(key=lambda f: (f.file, f.reason))
    return disc

"""AVE adapter: one sample per annotated audio-visual event segment, from the official annotation files.

Get ``AVE_Dataset.zip`` from the link in https://github.com/YapengTian/AVE-ECCV18 (Tian et al.,
ECCV 2018; 4,143 events in 4,097 10-s YouTube videos; no licence is stated -- the videos are
YouTube content of their uploaders, released for research). Unzipped::

    AVE_Dataset/                     <- RAW_DIR
      AVE/-0A9suni5YA.mp4            the videos, named by YouTube id
      Annotations.txt                Category&VideoID&Quality&StartTime&EndTime, one event per line
      trainSet.txt, valSet.txt, testSet.txt   the ECCV split, same line format
      ReadMe.txt

Each annotation line becomes an item over the labelled segment ``StartTime..EndTime`` (seconds,
InputItem ``start``/``end``), so a video with two events gives two samples. Group = YouTube id.
A header line (``Category&VideoID&...``) is skipped where present. Zero-length events (the
release has a few, e.g. ``0&0``) are failures, as are segments labelled with two categories
(OGM-GE's AVE loader likewise drops videos it sees with two labels).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mmcurate.common.errors import MMCurateError
from mmcurate.recipes.classes import class_list
from mmcurate.recipes.scan import (
    display_name,
    is_media,
    list_files,
    read_text_lines,
    relative_to_raw,
    require_dir,
    resolve_option_path,
    stem,
)
from mmcurate.store.items import Discovery, InputItem

HEADER = "category&videoid&quality&starttime&endtime"
#: Default split files of the release, by split.
SPLIT_FILES = {"train": "trainSet.txt", "val": "valSet.txt", "test": "testSet.txt"}


@dataclass(frozen=True)
class _Event:
    category: str
    video_id: str
    quality: str
    start: float
    end: float
    where: str  # "Annotations.txt line 7"


def _parse_lines(lines: Iterable[str], name: str, disc: Discovery, video_path: str) -> list[_Event]:
    events: list[_Event] = []
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.lower() == HEADER:
            continue
        fields = [f.strip() for f in line.split("&")]
        if len(fields) != 5:
            disc.fail(name, f"line {lineno}: expected Category&VideoID&Quality&StartTime&EndTime, got {line!r}")
            continue
        category, vid, quality, start_s, end_s = fields
        where = f"{name} line {lineno}"
        try:
            start, end = float(start_s), float(end_s)
        except ValueError:
            path = video_path.format(vid=vid)
            disc.fail(path, f"{where}: times {start_s!r}, {end_s!r} are not numbers")
            continue
        events.append(_Event(category, vid, quality, start, end, where))
    return events


def _segment_problem(
    evs: list[_Event], classes: set[str], has_video: bool, split_conflict: str | None
) -> tuple[str, str] | None:
    """(stage, reason) when the events of one segment cannot become a sample, else None."""
    ev = evs[0]
    categories = sorted({e.category for e in evs})
    if len(categories) > 1:
        labels = " and ".join(repr(c) for c in categories)
        return "label", f"segment {ev.start:g}-{ev.end:g} s is labelled {labels} ({', '.join(e.where for e in evs)})"
    if ev.category not in classes:
        return "label", f"category '{ev.category}' ({ev.where}) not in the AVE class list"
    if not ev.end > ev.start or ev.start < 0:
        return "discover", f"empty or negative event segment {ev.start:g}-{ev.end:g} s ({ev.where})"
    if not has_video:
        return "discover", f"listed in {ev.where} but the video file is missing"
    if split_conflict is not None:
        return "discover", f"event {split_conflict}: an event can be in one split only"
    return None


def discover(
    raw_dir: Path,
    *,
    annotations: str = "Annotations.txt",
    video_dir: str = "AVE",
    train_split: str | None = None,
    val_split: str | None = None,
    test_split: str | None = None,
) -> Discovery:
    """Find the AVE event segments under ``raw_dir``.

    Options:
      annotations: the official annotation file, relative to RAW_DIR or absolute.
      video_dir: folder (relative to RAW_DIR) holding ``{VideoID}.mp4``; default ``AVE``. Media
        files outside it (e.g. extracted WAVs) are unlisted; videos inside it that no annotation
        names are failures.
      train_split, val_split, test_split: the split files; default ``trainSet.txt``,
        ``valSet.txt``, ``testSet.txt`` when present in RAW_DIR. An event in none of them gets
        no split.
    """
    raw_dir = require_dir(raw_dir)
    ann_path = resolve_option_path(raw_dir, annotations)
    if not ann_path.is_file():
        raise MMCurateError(
            f"{ann_path}: AVE annotation file not found; "
            "put the official Annotations.txt in RAW_DIR or pass annotations=PATH"
        )
    prefix = "" if video_dir.strip("/") in ("", ".") else video_dir.strip("/") + "/"
    video_path = prefix + "{vid}.mp4"
    class_set = set(class_list("ave"))
    disc = Discovery()
    ann_name = display_name(raw_dir, ann_path)
    events = _parse_lines(read_text_lines(ann_path, "AVE annotation file"), ann_name, disc, video_path)
    text_files = {relative_to_raw(raw_dir, ann_path)}

    # event -> split, from the split files
    split_of: dict[tuple[str, str, float, float], tuple[str, str]] = {}
    conflicts: dict[tuple[str, str, float, float], str] = {}
    for split, option in (("train", train_split), ("val", val_split), ("test", test_split)):
        if option is None:
            path = raw_dir / SPLIT_FILES[split]
            if not path.is_file():
                continue
        else:
            path = resolve_option_path(raw_dir, option)
            if not path.is_file():
                raise MMCurateError(f"{path}: AVE {split} split file not found (layout option {split}_split=)")
        text_files.add(relative_to_raw(raw_dir, path))
        name = display_name(raw_dir, path)
        for ev in _parse_lines(read_text_lines(path, f"AVE {split} split file"), name, disc, video_path):
            key = (ev.category, ev.video_id, ev.start, ev.end)
            if key in split_of and split_of[key][0] != split:
                conflicts[key] = f"listed in {split_of[key][1]} and {ev.where}"
            split_of.setdefault(key, (split, ev.where))

    # video files by id
    videos: dict[str, str] = {}
    disc_videos: list[str] = []
    for path in list_files(raw_dir):
        if path in text_files or not is_media(path, raw_dir) or not path.startswith(prefix):
            disc.unlisted.append(path)
            continue
        vid = stem(path)
        if vid in videos:
            disc.fail(path, f"duplicate video: {videos[vid]} has the same id", sample_id=path)
            continue
        videos[vid] = path
        disc_videos.append(path)

    # segments: (video id, start, end) -> events (two categories on one segment are ambiguous)
    by_segment: dict[tuple[str, float, float], list[_Event]] = {}
    for ev in events:
        by_segment.setdefault((ev.video_id, ev.start, ev.end), []).append(ev)
    named: set[str] = set()
    for (vid, start, end), evs in by_segment.items():
        named.add(vid)
        ev = evs[0]
        item = InputItem(
            path=videos.get(vid, video_path.format(vid=vid)),
            label=ev.category,
            split=None,
            group=vid,
            start=start,
            end=end,
            extra=(("quality", ev.quality), ("youtube_id", vid)),
        )
        key = (ev.category, vid, start, end)
        problem = _segment_problem(evs, class_set, vid in videos, conflicts.get(key))
        if problem is not None:
            stage, reason = problem
            disc.fail(item.path, reason, stage=stage, sample_id=item.sample_id)
            continue
        disc.items.append(dataclasses.replace(item, split=split_of.get(key, (None, ""))[0]))
    for path in disc_videos:
        if stem(path) not in named:
            disc.fail(path, f"not listed in {ann_name}", sample_id=path)
    disc.items.sort(key=lambda it: it.sample_id)
    disc.failures.sort(key=lambda f: (f.file, f.reason))
    return disc

"""CREMA-D adapter: clips from ``VideoFlash/``, labels from the file names, splits by actor.

The official release (https://github.com/CheyneyComputerScience/CREMA-D, a git-lfs repository;
clone it with ``git lfs clone`` -- a plain clone leaves 130-byte pointer files, the cause of
OGM-GE issue #31) is laid out as::

    CREMA-D/                          <- RAW_DIR
      VideoFlash/1001_DFA_ANG_XX.flv  7,442 clips, video + audio (the samples)
      AudioWAV/1001_DFA_ANG_XX.wav    the clips' audio, converted to 16 kHz WAV  (ignored)
      AudioMP3/1001_DFA_ANG_XX.mp3    the audio played to raters                 (ignored)
      SentenceFilenames.csv, VideoDemographics.csv, processedResults/, ...      (ignored)

A name is ``ACTOR_SENTENCE_EMOTION_LEVEL``: actor 1001-1091, one of 12 sentence codes, the
emotion code (the label: ANG DIS FEA HAP NEU SAD) and the intensity (LO MD HI, or XX unspecified).

Choice: each sample is the ``.flv`` clip, which carries both the face video and the voice, so
frames and audio come from one file and cannot drift apart. OGM-GE instead reads the audio from
``AudioWAV/`` (16 kHz) and frames extracted from the videos; both are the same recording, and
either way it is resampled to 22.05 kHz for the OGM-GE spectrogram. The audio-only copies are
reported as unlisted, not failures.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from mmcurate.common.errors import MMCurateError
from mmcurate.recipes.classes import class_list
from mmcurate.recipes.scan import (
    as_fraction,
    as_seed,
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
from mmcurate.store.splits import split_groups

#: ``1001_DFA_ANG_XX``: actor, sentence, emotion, intensity.
CLIP_NAME = re.compile(r"^(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emotion>[A-Z]{3})_(?P<level>[A-Z]{2})$")


def _read_split_csv(path: Path, split: str, raw_dir: Path) -> dict[str, tuple[str, str, int, str]]:
    """OGM-GE's ``data/CREMAD/{train,test}.csv``: no header, ``clip_name,EMOTION`` per line.

    Returns clip name -> (split, label, line number, csv name). A line in another form is a
    user error in the file itself, so it stops discovery with the file and line named.
    """
    name = display_name(raw_dir, path)
    out: dict[str, tuple[str, str, int, str]] = {}
    lines = read_text_lines(path, f"CREMA-D {split} split CSV")
    for lineno, row in enumerate(csv.reader(io.StringIO("\n".join(lines))), start=1):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < 2:
            raise MMCurateError(
                f"{name} line {lineno}: expected 'clip_name,EMOTION' as in OGM-GE's data/CREMAD/{split}.csv, "
                f"got {','.join(row)!r}"
            )
        clip = stem(row[0].strip()) if row[0].strip().lower().endswith((".flv", ".mp4", ".wav")) else row[0].strip()
        out[clip] = (split, row[1].strip(), lineno, name)
    return out


def discover(
    raw_dir: Path,
    *,
    video_dir: str = "VideoFlash",
    train_csv: str | None = None,
    test_csv: str | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    split_seed: int = 0,
) -> Discovery:
    """Find the CREMA-D clips under ``raw_dir`` and label them from their names.

    Options:
      video_dir: folder (relative to RAW_DIR) holding the clips; default ``VideoFlash``. Media
        files elsewhere (``AudioWAV/``, ``AudioMP3/``) are reported as unlisted.
      train_csv, test_csv: OGM-GE's split files (``data/CREMAD/train.csv`` with 6,698 rows and
        ``test.csv`` with 744; lines ``1001_DFA_ANG_XX,ANG``, no header); paths relative to
        RAW_DIR or absolute. When given, they fix the splits, clips they do not list are
        failures, and their labels must agree with the names. Note that OGM-GE's split is per
        clip: the same actors appear in train and test.
      val_fraction, test_fraction: without split CSVs, the fraction of *actors* (91 in the
        release) held out for val and test; default 0.1 each (9 + 9 actors, 73 for train).
      split_seed: seed of the actor assignment; the same seed gives the same split.

    Group = actor id, so downstream splitting also keeps each actor in one split.
    """
    raw_dir = require_dir(raw_dir)
    val_fraction = as_fraction("val_fraction", val_fraction)
    test_fraction = as_fraction("test_fraction", test_fraction)
    split_seed = as_seed("split_seed", split_seed)
    video_prefix = video_dir.strip("/") + "/" if video_dir.strip("/") else ""
    classes = class_list("cremad")
    class_set = set(classes)

    listed: dict[str, tuple[str, str, int, str]] = {}
    csv_rel: set[str] = set()
    for split, option in (("train", train_csv), ("test", test_csv)):
        if option is None or str(option) == "":
            continue
        path = resolve_option_path(raw_dir, option)
        rows = _read_split_csv(path, split, raw_dir)
        for clip, info in rows.items():
            if clip in listed and listed[clip][0] != split:
                other = listed[clip]
                raise MMCurateError(
                    f"{info[3]} line {info[2]}: clip {clip} is also listed in {other[3]} line {other[2]}; "
                    "a clip can be in one split only"
                )
            listed[clip] = info
        rel = relative_to_raw(raw_dir, path)
        if rel:
            csv_rel.add(rel)
    use_csv = bool(listed)
    csv_names = " or ".join(sorted({info[3] for info in listed.values()})) or ""

    disc = Discovery()
    seen: dict[str, str] = {}  # clip name -> path already used
    candidates: list[tuple[str, str, re.Match[str]]] = []
    for path in list_files(raw_dir):
        if path in csv_rel or not is_media(path, raw_dir) or not path.startswith(video_prefix):
            disc.unlisted.append(path)
            continue
        name = stem(path)
        m = CLIP_NAME.match(name)
        if m is None:
            disc.fail(
                path,
                f"file name '{path.rsplit('/', 1)[-1]}' is not ACTOR_SENTENCE_EMOTION_LEVEL "
                "(e.g. 1001_DFA_ANG_XX.flv)",
                sample_id=path,
            )
            continue
        if m["emotion"] not in class_set:
            disc.fail(
                path,
                f"label code '{m['emotion']}' not in the CREMA-D class list ({' '.join(classes)})",
                stage="label",
                sample_id=path,
            )
            continue
        if name in seen:
            disc.fail(path, f"duplicate clip: {seen[name]} has the same name", sample_id=path)
            continue
        seen[name] = path
        if use_csv:
            info = listed.get(name)
            if info is None:
                disc.fail(path, f"not listed in {csv_names}", sample_id=path)
                continue
            if info[1] != m["emotion"]:
                disc.fail(
                    path,
                    f"{info[3]} line {info[2]} says {info[1]} but the file name says {m['emotion']}",
                    stage="label",
                    sample_id=path,
                )
                continue
        candidates.append((path, name, m))

    if use_csv:
        split_of = {path: listed[name][0] for path, name, _ in candidates}
        for clip, (_split, _label, lineno, name) in sorted(listed.items()):
            if clip not in seen:
                expected = f"{video_prefix}{clip}.flv"
                disc.fail(
                    expected, f"listed in {name} (line {lineno}) but the clip file is missing", sample_id=expected
                )
    else:
        actor_split = split_groups(
            (m["actor"] for _, _, m in candidates),
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            seed=split_seed,
            what="actors",
        )
        split_of = {path: actor_split[m["actor"]] for path, _, m in candidates}

    for path, _, m in candidates:
        disc.items.append(
            InputItem(
                path=path,
                label=m["emotion"],
                split=split_of[path],
                group=m["actor"],
                extra=(("actor", m["actor"]), ("intensity", m["level"]), ("sentence", m["sentence"])),
            )
        )
    disc.failures.sort(key=lambda f: (f.file, f.reason))
    return disc

"""The BalanceMM / BML release format: what its files hold, how its loader reads them, read and written.

The paper's balanced dataset is distributed, and loaded by BalanceMM (``balancemm/datasets/
balance_dataset.py``, dataset name ``Balance``), in the layout of GeWu-Lab/BML_TPAMI2024's
Kinetics-Sounds release::

    annotations.json        {"labels": [class, ...], "database": {clip_id: {"subset": ..., "label": ...}}}
    visual/<clip_id>.hdf5   dataset "video": one JPEG-encoded frame per element (about one per second)
    audio/<clip_id>.pkl     a pickled 2-D float array: the clip's spectrogram

Facts of the reference loader this module is written against (read, not copied):

* the class index of a label is its position in ``labels``;
* a clip is used when its ``subset`` equals the loader's mode + ``"ing"`` (``train`` ->
  ``training``, ``test`` -> ``testing``) and both files exist; the files are found by string
  concatenation, ``visual_path + clip_id + ".hdf5"``, so the configured paths end with ``/``.
  BalanceMM asks for ``valid`` when its dataset config says ``validation: true`` and so looks for
  ``validing``, which no release uses: with its default (``validation: false``) it validates on the
  test set. BML's loader reads ``validation``, as written here;
* it picks 3 frames by the frame count N (:func:`loader_frame_indices`): with N > 6, one per third
  (training: a random index in ``[k*s+1, k*s+s]``, s = N // 3, capped at 8; test: ``k*s + max(s//2, 1)``);
  with N <= 6 all three read frame index 1, so a clip needs at least 2 frames;
* the spectrogram gets a channel axis (``np.expand_dims(x, 0)``) and is used as it is.

Frames are stored as the JPEG bytes ingest wrote (no re-encoding, so an export and its import are
pixel-equal), with two extra datasets BalanceMM ignores: ``frame_times`` (seconds) and a
``duration`` attribute, which let an import restore what the export knew.

A release's HDF5 files are read through :mod:`mmcurate.formats.hdf5_guard`: nothing outside the
file (external storage and links, virtual datasets, plugin filters) and nothing it does not really
hold (fill values, forged lengths, zeros that decompress to hundreds of megabytes) is ever read.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmcurate.common.errors import MMCurateError, one_line
from mmcurate.common.files import os_reason, parse_json, read_regular_bytes, read_regular_text
from mmcurate.common.limits import MAX_FRAMES_PER_CLIP, MAX_STORED_FRAME_BYTES
from mmcurate.formats.hdf5_guard import (
    check_storage,
    declared_budget,
    resolve,
    scalar_attribute,
    vlen_lengths,
)
from mmcurate.store.splits import normalize_split

FORMAT = "balancemm"
FORMAT_VERSION = "mmcurate-balancemm/1"
ANNOTATIONS = "annotations.json"
VISUAL_DIR = "visual"
AUDIO_DIR = "audio"
VIDEO_DATASET = "video"
TIMES_DATASET = "frame_times"

#: mmcurate split -> the release's subset name (ActivityNet / BML spelling)
SUBSETS: dict[str, str] = {"train": "training", "val": "validation", "test": "testing"}

#: frames the reference loader reads at most from (its training indices are capped at 8)
LOADER_MAX_INDEX = 8
#: frames per clip the reference loader picks
LOADER_PICKS = 3
#: default cap on exported frames: the ~10 one-per-second frames of a 10-s clip the loader assumes
DEFAULT_MAX_FRAMES = 10

JPEG_MAGIC = b"\xff\xd8"


def require_h5py() -> Any:
    """h5py, or a one-line error saying how to install it."""
    try:
        import h5py
    except ImportError:
        raise MMCurateError(
            "the balancemm format reads and writes HDF5 files and needs h5py: pip install 'mmcurate[formats]'"
        ) from None
    return h5py


# ----------------------------------------------------------------------------- the loader's rules


def loader_frame_indices(num_frames: int, mode: str, rng: Any = None) -> list[int]:
    """The frame indices BalanceMM's ``BalanceDataset`` reads from a clip of ``num_frames`` frames.

    ``mode`` is the loader's mode (``"train"`` draws at random from each third with ``rng``, a
    ``random.Random``; anything else takes the segment centres). Written from the reference
    loader's description above, so tests can read an export exactly the way it does.
    """
    seg = num_frames // LOADER_PICKS
    out = []
    for k in range(LOADER_PICKS):
        if num_frames <= 6:
            out.append(1)
        elif mode == "train":
            assert rng is not None, "training-mode picks are random: pass rng"
            out.append(min(rng.randint(k * seg + 1, k * seg + seg), LOADER_MAX_INDEX))
        else:
            out.append(k * seg + max(seg // 2, 1))
    return out


def export_frame_indices(available: int, max_frames: int) -> list[int]:
    """Which stored frames an export writes: all of them up to ``max_frames``, else ``max_frames``
    spread evenly (segment centres, as :func:`mmcurate.data.frames.select_frame_indices` picks);
    a single frame is written twice, since the loader always reads index 1."""
    if available < 1:
        return []
    if available == 1:
        return [0, 0]
    if available <= max_frames:
        return list(range(available))
    return [min(available - 1, (2 * t + 1) * available // (2 * max_frames)) for t in range(max_frames)]


# ----------------------------------------------------------------------------- HDF5 frames


def frames_to_hdf5(frames: Sequence[bytes], times: Sequence[float] | None, duration: float | None) -> bytes:
    """The bytes of one clip's HDF5 file: ``video`` (variable-length uint8, one JPEG per element),
    ``frame_times`` and a ``duration`` attribute. Same frames, same bytes (no timestamps stored)."""
    h5py = require_h5py()
    buf = io.BytesIO()
    with h5py.File(buf, "w", libver="earliest") as f:
        video = f.create_dataset(VIDEO_DATASET, (len(frames),), dtype=h5py.vlen_dtype(np.dtype("uint8")))
        for i, jpeg in enumerate(frames):
            video[i] = np.frombuffer(bytes(jpeg), dtype=np.uint8)
        if times is not None:
            f.create_dataset(TIMES_DATASET, data=np.asarray(times, dtype=np.float64))
        if duration is not None:
            f.attrs["duration"] = float(duration)
    return buf.getvalue()


@dataclass(frozen=True)
class HDF5Frames:
    """What a clip's HDF5 file holds: JPEG frames, and what an mmcurate export adds (else None)."""

    frames: list[bytes]
    times: list[float] | None
    duration: float | None


def read_hdf5_frames(source: Path | bytes, what: str) -> HDF5Frames:
    """The frames of one clip's HDF5 file (a path, or the file's bytes); a missing, malformed or
    hostile file is a one-line error.

    The ``video`` dataset may hold variable-length uint8 arrays (how the field writes JPEGs),
    variable-length or fixed-length byte strings, or opaque bytes; each element must be a JPEG.
    Only the file's own bytes are read, and no more than they hold (:mod:`mmcurate.formats.hdf5_guard`).
    """
    h5py = require_h5py()
    if not isinstance(source, bytes):
        try:
            source = read_regular_bytes(source)  # never a FIFO, and HDF5 never opens the path itself
        except FileNotFoundError:
            raise MMCurateError(f"{what}: file not found") from None
        except OSError as exc:
            raise MMCurateError(f"{what}: cannot read it ({os_reason(exc)})") from None
    try:
        with h5py.File(io.BytesIO(source), "r") as f:
            frames = _read_video(f, source, what)
            times = _read_times(f, len(frames), source, what)
            duration = scalar_attribute(f, "duration")
    except MMCurateError:
        raise
    except Exception as exc:  # h5py raises OSError/KeyError/TypeError for damaged files
        raise MMCurateError(f"{what}: not a readable HDF5 file ({one_line(exc)})") from None
    return HDF5Frames(frames, times, duration)


def _read_video(f: Any, data: bytes, what: str) -> list[bytes]:
    """The JPEG bytes of every element of ``video``, each declared size checked before it is read."""
    h5py = require_h5py()
    video = resolve(f, VIDEO_DATASET, what)
    if not isinstance(video, h5py.Dataset):
        names = sorted(f.keys())
        shown = ", ".join(one_line(n, 40) for n in names[:5]) + (
            f" and {len(names) - 5} more" if len(names) > 5 else ""
        )
        raise MMCurateError(f"{what}: no '{VIDEO_DATASET}' dataset (it holds {shown or 'nothing'})")
    if video.shape is None or len(video.shape) != 1:
        raise MMCurateError(f"{what}: '{VIDEO_DATASET}' has shape {video.shape}, expected one element per frame")
    n = int(video.shape[0])
    if n == 0:
        raise MMCurateError(f"{what}: the '{VIDEO_DATASET}' dataset holds no frames")
    if n > MAX_FRAMES_PER_CLIP:
        raise MMCurateError(
            f"{what}: '{VIDEO_DATASET}' declares {n:,} frames, more than the {MAX_FRAMES_PER_CLIP} one clip may keep"
        )
    check_storage(video, what, len(data))
    dt = video.dtype
    string = h5py.check_string_dtype(dt)
    lengths: list[int] | None = None
    if h5py.check_vlen_dtype(dt) == np.dtype(np.uint8) or (string is not None and string.length is None):
        lengths = vlen_lengths(video, data, what)
        biggest = max(lengths)
        if biggest > MAX_STORED_FRAME_BYTES:
            raise MMCurateError(
                f"{what}: frame {lengths.index(biggest) + 1} of {n} declares {biggest:,} bytes, more than the "
                f"{MAX_STORED_FRAME_BYTES:,} a stored frame may have"
            )
        if sum(lengths) > len(data):
            raise MMCurateError(
                f"{what}: its frames declare {sum(lengths):,} bytes, more than the file's {len(data):,} (frames that "
                "repeat one stored object)"
            )
    elif (dt.kind in "SV" and dt.names is None and dt.subdtype is None) or (
        dt.subdtype is not None and dt.subdtype[0] == np.dtype(np.uint8) and len(dt.subdtype[1]) == 1
    ):
        declared = n * dt.itemsize
        if dt.itemsize > MAX_STORED_FRAME_BYTES or declared > declared_budget(len(data)):
            raise MMCurateError(
                f"{what}: '{VIDEO_DATASET}' declares {n:,} frames of {dt.itemsize:,} bytes, more than a file of "
                f"{len(data):,} bytes may hold"
            )
    else:
        raise MMCurateError(f"{what}: '{VIDEO_DATASET}' holds {one_line(dt, 60)}, expected JPEG bytes per frame")
    frames = []
    for i in range(n):
        frame = _as_bytes(video[i], what, i, n)
        if lengths is not None and len(frame) != lengths[i]:
            raise MMCurateError(f"{what}: frame {i + 1} of {n} is not the {lengths[i]:,} bytes it declares")
        frames.append(frame)
    return frames


def _read_times(f: Any, n: int, data: bytes, what: str) -> list[float] | None:
    """``frame_times`` when it holds one finite number per frame, else None (read only then)."""
    h5py = require_h5py()
    times = resolve(f, TIMES_DATASET, what)
    if not isinstance(times, h5py.Dataset) or times.shape != (n,):
        return None
    if times.dtype.kind not in "fiu" or times.dtype.itemsize > 8:
        return None
    check_storage(times, what, len(data))
    t = np.asarray(times[()], dtype=np.float64).reshape(-1)
    return [float(x) for x in t] if np.all(np.isfinite(t)) else None


def _as_bytes(cell: Any, what: str, index: int, count: int) -> bytes:
    if isinstance(cell, np.ndarray) and cell.dtype == np.uint8:
        data = cell.tobytes()
    elif isinstance(cell, (bytes, np.bytes_)):
        data = bytes(cell)
    elif isinstance(cell, np.void):
        data = cell.tobytes()
    else:
        raise MMCurateError(f"{what}: frame {index + 1} of {count} holds {type(cell).__name__}, expected JPEG bytes")
    if not data.startswith(JPEG_MAGIC):
        raise MMCurateError(f"{what}: frame {index + 1} of {count} is not a JPEG image")
    return data


# ----------------------------------------------------------------------------- annotations


def annotation_doc(
    classes: Sequence[str], entries: dict[str, dict[str, Any]], provenance: dict[str, Any]
) -> dict[str, Any]:
    """The annotation file's content: ``labels`` in class order, ``database`` sorted by clip id,
    and an ``mmcurate`` block (ignored by BalanceMM) saying how the files were made."""
    return {"labels": list(classes), "database": dict(sorted(entries.items())), "mmcurate": provenance}


def dumps_annotations(doc: dict[str, Any]) -> str:
    """Stable text of an annotation document (same content, same bytes)."""
    return json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


@dataclass(frozen=True)
class Annotations:
    """An annotation file, checked: the class list, and each clip's (subset, label, extra keys)."""

    labels: list[str]
    database: dict[str, dict[str, Any]]
    mmcurate: dict[str, Any]


def read_annotations(path: Path, what: str) -> Annotations:
    """An annotation file; a file that is not one is a one-line error (bad entries are the caller's)."""
    try:
        text = read_regular_text(path, encoding="utf-8-sig")
    except FileNotFoundError:
        raise MMCurateError(f"{what}: annotation file not found") from None
    except OSError as exc:
        raise MMCurateError(f"{what}: cannot read the annotation file ({os_reason(exc)})") from None
    except UnicodeDecodeError as exc:
        raise MMCurateError(f"{what}: not a readable JSON annotation file ({one_line(exc)})") from None
    doc = parse_json(text, f"{what} (annotation file)")
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("database"), dict)
        or not isinstance(doc.get("labels"), list)
    ):
        raise MMCurateError(f'{what}: expected {{"labels": [...], "database": {{clip_id: {{subset, label}}}}}}')
    labels = doc["labels"]
    if not labels or not all(isinstance(x, str) and x for x in labels):
        raise MMCurateError(f"{what}: 'labels' must be a non-empty list of class names")
    if len(set(labels)) != len(labels):
        raise MMCurateError(f"{what}: 'labels' names a class twice")
    extra = doc.get("mmcurate")
    return Annotations(list(labels), doc["database"], extra if isinstance(extra, dict) else {})


def split_of_subset(subset: Any) -> str | None:
    """train/val/test for a release's subset name (``training``, ``validation``, ``testing``...)."""
    return normalize_split(subset) if isinstance(subset, str) else None

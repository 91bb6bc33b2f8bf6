"""BalanceMM adapter: a release in BalanceMM's ``Balance`` / BML layout, read into a normal ingest folder.

``mmcurate ingest RAW_DIR --layout balancemm`` reads (format: :mod:`mmcurate.formats.balancemm`)::

    RAW_DIR/
      annotations.json          --layout-option annotations=...  {"labels", "database": {clip: {subset, label}}}
      visual/<clip_id>.hdf5     --layout-option visual=...       JPEG frames
      audio/<clip_id>.pkl       --layout-option audio=...        the clip's spectrogram (2-D float array)

Each annotated clip becomes one sample whose id is the clip id (the name BalanceMM knows it by,
whatever folder the files sit in); its ``path`` is the HDF5 file and the manifest's
``spectrogram`` column names the ``.pkl``. Subsets map to splits (``training`` -> train,
``validation`` -> val, ``testing`` -> test), ``labels`` is the class list in its own order, and a
``group`` key in an entry (an mmcurate export writes one) is kept.

There is no waveform, only a spectrogram made by an unknown recipe, so:

* frames: the HDF5's JPEG bytes become the shard's frames unchanged (an mmcurate export and its
  import are pixel-equal); ``frame_times`` and ``duration`` come from the file where an mmcurate
  export wrote them, else frames are taken to be one per second (how the field extracts them);
* audio: the shard's ``audio`` is null and ``audio_num_samples`` 0; the spectrogram is the shard's
  cached ``audio_features`` (float16; values outside float16's range, or not finite, fail the
  clip), and ``has_audio`` stays true: the clip has sound, stored as features. The ingest records
  the features' config (``audio_preset``) as that cache's config, so ``score``, ``balance``,
  ``report`` and ``reeval`` use it when asked for that preset; anything needing the waveform (another
  preset, FLAC audio) is refused with a message saying so;
* ``audio_preset`` names the recipe that made the spectrograms: a preset (``vggsound_stft``...) or a
  JSON file of feature settings. An mmcurate export records it in the annotation file, so it is
  needed only for other releases (the paper's recipe is not published: give the settings that
  match, at least the bin count). Each spectrogram must have the preset's bin count.

Pickles are read with :func:`mmcurate.formats.safe_pickle.load_array`: only numpy arrays, nothing
a file names is ever called. Bad input is one failure line per clip and the run goes on: a clip
whose HDF5 or ``.pkl`` is missing (or is a FIFO, a device, a name too long for the file system), an
HDF5 that is not one or reads beyond itself (:mod:`mmcurate.formats.hdf5_guard`), a pickle that is
not an array or is larger than the clip's spectrogram can be, a label not in ``labels``, a subset
that is not a split.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mmcurate.common.errors import MMCurateError, one_line
from mmcurate.common.files import os_reason, parse_json, read_regular_bytes, read_regular_text, regular_file_problem
from mmcurate.common.limits import MAX_FRAME_PIXELS
from mmcurate.formats.balancemm import (
    ANNOTATIONS,
    AUDIO_DIR,
    VISUAL_DIR,
    read_annotations,
    read_hdf5_frames,
    require_h5py,
    split_of_subset,
)
from mmcurate.formats.safe_pickle import load_array
from mmcurate.recipes.scan import display_name, list_files, relative_to_raw, require_dir, resolve_option_path
from mmcurate.store.items import ClipResult, Discovery, Failure, InputItem

#: largest finite float16: features are cached as float16
_F16_MAX = float(np.finfo(np.float16).max)
#: a spectrogram may cover this many times its clip's duration (a release's recipe may use a shorter
#: hop than the preset names), and at least this many seconds
SPECTROGRAM_SLACK = 4
MIN_SPECTROGRAM_SECONDS = 60.0


def discover(
    raw_dir: Path,
    *,
    annotations: str = ANNOTATIONS,
    visual: str = VISUAL_DIR,
    audio: str = AUDIO_DIR,
    audio_preset: str | None = None,
) -> Discovery:
    """The annotated clips of a BalanceMM-format release under ``raw_dir``.

    Options (paths relative to RAW_DIR, or absolute):
      annotations: the JSON annotation file; default ``annotations.json``.
      visual, audio: the folders of ``<clip_id>.hdf5`` and ``<clip_id>.pkl`` files (BalanceMM's
        ``visual_path`` and ``audio_path``); default ``visual`` and ``audio``. They must lie inside
        RAW_DIR (manifest paths are relative to it).
      audio_preset: the spectrograms' recipe, a preset name or a JSON file of feature settings;
        default: what the annotation file's ``mmcurate`` block records (an mmcurate export).
    """
    raw_dir = require_dir(raw_dir)
    require_h5py()
    ann_path = resolve_option_path(raw_dir, annotations)
    ann = read_annotations(ann_path, display_name(raw_dir, ann_path))
    features = _features(raw_dir, audio_preset, ann.mmcurate, display_name(raw_dir, ann_path))
    folders = {}
    for name, value in (("visual", visual), ("audio", audio)):
        folder = resolve_option_path(raw_dir, value)
        rel = relative_to_raw(raw_dir, folder)
        if rel is None:
            raise MMCurateError(
                f"layout option {name}={value}: {folder} lies outside RAW_DIR {raw_dir}; pass the folder that holds "
                "the annotations, visual and audio folders as RAW_DIR"
            )
        if not folder.is_dir():
            raise MMCurateError(f"layout option {name}={value}: folder {folder} not found")
        folders[name] = "" if rel == "." else rel.rstrip("/") + "/"

    disc = Discovery(classes=list(ann.labels), features=features)
    label_set = set(ann.labels)
    ann_name = display_name(raw_dir, ann_path)
    for clip_id, entry in ann.database.items():
        hdf5 = f"{folders['visual']}{clip_id}.hdf5"
        pkl = f"{folders['audio']}{clip_id}.pkl"
        problem = _entry_problem(clip_id, entry, label_set, ann_name)
        if problem is not None:
            stage, reason = problem
            disc.fail(hdf5, reason, stage=stage, sample_id=str(clip_id))
            continue
        problems = {p: regular_file_problem(raw_dir / p) for p in (hdf5, pkl)}
        missing = [p for p, why in problems.items() if why == "not found"]
        unusable = [(p, why) for p, why in problems.items() if why is not None and why != "not found"]
        if missing or unusable:
            reason = (
                f"listed in {ann_name} but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing"
                if missing
                else f"listed in {ann_name} but {unusable[0][0]} cannot be read ({unusable[0][1]})"
            )
            disc.fail((missing or [unusable[0][0]])[0], reason, sample_id=clip_id)
            continue
        group = entry.get("group")
        disc.items.append(
            InputItem(
                path=hdf5,
                label=entry["label"],
                split=split_of_subset(entry["subset"]),
                group=str(group) if group is not None else None,
                extra=(("spectrogram", pkl),),
                name=clip_id,
            )
        )
    used = {p for it in disc.items for p in (it.path, it.extra_dict()["spectrogram"])} | {
        f.file for f in disc.failures
    }
    for prefix in sorted(set(folders.values())):
        base = raw_dir / prefix if prefix else raw_dir
        disc.unlisted.extend(
            rel
            for rel in (f"{prefix}{p}" for p in list_files(base))
            if rel not in used and rel.endswith((".hdf5", ".pkl"))
        )
    disc.failures.sort(key=lambda f: (f.file, f.reason))
    return disc


def _entry_problem(clip_id: Any, entry: Any, labels: set[str], ann_name: str) -> tuple[str, str] | None:
    """(stage, reason) when an annotation entry cannot become a sample, else None."""
    if not isinstance(clip_id, str) or not clip_id.strip() or clip_id != clip_id.strip():
        return "discover", f"clip id {clip_id!r} in {ann_name} is empty or has surrounding spaces"
    parts = clip_id.split("/")
    if clip_id.startswith("/") or "\\" in clip_id or any(p in ("", ".", "..") for p in parts) or "\x00" in clip_id:
        return "discover", f"clip id {clip_id!r} in {ann_name} is not a plain relative name"
    if not isinstance(entry, dict) or "subset" not in entry or "label" not in entry:
        return "discover", f"entry {clip_id!r} in {ann_name} needs 'subset' and 'label'"
    if split_of_subset(entry["subset"]) is None:
        return "discover", f"subset {entry['subset']!r} of {clip_id!r} is not training, validation or testing"
    if entry["label"] not in labels:
        return "label", f"label {entry['label']!r} of {clip_id!r} is not in the 'labels' of {ann_name}"
    return None


def _features(raw_dir: Path, audio_preset: str | None, recorded: dict[str, Any], ann_name: str) -> dict[str, Any]:
    """The spectrograms' feature config as a dict: the option (a preset name or a JSON file), else
    what an mmcurate export recorded in the annotation file."""
    from mmcurate.features import resolve_feature_config

    if audio_preset is None or str(audio_preset).strip() == "":
        spec = recorded.get("audio_features")
        if spec is None:
            raise MMCurateError(
                f"{ann_name} does not say which recipe made the .pkl spectrograms; pass --layout-option "
                "audio_preset=NAME (cremad_stft, ks_fbank, logmel, vggsound_stft) or audio_preset=FILE.json with the "
                "feature settings that match them (at least their bin count)"
            )
        origin = f"{ann_name} (mmcurate.audio_features)"
    else:
        spec, origin = audio_preset, f"layout option audio_preset={audio_preset}"
        path = resolve_option_path(raw_dir, str(audio_preset))
        if str(audio_preset).endswith(".json") or path.is_file():
            try:
                text = read_regular_text(path)
            except (OSError, UnicodeDecodeError) as exc:
                reason = os_reason(exc) if isinstance(exc, OSError) else one_line(exc)
                raise MMCurateError(f"{origin}: not a readable JSON file of feature settings ({reason})") from None
            spec = parse_json(text, f"{origin} (a JSON file of feature settings)")
    try:
        return resolve_feature_config(spec).to_dict()
    except MMCurateError as exc:
        raise MMCurateError(f"{origin}: {exc}") from None


# ----------------------------------------------------------------------------- the per-item step


@lru_cache(maxsize=4)
def _num_bins(features_key: str) -> int:
    from mmcurate.features import resolve_feature_config

    return resolve_feature_config(json.loads(features_key)).num_bins


def process_item(raw_dir: str | os.PathLike[str], item: InputItem, cfg: Any, threads: int = 1) -> ClipResult:
    """One clip's HDF5 frames and pickled spectrogram -> a manifest row and a shard row.

    The counterpart of :func:`mmcurate.ingest.clip.process_clip` for this layout (same signature,
    same result); ``cfg`` is the ingest's decode config, whose ``features`` the runner has set to
    this layout's feature config. Never raises for bad input: returns a failure.
    """
    sid = item.sample_id
    raw = Path(raw_dir)
    pkl = item.extra_dict().get("spectrogram", "")

    def unreadable(name: str, exc: OSError) -> ClipResult:
        return ClipResult(sid, failure=Failure(item.path, "probe", f"cannot read {name} ({os_reason(exc)})", sid))

    try:
        hdf5_bytes = read_regular_bytes(raw / item.path)  # never a FIFO or device
    except OSError as exc:
        return unreadable(item.path, exc)
    try:
        stored = read_hdf5_frames(hdf5_bytes, item.path)
        width, height = _check_frames(stored.frames, item.path)
    except MMCurateError as exc:
        return ClipResult(sid, failure=Failure(item.path, "decode", str(exc), sid))
    n = len(stored.frames)
    times = stored.times if stored.times is not None else [float(i) for i in range(n)]
    duration = stored.duration if stored.duration is not None else float(n)
    max_frames = _max_spectrogram_frames(cfg.features, max(duration, float(n), times[-1] if times else 0.0))
    bins = _num_bins(json.dumps(cfg.features, sort_keys=True))
    try:  # a pickle bigger than the clip's spectrogram can be is refused before it is read
        pkl_bytes = read_regular_bytes(raw / pkl, limit=_max_pickle_bytes(bins, max_frames), what="the pickle")
    except OSError as exc:
        return unreadable(pkl, exc)
    try:
        spectrogram = load_array(pkl_bytes, pkl)
        features = _as_features(spectrogram, pkl, cfg.features, max_frames)
    except MMCurateError as exc:
        return ClipResult(sid, failure=Failure(item.path, "decode", str(exc), sid))
    digest = hashlib.sha256(hdf5_bytes)
    digest.update(pkl_bytes)
    row = {
        "sample_id": sid,
        "path": item.path,
        "size_bytes": len(hdf5_bytes) + len(pkl_bytes),
        "sha256": digest.hexdigest(),
        "label": item.label,
        "split": item.split,
        "group": item.group,
        "start": None,
        "end": None,
        "duration": float(duration),
        "container": "hdf5",
        "video_codec": "mjpeg",
        "audio_codec": None,
        "fps": None,
        "width": width,
        "height": height,
        "native_frame_count": n,
        "native_sample_rate": None,
        "native_channels": None,
        "native_audio_samples": None,
        "num_frames": n,
        "num_audio_samples": 0,
        "has_audio": True,
        "has_video": True,
        **item.extra_dict(),
    }
    media = {
        "sample_id": sid,
        "label": item.label,
        "frames": stored.frames,
        "frame_times": [float(t) for t in times],
        "audio": None,
        "audio_sample_rate": int(cfg.sample_rate),
        "audio_num_samples": 0,
        "audio_features": features,
    }
    return ClipResult(sid, row=row, media=media)


def _max_spectrogram_frames(features: Any, seconds: float) -> int:
    """Most time frames a spectrogram of a clip lasting ``seconds`` may have: four times the clip
    (a release's own recipe may use a shorter hop than the preset), at least a minute, plus the
    preset's fixed length where it pads to one."""
    from mmcurate.features import resolve_feature_config

    fc = resolve_feature_config(features)
    covered = max(SPECTROGRAM_SLACK * seconds, MIN_SPECTROGRAM_SECONDS)
    return int(math.ceil(covered * fc.sample_rate / fc.hop_length)) + int(fc.target_frames or 0) + 16


def _max_pickle_bytes(bins: int, frames: int) -> int:
    """Largest pickle that can hold a ``bins x frames`` float64 array, spelled the longest way a
    pickle protocol spells bytes (protocol 0 escapes each byte in up to 4 characters)."""
    return 4 * bins * frames * 8 + (1 << 16)


def _check_frames(frames: list[bytes], what: str) -> tuple[int, int]:
    """Every frame decodes as an image; returns the first frame's (width, height). A frame
    declaring more than :data:`MAX_FRAME_PIXELS` pixels is refused before it is decoded."""
    size = (0, 0)
    for i, data in enumerate(frames):
        try:
            with Image.open(io.BytesIO(data)) as img:
                if img.size[0] * img.size[1] > MAX_FRAME_PIXELS:
                    raise MMCurateError(
                        f"{what}: frame {i + 1} of {len(frames)} declares {img.size[0]}x{img.size[1]} pixels, more "
                        f"than the {MAX_FRAME_PIXELS:,} a frame may have"
                    )
                img.load()
                if i == 0:
                    size = img.size
        except MMCurateError:
            raise
        except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError... for damaged JPEGs
            raise MMCurateError(f"{what}: frame {i + 1} of {len(frames)} does not decode ({one_line(exc)})") from None
    return size


def _as_features(spectrogram: np.ndarray, what: str, features: Any, max_frames: int | None = None) -> np.ndarray:
    """The spectrogram as the shard's float16 cache, checked against the feature config's bin count
    and (``max_frames``) the most time frames the clip's duration allows."""
    bins = _num_bins(json.dumps(features, sort_keys=True))
    if spectrogram.shape[0] != bins:
        raise MMCurateError(
            f"{what}: the spectrogram has {spectrogram.shape[0]} bins x {spectrogram.shape[1]} frames "
            f"but audio_preset gives {bins} bins (mmcurate stores bins x time)"
        )
    if max_frames is not None and spectrogram.shape[1] > max_frames:
        raise MMCurateError(
            f"{what}: the spectrogram has {spectrogram.shape[1]:,} time frames, more than the {max_frames:,} its "
            "clip's duration allows"
        )
    if spectrogram.dtype.kind == "f" and not np.isfinite(spectrogram).all():
        raise MMCurateError(f"{what}: the spectrogram holds NaN or infinite values")
    peak = max(abs(float(spectrogram.max())), abs(float(spectrogram.min())))
    if peak > _F16_MAX:
        raise MMCurateError(f"{what}: the spectrogram reaches {peak:g}, beyond float16 (the cache's type)")
    return spectrogram.astype(np.float16)

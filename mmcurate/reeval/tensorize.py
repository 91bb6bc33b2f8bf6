"""Media rows -> model tensors, through :mod:`mmcurate.data`.

Every source (balanced export, Hub dataset, ingest shards) is first put in the ingest shard
layout (``sample_id``, ``label`` as a class name, ``frames`` = list of JPEG bytes, ``audio`` =
FLAC bytes, ``audio_sample_rate``, optional ``audio_features``), so one decoder serves all of
them. All splits are decoded in one call: the data-dependent spectrogram length is then the
same for train, val and test.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from mmcurate.common.atomic import TMP_PREFIX, clean_stale_temporaries, make_temp_dir
from mmcurate.data import TensorConfig, build_av_tensors
from mmcurate.data.tensor_cache import STALE_TMP_SECONDS, TensorCache, key_of
from mmcurate.reeval.settings import TensorSettings

#: the temporary folder (``.tmp-reeval-tensors.<random>``) the mapped tensors are decoded into
MAPPED_DIR = "reeval-tensors"


@dataclass
class MediaTensors:
    """Decoded clips: (N, T, 3, S, S) uint8 frames, (N, 1, F, L) spectrograms (float32 in RAM, float16
    memory-mapped), (N,) labels."""

    frames: torch.Tensor
    audio: torch.Tensor
    labels: torch.Tensor
    #: the tensor config used, as a dict (saved in results.json)
    decoder: dict


def tensor_config(settings: TensorSettings) -> TensorConfig:
    kwargs: dict = {"image_size": settings.image_size, "num_frames": settings.num_frames}
    if settings.audio_preset is not None:
        kwargs["audio"] = settings.audio_preset  # TensorConfig resolves preset names (bad name: MMCurateError)
    return TensorConfig(**kwargs)


def tensorize(media: pa.Table, classes: list[str], settings: TensorSettings) -> MediaTensors:
    """Decode every row of a shard-layout table (see module docstring) into tensors in RAM."""
    cfg = tensor_config(settings)
    tensors = build_av_tensors(media, classes, cfg, workers=_decode_threads())
    return MediaTensors(tensors.frames, tensors.audio.float(), tensors.labels, cfg.to_dict())


def tensorize_mapped(
    media: pa.Table,
    order: np.ndarray,
    sample_ids: list[str],
    classes: list[str],
    settings: TensorSettings,
    scratch: Path,
) -> MediaTensors | None:
    """Decode rows ``order`` of ``media`` (whose ids are ``sample_ids``, in that order) into memory-mapped
    files under ``scratch`` (the results folder), or None when its disk has no room for them.

    Why: held in RAM, the decoded set makes a re-evaluation's memory grow with the data (about 60 KB a
    clip at the CPU defaults, measured: benchmarks/results/memory.md); mapped, its pages are page cache,
    shared by the forked runs and dropped under pressure. The files are decoded with the tensor cache's
    bounded-memory build and unlinked as soon as they are mapped: the maps stay valid while the process
    (and the runs forked from it) lives, and nothing is left behind, even after a crash once they are
    open. Audio is stored float16, the precision every decode path rounds features to (``TensorConfig``),
    so the values are those of the in-RAM path; batches cast them to float32."""
    cfg = tensor_config(settings)
    scratch.mkdir(parents=True, exist_ok=True)
    # a killed run's half-decoded folder; not one a live rank is writing (old enough)
    clean_stale_temporaries(scratch, lambda dest: dest == MAPPED_DIR, older_than=STALE_TMP_SECONDS)
    cache = TensorCache(make_temp_dir(TMP_PREFIX + MAPPED_DIR + ".", scratch))
    try:
        if not cache.has_room(len(order), cfg):
            return None
        key = key_of("reeval", cfg, classes, sample_ids)
        tensors = cache.build(key, media, workers=_decode_threads(), order=order)
    finally:
        shutil.rmtree(cache.root, ignore_errors=True)
    return MediaTensors(tensors.frames, tensors.audio, tensors.labels, cfg.to_dict())


def _decode_threads() -> int:
    workers = min(4, os.cpu_count() or 1)
    return workers if workers > 1 else 0

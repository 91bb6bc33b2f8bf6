"""Media rows -> model tensors, through :mod:`mmcurate.data`.

Every source (balanced export, Hub dataset, ingest shards) is first put in the ingest shard
layout (``sample_id``, ``label`` as a class name, ``frames`` = list of JPEG bytes, ``audio`` =
FLAC bytes, ``audio_sample_rate``, optional ``audio_features``), so one decoder serves all of
them. All splits are decoded in one call: the data-dependent spectrogram length is then the
same for train, val and test.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pyarrow as pa
import torch

from mmcurate.data import TensorConfig, build_av_tensors
from mmcurate.reeval.settings import TensorSettings


@dataclass
class MediaTensors:
    """Decoded clips: (N, T, 3, S, S) uint8 frames, (N, 1, F, L) float32 spectrograms, (N,) labels."""

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
    """Decode every row of a shard-layout table (see module docstring) into tensors."""
    cfg = tensor_config(settings)
    workers = min(4, os.cpu_count() or 1)
    tensors = build_av_tensors(media, classes, cfg, workers=workers if workers > 1 else 0)
    return MediaTensors(tensors.frames, tensors.audio.float(), tensors.labels, cfg.to_dict())

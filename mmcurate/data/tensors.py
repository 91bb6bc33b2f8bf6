"""Decode a whole set into memory at once: :class:`AVTensors`, the CPU default.

For av_digits-sized sets (thousands of short clips at 64 px) the decoded tensors take tens of MB,
so decoding once and slicing batches out of memory beats decoding per epoch by a wide margin.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from mmcurate.common.progress import progress_bar
from mmcurate.data.config import TensorConfig
from mmcurate.data.records import SampleRecord, records_from_dicts, records_from_table
from mmcurate.data.sample import (
    cached_usable,
    check_sample_rates,
    choose_audio_frames,
    decode_sample,
    sample_frame_count,
)
from mmcurate.data.shards import cached_features_config
from mmcurate.data.threads import single_intraop_thread
from mmcurate.features import AudioFeatureConfig, resolve_feature_config

#: Samples per unit of work handed to a worker thread (amortises scheduling, keeps order).
_CHUNK = 32


@dataclass
class AVTensors:
    """A decoded set, row i of every tensor being sample ``sample_ids[i]``.

    ``frames`` (N, T, 3, S, S) uint8 (normalise per batch with :func:`normalize_frames`);
    ``audio`` (N, 1, bins, audio_frames), ``cfg.audio_dtype`` (float32 by default; the values are
    float16-exact either way); ``labels`` (N,) int64 indices into ``classes``; ``has_audio`` and
    ``has_frames`` (N,) bool mark zero-filled modalities.
    """

    frames: torch.Tensor
    audio: torch.Tensor
    labels: torch.Tensor
    sample_ids: list[str]
    classes: list[str]
    config: TensorConfig
    has_audio: torch.Tensor
    has_frames: torch.Tensor
    #: what the build did: seconds, how many samples used the feature cache, workers
    stats: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.sample_ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        """One sample as :class:`AVDataset` gives it."""
        return {
            "frames": self.frames[i],
            "audio": self.audio[i],
            "label": self.labels[i],
            "sample_id": self.sample_ids[i],
        }

    @property
    def audio_frames(self) -> int:
        return int(self.audio.shape[-1])

    def subset(self, indices: Sequence[int] | torch.Tensor | np.ndarray) -> AVTensors:
        """Rows ``indices`` (in that order), e.g. a fold or a split."""
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        return AVTensors(
            frames=self.frames[idx],
            audio=self.audio[idx],
            labels=self.labels[idx],
            sample_ids=[self.sample_ids[int(i)] for i in idx],
            classes=list(self.classes),
            config=self.config,
            has_audio=self.has_audio[idx],
            has_frames=self.has_frames[idx],
            stats=dict(self.stats),
        )

    def to(self, device: torch.device | str) -> AVTensors:
        """A copy with every tensor on ``device`` (whole-set GPU residency for small sets)."""
        return AVTensors(
            frames=self.frames.to(device),
            audio=self.audio.to(device),
            labels=self.labels.to(device),
            sample_ids=self.sample_ids,
            classes=self.classes,
            config=self.config,
            has_audio=self.has_audio.to(device),
            has_frames=self.has_frames.to(device),
            stats=dict(self.stats),
        )


def build_av_tensors(
    rows: pa.Table | Iterable[Mapping[str, Any]],
    classes: Sequence[str],
    cfg: TensorConfig | None = None,
    workers: int = 0,
    features_config: AudioFeatureConfig | str | dict[str, Any] | None = None,
) -> AVTensors:
    """Decode every row into :class:`AVTensors`.

    ``rows`` is a shard table (:func:`read_shards`), an exported dataset's table, or dict rows
    (e.g. a ``datasets.Dataset`` with ``Audio(decode=False)``). ``workers`` > 0 decodes in that
    many threads (PIL, libsndfile and torch release the GIL); the result does not depend on it.
    The shard's ``audio_features`` cache is used instead of the FLAC when
    ``cfg.use_cached_features`` and its config (``features_config``, else the one
    :func:`read_shards` recorded in the table) equals ``cfg.audio``.
    """
    cfg = cfg or TensorConfig()
    started = time.perf_counter()
    records, cache_ok = _records_and_cache(rows, classes, cfg, features_config)
    check_sample_rates(records, cfg, cache_ok, cached_config(rows, features_config))
    audio_frames = choose_audio_frames([sample_frame_count(r, cfg, cache_ok) for r in records], cfg)
    n = len(records)
    s, t = cfg.image_size, cfg.num_frames
    frames = np.empty((n, t, 3, s, s), dtype=np.uint8)
    audio = np.empty((n, 1, cfg.audio.num_bins, audio_frames), dtype=np.dtype(cfg.audio_dtype))
    has_audio = np.zeros(n, dtype=bool)
    has_frames = np.zeros(n, dtype=bool)
    with progress_bar("decode frames + audio", total=n) as advance:
        cached_used = decode_into(
            records,
            cfg,
            audio_frames,
            cache_ok,
            DecodeTargets(frames, audio, has_audio, has_frames),
            0,
            workers,
            advance,
        )

    return AVTensors(
        frames=torch.from_numpy(frames),
        audio=torch.from_numpy(audio),
        labels=torch.tensor([r.label for r in records], dtype=torch.int64),
        sample_ids=[r.sample_id for r in records],
        classes=list(classes),
        config=cfg,
        has_audio=torch.from_numpy(has_audio),
        has_frames=torch.from_numpy(has_frames),
        stats={
            "seconds": round(time.perf_counter() - started, 3),
            "samples": n,
            "cached_features_used": cached_used,
            "audio_frames": audio_frames,
            "workers": workers,
        },
    )


@dataclass
class DecodeTargets:
    """The arrays a decode writes into (in memory, or the memory-mapped files of a tensor cache)."""

    frames: np.ndarray
    audio: np.ndarray
    has_audio: np.ndarray
    has_frames: np.ndarray


def decode_into(
    records: Sequence[SampleRecord],
    cfg: TensorConfig,
    audio_frames: int,
    cache_ok: bool,
    out: DecodeTargets,
    offset: int,
    workers: int,
    advance: Callable[[int], Any],
) -> int:
    """Decode ``records`` into rows ``offset``.. of ``out`` (the one decode loop of the in-memory set and
    the tensor cache, so both hold the same arrays); how many samples used the feature cache."""
    n = len(records)

    def work(start: int) -> int:
        used = 0
        for i in range(start, min(start + _CHUNK, n)):
            dec = decode_sample(records[i], cfg, audio_frames, cache_ok)
            out.frames[offset + i] = dec.frames
            out.audio[offset + i, 0] = dec.audio
            out.has_audio[offset + i] = dec.has_audio
            out.has_frames[offset + i] = dec.has_frames
            used += int(cached_usable(records[i], cfg, cache_ok))
        return used

    starts = list(range(0, n, _CHUNK))
    used = 0
    with single_intraop_thread():
        if workers <= 0:
            for st in starts:
                used += work(st)
                advance(min(_CHUNK, n - st))
            return used
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mmcurate-decode") as pool:
            futures = [pool.submit(work, st) for st in starts]
            try:
                for st, fut in zip(starts, futures, strict=True):  # in order: the first bad sample is reported
                    used += fut.result()
                    advance(min(_CHUNK, n - st))
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
    return used


def _records_and_cache(
    rows: pa.Table | Iterable[Mapping[str, Any]],
    classes: Sequence[str],
    cfg: TensorConfig,
    features_config: AudioFeatureConfig | str | dict[str, Any] | None,
) -> tuple[list[SampleRecord], bool]:
    if isinstance(rows, pa.Table):
        records = records_from_table(rows, classes)
    else:
        records = records_from_dicts(rows, classes)
    return records, cache_matches(rows, cfg, features_config)


def cache_matches(
    rows: Any, cfg: TensorConfig, features_config: AudioFeatureConfig | str | dict[str, Any] | None
) -> bool:
    """Whether cached features may stand in for the FLAC: their config must equal ``cfg.audio``
    field for field (a cache without a known config is never used)."""
    if not cfg.use_cached_features:
        return False
    cached_cfg = cached_config(rows, features_config)
    return cached_cfg is not None and cached_cfg == cfg.audio


def cached_config(
    rows: Any, features_config: AudioFeatureConfig | str | dict[str, Any] | None
) -> AudioFeatureConfig | None:
    """The cached features' config: ``features_config`` when given, else the one recorded in the table."""
    if features_config is not None:
        return resolve_feature_config(features_config)
    if isinstance(rows, pa.Table):
        return cached_features_config(rows)
    return None

"""Decode one :class:`SampleRecord` into model inputs: the single code path that both the
in-memory :class:`AVTensors` and the lazy :class:`AVDataset` use, so they cannot disagree."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mmcurate.common.errors import MMCurateError
from mmcurate.data.audio import (
    decode_flac,
    fit_time_axis,
    flac_num_samples,
    silence_column,
    waveform_features,
)
from mmcurate.data.config import TensorConfig
from mmcurate.data.frames import decode_jpeg_frames
from mmcurate.data.records import SampleRecord
from mmcurate.features import AudioFeatureConfig, num_feature_frames, preset_name_of


@dataclass(frozen=True)
class DecodedSample:
    """``frames`` (T, 3, S, S) uint8; ``audio`` (bins, audio_frames) float16. A sample without
    frames gets black frames and ``has_frames=False``; one without audio gets the features of
    silence and ``has_audio=False`` (zero-filling a missing modality, as the field does)."""

    frames: np.ndarray
    audio: np.ndarray
    has_frames: bool
    has_audio: bool


def cached_usable(rec: SampleRecord, cfg: TensorConfig, cache_ok: bool) -> bool:
    return cache_ok and cfg.use_cached_features and rec.cached is not None


def sample_frame_count(rec: SampleRecord, cfg: TensorConfig, cache_ok: bool) -> int | None:
    """Frames of this sample's features before padding/cropping; None without audio."""
    if cached_usable(rec, cfg, cache_ok):
        assert rec.cached is not None
        return int(rec.cached.shape[1])
    if rec.audio is None:
        return None
    samples = rec.audio_num_samples
    if samples is None:
        try:
            samples, _ = flac_num_samples(rec.audio)
        except MMCurateError as exc:
            raise MMCurateError(f"sample {rec.sample_id!r}: {exc}") from None
    return num_feature_frames(int(samples), cfg.audio)


def choose_audio_frames(counts: Sequence[int | None], cfg: TensorConfig) -> int:
    """The audio time length: ``cfg.audio_frames`` if set; else the fixed length of a feature
    config that has one; else the 95th percentile of the samples' frame counts (rounded up),
    capped at ``cfg.max_audio_frames``, so a few long outliers neither dictate the tensor size
    nor get tiled padding everywhere."""
    if cfg.audio_frames is not None:
        return cfg.audio_frames
    audio = cfg.audio
    if audio.target_frames is not None or audio.tile_samples is not None:
        return max(1, num_feature_frames(0, audio))
    present = np.asarray([c for c in counts if c is not None], dtype=np.float64)
    if present.size == 0:
        return max(1, num_feature_frames(0, audio))
    p95 = int(np.ceil(np.percentile(present, 95)))
    return max(1, min(p95, cfg.max_audio_frames))


def decode_sample(rec: SampleRecord, cfg: TensorConfig, audio_frames: int, cache_ok: bool) -> DecodedSample:
    """Decode frames and audio of one record; any failure is an :class:`MMCurateError` that
    names the sample and what to do."""
    try:
        return _decode(rec, cfg, audio_frames, cache_ok)
    except MMCurateError as exc:
        raise MMCurateError(
            f"sample {rec.sample_id!r}: {exc}; re-ingest this file or leave it out of the selection"
        ) from None


def _decode(rec: SampleRecord, cfg: TensorConfig, audio_frames: int, cache_ok: bool) -> DecodedSample:
    has_frames = len(rec.frames) > 0
    if has_frames:
        frames = decode_jpeg_frames(rec.frames, cfg.image_size, cfg.num_frames)
    else:
        frames = np.zeros((cfg.num_frames, 3, cfg.image_size, cfg.image_size), dtype=np.uint8)

    bins = cfg.audio.num_bins
    if cached_usable(rec, cfg, cache_ok):
        assert rec.cached is not None
        feats = rec.cached
        if feats.shape[0] != bins:
            raise MMCurateError(
                f"cached audio_features have {feats.shape[0]} bins but the feature config gives {bins}; "
                "the cache does not match its recorded config"
            )
        has_audio = True
    elif rec.audio is not None:
        wave, rate = decode_flac(rec.audio)
        if rate != cfg.audio.sample_rate:
            raise MMCurateError(
                f"audio is stored at {rate} Hz but the audio features need {cfg.audio.sample_rate} Hz "
                f"(ingest again with --sample-rate {cfg.audio.sample_rate}, or choose features for {rate} Hz)"
            )
        feats = waveform_features(wave, rate, cfg.audio)
        has_audio = True
    else:
        feats = np.zeros((bins, 0), dtype=np.float16)
        has_audio = False
    if not has_audio:
        audio = np.repeat(silence_column(cfg.audio)[:, None], audio_frames, axis=1)
    else:
        audio = fit_time_axis(feats, audio_frames, cfg.audio_pad, cfg.audio)
    return DecodedSample(frames=frames, audio=audio, has_frames=has_frames, has_audio=has_audio)


def check_sample_rates(
    records: Sequence[SampleRecord], cfg: TensorConfig, cache_ok: bool, cached: AudioFeatureConfig | None = None
) -> None:
    """Fail before any decoding when a stored rate cannot give the requested features, or when a
    sample has no waveform, only cached features that are not the requested ones (an imported
    BalanceMM release): zero-filling its audio would silently train on silence. ``cached`` is the
    cache's config, named in the message."""
    want = cfg.audio.sample_rate
    for rec in records:
        if rec.audio is None and rec.cached is not None and not cached_usable(rec, cfg, cache_ok):
            have = preset_name_of(cached) if cached is not None else None
            if not cfg.use_cached_features:
                why = "and use_cached_features is off"
            else:
                why = f"so {preset_name_of(cfg.audio) or 'the requested features'} cannot be computed"
            fix = (
                f"use {have} (score/balance: --audio-features {have}; reeval: --audio-preset {have})"
                if have
                else "ask for the features the ingest cached (its config.json records their settings)"
            )
            raise MMCurateError(
                f"sample {rec.sample_id!r} has no waveform, only cached {have or 'custom'} audio features, "
                f"{why}; {fix}"
            )
        if rec.audio is None or cached_usable(rec, cfg, cache_ok) or rec.audio_sample_rate is None:
            continue
        if int(rec.audio_sample_rate) != want:
            raise MMCurateError(
                f"sample {rec.sample_id!r}: audio is stored at {int(rec.audio_sample_rate)} Hz but the audio features "
                f"need {want} Hz; ingest again with --sample-rate {want}, or choose features made for "
                f"{int(rec.audio_sample_rate)} Hz"
            )

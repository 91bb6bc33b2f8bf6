"""``compute_audio_features``: waveform in, ``(bins, frames)`` float32 out, on CPU or CUDA.

Resampling is deliberately not done here: ingest decodes audio at the recipe's rate (PyAV's
resampler), and a waveform at any other rate is a user error, reported as such, rather than
being silently resampled by a second, different resampler.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mmcurate.common.errors import MMCurateError
from mmcurate.features.config import AudioFeatureConfig
from mmcurate.features.spectral import (
    kaldi_fbank_energies,
    kaldi_frame_count,
    logmel_power,
    stft_power,
)


def compute_audio_features(waveform: Any, sample_rate: int, cfg: AudioFeatureConfig) -> torch.Tensor:
    """Features of one mono waveform: ``(cfg.num_bins, frames)`` float32 on the waveform's device.

    ``waveform`` is a 1-D float array or tensor in [-1, 1] at ``cfg.sample_rate``; NumPy input
    gives a CPU tensor. An empty waveform is treated as silence. See :class:`AudioFeatureConfig`
    for the processing order and :func:`num_feature_frames` for the frame count.
    """
    wave = _as_float_tensor(waveform)
    if wave.ndim != 1:
        raise MMCurateError(
            f"compute_audio_features expects a 1-D mono waveform, got shape {tuple(wave.shape)}; "
            "mix channels down first or use compute_audio_features_batch for (batch, samples)"
        )
    return compute_audio_features_batch(wave.unsqueeze(0), sample_rate, cfg)[0]


def compute_audio_features_batch(waveforms: Any, sample_rate: int, cfg: AudioFeatureConfig) -> torch.Tensor:
    """Features of a batch of equal-length mono waveforms ``(B, samples)``: ``(B, bins, frames)``.

    Each row is treated as a whole clip (its mean, tiling and frame count use all ``samples``), so
    rows zero-padded to a common length give the features of the padded clips. One call on a GPU
    replaces B small ones; results match :func:`compute_audio_features` row by row up to float32
    rounding of the batched FFT.
    """
    wave = _as_float_tensor(waveforms)
    if wave.ndim != 2:
        raise MMCurateError(f"compute_audio_features_batch expects (batch, samples), got shape {tuple(wave.shape)}")
    if int(sample_rate) != cfg.sample_rate:
        raise MMCurateError(
            f"audio is at {sample_rate} Hz but this feature config needs {cfg.sample_rate} Hz; "
            f"re-ingest with --sample-rate {cfg.sample_rate} (resampling happens at decode time) "
            "or pick a feature preset made for this rate"
        )
    if wave.numel() and not bool(torch.isfinite(wave).all()):
        raise MMCurateError("waveform contains NaN or infinite samples; the audio decoded to invalid values")
    wave = prepare_waveform(wave, cfg)
    if cfg.kind == "stft":
        energies = stft_power(wave, cfg)
    elif cfg.kind == "logmel":
        energies = logmel_power(wave, cfg)
    else:
        energies = kaldi_fbank_energies(wave, cfg)
    if cfg.log_offset:
        energies = energies + cfg.log_offset
    if cfg.log_floor:
        energies = energies.clamp_min(cfg.log_floor)
    feats = torch.log(energies)
    if cfg.target_frames is not None:
        feats = fit_frames(feats, cfg.target_frames)
    if cfg.norm_mean != 0.0 or cfg.norm_std != 1.0:
        feats = (feats - cfg.norm_mean) / cfg.norm_std
    return feats.contiguous()


def prepare_waveform(wave: torch.Tensor, cfg: AudioFeatureConfig) -> torch.Tensor:
    """The waveform steps before framing: remove the mean, tile/crop to ``tile_seconds``, clip.

    Tiling repeats the clip as many times as needed and keeps the first ``tile_samples``
    (the OGM-GE loaders tile a fixed 3 times or double until long enough: the same samples
    whenever the clip is long enough for them); a longer clip is cropped where ``crop`` says.
    """
    if cfg.remove_mean and wave.shape[-1]:
        wave = wave - wave.mean(dim=-1, keepdim=True)
    target = cfg.tile_samples
    if target is not None:
        n = wave.shape[-1]
        if n == 0:
            wave = wave.new_zeros((wave.shape[0], target))
        elif n < target:
            wave = wave.repeat(1, math.ceil(target / n))[:, :target]
        elif n > target:
            start = (n - target) // 2 if cfg.crop == "center" else 0
            wave = wave[:, start : start + target]
    if cfg.clip:
        wave = wave.clamp(-1.0, 1.0)
    return wave


def fit_frames(feats: torch.Tensor, frames: int) -> torch.Tensor:
    """Crop the last (time) axis to ``frames`` (keeping the start) or pad it with zeros."""
    have = feats.shape[-1]
    if have > frames:
        return feats[..., :frames]
    if have < frames:
        return F.pad(feats, (0, frames - have))
    return feats


def num_feature_frames(num_samples: int, cfg: AudioFeatureConfig) -> int:
    """Frames :func:`compute_audio_features` gives for ``num_samples`` input samples, without
    computing anything (used to size tensors before decoding)."""
    if cfg.target_frames is not None:
        return cfg.target_frames
    n = cfg.tile_samples if cfg.tile_samples is not None else int(num_samples)
    if cfg.kind == "fbank":
        return kaldi_frame_count(n, cfg)
    if cfg.center:
        pad = cfg.n_fft // 2
        if cfg.pad_mode == "reflect":
            n = max(n, pad + 1)
        return 1 + (n + 2 * pad - cfg.n_fft) // cfg.hop_length
    return 1 + (max(n, cfg.n_fft) - cfg.n_fft) // cfg.hop_length


def feature_shape(num_samples: int, cfg: AudioFeatureConfig) -> tuple[int, int]:
    """``(bins, frames)`` of the features of ``num_samples`` samples."""
    return cfg.num_bins, num_feature_frames(num_samples, cfg)


def _as_float_tensor(waveform: Any) -> torch.Tensor:
    """A float32 tensor view/copy of NumPy or torch input (integer PCM is refused: its scale is
    ambiguous, and the features assume [-1, 1])."""
    if isinstance(waveform, torch.Tensor):
        tensor = waveform
    else:
        arr = np.asarray(waveform)
        if arr.dtype == object:
            raise MMCurateError("waveform must be a numeric array of samples")
        tensor = torch.from_numpy(np.ascontiguousarray(arr))
    if not (tensor.is_floating_point()):
        raise MMCurateError(
            f"waveform must be float samples in [-1, 1], got dtype {tensor.dtype}; divide 16-bit PCM by 32768"
        )
    return tensor.to(torch.float32)

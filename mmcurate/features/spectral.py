"""The spectral transforms in plain torch (no torchaudio), batched over a leading axis.

Every function takes ``(B, samples)`` float32 on any device and returns ``(B, bins, frames)``;
the constant tensors (windows, filterbanks) are built once per config and device and cached.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from mmcurate.features.config import AudioFeatureConfig
from mmcurate.features.mel import kaldi_mel_banks, mel_filterbank
from mmcurate.features.windows import centre_pad, kaldi_window, stft_window


@functools.lru_cache(maxsize=64)
def _constant(kind: str, cfg: AudioFeatureConfig, device: torch.device) -> torch.Tensor:
    """A float32 constant of ``cfg`` on ``device``: the window or the filterbank."""
    if kind == "stft_window":
        arr = centre_pad(stft_window(cfg.window, cfg.window_length), cfg.n_fft)
    elif kind == "kaldi_window":
        arr = kaldi_window(cfg.window, cfg.window_length)
    elif kind == "mel_filters":
        assert cfg.n_mels is not None
        arr = mel_filterbank(
            cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.max_frequency, cfg.mel_scale, cfg.mel_norm
        )
    elif kind == "kaldi_banks":
        assert cfg.n_mels is not None
        arr = kaldi_mel_banks(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.max_frequency)
    else:  # pragma: no cover - internal misuse
        raise ValueError(kind)
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).to(device)


def _spectrum_power(spec: torch.Tensor, power: float) -> torch.Tensor:
    """``|X| ** power`` of a complex spectrum, computed as re^2 + im^2 for power 2 (no sqrt)."""
    sq = spec.real.square() + spec.imag.square()
    return sq if power == 2.0 else sq.sqrt()


def stft_power(wave: torch.Tensor, cfg: AudioFeatureConfig) -> torch.Tensor:
    """``|STFT| ** power``, ``(B, n_fft // 2 + 1, frames)``, framed as ``librosa.stft`` frames.

    With ``center`` the signal is padded by ``n_fft // 2`` on each side, so frame t is centred on
    sample ``t * hop`` and there are ``1 + samples // hop`` frames. Reflection needs more samples
    than the pad, so a shorter signal is first extended with zeros to ``n_fft // 2 + 1`` samples;
    without ``center`` a signal shorter than ``n_fft`` is extended with zeros to one frame.
    """
    n_fft = cfg.n_fft
    if cfg.center:
        pad = n_fft // 2
        if cfg.pad_mode == "reflect" and wave.shape[-1] <= pad:
            wave = F.pad(wave, (0, pad + 1 - wave.shape[-1]))
        wave = F.pad(wave.unsqueeze(1), (pad, pad), mode=cfg.pad_mode).squeeze(1)
    elif wave.shape[-1] < n_fft:
        wave = F.pad(wave, (0, n_fft - wave.shape[-1]))
    window = _constant("stft_window", cfg, wave.device)
    spec = torch.stft(wave, n_fft=n_fft, hop_length=cfg.hop_length, window=window, center=False, return_complex=True)
    return _spectrum_power(spec, cfg.power)


def logmel_power(wave: torch.Tensor, cfg: AudioFeatureConfig) -> torch.Tensor:
    """Mel-filtered ``|STFT| ** power``, ``(B, n_mels, frames)`` (before the log)."""
    filters = _constant("mel_filters", cfg, wave.device)
    return torch.matmul(filters, stft_power(wave, cfg))


def kaldi_frame_count(num_samples: int, cfg: AudioFeatureConfig) -> int:
    """Kaldi's frame count: ``1 + (N - win) // hop`` with snip_edges (0 when N < win), else
    ``(N + hop // 2) // hop``."""
    win, hop = cfg.window_length, cfg.hop_length
    if cfg.snip_edges:
        return 0 if num_samples < win else 1 + (num_samples - win) // hop
    return (num_samples + hop // 2) // hop


def kaldi_frame_indices(num_samples: int, cfg: AudioFeatureConfig) -> np.ndarray:
    """``(frames, win)`` sample indices of each Kaldi frame.

    Without snip_edges frame t is centred on ``t * hop + hop // 2`` and indices outside the
    signal are mirrored back into it (``-1 -> 0``, ``N -> N - 1``, ...), as Kaldi's
    ``ExtractWindow`` does.
    """
    win, hop = cfg.window_length, cfg.hop_length
    frames = kaldi_frame_count(num_samples, cfg)
    offsets = np.arange(win, dtype=np.int64)
    if cfg.snip_edges:
        starts = np.arange(frames, dtype=np.int64) * hop
        return starts[:, None] + offsets[None, :]
    starts = np.arange(frames, dtype=np.int64) * hop + hop // 2 - win // 2
    idx = starts[:, None] + offsets[None, :]
    if frames:
        period = 2 * num_samples
        idx = np.mod(idx, period)
        idx = np.where(idx >= num_samples, period - 1 - idx, idx)
    return idx


def kaldi_fbank_energies(wave: torch.Tensor, cfg: AudioFeatureConfig) -> torch.Tensor:
    """Kaldi fbank mel energies (before the log), ``(B, n_mels, frames)``.

    Per frame, in Kaldi's order: remove the DC offset (the frame mean), pre-emphasise
    (``x[i] -= c * x[i-1]``, and ``x[0] -= c * x[0]``), multiply by the window, zero-pad to
    n_fft, take ``|FFT| ** power`` and apply the Kaldi mel banks.
    """
    assert cfg.n_mels is not None
    batch, num_samples = wave.shape
    if kaldi_frame_count(num_samples, cfg) == 0:
        return wave.new_zeros((batch, cfg.n_mels, 0))
    if cfg.snip_edges:  # a strided view: no index tensor to build or copy to the device
        frames = wave.unfold(-1, cfg.window_length, cfg.hop_length)  # (B, frames, win)
    else:
        frames = wave[:, torch.from_numpy(kaldi_frame_indices(num_samples, cfg)).to(wave.device)]
    if cfg.remove_dc_offset:
        frames = frames - frames.mean(dim=-1, keepdim=True)
    if cfg.preemphasis:
        c = cfg.preemphasis
        frames = torch.cat([frames[..., :1] * (1.0 - c), frames[..., 1:] - c * frames[..., :-1]], dim=-1)
    frames = frames * _constant("kaldi_window", cfg, wave.device)
    spec = torch.fft.rfft(frames, n=cfg.n_fft, dim=-1)  # zero-pads each frame to n_fft
    power = _spectrum_power(spec, cfg.power)  # (B, frames, n_fft // 2 + 1)
    banks = _constant("kaldi_banks", cfg, wave.device)  # (n_mels, n_fft // 2 + 1)
    return torch.matmul(banks, power.transpose(1, 2))

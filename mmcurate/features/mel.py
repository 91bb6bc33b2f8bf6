"""Mel filterbanks: librosa-style (triangles in Hz) and Kaldi-style (triangles in mel).

The two differ in more than the mel formula: librosa places triangle corners at mel-spaced
frequencies but draws the triangles linearly in *Hz* (and by default scales each to unit area,
Slaney's normalisation), while Kaldi draws them linearly in *mel* and leaves out the Nyquist bin.
Both are built in float64 NumPy once per config and cached.
"""

from __future__ import annotations

import numpy as np

# Slaney's Auditory Toolbox mel scale: linear (3 mels per 200 Hz) below 1 kHz, logarithmic above.
_SLANEY_HZ_PER_MEL = 200.0 / 3.0
_SLANEY_BREAK_HZ = 1000.0
_SLANEY_BREAK_MEL = _SLANEY_BREAK_HZ / _SLANEY_HZ_PER_MEL
_SLANEY_LOG_STEP = np.log(6.4) / 27.0


def hz_to_mel(freqs: np.ndarray | float, scale: str = "slaney") -> np.ndarray:
    """Hz to mel on the ``slaney`` or ``htk`` (2595 log10(1 + f/700)) scale."""
    f = np.asarray(freqs, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + f / 700.0)
    linear = f / _SLANEY_HZ_PER_MEL
    with np.errstate(divide="ignore"):
        logpart = _SLANEY_BREAK_MEL + np.log(np.maximum(f, 1e-300) / _SLANEY_BREAK_HZ) / _SLANEY_LOG_STEP
    return np.where(f >= _SLANEY_BREAK_HZ, logpart, linear)


def mel_to_hz(mels: np.ndarray | float, scale: str = "slaney") -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    m = np.asarray(mels, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    linear = m * _SLANEY_HZ_PER_MEL
    logpart = _SLANEY_BREAK_HZ * np.exp(_SLANEY_LOG_STEP * (m - _SLANEY_BREAK_MEL))
    return np.where(m >= _SLANEY_BREAK_MEL, logpart, linear)


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    fmin: float,
    fmax: float,
    scale: str = "slaney",
    norm: str | None = "slaney",
) -> np.ndarray:
    """``(n_mels, n_fft // 2 + 1)`` triangular filters, the same construction as
    ``librosa.filters.mel``: ``n_mels + 2`` corner frequencies equally spaced in mel, each filter
    rising linearly (in Hz) from corner i to i + 1 and falling to i + 2; ``norm="slaney"``
    divides filter i by half its bandwidth in Hz, so every filter has unit area."""
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    corners_mel = np.linspace(hz_to_mel(fmin, scale), hz_to_mel(fmax, scale), n_mels + 2)
    corners = mel_to_hz(corners_mel, scale)
    widths = np.diff(corners)
    to_bin = corners[:, None] - fft_freqs[None, :]  # corner minus bin frequency
    rising = -to_bin[:-2] / widths[:-1, None]
    falling = to_bin[2:] / widths[1:, None]
    filters = np.maximum(0.0, np.minimum(rising, falling))
    if norm == "slaney":
        filters *= (2.0 / (corners[2:] - corners[:-2]))[:, None]
    return filters


def kaldi_mel(freqs: np.ndarray | float) -> np.ndarray:
    """Kaldi's (HTK's) mel scale, ``1127 ln(1 + f / 700)``."""
    return 1127.0 * np.log1p(np.asarray(freqs, dtype=np.float64) / 700.0)


def kaldi_mel_banks(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """``(n_mels, n_fft // 2 + 1)`` Kaldi mel banks (no VTLN warping).

    Following Kaldi's ``MelBanks``: bin centres are equally spaced in Kaldi mel between fmin and
    fmax with ``n_mels + 1`` steps; FFT bin k (frequency ``k * sample_rate / n_fft``, k < n_fft / 2,
    so the Nyquist bin never contributes) gets weight ``(mel - left) / (centre - left)`` on the
    rising side and ``(right - mel) / (right - centre)`` on the falling side, strictly between the
    two edges and zero elsewhere.
    """
    n_bins = n_fft // 2
    bin_mel = kaldi_mel(np.arange(n_bins, dtype=np.float64) * (sample_rate / n_fft))
    low, high = kaldi_mel(fmin), kaldi_mel(fmax)
    delta = (high - low) / (n_mels + 1)
    left = low + delta * np.arange(n_mels, dtype=np.float64)
    centre = left + delta
    right = centre + delta
    m = bin_mel[None, :]
    up = (m - left[:, None]) / (centre - left)[:, None]
    down = (right[:, None] - m) / (right - centre)[:, None]
    weights = np.where(m <= centre[:, None], up, down)
    inside = (m > left[:, None]) & (m < right[:, None])
    banks = np.zeros((n_mels, n_bins + 1), dtype=np.float64)
    banks[:, :n_bins] = np.where(inside, weights, 0.0)
    return banks

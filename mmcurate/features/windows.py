"""Analysis windows, written out from their textbook definitions.

Two conventions exist and both matter for matching the reference recipes: the STFT kinds use
*periodic* windows (what ``scipy.signal.get_window(name, N, fftbins=True)`` and therefore
librosa use), while Kaldi's fbank uses *symmetric* ones (``a = 2 pi / (N - 1)``).
"""

from __future__ import annotations

import numpy as np


def stft_window(name: str, length: int) -> np.ndarray:
    """Periodic window of ``length`` samples (float64): ``hann``, ``hamming`` or ``rectangular``."""
    n = np.arange(length, dtype=np.float64)
    phase = 2.0 * np.pi * n / length
    if name == "hann":
        return 0.5 - 0.5 * np.cos(phase)
    if name == "hamming":
        return 0.54 - 0.46 * np.cos(phase)
    if name == "rectangular":
        return np.ones(length, dtype=np.float64)
    raise ValueError(f"unknown STFT window {name!r}")


def kaldi_window(name: str, length: int) -> np.ndarray:
    """Kaldi's symmetric window of ``length`` samples (float64): ``hanning``, ``hamming``,
    ``povey`` (hanning raised to 0.85) or ``rectangular``."""
    n = np.arange(length, dtype=np.float64)
    a = 2.0 * np.pi / (length - 1) if length > 1 else 0.0
    if name == "hanning":
        return 0.5 - 0.5 * np.cos(a * n)
    if name == "hamming":
        return 0.54 - 0.46 * np.cos(a * n)
    if name == "povey":
        return (0.5 - 0.5 * np.cos(a * n)) ** 0.85
    if name == "rectangular":
        return np.ones(length, dtype=np.float64)
    raise ValueError(f"unknown Kaldi window {name!r}")


def centre_pad(window: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad ``window`` on both sides to ``size`` samples (the extra one goes right), as
    librosa does when ``win_length < n_fft``."""
    left = (size - len(window)) // 2
    return np.pad(window, (left, size - len(window) - left))

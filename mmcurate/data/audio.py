"""Stored FLAC audio -> feature arrays of one fixed length.

The cache and the decode path must agree bit for bit, so there is exactly one way to turn FLAC
bytes into features (:func:`audio_features_from_flac`: libsndfile's int16 -> float scaling, then
:func:`mmcurate.features.compute_audio_features`, then float16). Ingest should fill the shard's
``audio_features`` column with this same function, from the FLAC it has just encoded.
"""

from __future__ import annotations

import functools
import io
from typing import Any

import numpy as np
import soundfile

from mmcurate.common.errors import MMCurateError
from mmcurate.data.threads import single_intraop_thread
from mmcurate.features import AudioFeatureConfig, compute_audio_features


def _flac_bytes(data: Any) -> bytes:
    if isinstance(data, dict):  # Hugging Face Audio(decode=False) cell: {"bytes": ..., "path": ...}
        data = data.get("bytes")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MMCurateError(f"audio holds {type(data).__name__}, not FLAC bytes")
    return bytes(data)


def decode_flac(data: bytes) -> tuple[np.ndarray, int]:
    """Decode FLAC (or any libsndfile format) bytes to a mono float32 waveform in [-1, 1] and its
    sample rate. 16-bit samples are scaled by 1/32768; several channels are averaged."""
    try:
        wave, rate = soundfile.read(io.BytesIO(_flac_bytes(data)), dtype="float32", always_2d=True)
    except MMCurateError:
        raise
    except Exception as exc:  # libsndfile's LibsndfileError, or a TypeError for odd input
        raise MMCurateError(f"audio is not decodable FLAC ({' '.join(str(exc).split())[:200]})") from None
    mono = wave[:, 0] if wave.shape[1] == 1 else wave.mean(axis=1, dtype=np.float32)
    return np.ascontiguousarray(mono, dtype=np.float32), int(rate)


def flac_num_samples(data: Any) -> tuple[int, int]:
    """``(samples, sample_rate)`` from the FLAC header alone (no decoding)."""
    try:
        info = soundfile.info(io.BytesIO(_flac_bytes(data)))
    except MMCurateError:
        raise
    except Exception as exc:
        raise MMCurateError(f"audio is not decodable FLAC ({' '.join(str(exc).split())[:200]})") from None
    return int(info.frames), int(info.samplerate)


def waveform_features(wave: np.ndarray, sample_rate: int, cfg: AudioFeatureConfig) -> np.ndarray:
    """``(bins, frames)`` float16 features of one clip's waveform, as stored in a cache
    (computed with one torch thread: per-clip ops are too small to gain from more, see threads.py)."""
    with single_intraop_thread():
        return compute_audio_features(wave, sample_rate, cfg).numpy().astype(np.float16)


def audio_features_from_flac(data: Any, cfg: AudioFeatureConfig) -> np.ndarray:
    """``(bins, frames)`` float16 features of FLAC bytes: what the shard's ``audio_features``
    column must hold for the cache to be used in place of the FLAC."""
    wave, rate = decode_flac(data)
    return waveform_features(wave, rate, cfg)


@functools.lru_cache(maxsize=16)
def silence_column(cfg: AudioFeatureConfig) -> np.ndarray:
    """``(bins,)`` float16: the features of an all-zero waveform (one frame's worth)."""
    samples = max(cfg.n_fft, cfg.window_length) * 2
    feats = waveform_features(np.zeros(samples, dtype=np.float32), cfg.sample_rate, cfg)
    column = feats[:, 0].copy()
    column.setflags(write=False)
    return column


def fit_time_axis(feats: np.ndarray, frames: int, pad: str, cfg: AudioFeatureConfig) -> np.ndarray:
    """``(bins, frames)``: crop ``feats`` to its first ``frames`` columns, or pad it by repeating
    it (``pad="repeat"``) or with :func:`silence_column` (``pad="silence"``, also used when there
    is nothing to repeat)."""
    have = feats.shape[1]
    if have >= frames:
        return feats[:, :frames]
    if pad == "repeat" and have > 0:
        reps = -(-frames // have)
        return np.tile(feats, (1, reps))[:, :frames]
    out = np.empty((feats.shape[0], frames), dtype=feats.dtype)
    out[:, :have] = feats
    out[:, have:] = silence_column(cfg)[:, None]
    return out

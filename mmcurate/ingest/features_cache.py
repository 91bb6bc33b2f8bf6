"""Optional feature cache: audio features (e.g. log-mel) computed once at ingest, stored float16.

Features are computed from the *stored* 16-bit audio (``pcm / 32768``), exactly what a later
stage gets by decoding the FLAC bytes, so the cache and on-the-fly computation agree.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from mmcurate.common.errors import MMCurateError
from mmcurate.ingest.config import DecodeConfig


@lru_cache(maxsize=8)
def _resolved(spec_key: str) -> Any:
    import json

    from mmcurate.features import resolve_feature_config

    spec = json.loads(spec_key)
    return resolve_feature_config(spec)


def feature_config(cfg: DecodeConfig) -> Any:
    """The feature config named by ``--features`` (a preset name or a dict), checked against the sample rate."""
    import json

    try:
        fcfg = _resolved(json.dumps(cfg.features, sort_keys=True))
    except ImportError as exc:  # pragma: no cover - features package always ships
        raise MMCurateError(f"--features needs mmcurate.features ({exc})") from None
    if fcfg.sample_rate != cfg.sample_rate:
        raise MMCurateError(
            f"--features {cfg.features} expects {fcfg.sample_rate} Hz audio but --sample-rate is {cfg.sample_rate}; "
            f"pass --sample-rate {fcfg.sample_rate}"
        )
    return fcfg


def features_for(pcm16: np.ndarray, cfg: DecodeConfig) -> list[list[float]]:
    """Features of one clip as a nested float16 list (bins x frames) for the Arrow column."""
    import torch

    from mmcurate.features import compute_audio_features

    torch.set_num_threads(1)
    wave = torch.from_numpy(pcm16.astype(np.float32) / 32768.0)
    feats = compute_audio_features(wave, cfg.sample_rate, feature_config(cfg))
    return feats.to(torch.float16).numpy()

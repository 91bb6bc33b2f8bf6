"""Audio features in plain torch (no torchaudio): the field's reference recipes as presets.

Every stage that needs a spectrogram goes through :func:`compute_audio_features` with an
:class:`AudioFeatureConfig`, usually a named preset (``logmel``, ``cremad_stft``,
``vggsound_stft``, ``ks_fbank``; see :mod:`mmcurate.features.presets`). Output is
``(bins, frames)`` float32 (bins first, time last), on the waveform's device.
"""

from mmcurate.features.config import KINDS, AudioFeatureConfig
from mmcurate.features.extract import (
    compute_audio_features,
    compute_audio_features_batch,
    feature_shape,
    num_feature_frames,
)
from mmcurate.features.presets import (
    PRESETS,
    get_preset,
    preset_name_of,
    resolve_feature_config,
)

__all__ = [
    "KINDS",
    "PRESETS",
    "AudioFeatureConfig",
    "compute_audio_features",
    "compute_audio_features_batch",
    "feature_shape",
    "get_preset",
    "num_feature_frames",
    "preset_name_of",
    "resolve_feature_config",
]

"""How stored media become model inputs: one frozen config, saved with every result that used it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from mmcurate.common.errors import MMCurateError
from mmcurate.features import AudioFeatureConfig, get_preset, resolve_feature_config

AUDIO_PADS = ("repeat", "silence")
AUDIO_DTYPES = ("float32", "float16")


@dataclass(frozen=True)
class TensorConfig:
    """Frames, audio features and their sizes.

    ``audio_frames`` fixes the time axis of every audio tensor: longer features are cropped (the
    start is kept), shorter ones are padded as ``audio_pad`` says: ``"repeat"`` (default) tiles
    the clip's own features, as the reference loaders tile the waveform, so a short clip never
    shows the model a long artificial constant; ``"silence"`` pads with the features of an
    all-zero waveform. ``None`` picks the 95th percentile of the data's frame counts (capped at
    ``max_audio_frames``), or the fixed length of a preset that has one (``cremad_stft`` 188,
    ``vggsound_stft`` 1251, ``ks_fbank`` 1024).

    Audio features are rounded to float16 in every path, so features computed from FLAC and
    features read from a float16 cache give bit-identical tensors; ``audio_dtype`` is only the
    storage type of the result (float16 halves memory; models want ``.float()`` then).
    """

    image_size: int = 64
    num_frames: int = 3
    audio: AudioFeatureConfig = get_preset("logmel")
    audio_frames: int | None = None
    use_cached_features: bool = True
    audio_pad: str = "repeat"
    max_audio_frames: int = 1024
    audio_dtype: str = "float32"

    def __post_init__(self) -> None:
        if not isinstance(self.audio, AudioFeatureConfig):
            object.__setattr__(self, "audio", resolve_feature_config(self.audio))
        for name in ("image_size", "num_frames", "max_audio_frames"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise MMCurateError(f"invalid tensor config: {name} must be a positive integer (got {value!r})")
        if self.audio_frames is not None and (
            isinstance(self.audio_frames, bool) or not isinstance(self.audio_frames, int) or self.audio_frames < 1
        ):
            raise MMCurateError(
                f"invalid tensor config: audio_frames must be a positive integer or None (got {self.audio_frames!r})"
            )
        if self.audio_pad not in AUDIO_PADS:
            raise MMCurateError(
                f"invalid tensor config: audio_pad must be one of {', '.join(AUDIO_PADS)} (got {self.audio_pad!r})"
            )
        if self.audio_dtype not in AUDIO_DTYPES:
            raise MMCurateError(
                f"invalid tensor config: audio_dtype must be one of {', '.join(AUDIO_DTYPES)} "
                f"(got {self.audio_dtype!r})"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the audio config nested as its own dict)."""
        d = dataclasses.asdict(self)
        d["audio"] = self.audio.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TensorConfig:
        """Inverse of :meth:`to_dict`; ``audio`` may also be a preset name or ``{"preset": ...}``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise MMCurateError(
                f"unknown tensor setting(s) {', '.join(map(repr, unknown))}; valid: {', '.join(sorted(names))}"
            )
        d = dict(d)
        if "audio" in d:
            d["audio"] = resolve_feature_config(d["audio"])
        return cls(**d)

    def replace(self, **changes: Any) -> TensorConfig:
        return dataclasses.replace(self, **changes)

"""The field's reference audio recipes as named presets, and how a recipe names one.

Sources (field_notes.md sections 2.2 and 2.4; the GeWu-Lab/OGM-GE_CVPR2022 loaders and
``process_audio.py``). Where a reference detail is random or under-specified we choose a
deterministic equivalent and say so here:

``logmel`` (mmcurate's default for 16 kHz audio)
    25 ms periodic Hann window (400 samples) zero-padded to a 512-point FFT, 10 ms hop (160),
    centred frames with zero padding, power spectrum, 64 Slaney-normalised Slaney-scale mel
    filters over 0-8 kHz (librosa's defaults), ``log(mel + 1e-6)``. 100 frames per second.
``cremad_stft`` (OGM-GE CREMA-D loader)
    22.05 kHz, waveform tiled to 3 s (the reference tiles a fixed 3 times, which is the same for
    clips of at least 1 s; we tile until 3 s so shorter clips still give 188 frames), clipped to
    [-1, 1]; STFT n_fft 512, hop 353, periodic Hann, centred frames padded by *reflection* (the
    reference ran librosa < 0.9, whose stft reflected; librosa >= 0.9 zero-pads; only the first
    and last frames differ); ``log(|X| + 1e-7)``. Exactly 257 x 188 (1 + 66150 // 353 frames).
``vggsound_stft`` (OGM-GE VGGSound loader)
    16 kHz, tiled to 10 s and clipped; STFT n_fft 256, hop 128, reflection-padded,
    ``log(|X| + 1e-7)``: 129 x 1251. The reference tiles to >= 10 s and then takes a *random* 5 s
    crop at train time (129 x 626); a cache must be deterministic, so we keep the whole 10 s, from
    which a trainer can still crop 626 frames at random.
``ks_fbank`` (OGM-GE Kinetics-Sounds ``process_audio.py``)
    16 kHz (AST's rate; the reference used each wav's own rate), mean-removed waveform, Kaldi
    fbank: 128 mel bins over 20 Hz-8 kHz, 25 ms symmetric Hanning frames (400 samples, FFT 512),
    10 ms shift, snip_edges, per-frame DC removal, pre-emphasis 0.97, power spectrum, no energy,
    no dither, ``log(max(x, float32 eps))``; zero-padded (log domain) or cut to 1024 frames;
    normalised ``(x + 4.503877) / (5.141276 * 2)``. Output (128, 1024): bins x frames, our
    convention; the reference stores the transpose, 1024 x 128.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmcurate.common.errors import MMCurateError
from mmcurate.features.config import AudioFeatureConfig

PRESETS: dict[str, AudioFeatureConfig] = {
    "logmel": AudioFeatureConfig(
        kind="logmel",
        sample_rate=16000,
        n_fft=512,
        win_length=400,
        hop_length=160,
        window="hann",
        center=True,
        pad_mode="constant",
        power=2.0,
        n_mels=64,
        fmin=0.0,
        fmax=None,
        mel_scale="slaney",
        mel_norm="slaney",
        log_offset=1e-6,
    ),
    "cremad_stft": AudioFeatureConfig(
        kind="stft",
        sample_rate=22050,
        n_fft=512,
        hop_length=353,
        window="hann",
        center=True,
        pad_mode="reflect",
        power=1.0,
        log_offset=1e-7,
        tile_seconds=3.0,
        clip=True,
    ),
    "vggsound_stft": AudioFeatureConfig(
        kind="stft",
        sample_rate=16000,
        n_fft=256,
        hop_length=128,
        window="hann",
        center=True,
        pad_mode="reflect",
        power=1.0,
        log_offset=1e-7,
        tile_seconds=10.0,
        clip=True,
    ),
    "ks_fbank": AudioFeatureConfig(
        kind="fbank",
        sample_rate=16000,
        n_fft=512,
        win_length=400,
        hop_length=160,
        window="hanning",
        power=2.0,
        n_mels=128,
        fmin=20.0,
        fmax=None,
        log_offset=0.0,
        log_floor=float(np.finfo(np.float32).eps),
        preemphasis=0.97,
        remove_dc_offset=True,
        snip_edges=True,
        remove_mean=True,
        target_frames=1024,
        norm_mean=-4.503877,
        norm_std=5.141276 * 2,
    ),
}


def get_preset(name: str) -> AudioFeatureConfig:
    """The preset called ``name``; an unknown name is an error that lists the valid ones."""
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise MMCurateError(
            f"unknown audio feature preset {name!r}; choose one of {', '.join(sorted(PRESETS))}"
        ) from None


def resolve_feature_config(spec: str | dict[str, Any] | AudioFeatureConfig) -> AudioFeatureConfig:
    """A config from a preset name, a config, or a dict (as a YAML recipe gives).

    A dict is either a full config (:meth:`AudioFeatureConfig.to_dict` form) or
    ``{"preset": NAME, <field>: <value>, ...}``: the preset with those fields overridden.
    """
    if isinstance(spec, AudioFeatureConfig):
        return spec
    if isinstance(spec, str):
        return get_preset(spec)
    if isinstance(spec, dict):
        if "preset" in spec:
            overrides = {k: v for k, v in spec.items() if k != "preset"}
            base = get_preset(spec["preset"])
            known = set(base.to_dict())
            unknown = sorted(set(overrides) - known)
            if unknown:
                raise MMCurateError(
                    f"unknown audio feature setting(s) {', '.join(map(repr, unknown))} for preset "
                    f"{spec['preset']!r}; valid settings: {', '.join(sorted(known))}"
                )
            return base.replace(**overrides)
        return AudioFeatureConfig.from_dict(spec)
    raise MMCurateError(
        f"audio features must be a preset name, a dict or an AudioFeatureConfig (got {type(spec).__name__})"
    )


def preset_name_of(cfg: AudioFeatureConfig) -> str | None:
    """The preset ``cfg`` equals, if any (for logs and dataset cards)."""
    for name, preset in PRESETS.items():
        if preset == cfg:
            return name
    return None

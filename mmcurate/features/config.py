"""What an audio feature is: one frozen, serialisable description per recipe.

A feature cache (the shard's ``audio_features`` column) is only reusable when the config that
made it equals the config a stage asks for, so the config is plain data: every field that changes
the output is here, equality is field equality, and :meth:`AudioFeatureConfig.to_dict` gives the
JSON that ingest saves next to the cache and that :func:`mmcurate.common.hashing.config_hash`
turns into a cache key.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from mmcurate.common.errors import MMCurateError
from mmcurate.common.limits import MAX_FFT, MAX_MELS, MAX_SAMPLE_RATE, MAX_TARGET_FRAMES, MAX_TILE_SECONDS

KINDS = ("logmel", "stft", "fbank")
#: Windows for the STFT kinds, periodic as ``scipy.signal.get_window(..., fftbins=True)`` (librosa's).
STFT_WINDOWS = ("hann", "hamming", "rectangular")
#: Windows for the Kaldi fbank, symmetric as Kaldi defines them (``povey`` = hanning ** 0.85).
KALDI_WINDOWS = ("hanning", "hamming", "povey", "rectangular")
PAD_MODES = ("constant", "reflect")
CROPS = ("start", "center")
MEL_SCALES = ("slaney", "htk")
MEL_NORMS = ("slaney",)
_FLOAT_FIELDS = (
    "power",
    "fmin",
    "fmax",
    "log_offset",
    "log_floor",
    "preemphasis",
    "dither",
    "tile_seconds",
    "norm_mean",
    "norm_std",
)


@dataclass(frozen=True)
class AudioFeatureConfig:
    """One audio feature recipe. Output is always ``(bins, frames)`` float32, bins first.

    Processing order (each step only when its field asks for it)::

        remove_mean -> tile/crop to tile_seconds -> clip to [-1, 1]
        -> kind: "stft"   |X| ** power           (centred frames, like librosa.stft)
                 "logmel" mel_filters @ |X| ** power   (like librosa.feature.melspectrogram)
                 "fbank"  Kaldi fbank: snip-edges framing, per-frame DC removal,
                          pre-emphasis, window, zero-padded FFT, Kaldi mel banks
        -> log(max(x + log_offset, log_floor))
        -> pad (zeros, in the log domain) / crop the time axis to target_frames
        -> (x - norm_mean) / norm_std
    """

    kind: str
    sample_rate: int
    n_fft: int
    hop_length: int
    #: Samples per analysis window; None means n_fft. Shorter windows are zero-padded to n_fft
    #: (centred for the STFT kinds, as librosa does; at the end for fbank, as Kaldi does).
    win_length: int | None = None
    window: str = "hann"
    #: STFT kinds: pad n_fft // 2 samples on each side so frame t is centred on sample t * hop.
    center: bool = True
    #: How ``center`` pads: "constant" (zeros, librosa >= 0.9) or "reflect" (librosa < 0.9).
    pad_mode: str = "constant"
    #: 1.0 = magnitude, 2.0 = power.
    power: float = 2.0
    n_mels: int | None = None
    fmin: float = 0.0
    #: None means sample_rate / 2.
    fmax: float | None = None
    #: logmel only: "slaney" (librosa's default) or "htk"; fbank always uses Kaldi's 1127 ln(1 + f/700).
    mel_scale: str = "slaney"
    #: logmel only: "slaney" scales each filter to unit area (librosa's default); None keeps peak 1.
    mel_norm: str | None = "slaney"
    log_offset: float = 1e-6
    log_floor: float = 0.0
    #: fbank only: Kaldi's per-frame pre-emphasis coefficient.
    preemphasis: float = 0.0
    #: Must stay 0: features are deterministic (Kaldi's dither adds random noise).
    dither: float = 0.0
    #: fbank only: subtract each frame's mean before pre-emphasis (Kaldi's remove_dc_offset).
    remove_dc_offset: bool = False
    #: fbank only: frames lie wholly inside the signal (Kaldi's snip_edges); False centres them
    #: on multiples of hop / 2 and mirrors the signal at its ends, as Kaldi does.
    snip_edges: bool = True
    #: Subtract the waveform's mean first (the Kinetics-Sounds recipe).
    remove_mean: bool = False
    #: Repeat the waveform until it lasts this long, then crop to exactly this many seconds.
    tile_seconds: float | None = None
    #: Which part a crop keeps when the waveform is longer than tile_seconds.
    crop: str = "start"
    #: Clip the (tiled) waveform to [-1, 1].
    clip: bool = False
    #: Pad with zeros (log domain, before normalisation) or crop (keep the start) the time axis.
    target_frames: int | None = None
    norm_mean: float = 0.0
    norm_std: float = 1.0

    def __post_init__(self) -> None:
        self._coerce_floats()
        self._validate()

    def _coerce_floats(self) -> None:
        """Store float settings as floats, so a YAML ``power: 1`` and a preset's ``1.0`` give the
        same ``to_dict`` JSON, hence the same cache key."""
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if value is None and name in ("fmax", "tile_seconds"):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise MMCurateError(f"invalid audio feature config: {name} must be a number (got {value!r})")
            object.__setattr__(self, name, float(value))

    # ------------------------------------------------------------------ derived values
    @property
    def window_length(self) -> int:
        """Samples per analysis window."""
        return self.n_fft if self.win_length is None else self.win_length

    @property
    def num_bins(self) -> int:
        """Rows of the output: mel bins, or n_fft // 2 + 1 STFT bins."""
        return self.n_fft // 2 + 1 if self.kind == "stft" else int(self.n_mels or 0)

    @property
    def max_frequency(self) -> float:
        """Upper edge of the mel filters (Hz)."""
        return float(self.sample_rate) / 2 if self.fmax is None else float(self.fmax)

    @property
    def tile_samples(self) -> int | None:
        """Waveform length after tiling, in samples; None when the waveform keeps its length."""
        return None if self.tile_seconds is None else int(round(self.tile_seconds * self.sample_rate))

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-able; ``from_dict(to_dict())`` gives an equal config."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AudioFeatureConfig:
        """Build from a dict such as :meth:`to_dict` gives; unknown keys are an error, not ignored,
        so that a typo in a recipe cannot silently fall back to a default."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise MMCurateError(
                f"unknown audio feature setting(s) {', '.join(map(repr, unknown))}; "
                f"valid settings: {', '.join(sorted(names))}"
            )
        missing = [n for n in ("kind", "sample_rate", "n_fft", "hop_length") if n not in d]
        if missing:
            raise MMCurateError(
                f"audio feature config lacks {', '.join(missing)}; "
                "give them, or start from a preset with {'preset': NAME}"
            )
        return cls(**d)

    def replace(self, **changes: Any) -> AudioFeatureConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ validation
    def _validate(self) -> None:
        def bad(msg: str) -> MMCurateError:
            return MMCurateError(f"invalid audio feature config: {msg}")

        if self.kind not in KINDS:
            raise bad(f"kind must be one of {', '.join(KINDS)} (got {self.kind!r})")
        for name, most in (("sample_rate", MAX_SAMPLE_RATE), ("n_fft", MAX_FFT), ("hop_length", MAX_FFT)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
                raise bad(f"{name} must be an integer from 1 to {most} (got {str(value)[:40]})")
        win = self.window_length
        if isinstance(win, bool) or not isinstance(win, int) or not 1 <= win <= self.n_fft:
            raise bad(f"win_length must be an integer in 1..n_fft={self.n_fft} (got {self.win_length!r})")
        windows = KALDI_WINDOWS if self.kind == "fbank" else STFT_WINDOWS
        if self.window not in windows:
            raise bad(f"window for kind {self.kind!r} must be one of {', '.join(windows)} (got {self.window!r})")
        if self.pad_mode not in PAD_MODES:
            raise bad(f"pad_mode must be one of {', '.join(PAD_MODES)} (got {self.pad_mode!r})")
        if self.power not in (1.0, 2.0):
            raise bad(f"power must be 1 (magnitude) or 2 (power) (got {self.power!r})")
        if self.kind == "stft":
            if self.n_mels is not None:
                raise bad("kind 'stft' has no mel filters: leave n_mels unset")
        else:
            if isinstance(self.n_mels, bool) or not isinstance(self.n_mels, int) or not 1 <= self.n_mels <= MAX_MELS:
                raise bad(f"kind {self.kind!r} needs n_mels, an integer from 1 to {MAX_MELS} (got {self.n_mels!r})")
            nyquist = self.sample_rate / 2
            if not 0 <= self.fmin < self.max_frequency <= nyquist:
                raise bad(
                    f"need 0 <= fmin < fmax <= sample_rate / 2 = {nyquist:g} (got fmin={self.fmin}, fmax={self.fmax})"
                )
        if self.mel_scale not in MEL_SCALES:
            raise bad(f"mel_scale must be one of {', '.join(MEL_SCALES)} (got {self.mel_scale!r})")
        if self.mel_norm is not None and self.mel_norm not in MEL_NORMS:
            raise bad(f"mel_norm must be 'slaney' or None (got {self.mel_norm!r})")
        if not (self.log_offset >= 0 and self.log_floor >= 0 and (self.log_offset > 0 or self.log_floor > 0)):
            raise bad("log_offset and log_floor must be >= 0 and one of them > 0, so that silence gives no -inf")
        if self.preemphasis != 0.0 and self.kind != "fbank":
            raise bad("preemphasis is only defined for kind 'fbank' (Kaldi applies it per frame)")
        if not 0.0 <= self.preemphasis <= 1.0:
            raise bad(f"preemphasis must be in [0, 1] (got {self.preemphasis})")
        if self.dither != 0.0:
            raise bad("dither must be 0: mmcurate's features are deterministic (dither adds random noise)")
        if self.kind != "fbank" and (self.remove_dc_offset or not self.snip_edges):
            raise bad("remove_dc_offset and snip_edges=False are Kaldi framing options, only for kind 'fbank'")
        if self.tile_seconds is not None and not 0 < self.tile_seconds <= MAX_TILE_SECONDS:
            raise bad(
                f"tile_seconds must be a number of seconds above 0, at most {MAX_TILE_SECONDS:g} "
                f"(got {self.tile_seconds})"
            )
        if self.tile_samples is not None and self.tile_samples < 1:
            raise bad(f"tile_seconds={self.tile_seconds} is less than one sample at {self.sample_rate} Hz")
        if self.crop not in CROPS:
            raise bad(f"crop must be one of {', '.join(CROPS)} (got {self.crop!r})")
        if self.target_frames is not None and (
            isinstance(self.target_frames, bool)
            or not isinstance(self.target_frames, int)
            or not 1 <= self.target_frames <= MAX_TARGET_FRAMES
        ):
            raise bad(f"target_frames must be an integer from 1 to {MAX_TARGET_FRAMES} (got {self.target_frames!r})")
        if not (math.isfinite(self.norm_std) and self.norm_std != 0 and math.isfinite(self.norm_mean)):
            raise bad(
                f"norm_std must be finite and non-zero, norm_mean finite (got {self.norm_mean}, {self.norm_std})"
            )

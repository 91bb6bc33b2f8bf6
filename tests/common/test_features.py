"""Audio features against independent computations: librosa for STFT/log-mel, k2-fsa's
kaldi-native-fbank (C++ Kaldi) and a loop-by-loop NumPy transcription of Kaldi's documented
algorithm for the fbank, on real recordings (FSDD) and synthetic sines."""

from __future__ import annotations

import math
from pathlib import Path

import librosa
import numpy as np
import pytest
import torch

from mmcurate.common.errors import MMCurateError
from mmcurate.features import (
    PRESETS,
    AudioFeatureConfig,
    compute_audio_features,
    compute_audio_features_batch,
    get_preset,
    num_feature_frames,
    resolve_feature_config,
)
from mmcurate.features.mel import kaldi_mel, kaldi_mel_banks, mel_filterbank

FSDD_FILES = ("0_george_0.wav", "7_jackson_12.wav", "3_theo_40.wav")


@pytest.fixture(scope="module")
def fsdd_8k(shared_data: Path) -> list[np.ndarray]:
    """Three real spoken digits, 8 kHz float32 as recorded."""
    root = shared_data / "fsdd" / "recordings"
    waves = []
    for name in FSDD_FILES:
        wave, rate = librosa.load(root / name, sr=None)
        assert rate == 8000
        waves.append(wave.astype(np.float32))
    return waves


def resampled(waves: list[np.ndarray], rate: int) -> list[np.ndarray]:
    return [librosa.resample(w, orig_sr=8000, target_sr=rate).astype(np.float32) for w in waves]


def sine(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def db_error_near_peak(
    ours_log: np.ndarray, ref_linear: np.ndarray, offset: float, to_db: float, within_db: float
) -> float:
    """Max |difference| in dB over bins within ``within_db`` of the clip's peak."""
    ref_log = np.log(ref_linear + offset)
    level_db = to_db * np.log10(ref_linear.max() / np.maximum(ref_linear, 1e-30))
    mask = level_db <= within_db
    assert mask.sum() > 100
    return float(np.abs(ours_log - ref_log)[mask].max() * to_db / math.log(10))


# ----------------------------------------------------------------------------- presets and config


def test_presets_have_the_documented_output_shapes() -> None:
    cases = {
        "cremad_stft": (22050, 3.0, (257, 188)),
        "vggsound_stft": (16000, 10.0, (129, 1251)),
        "ks_fbank": (16000, 10.24, (128, 1024)),
        "logmel": (16000, 1.0, (64, 101)),
    }
    assert set(cases) == set(PRESETS)
    for name, (rate, seconds, shape) in cases.items():
        cfg = get_preset(name)
        assert cfg.sample_rate == rate
        feats = compute_audio_features(sine(440, seconds, rate), rate, cfg)
        assert tuple(feats.shape) == shape, name
        assert feats.dtype == torch.float32


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_frame_count_formula_matches_every_length(name: str) -> None:
    cfg = get_preset(name)
    base = cfg.replace(target_frames=None, tile_seconds=None) if name != "logmel" else cfg
    for variant in {cfg, base, base.replace(center=False) if base.kind != "fbank" else base.replace(snip_edges=False)}:
        for n in (0, 1, 10, 255, 256, 399, 400, 401, 560, 4000, 8001):
            got = compute_audio_features(np.zeros(n, np.float32) + 0.01, cfg.sample_rate, variant).shape
            assert got == (variant.num_bins, num_feature_frames(n, variant)), (variant, n)


def test_fixed_length_presets_tile_short_and_crop_long_clips() -> None:
    cfg = get_preset("cremad_stft")
    for seconds in (0.3, 1.0, 3.0, 7.5):
        assert compute_audio_features(sine(300, seconds, 22050), 22050, cfg).shape == (257, 188)
    # tiling repeats the clip: a 1 s clip tiled to 3 s equals the same clip written out 3 times
    one = sine(300, 1.0, 22050) * np.linspace(0.2, 1.0, 22050, dtype=np.float32)
    tiled = compute_audio_features(one, 22050, cfg)
    explicit = compute_audio_features(np.tile(one, 3), 22050, cfg)
    assert torch.equal(tiled, explicit)
    # clipping to [-1, 1] happens after tiling
    loud = compute_audio_features(one * 4, 22050, cfg)
    assert torch.equal(loud, compute_audio_features(np.clip(np.tile(one * 4, 3), -1, 1), 22050, cfg))


def test_get_preset_and_resolve() -> None:
    with pytest.raises(MMCurateError) as err:
        get_preset("mfcc")
    for name in PRESETS:
        assert name in str(err.value)
    assert resolve_feature_config("ks_fbank") is PRESETS["ks_fbank"]
    cfg = resolve_feature_config({"preset": "logmel", "n_mels": 40, "fmin": 50})
    assert cfg.n_mels == 40 and cfg.fmin == 50.0 and cfg.hop_length == 160
    with pytest.raises(MMCurateError, match="n_mel"):
        resolve_feature_config({"preset": "logmel", "n_mel": 40})
    with pytest.raises(MMCurateError, match="lacks"):
        resolve_feature_config({"kind": "stft"})


def test_config_round_trips_and_yaml_numbers_hash_alike() -> None:
    for cfg in PRESETS.values():
        assert AudioFeatureConfig.from_dict(cfg.to_dict()) == cfg
        assert resolve_feature_config(cfg.to_dict()) == cfg
    # YAML gives ints where presets hold floats: same config, same JSON
    yaml_like = dict(PRESETS["cremad_stft"].to_dict(), power=1, tile_seconds=3)
    assert AudioFeatureConfig.from_dict(yaml_like).to_dict() == PRESETS["cremad_stft"].to_dict()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"kind": "mfcc"}, "kind"),
        ({"win_length": 1024}, "win_length"),
        ({"dither": 1.0}, "dither"),
        ({"power": 3.0}, "power"),
        ({"log_floor": 0.0}, "silence"),
        ({"fmax": 9000.0}, "fmax"),
        ({"window": "hann"}, "window"),
        ({"norm_std": 0.0}, "norm_std"),
        ({"crop": "random"}, "crop"),
    ],
)
def test_invalid_configs_are_rejected_with_the_reason(change: dict, message: str) -> None:
    with pytest.raises(MMCurateError, match=message):
        PRESETS["ks_fbank"].replace(**change)


# ----------------------------------------------------------------------------- librosa agreement


def test_mel_filterbanks_equal_librosa() -> None:
    for kwargs in (
        {"sr": 16000, "n_fft": 512, "n_mels": 64},
        {"sr": 22050, "n_fft": 1024, "n_mels": 80, "fmin": 30.0, "fmax": 8000.0},
        {"sr": 16000, "n_fft": 400, "n_mels": 40, "htk": True, "norm": None},
    ):
        ref = librosa.filters.mel(dtype=np.float64, **kwargs)
        ours = mel_filterbank(
            kwargs["sr"],
            kwargs["n_fft"],
            kwargs["n_mels"],
            kwargs.get("fmin", 0.0),
            kwargs.get("fmax", kwargs["sr"] / 2),
            "htk" if kwargs.get("htk") else "slaney",
            kwargs.get("norm", "slaney"),
        )
        np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-12 * ref.max())


def test_logmel_matches_librosa_melspectrogram(fsdd_8k: list[np.ndarray]) -> None:
    cfg = get_preset("logmel")
    waves = resampled(fsdd_8k, 16000) + [sine(440, 0.7, 16000) + sine(3000, 0.7, 16000, 0.1)]
    for wave in waves:
        ours = compute_audio_features(wave, 16000, cfg).numpy()
        ref = librosa.feature.melspectrogram(
            y=wave.astype(np.float64),
            sr=16000,
            n_fft=512,
            win_length=400,
            hop_length=160,
            window="hann",
            center=True,
            pad_mode="constant",
            power=2.0,
            n_mels=64,
        )
        assert ours.shape == ref.shape
        linear = np.exp(ours.astype(np.float64)) - 1e-6
        assert np.abs(linear - ref).max() <= 1e-5 * ref.max()
        assert db_error_near_peak(ours, ref, 1e-6, 10.0, 60.0) < 1e-3


@pytest.mark.parametrize("name", ["cremad_stft", "vggsound_stft"])
def test_stft_presets_match_librosa_stft(fsdd_8k: list[np.ndarray], name: str) -> None:
    cfg = get_preset(name)
    rate = cfg.sample_rate
    target = int(cfg.tile_seconds * rate)
    for wave in resampled(fsdd_8k[:2], rate) + [sine(1000, 0.5, rate, amp=1.5)]:
        ours = compute_audio_features(wave, rate, cfg).numpy()
        # the reference recipe, written out: tile, crop, clip, librosa.stft (reflect padding), log
        tiled = np.clip(np.tile(wave.astype(np.float64), -(-target // len(wave)))[:target], -1, 1)
        mag = np.abs(librosa.stft(tiled, n_fft=cfg.n_fft, hop_length=cfg.hop_length, center=True, pad_mode="reflect"))
        assert ours.shape == mag.shape
        linear = np.exp(ours.astype(np.float64)) - 1e-7
        assert np.abs(linear - mag).max() <= 1e-5 * mag.max()
        # interior frames to 1e-3 dB; librosa 0.11 computes the two edge frames on its own
        # padded copies and differs from textbook reflection there by up to ~2e-6 of the peak
        assert db_error_near_peak(ours[:, 1:-1], mag[:, 1:-1], 1e-7, 20.0, 60.0) < 1e-3
        # edges: equal to reflection padding written out with np.pad
        padded = np.pad(tiled, cfg.n_fft // 2, mode="reflect")
        window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(cfg.n_fft) / cfg.n_fft)
        for t in (0, mag.shape[1] - 1):
            frame = padded[t * cfg.hop_length : t * cfg.hop_length + cfg.n_fft] * window
            edge = np.abs(np.fft.rfft(frame))
            assert np.abs(linear[:, t] - edge).max() <= 1e-6 * mag.max()


def test_constant_padding_matches_librosa_default_and_sine_peaks_at_its_bin() -> None:
    cfg = AudioFeatureConfig(kind="stft", sample_rate=16000, n_fft=512, hop_length=128, power=1.0, log_offset=1e-7)
    wave = sine(1000, 0.25, 16000)
    ours = compute_audio_features(wave, 16000, cfg).numpy()
    mag = np.abs(librosa.stft(wave.astype(np.float64), n_fft=512, hop_length=128))  # librosa >= 0.9: zeros
    assert np.abs(np.exp(ours) - 1e-7 - mag).max() <= 1e-5 * mag.max()
    assert int(np.argmax(ours[:, ours.shape[1] // 2])) == round(1000 / (16000 / 512))


# ----------------------------------------------------------------------------- Kaldi fbank


def kaldi_fbank_by_the_book(wave: np.ndarray, rate: int, bins: int, low: float = 20.0) -> np.ndarray:
    """Kaldi's fbank transcribed step by step in float64 loops, from Kaldi's documentation
    (feature-window.cc / mel-computations.cc as documented): snip-edges frames of 25 ms every
    10 ms, per-frame DC removal, pre-emphasis 0.97, symmetric Hanning window, zero-padded FFT to
    the next power of two, power spectrum, mel banks linear in mel = 1127 ln(1 + f/700) without
    the Nyquist bin, log with a floor at float32 epsilon. Returns (bins, frames)."""
    win, hop = int(0.025 * rate), int(0.010 * rate)
    nfft = 1 << (win - 1).bit_length()
    n_frames = 0 if len(wave) < win else 1 + (len(wave) - win) // hop
    window = np.array([0.5 - 0.5 * math.cos(2 * math.pi * i / (win - 1)) for i in range(win)])
    mel = lambda f: 1127.0 * math.log(1.0 + f / 700.0)  # noqa: E731
    lo, hi = mel(low), mel(rate / 2)
    step = (hi - lo) / (bins + 1)
    bank = np.zeros((bins, nfft // 2))
    for b in range(bins):
        left, centre, right = lo + b * step, lo + (b + 1) * step, lo + (b + 2) * step
        for k in range(nfft // 2):
            m = mel(k * rate / nfft)
            if left < m < right:
                bank[b, k] = (m - left) / (centre - left) if m <= centre else (right - m) / (right - centre)
    out = np.zeros((bins, n_frames))
    eps = float(np.finfo(np.float32).eps)
    for t in range(n_frames):
        frame = wave[t * hop : t * hop + win].astype(np.float64).copy()
        frame -= frame.mean()
        for i in range(win - 1, 0, -1):
            frame[i] -= 0.97 * frame[i - 1]
        frame[0] -= 0.97 * frame[0]
        frame *= window
        power = np.abs(np.fft.rfft(frame, nfft)) ** 2
        out[:, t] = np.log(np.maximum(bank @ power[: nfft // 2], eps))
    return out


def test_ks_fbank_matches_kaldi_by_the_book(fsdd_8k: list[np.ndarray]) -> None:
    cfg = get_preset("ks_fbank")
    for wave in resampled(fsdd_8k[:2], 16000):
        ours = compute_audio_features(wave, 16000, cfg).numpy()
        centred = wave.astype(np.float64) - wave.astype(np.float64).mean()
        raw = kaldi_fbank_by_the_book(centred.astype(np.float32), 16000, 128)
        ref = np.zeros((128, 1024))
        ref[:, : raw.shape[1]] = raw[:, :1024]
        ref = (ref + 4.503877) / (5.141276 * 2)
        assert ours.shape == (128, 1024) and raw.shape[1] < 1024
        # compare in Kaldi's log-energy units (undo the normalisation's 1 / 10.28)
        assert np.abs(ours - ref).max() * (5.141276 * 2) < 1e-3


def test_kaldi_mel_banks_edges_by_hand() -> None:
    banks = kaldi_mel_banks(16000, 512, 128, 20.0, 8000.0)
    assert banks.shape == (128, 257) and not banks[:, 256].any()  # Nyquist bin never used
    lo, hi = kaldi_mel(20.0), kaldi_mel(8000.0)
    step = (hi - lo) / 129
    freqs = np.arange(257) * 16000 / 512
    for b in range(128):
        left_hz = 700 * (math.exp((lo + b * step) / 1127) - 1)
        right_hz = 700 * (math.exp((lo + (b + 2) * step) / 1127) - 1)
        support = freqs[banks[b] > 0]
        assert np.all((support > left_hz) & (support < right_hz))
        assert banks[b].max() <= 1.0
    # at 16 kHz, a 512-point FFT (31.25 Hz bins) leaves one 128-bin filter without an FFT bin:
    # Kaldi itself refuses this config ("num_mel_bins too large"); the reference (torchaudio)
    # keeps it as an all-zero filter, so that row is log(eps) in every frame, as here
    assert [b for b in range(128) if not banks[b].any()] == [3]


@pytest.mark.parametrize(
    "bins, window, snip, power",
    [
        (80, "hanning", True, 2.0),
        (80, "povey", False, 2.0),
        (64, "hamming", True, 1.0),
        (23, "rectangular", False, 2.0),
    ],
)
def test_fbank_matches_kaldi_native_fbank(
    fsdd_8k: list[np.ndarray], bins: int, window: str, snip: bool, power: float
) -> None:
    knf = pytest.importorskip(
        "kaldi_native_fbank", reason="k2-fsa kaldi-native-fbank (test-only dependency) not installed"
    )
    cfg = PRESETS["ks_fbank"].replace(
        n_mels=bins,
        window=window,
        snip_edges=snip,
        power=power,
        target_frames=None,
        norm_mean=0.0,
        norm_std=1.0,
        remove_mean=False,
    )
    for wave in resampled(fsdd_8k, 16000) + [
        sine(440, 0.3, 16000),
        np.zeros(399, np.float32) + 0.1 * sine(50, 399 / 16000, 16000),
    ]:
        opts = knf.FbankOptions()
        opts.frame_opts.dither = 0.0
        opts.frame_opts.samp_freq = 16000
        opts.frame_opts.window_type = window
        opts.frame_opts.snip_edges = snip
        opts.mel_opts.num_bins = bins
        opts.mel_opts.low_freq = 20.0
        opts.mel_opts.high_freq = 0.0
        opts.use_energy = False
        opts.use_power = power == 2.0
        fbank = knf.OnlineFbank(opts)
        fbank.accept_waveform(16000, wave.tolist())
        fbank.input_finished()
        ref = np.array([fbank.get_frame(i) for i in range(fbank.num_frames_ready)]).reshape(-1, bins).T
        ours = compute_audio_features(wave, 16000, cfg).numpy()
        assert ours.shape == ref.shape
        if ref.size:
            assert np.abs(ours - ref).max() < 1e-3


# ----------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_short_and_silent_audio_give_finite_features(name: str) -> None:
    cfg = get_preset(name)
    for n in (0, 1, 17, cfg.window_length - 1):
        for wave in (np.zeros(n, np.float32), sine(440, n / cfg.sample_rate, cfg.sample_rate)):
            feats = compute_audio_features(wave, cfg.sample_rate, cfg)
            assert feats.shape == (cfg.num_bins, num_feature_frames(n, cfg))
            assert torch.isfinite(feats).all()
    silent = compute_audio_features(np.zeros(16000, np.float32), cfg.sample_rate, cfg)
    assert torch.isfinite(silent).all()
    if cfg.kind != "fbank":
        assert torch.allclose(silent, torch.full_like(silent, math.log(cfg.log_offset)))


def test_wrong_rate_and_bad_waveforms_are_clear_errors() -> None:
    cfg = get_preset("logmel")
    with pytest.raises(MMCurateError, match=r"8000 Hz .* needs 16000 Hz.*--sample-rate 16000"):
        compute_audio_features(np.zeros(800, np.float32), 8000, cfg)
    with pytest.raises(MMCurateError, match="int16"):
        compute_audio_features(np.zeros(800, np.int16), 16000, cfg)
    with pytest.raises(MMCurateError, match="1-D"):
        compute_audio_features(np.zeros((2, 800), np.float32), 16000, cfg)
    bad = np.zeros(800, np.float32)
    bad[5] = np.nan
    with pytest.raises(MMCurateError, match="NaN"):
        compute_audio_features(bad, 16000, cfg)


def test_torch_input_batch_and_determinism(fsdd_8k: list[np.ndarray]) -> None:
    waves = resampled(fsdd_8k, 16000)
    n = min(len(w) for w in waves)
    batch = torch.from_numpy(np.stack([w[:n] for w in waves]))
    for name in ("logmel", "ks_fbank"):
        cfg = get_preset(name)
        together = compute_audio_features_batch(batch, 16000, cfg)
        for i in range(len(waves)):
            alone = compute_audio_features(batch[i], 16000, cfg)
            assert torch.allclose(together[i], alone, atol=1e-4, rtol=0)
            assert torch.equal(alone, compute_audio_features(batch[i].numpy().astype(np.float64), 16000, cfg))
        assert torch.equal(together, compute_audio_features_batch(batch, 16000, cfg))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(fsdd_8k: list[np.ndarray]) -> None:
    wave = torch.from_numpy(resampled(fsdd_8k[:1], 16000)[0])
    for name in ("logmel", "ks_fbank"):
        cfg = get_preset(name)
        cpu = compute_audio_features(wave, 16000, cfg)
        gpu = compute_audio_features(wave.cuda(), 16000, cfg)
        assert gpu.is_cuda
        assert torch.allclose(gpu.cpu(), cpu, atol=1e-3, rtol=0)
    cfg = get_preset("cremad_stft")
    wave22 = torch.from_numpy(resampled(fsdd_8k[:1], 22050)[0])
    assert torch.allclose(
        compute_audio_features(wave22.cuda(), 22050, cfg).cpu(), compute_audio_features(wave22, 22050, cfg), atol=1e-3
    )

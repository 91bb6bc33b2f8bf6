"""Audio sources of the other-domain sets: what a class sounds like, drawn afresh for every clip.

Why three: av_digits' audio is one speech corpus (FSDD) at 8 kHz; users bring music, events and
speech at other rates. Each source draws a class with per-clip random pitch, tempo and loudness,
so the stable cue is the class's sound, not a recording:

* ``instruments``: a short melody whose timbre (harmonic profile), envelope and motif are the
  class (additive synthesis, 16 kHz);
* ``textures``: environmental-like sound events (rain clicks, engine hum, bird chirps, sirens,
  knocks, ...), one kind per class (16 kHz);
* ``fsdd``: real spoken digits (the Free Spoken Digit Dataset, 8 kHz), a recording of the
  class's digit; each recording is used once per set.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

RATE = 16000

#: harmonic amplitude profiles (index = harmonic number - 1); ``bell`` is inharmonic (ratio, amplitude)
TIMBRES: dict[str, list[tuple[float, float]]] = {
    "flute": [(1, 1.0), (2, 0.25), (3, 0.06)],
    "clarinet": [(k, 1.0 / k) for k in (1, 3, 5, 7, 9)],
    "brass": [(k, 1.0 / k**0.7) for k in range(1, 11)],
    "bell": [(1, 1.0), (2.76, 0.6), (5.4, 0.4), (8.93, 0.25)],
    "organ": [(k, 0.8 ** (k - 1)) for k in (1, 2, 4, 8)],
    "reed": [(k, 1.0 / k**0.5) for k in range(1, 9)],
}
#: semitone steps of each motif (notes are equally long)
MOTIFS: dict[str, list[int]] = {
    "rise": [0, 2, 4, 7],
    "fall": [7, 4, 2, 0],
    "repeat": [0, 0, 0, 0],
    "leap": [0, 12, 0, 12],
    "arch": [0, 5, 9, 5],
    "trill": [0, 1, 0, 1, 0, 1],
}
ENVELOPES = ("pluck", "sustain", "swell", "tremolo")
#: (timbre, envelope, motif) per class: every pair of classes differs in at least two of the three
INSTRUMENTS: tuple[tuple[str, str, str], ...] = (
    ("flute", "sustain", "rise"),
    ("clarinet", "pluck", "fall"),
    ("brass", "swell", "repeat"),
    ("bell", "pluck", "leap"),
    ("organ", "tremolo", "arch"),
    ("reed", "sustain", "trill"),
    ("flute", "pluck", "arch"),
    ("clarinet", "tremolo", "rise"),
    ("brass", "sustain", "leap"),
    ("bell", "swell", "fall"),
    ("organ", "pluck", "trill"),
    ("reed", "swell", "repeat"),
)


def _envelope(kind: str, n: int, rate: int) -> np.ndarray:
    t = np.arange(n) / rate
    dur = max(n / rate, 1e-3)
    attack = np.minimum(1.0, t / 0.01)
    release = np.minimum(1.0, (dur - t) / 0.02).clip(0, 1)
    if kind == "pluck":
        body = np.exp(-t / (0.25 * dur))
    elif kind == "swell":
        body = 0.2 + 0.8 * (t / dur)
    elif kind == "tremolo":
        body = 0.6 + 0.4 * np.sin(2 * math.pi * 7.0 * t)
    else:
        body = np.ones(n)
    return attack * release * body


def _note(freq: float, timbre: str, envelope: str, n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / rate
    phase = rng.uniform(0, 2 * math.pi)
    y = np.zeros(n)
    for ratio, amp in TIMBRES[timbre]:
        if freq * ratio < rate / 2 - 200:
            y += amp * np.sin(2 * math.pi * freq * ratio * t + phase * ratio)
    return y * _envelope(envelope, n, rate)


def instrument(cls: int, seconds: float, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Class ``cls``'s melody: base pitch 180-420 Hz, notes filling ``seconds``."""
    timbre, envelope, motif = INSTRUMENTS[cls % len(INSTRUMENTS)]
    steps = MOTIFS[motif]
    n = int(seconds * RATE)
    base = float(rng.uniform(180, 420))
    per = n // len(steps)
    out = np.zeros(n)
    for i, step in enumerate(steps):
        note = _note(base * 2 ** (step / 12), timbre, envelope, per, RATE, rng)
        out[i * per : i * per + per] = note
    return out, RATE


def _noise(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(n)


def _band(x: np.ndarray, lo: float, hi: float, rate: int) -> np.ndarray:
    """Band-pass by FFT masking (no filter state: the same for any length)."""
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1 / rate)
    spec[(f < lo) | (f > hi)] = 0
    return np.fft.irfft(spec, n=len(x))


def _bursts(n: int, rate: int, per_second: float, length: float, rng: np.random.Generator) -> list[int]:
    count = max(1, int(rng.poisson(per_second * n / rate)))
    return sorted(int(v) for v in rng.integers(0, max(1, n - int(length * rate)), size=count))


TEXTURES = (
    "rain",
    "engine",
    "birds",
    "wind",
    "knocks",
    "siren",
    "hiss",
    "bubbles",
    "clock",
    "beating",
    "crackle",
    "drone",
)


def texture(cls: int, seconds: float, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Class ``cls``'s sound event, with per-clip jitter of its rates and frequencies (+-15 %)."""
    kind = TEXTURES[cls % len(TEXTURES)]
    n, rate = int(seconds * RATE), RATE
    t = np.arange(n) / rate
    j = float(rng.uniform(0.85, 1.15))
    y = np.zeros(n)
    if kind == "rain":
        for s in _bursts(n, rate, 40 * j, 0.004, rng):
            y[s : s + 64] += _band(_noise(64, rng), 2000, 7000, rate) * rng.uniform(0.3, 1)
    elif kind == "engine":
        f0 = 70 * j
        y = sum(np.sin(2 * math.pi * f0 * k * t) / k for k in range(1, 8)) * (
            1 + 0.5 * np.sin(2 * math.pi * 9 * j * t)
        )
        y = y + 0.2 * _band(_noise(n, rng), 50, 400, rate)
    elif kind == "birds":
        for s in _bursts(n, rate, 5 * j, 0.12, rng):
            m = int(0.12 * rate)
            tt = np.arange(m) / rate
            f = 2500 * j + 1500 * np.sin(2 * math.pi * 12 * tt)
            y[s : s + m] += np.sin(2 * math.pi * np.cumsum(f) / rate) * np.hanning(m)
    elif kind == "wind":
        y = _band(_noise(n, rng), 250 * j, 900 * j, rate) * (
            0.6 + 0.4 * np.sin(2 * math.pi * 0.7 * t + rng.uniform(0, 6))
        )
    elif kind == "knocks":
        period = int(rate / (3.0 * j))
        for s in range(int(rng.integers(0, period)), n, period):
            m = min(int(0.08 * rate), n - s)
            tt = np.arange(m) / rate
            y[s : s + m] += np.sin(2 * math.pi * 150 * j * tt) * np.exp(-tt / 0.015)
    elif kind == "siren":
        f = 900 * j + 300 * np.sin(2 * math.pi * 1.0 * t + rng.uniform(0, 6))
        y = np.sin(2 * math.pi * np.cumsum(f) / rate)
    elif kind == "hiss":
        y = _band(_noise(n, rng), 4500, 7500, rate)
    elif kind == "bubbles":
        for s in _bursts(n, rate, 8 * j, 0.05, rng):
            m = int(0.05 * rate)
            tt = np.arange(m) / rate
            f = np.linspace(300, 1100, m) * j
            y[s : s + m] += np.sin(2 * math.pi * np.cumsum(f) / rate) * np.hanning(m)
    elif kind == "clock":
        period = int(rate / (4.0 * j))
        for s in range(int(rng.integers(0, period)), n, period):
            m = min(160, n - s)
            y[s : s + m] += _band(_noise(m, rng), 1500, 3500, rate) * np.exp(-np.arange(m) / 30)
    elif kind == "beating":
        f = 440 * j
        y = np.sin(2 * math.pi * f * t) + np.sin(2 * math.pi * (f + 5) * t)
    elif kind == "crackle":
        for s in _bursts(n, rate, 12 * j, 0.01, rng):
            m = min(int(rng.integers(20, 200)), n - s)
            y[s : s + m] += _noise(m, rng) * rng.uniform(0.2, 1.0)
    else:  # drone: a low sawtooth, low-passed
        f0 = 110 * j
        y = _band(2 * ((t * f0) % 1.0) - 1, 0, 1200, rate)
    return np.asarray(y, dtype=np.float64), rate


#: source name -> sound(class index, seconds, rng) -> (wave, sample rate); fsdd is handled by the generator
AUDIO_SOURCES: dict[str, Callable[..., tuple[np.ndarray, int]]] = {"instruments": instrument, "textures": texture}
AUDIO_CLASSES = {"instruments": len(INSTRUMENTS), "textures": len(TEXTURES), "fsdd": 10}


def normalise(y: np.ndarray, peak: float) -> np.ndarray:
    m = float(np.max(np.abs(y))) or 1.0
    return (y / m * peak).astype(np.float32)

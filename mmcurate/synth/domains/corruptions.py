"""Corruption kinds of the other-domain sets, each with a severity level, per modality.

av_digits has three ground-truth conditions (visual mismatch, visual pixel noise with a block,
audio white noise). Real data degrades in other ways, and a discrepancy that only finds those
three is not yet shown to work. Here:

visual (frames (T, H, W, 3) uint8, the object's box per frame):
  ``blur`` (Gaussian, radius in px of a 96-px frame), ``occlusion`` (a textured block over this
  share of the object, following it), ``lowcontrast`` (contrast scaled to this factor, with haze),
  ``compression`` (downscaled by this factor and JPEG-coded at quality 8, then upscaled: blocks),
  ``noise`` (Gaussian pixel noise of this std);
audio (mono float wave):
  ``bandlimit`` (low-pass at this frequency), ``reverb`` (a diffuse tail with this RT60 in seconds,
  80 % wet), ``competing`` (another source mixed in at this signal-to-interference ratio, dB),
  ``noise`` (pink noise at this SNR, dB).
``mismatch`` (the evidence shows another class) is drawn by the generator, not here.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageFilter

VISUAL_KINDS = ("blur", "occlusion", "lowcontrast", "compression", "noise")
AUDIO_KINDS = ("bandlimit", "reverb", "competing", "noise")


def corrupt_frames(
    frames: np.ndarray,
    boxes: list[tuple[float, float, float, float]],
    kind: str,
    level: float,
    rng: np.random.Generator,
) -> np.ndarray:
    size = frames.shape[2]
    out = []
    if kind == "occlusion":
        shade = rng.integers(0, 256, size=3)
    for t, frame in enumerate(frames):
        img = Image.fromarray(frame)
        if kind == "blur":
            img = img.filter(ImageFilter.GaussianBlur(radius=level * size / 96))
            arr = np.asarray(img)
        elif kind == "lowcontrast":
            x = frame.astype(np.float32)
            arr = np.clip(x.mean() + (x - x.mean()) * level + 40 * (1 - level), 0, 255).astype(np.uint8)
        elif kind == "compression":
            small = max(4, int(round(size * level)))
            buf = io.BytesIO()
            img.resize((small, small), Image.BILINEAR).save(buf, format="JPEG", quality=8)
            arr = np.asarray(Image.open(buf).convert("RGB").resize((size, size), Image.NEAREST))
        elif kind == "noise":
            arr = np.clip(frame + rng.normal(0, level, frame.shape), 0, 255).astype(np.uint8)
        elif kind == "occlusion":
            x0, y0, x1, y1 = boxes[t]
            w, h = (x1 - x0) * math.sqrt(level), (y1 - y0) * math.sqrt(level)
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            arr = frame.copy()
            ya, yb = int(max(0, cy - h / 2)), int(min(size, cy + h / 2))
            xa, xb = int(max(0, cx - w / 2)), int(min(size, cx + w / 2))
            arr[ya:yb, xa:xb] = shade
            stripes = (np.arange(xa, xb) // 4) % 2 == 0
            arr[ya:yb, xa:xb][:, stripes] = 255 - shade
        else:
            raise ValueError(kind)
        out.append(np.asarray(arr, dtype=np.uint8))
    return np.stack(out)


def _lowpass(y: np.ndarray, cutoff: float, rate: int) -> np.ndarray:
    from scipy.signal import butter, sosfilt

    sos = butter(8, min(cutoff, rate / 2 * 0.95), btype="low", fs=rate, output="sos")
    return sosfilt(sos, y)


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    return np.fft.irfft(spec / np.sqrt(f), n=n)


def _mix(signal: np.ndarray, other: np.ndarray, ratio_db: float) -> np.ndarray:
    ps = float(np.mean(signal**2)) or 1e-12
    po = float(np.mean(other**2)) or 1e-12
    return signal + other * math.sqrt(ps / (po * 10 ** (ratio_db / 10)))


def corrupt_audio(
    y: np.ndarray, rate: int, kind: str, level: float, rng: np.random.Generator, interferer: np.ndarray | None = None
) -> np.ndarray:
    if kind == "bandlimit":
        return _lowpass(y, level, rate)
    if kind == "reverb":
        n = int(level * rate)
        t = np.arange(n) / rate
        ir = rng.standard_normal(n) * np.exp(-6.9 * t / level)
        wet = np.convolve(y, ir)[: len(y)]
        wet *= math.sqrt((np.mean(y**2) or 1e-12) / (np.mean(wet**2) or 1e-12))
        return 0.2 * y + 0.8 * wet
    if kind == "noise":
        return _mix(y, _pink(len(y), rng), level)
    if kind == "competing":
        if interferer is None:
            raise ValueError("competing needs an interferer")
        other = np.resize(interferer, len(y))
        return _mix(y, other, level)
    raise ValueError(kind)

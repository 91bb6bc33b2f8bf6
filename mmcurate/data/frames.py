"""Stored JPEG frames -> ``(T, 3, S, S)`` uint8, and the ImageNet normalisation models expect."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from mmcurate.common.errors import MMCurateError, one_line

#: ImageNet channel statistics, which the field's reference loaders normalise with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def select_frame_indices(available: int, wanted: int) -> list[int]:
    """Which stored frames to use: the centre of each of ``wanted`` equal segments.

    With more frames than wanted this spreads them evenly (10 stored, 3 wanted -> 1, 5, 8, the
    segment centres the reference loaders use at test time); with fewer, frames repeat in order
    (2 stored, 3 wanted -> 0, 1, 1).
    """
    if available < 1:
        raise ValueError("no frames to select from")
    return [min(available - 1, (2 * t + 1) * available // (2 * wanted)) for t in range(wanted)]


def decode_jpeg_frames(frames: Sequence[Any], image_size: int, num_frames: int) -> np.ndarray:
    """Decode the selected frames to ``(num_frames, 3, image_size, image_size)`` uint8 RGB.

    Each frame is centre-cropped to a square if it is not one, then resized with an antialiasing
    filter: libjpeg first decodes at the smallest DCT scale (1/2, 1/4, 1/8) that stays at least
    ``image_size`` (an exact block average, and 2-4x faster than a full decode), then a bilinear
    resize with a support widened by the scale factor brings it to size. Items may be JPEG bytes,
    ``{"bytes": ..., "path": ...}`` dicts (Hugging Face ``Image`` columns) or PIL images.
    Raises :class:`MMCurateError` naming the frame that does not decode.
    """
    if len(frames) == 0:
        raise MMCurateError("no frames stored")
    indices = select_frame_indices(len(frames), num_frames)
    out = np.empty((num_frames, 3, image_size, image_size), dtype=np.uint8)
    decoded: dict[int, np.ndarray] = {}
    for t, i in enumerate(indices):
        if i not in decoded:
            decoded[i] = _decode_one(frames[i], image_size, i, len(frames))
        out[t] = decoded[i]
    return out


def _decode_one(item: Any, size: int, index: int, count: int) -> np.ndarray:
    try:
        if isinstance(item, Image.Image):
            img = item
        else:
            data = item.get("bytes") if isinstance(item, dict) else item
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise MMCurateError(f"frame {index + 1} of {count} holds {type(data).__name__}, not JPEG bytes")
            img = Image.open(io.BytesIO(data))
            img.draft("RGB", (size, size))
        img = img.convert("RGB")
        w, h = img.size
        if w != h:
            side = min(w, h)
            left, top = (w - side) // 2, (h - side) // 2
            img = img.crop((left, top, left + side, top + side))
        if img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)
    except MMCurateError:
        raise
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError... for bad data
        raise MMCurateError(f"frame {index + 1} of {count} is not a decodable image ({one_line(exc)})") from None


def normalize_frames(frames_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 RGB frames ``(..., 3, H, W)`` -> float32 ``(x / 255 - mean) / std`` with ImageNet
    statistics, on the input's device (normalise on the GPU, after the uint8 copy: 4x less traffic)."""
    if frames_uint8.ndim < 3 or frames_uint8.shape[-3] != 3:
        raise MMCurateError(f"normalize_frames expects (..., 3, H, W) frames, got shape {tuple(frames_uint8.shape)}")
    x = frames_uint8.to(torch.float32).div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=x.device).view(3, 1, 1)
    return x.sub_(mean).div_(std)


#: floor of a frame's per-channel standard deviation in :func:`standardize_frames` (0-1 scale, about 5/255):
#: a flat frame is not blown up into noise
FRAME_STD_FLOOR = 0.02


def standardize_frames(frames_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 RGB frames ``(..., 3, H, W)`` -> float32, each frame's channels standardised on their own
    (zero mean, unit spread with a floor of :data:`FRAME_STD_FLOOR`).

    Why: a scorer trained from scratch on a few thousand clips must find the class's *form*. Where
    every clip has its own colours (random foreground, background and lighting, as in real video),
    ImageNet normalisation leaves each clip's colour cast as the largest variation in the input, and
    the scorer sat on its initial plateau for 12+ epochs (measured on coloured glyphs: held-out
    accuracy 0.11 after 12 epochs with ImageNet normalisation, 0.54 with this; MNIST-like frames
    learn as before). The contrast pattern within each channel, which carries form and relative
    colour, is kept."""
    if frames_uint8.ndim < 3 or frames_uint8.shape[-3] != 3:
        raise MMCurateError(f"standardize_frames expects (..., 3, H, W) frames, got shape {tuple(frames_uint8.shape)}")
    x = frames_uint8.to(torch.float32).div_(255.0)
    # centred in place, spread as a vector norm: no temporary as large as the batch (allocating one costs page
    # faults each batch). 4-6x faster on CPU than ``torch.std_mean`` over the last two dims, which took a tenth
    # of a visual training epoch and a third of a prediction (benchmarks/score_profile.py)
    flat = x.reshape(*x.shape[:-2], -1)  # a view when x is contiguous, else a copy: in-place below is safe either way
    flat.sub_(flat.mean(-1, keepdim=True))
    std = torch.linalg.vector_norm(flat, dim=-1, keepdim=True).div_(max(flat.shape[-1] - 1, 1) ** 0.5)
    return flat.div_(std.clamp_(min=FRAME_STD_FLOOR)).view(x.shape)

"""Visual sources of the other-domain sets: what a class looks like, drawn afresh for every clip.

Why these two: the scorers' defaults were chosen on grey MNIST digits on black; a user's frames
have colour, texture, clutter and motion. Each source renders a class with per-clip random
appearance (colours, background, size, rotation, path of motion), so the only stable cue is the
class's form:

* ``glyphs``: a rendered character (Pillow's built-in scalable font), random colour on a
  random textured background (solid, gradient, stripes, checker, noise), rotated, drifting across
  the frame;
* ``scenes``: a textured shape (star, ring, hexagon, ...) of random colour among distractor
  blobs of other colours on a textured background, moving and turning.

Every render returns the frames and, per frame, the object's box (for occlusions that follow it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: the characters of the glyph classes (distinct outlines, none a rotation of another)
GLYPHS = "AKMRSWXZ&?G3E%5Q"
#: the shapes of the scene classes
SCENE_SHAPES = (
    "star",
    "ring",
    "hexagon",
    "cross",
    "crescent",
    "arrow",
    "heart",
    "triangle",
    "bars",
    "diamond",
    "pentagon",
    "tee",
)

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Rendered:
    frames: np.ndarray  # (T, H, W, 3) uint8
    boxes: list[Box]  # per frame: (x0, y0, x1, y1) of the object


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, size=3))  # type: ignore[return-value]


def _luma(c: tuple[int, int, int] | np.ndarray) -> float:
    return float(0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2])


def _contrasting(rng: np.random.Generator, against: float, min_gap: float = 90.0) -> tuple[int, int, int]:
    """A random colour whose luma differs from ``against`` by at least ``min_gap`` (a plain-to-read object)."""
    for _ in range(100):
        c = _colour(rng)
        if abs(_luma(c) - against) >= min_gap:
            return c
    return (255, 255, 255) if against < 128 else (0, 0, 0)


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) float32: one of five textures in random colours, muted so an object stands out."""
    kind = int(rng.integers(0, 5))
    a, b = np.array(_colour(rng), np.float32), np.array(_colour(rng), np.float32)
    b = a + (b - a) * 0.35  # two close colours: texture, not a second object
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if kind == 0:
        w = np.zeros_like(xx)
    elif kind == 1:
        angle = rng.uniform(0, math.pi)
        w = (xx * math.cos(angle) + yy * math.sin(angle)) / math.sqrt(2)
    elif kind == 2:
        period, angle = rng.uniform(0.08, 0.25), rng.uniform(0, math.pi)
        w = (np.sin(2 * math.pi * (xx * math.cos(angle) + yy * math.sin(angle)) / period) > 0).astype(np.float32)
    elif kind == 3:
        cell = rng.uniform(0.1, 0.3)
        w = ((np.floor(xx / cell) + np.floor(yy / cell)) % 2).astype(np.float32)
    else:
        coarse = rng.random((6, 6)).astype(np.float32)
        w = np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR))
        w = w.astype(np.float32) / 255.0
    return a[None, None, :] * (1 - w[..., None]) + b[None, None, :] * w[..., None]


def _path(rng: np.random.Generator, size: int, extent: float, n: int) -> list[tuple[float, float]]:
    """Centres of a straight drift from a random start to a random end, inside the frame."""
    lo, hi = extent / 2 + 1, size - extent / 2 - 1
    if hi <= lo:
        lo = hi = size / 2
    x0, y0, x1, y1 = (float(v) for v in rng.uniform(lo, hi, size=4))
    steps = max(1, n - 1)
    return [(x0 + (x1 - x0) * t / steps, y0 + (y1 - y0) * t / steps) for t in range(n)]


def _composite(
    bg: np.ndarray, sprite: Image.Image, centres: list[tuple[float, float]], angles: list[float]
) -> Rendered:
    """Paste the RGBA ``sprite`` (rotated per frame) onto the background at each centre."""
    frames, boxes = [], []
    base = Image.fromarray(np.clip(np.rint(bg), 0, 255).astype(np.uint8), "RGB")
    for (cx, cy), angle in zip(centres, angles):
        img = base.copy()
        rot = sprite.rotate(angle, resample=Image.BILINEAR, expand=True)
        x, y = int(round(cx - rot.width / 2)), int(round(cy - rot.height / 2))
        img.paste(rot, (x, y), rot)
        bbox = rot.getchannel("A").getbbox() or (0, 0, rot.width, rot.height)
        boxes.append((x + bbox[0], y + bbox[1], x + bbox[2], y + bbox[3]))
        frames.append(np.asarray(img, dtype=np.uint8))
    return Rendered(np.stack(frames), boxes)


def render_glyph(cls: int, n_frames: int, size: int, rng: np.random.Generator, style: float = 0.5) -> Rendered:
    """Class ``cls``'s character, random colour, size 45-70 % of the frame, rotated up to 20 degrees,
    drifting; ``style`` (0-1, the clip's group) shifts the size range a little."""
    bg = background(rng, size)
    colour = _contrasting(rng, float(np.mean([_luma(p) for p in bg[:: size // 4, :: size // 4].reshape(-1, 3)])))
    px = int(size * rng.uniform(0.45, 0.65) * (0.9 + 0.2 * style))
    font = ImageFont.load_default(size=max(8, px))
    char = GLYPHS[cls % len(GLYPHS)]
    left, top, right, bottom = font.getbbox(char)
    sprite = Image.new("RGBA", (right - left + 4, bottom - top + 4), (0, 0, 0, 0))
    ImageDraw.Draw(sprite).text((2 - left, 2 - top), char, font=font, fill=(*colour, 255))
    extent = max(sprite.width, sprite.height) * 1.2
    centres = _path(rng, size, extent, n_frames)
    a0, a1 = (float(v) for v in rng.uniform(-20, 20, size=2))
    angles = [a0 + (a1 - a0) * t / max(1, n_frames - 1) for t in range(n_frames)]
    return _composite(bg, sprite, centres, angles)


def _shape_points(shape: str, r: float) -> list[tuple[float, float]] | None:
    def ring(n: int, rr: float, phase: float = -math.pi / 2) -> list[tuple[float, float]]:
        return [
            (r + rr * math.cos(phase + 2 * math.pi * k / n), r + rr * math.sin(phase + 2 * math.pi * k / n))
            for k in range(n)
        ]

    if shape == "star":
        return [
            (
                r + (r if k % 2 == 0 else 0.42 * r) * math.cos(-math.pi / 2 + k * math.pi / 5),
                r + (r if k % 2 == 0 else 0.42 * r) * math.sin(-math.pi / 2 + k * math.pi / 5),
            )
            for k in range(10)
        ]
    if shape == "hexagon":
        return ring(6, r, 0.0)
    if shape == "pentagon":
        return ring(5, r)
    if shape == "triangle":
        return ring(3, r)
    if shape == "diamond":
        return [(r, 0), (1.6 * r, r), (r, 2 * r), (0.4 * r, r)]
    if shape == "arrow":
        return [(0, 0.7 * r), (r, 0.7 * r), (r, 0.2 * r), (2 * r, r), (r, 1.8 * r), (r, 1.3 * r), (0, 1.3 * r)]
    if shape == "tee":
        return [
            (0, 0),
            (2 * r, 0),
            (2 * r, 0.6 * r),
            (1.3 * r, 0.6 * r),
            (1.3 * r, 2 * r),
            (0.7 * r, 2 * r),
            (0.7 * r, 0.6 * r),
            (0, 0.6 * r),
        ]
    return None


def _fill(rng: np.random.Generator, side: int, colour: tuple[int, int, int]) -> Image.Image:
    """An RGB square of side ``side``: solid, striped or dotted in ``colour`` and a darker shade."""
    kind = int(rng.integers(0, 3))
    img = Image.new("RGB", (side, side), colour)
    if kind == 0:
        return img
    dark = tuple(int(c * 0.55) for c in colour)
    d = ImageDraw.Draw(img)
    step = max(3, side // int(rng.integers(4, 8)))
    for k in range(-side, 2 * side, step):
        if kind == 1:
            d.line([(k, 0), (k + side, side)], fill=dark, width=max(1, step // 3))
        else:
            for j in range(0, side, step):
                d.ellipse((k, j, k + step // 2, j + step // 2), fill=dark)
    return img


def _shape_mask(shape: str, side: int) -> Image.Image:
    mask = Image.new("L", (side, side), 0)
    d = ImageDraw.Draw(mask)
    r = side / 2
    pts = _shape_points(shape, r)
    if pts is not None:
        d.polygon(pts, fill=255)
    elif shape == "ring":
        d.ellipse((0, 0, side - 1, side - 1), fill=255)
        d.ellipse((side * 0.3, side * 0.3, side * 0.7, side * 0.7), fill=0)
    elif shape == "cross":
        w = side * 0.17
        d.rectangle((0, r - w, side, r + w), fill=255)
        d.rectangle((r - w, 0, r + w, side), fill=255)
    elif shape == "crescent":
        d.ellipse((0, 0, side - 1, side - 1), fill=255)
        d.ellipse((side * 0.3, -side * 0.05, side * 1.1, side * 0.85), fill=0)
    elif shape == "heart":
        d.ellipse((0, 0, r * 1.05, r * 1.05), fill=255)
        d.ellipse((r * 0.95, 0, side, r * 1.05), fill=255)
        d.polygon([(side * 0.03, r * 0.7), (side * 0.97, r * 0.7), (r, side)], fill=255)
    elif shape == "bars":
        w = side * 0.12
        for cx in (0.2, 0.5, 0.8):
            d.rectangle((side * cx - w, 0, side * cx + w, side), fill=255)
    else:
        raise ValueError(shape)
    return mask


def render_scene(cls: int, n_frames: int, size: int, rng: np.random.Generator, style: float = 0.5) -> Rendered:
    """Class ``cls``'s shape (random colour and fill, 40-60 % of the frame) moving and turning among
    two to four distractor blobs; ``style`` shifts the size range a little."""
    bg = background(rng, size)
    for _ in range(int(rng.integers(2, 5))):  # clutter: blobs of other colours, fixed in the scene
        img = Image.fromarray(np.clip(np.rint(bg), 0, 255).astype(np.uint8))
        d = ImageDraw.Draw(img)
        w, h = (float(v) for v in rng.uniform(0.08, 0.2, size=2) * size)
        x, y = (float(v) for v in rng.uniform(0, size, size=2))
        (d.ellipse if rng.random() < 0.5 else d.rectangle)((x, y, x + w, y + h), fill=_colour(rng))
        bg = np.asarray(img, dtype=np.float32)
    colour = _contrasting(rng, float(np.mean([_luma(p) for p in bg[:: size // 4, :: size // 4].reshape(-1, 3)])))
    side = int(size * rng.uniform(0.4, 0.55) * (0.9 + 0.2 * style))
    shape = SCENE_SHAPES[cls % len(SCENE_SHAPES)]
    sprite = _fill(rng, side, colour).convert("RGBA")
    sprite.putalpha(_shape_mask(shape, side))
    centres = _path(rng, size, side * 1.3, n_frames)
    a0 = float(rng.uniform(-25, 25))
    spin = float(rng.uniform(-4, 4))
    angles = [a0 + spin * t for t in range(n_frames)]
    return _composite(bg, sprite, centres, angles)


#: source name -> render(class index, n_frames, size, rng, style) -> Rendered
VISUAL_SOURCES: dict[str, Callable[..., Rendered]] = {"glyphs": render_glyph, "scenes": render_scene}
#: how many classes each source can draw
VISUAL_CLASSES = {"glyphs": len(GLYPHS), "scenes": len(SCENE_SHAPES)}

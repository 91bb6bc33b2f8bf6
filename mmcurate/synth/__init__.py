"""Synthetic labelled audio-visual sets, generated on the spot (no download): for the demo, tests and benchmarks.

A recipe's ``source.generate`` section calls one of :data:`GENERATORS` (``kind``, default ``shapes``)
with its other keys, to write the raw clips before ingest.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmcurate.synth.shapes import (
    DEFAULT_CLASSES,
    DEMO_CLASSES,
    DemoClass,
    generate_demo_dataset,
)

#: generator name -> ``generate(raw_dir, **options) -> raw_dir``
GENERATORS: dict[str, Callable[..., Path]] = {"shapes": generate_demo_dataset}


def generate(raw_dir: Path, kind: str = "shapes", **options: Any) -> Path:
    """Write the synthetic set ``kind`` into ``raw_dir`` (reused when already there with the same options)."""
    from mmcurate.common.errors import MMCurateError

    if kind not in GENERATORS:
        raise MMCurateError(f"unknown generator {kind!r} in source.generate; choose from {', '.join(GENERATORS)}")
    return GENERATORS[kind](raw_dir, **options)


__all__ = ["DEFAULT_CLASSES", "DEMO_CLASSES", "GENERATORS", "DemoClass", "generate", "generate_demo_dataset"]

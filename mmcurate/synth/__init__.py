"""Synthetic labelled audio-visual sets, generated on the spot (no download): for the demo, tests and benchmarks.

A recipe's ``source.generate`` section calls one of :data:`GENERATORS` (``kind``, default ``shapes``)
with its other keys, to write the raw clips before ingest:

* ``shapes`` (:mod:`mmcurate.synth.shapes`): coloured shapes and tones with a continuous per-clip
  clarity in each modality (the demo's set; ``expected_discrepancy`` is its ground truth);
* ``avdigits`` (:mod:`mmcurate.synth.avdigits`): AV-digits-style sets re-drawn from the FSDD
  recordings and MNIST t10k with any seed, size, corruption rates and severities (ground truth
  ``condition`` and ``severity``); ``python -m mmcurate.synth.avdigits --help``.
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


def generate_avdigits_set(
    raw_dir: Path, fsdd_dir: str | None = None, mnist_dir: str | None = None, **spec: Any
) -> Path:
    """``kind: avdigits``: the spec's fields (n_clips, seed, audio_noise, ...) as keys."""
    from mmcurate.synth.avdigits import AVDigitsSpec, generate_avdigits

    tuples = {
        k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
        for k, v in spec.items()
    }
    return generate_avdigits(
        raw_dir, AVDigitsSpec(**tuples), Path(fsdd_dir) if fsdd_dir else None, Path(mnist_dir) if mnist_dir else None
    )


#: generator name -> ``generate(raw_dir, **options) -> raw_dir``
GENERATORS: dict[str, Callable[..., Path]] = {"shapes": generate_demo_dataset, "avdigits": generate_avdigits_set}


def generate(raw_dir: Path, kind: str = "shapes", **options: Any) -> Path:
    """Write the synthetic set ``kind`` into ``raw_dir`` (reused when already there with the same options)."""
    from mmcurate.common.errors import MMCurateError

    if kind not in GENERATORS:
        raise MMCurateError(f"unknown generator {kind!r} in source.generate; choose from {', '.join(GENERATORS)}")
    return GENERATORS[kind](raw_dir, **options)


__all__ = ["DEFAULT_CLASSES", "DEMO_CLASSES", "GENERATORS", "DemoClass", "generate", "generate_demo_dataset"]

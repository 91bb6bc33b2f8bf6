"""Pluggable scorers: the built-in out-of-fold ResNet scorer, plus any a user registers.

A scorer is a function ``(ingest_dir: Path, options: dict) -> pyarrow.Table`` returning at
least ``sample_id``, ``p_audio``, ``p_visual`` for every ingested sample (e.g. confidences of
a user's pretrained encoders, computed out-of-fold). Register one in code with
:func:`register_scorer`, or from another package through the ``mmcurate.scorers`` entry-point
group (``[project.entry-points."mmcurate.scorers"] myscorer = "mypkg.scoring:score"``), then
run ``mmcurate score --scorer myscorer``. Its output is validated like ``--scores-from``.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pyarrow as pa

from mmcurate.common.errors import MMCurateError
from mmcurate.score.config import BUILTIN_SCORER

ScorerFn = Callable[[Path, dict[str, Any]], pa.Table]

_REGISTRY: dict[str, ScorerFn] = {}


def register_scorer(name: str, fn: ScorerFn) -> None:
    """Make ``fn`` available as ``mmcurate score --scorer NAME``."""
    if name == BUILTIN_SCORER:
        raise ValueError(f"{BUILTIN_SCORER!r} is the built-in scorer's name")
    _REGISTRY[name] = fn


def available_scorers() -> list[str]:
    names = {BUILTIN_SCORER, *_REGISTRY}
    names.update(ep.name for ep in entry_points(group="mmcurate.scorers"))
    return sorted(names)


def get_scorer(name: str) -> ScorerFn:
    if name in _REGISTRY:
        return _REGISTRY[name]
    for ep in entry_points(group="mmcurate.scorers"):
        if ep.name == name:
            return ep.load()  # type: ignore[no-any-return]
    raise MMCurateError(f"unknown --scorer {name!r}; available: {', '.join(available_scorers())}")

"""What discovery hands to ingest: one :class:`InputItem` per sample, or a :class:`Failure`;
and what the per-item step hands back: a :class:`ClipResult`.

Every discovery layout (label folders, an input manifest, a dataset adapter such as CREMA-D)
produces these two lists, so that each input ends up in exactly one of ``manifest.parquet`` or
``failures.jsonl`` (whose fields :data:`mmcurate.store.schemas.FAILURE_FIELDS` documents). They
live in the store, not in ingest, because both the adapters (:mod:`mmcurate.recipes`) and the
ingest stage speak them: neither has to import the other. That includes :class:`ClipResult`, since
an adapter whose items are not media files (a BalanceMM release) brings its own per-item function.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any


def make_sample_id(path: str, start: float | None = None, end: float | None = None) -> str:
    """Stable, readable id: the POSIX path relative to RAW_DIR, plus ``#start-end`` for a segment.

    It depends only on where the file sits and which segment is used, never on the run, so
    scores, selections and Hub rows stay joinable across reruns and machines.
    """
    if start is None and end is None:
        return path
    s = "" if start is None else f"{start:g}"
    e = "" if end is None else f"{end:g}"
    return f"{path}#{s}-{e}"


@dataclass(frozen=True, slots=True)
class InputItem:
    """One sample to decode.

    ``path`` is relative to the raw directory (POSIX separators); ``extra`` carries any further
    columns of an input manifest (e.g. ``condition``, ``speaker``) into manifest.parquet.
    ``name`` is the sample id when the release names its samples itself (a BalanceMM annotation
    key), so that the id does not change with where the files sit; by default the id is the path.
    """

    path: str
    label: str
    split: str | None = None
    group: str | None = None
    start: float | None = None
    end: float | None = None
    extra: tuple[tuple[str, str], ...] = ()
    name: str | None = None

    def __post_init__(self) -> None:
        # labels, splits and groups repeat across thousands of items: one string object each
        # (with slots, this keeps an item near 180 bytes; 30k inputs' items are held for the run)
        for name in ("label", "split", "group"):
            value = getattr(self, name)
            if type(value) is str:
                object.__setattr__(self, name, sys.intern(value))

    @property
    def sample_id(self) -> str:
        if self.name is not None:
            return self.name
        return make_sample_id(self.path, self.start, self.end)

    def extra_dict(self) -> dict[str, str]:
        return dict(self.extra)


@dataclass(frozen=True)
class Failure:
    """An input that did not make it into the manifest, and why (one line)."""

    file: str
    stage: str
    reason: str
    sample_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "sample_id": self.sample_id, "stage": self.stage, "reason": self.reason}


@dataclass
class ClipResult:
    """What the per-item step returns: either ``row`` (a manifest row) + ``media`` (a shard row,
    keys as SHARD_SCHEMA's columns) on success, or ``failure``."""

    sample_id: str
    row: dict[str, Any] | None = None
    media: dict[str, Any] | None = None
    failure: Failure | None = None


@dataclass
class Discovery:
    """Result of scanning a raw directory: items to decode, inputs already failed, notes."""

    items: list[InputItem] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    #: files present under RAW_DIR but not named by an input manifest (reported, not failures)
    unlisted: list[str] = field(default_factory=list)
    #: the class list the release itself defines, in its order (a BalanceMM annotation's ``labels``),
    #: used when the user gives no ``--classes``; None: the sorted labels found
    classes: list[str] | None = None
    #: the config (an ``AudioFeatureConfig`` dict) of audio features the items carry ready-made
    #: instead of a waveform (a BalanceMM release's spectrograms); ingest records it as the config of
    #: the shards' ``audio_features`` cache. None: features, if any, are computed from the waveform
    features: dict[str, Any] | None = None
    #: (path, why) of entries under RAW_DIR that discovery does not search: hidden files and folders,
    #: links to folders, unreadable folders (reported, so nothing vanishes from the counts)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def fail(self, file: str, reason: str, *, stage: str = "discover", sample_id: str | None = None) -> None:
        """Record that input ``file`` (or the annotation line it came from) failed at ``stage``, and why, in
        one line: the one way a layout or adapter reports a bad input; it is listed in failures.jsonl and
        ingest goes on."""
        self.failures.append(Failure(file, stage, reason, sample_id))

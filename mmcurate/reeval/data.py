"""The data a re-evaluation runs on: train/val/test tensors plus each test sample's discrepancy.

Whatever the source (balanced export, Hub dataset, ingest+score work dir), it ends up as one
:class:`ReevalData`, so the trainer and the metrics never know where the data came from.
Discrepancy is ``d = p_audio - p_visual``; ``bin`` is its bin index (0 = most visual-preferred);
both are NaN / -1 for samples that have no score.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from mmcurate.common.errors import MMCurateError
from mmcurate.common.hashing import canonical_json
from mmcurate.reeval.settings import TensorSettings
from mmcurate.reeval.tensorize import tensorize, tensorize_mapped
from mmcurate.store.splits import SPLITS, assign_splits

#: fractions of a split drawn when a source has no split at all
DEFAULT_FRACTIONS: tuple[float, float, float] = (0.8, 0.1, 0.1)
#: fraction of train carved out as validation when a source has train and test only
CARVED_VAL_FRACTION = 0.1
#: seed of every data-side random choice (fixed: all methods and seeds must see the same data)
DATA_SEED = 0


@dataclass
class SplitData:
    """One split's tensors, aligned by position."""

    name: str
    frames: torch.Tensor  # (N, T, 3, S, S) uint8
    audio: torch.Tensor  # (N, 1, F, L) float32 in RAM or float16 memory-mapped, not yet standardised
    labels: torch.Tensor  # (N,) int64
    sample_ids: list[str]
    discrepancy: np.ndarray  # (N,) float64, NaN where unknown
    bins: np.ndarray  # (N,) int64, -1 where unknown
    #: per sample, the group that must not cross a split (speaker, source video); None: no groups known
    groups: list[str | None] | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class ReevalData:
    """Train/val/test splits, class names and where they came from."""

    train: SplitData
    val: SplitData
    test: SplitData
    classes: list[str]
    source: str
    source_kind: str  # "balanced" | "hub" | "ingest"
    split_note: str
    num_bins: int
    bin_edges: list[float] | None
    decoder: dict
    audio_mean: float = 0.0
    audio_std: float = 1.0
    notes: list[str] = field(default_factory=list)

    def split(self, name: str) -> SplitData:
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    def fingerprint(self) -> str:
        """A hash of what the models see: ids, labels and input shapes of every split."""
        h = hashlib.sha256()
        for name in SPLITS:
            s = self.split(name)
            h.update(name.encode())
            h.update("\n".join(s.sample_ids).encode())
            h.update(s.labels.numpy().tobytes())
            h.update(str((tuple(s.frames.shape[1:]), tuple(s.audio.shape[1:]))).encode())
            if s.groups is not None and any(g is not None for g in s.groups):
                h.update("\n".join("" if g is None else g for g in s.groups).encode())
        h.update("\n".join(self.classes).encode())
        h.update(canonical_json(self.decoder).encode())
        return h.hexdigest()[:16]

    def describe(self) -> dict:
        """A JSON-able summary for results.json."""
        return {
            "source": self.source,
            "source_kind": self.source_kind,
            "classes": self.classes,
            "split_sizes": {n: len(self.split(n)) for n in SPLITS},
            "split_note": self.split_note,
            "num_bins": self.num_bins,
            "bin_edges": self.bin_edges,
            "tensor_config": self.decoder,
            "frames_shape": list(self.train.frames.shape[1:]),
            "audio_shape": list(self.train.audio.shape[1:]),
            "test_scored": int(np.isfinite(self.test.discrepancy).sum()),
            "fingerprint": self.fingerprint(),
            "notes": self.notes,
        }


def resolve_splits(
    splits: list[str | None], labels: list[str], origin: str, groups: list[str | None] | None = None
) -> tuple[list[str], str]:
    """Fill in missing splits deterministically; return the splits and a note saying what was done.

    * train, val and test all given: used as they are;
    * train and test but no val: 10 % of train becomes val;
    * no split at all: 80/10/10.
    Drawn splits are stratified by class and keep every group (``groups``: speaker, source video)
    in one split, with the splitter ``mmcurate balance`` uses (:func:`mmcurate.store.splits.assign_splits`).
    Anything else (some rows without a split, or no test) is an error: guessing would leak.
    """
    given = {s for s in splits if s is not None}
    grouped = groups is not None and any(g is not None for g in groups)
    how = "stratified by label, groups kept whole" if grouped else "stratified by label"
    if given and None in splits:
        n = sum(s is None for s in splits)
        raise MMCurateError(f"{origin}: {n} samples have no split while others do; give every sample a split or none")
    if not given:
        drawn = assign_splits(
            np.zeros(len(labels), np.int64), np.asarray(labels, dtype=object), groups, DEFAULT_FRACTIONS, DATA_SEED
        )
        return [str(x) for x in drawn], f"no splits in the source: 80/10/10 split {how} (seed {DATA_SEED})"
    if "test" not in given:
        raise MMCurateError(f"{origin}: no test split (found {sorted(given)}); re-evaluation reports test metrics")
    if "train" not in given:
        raise MMCurateError(f"{origin}: no train split (found {sorted(given)})")
    if "val" in given:
        return list(splits), "splits as given by the source"  # type: ignore[arg-type]
    train_idx = [i for i, s in enumerate(splits) if s == "train"]
    carved = assign_splits(
        np.zeros(len(train_idx), np.int64),
        np.asarray([labels[i] for i in train_idx], dtype=object),
        [groups[i] for i in train_idx] if groups is not None else None,
        (1 - CARVED_VAL_FRACTION, CARVED_VAL_FRACTION, 0.0),
        DATA_SEED,
    )
    out = list(splits)
    for j, name in zip(train_idx, carved, strict=True):
        out[j] = str(name)
    return out, f"no val split in the source: 10 % of train ({how}, seed {DATA_SEED}) is the validation split"  # type: ignore[return-value]


def assemble(
    media: pa.Table,
    classes: list[str],
    splits: list[str],
    discrepancy: np.ndarray,
    bins: np.ndarray,
    *,
    num_bins: int,
    bin_edges: list[float] | None,
    settings: TensorSettings,
    source: str,
    source_kind: str,
    split_note: str,
    notes: list[str] | None = None,
    groups: list[str | None] | None = None,
    scratch: Path | None = None,
) -> ReevalData:
    """Decode the media once and cut the tensors into splits (``groups``: per row, or None).

    With ``scratch`` (the results folder) the tensors are memory-mapped files decoded in split order, so
    each split is a slice of them (:func:`mmcurate.reeval.tensorize.tensorize_mapped`) and the run's
    memory does not grow with the data; without it (or without room on its disk) they are held in RAM.
    Either way every split holds the same values in the same order."""
    for name in SPLITS:
        if name not in splits:
            raise MMCurateError(f"{source}: the {name} split is empty")
    ids = media.column("sample_id").to_pylist()
    index = {name: [i for i, s in enumerate(splits) if s == name] for name in SPLITS}
    order = np.asarray([i for name in SPLITS for i in index[name]], dtype=np.int64)
    tensors = (
        tensorize_mapped(media, order, [str(ids[i]) for i in order], classes, settings, scratch)
        if scratch is not None
        else None
    )
    in_order = tensors is not None
    if tensors is None:
        tensors = tensorize(media, classes, settings)
    parts: dict[str, SplitData] = {}
    start = 0
    for name in SPLITS:
        idx = index[name]
        if in_order:  # rows are in split order: a split is a slice, a view of the mapped files
            rows: slice | torch.Tensor = slice(start, start + len(idx))
            start += len(idx)
        else:
            rows = torch.tensor(idx, dtype=torch.long)
        parts[name] = SplitData(
            name=name,
            frames=tensors.frames[rows].contiguous(),
            audio=tensors.audio[rows].contiguous(),
            labels=tensors.labels[rows].contiguous(),
            sample_ids=[ids[i] for i in idx],
            discrepancy=np.asarray(discrepancy, dtype=np.float64)[idx],
            bins=np.asarray(bins, dtype=np.int64)[idx],
            groups=None if groups is None else [groups[i] for i in idx],
        )
    mean, std = _audio_stats(parts["train"])
    return ReevalData(
        train=parts["train"],
        val=parts["val"],
        test=parts["test"],
        classes=list(classes),
        source=source,
        source_kind=source_kind,
        split_note=split_note,
        num_bins=num_bins,
        bin_edges=bin_edges,
        decoder=tensors.decoder,
        audio_mean=mean,
        audio_std=std,
        notes=list(notes or []),
    )


def _audio_stats(train: SplitData, chunk: int = 256) -> tuple[float, float]:
    """Audio standardisation statistics from the training split only: mean and standard deviation
    (ddof 1, as ``torch.std``), accumulated in float64 over ``chunk`` clips at a time, so a memory-mapped
    split is never copied whole and both storage precisions give the same figures."""
    audio = train.audio
    n = audio.numel()
    if n == 0:
        return 0.0, 1.0
    total = 0.0
    for s in range(0, len(audio), chunk):
        total += float(audio[s : s + chunk].to(torch.float64).sum())
    mean = total / n
    if n < 2:
        return mean, 1.0
    squares = 0.0
    for s in range(0, len(audio), chunk):
        squares += float(((audio[s : s + chunk].to(torch.float64) - mean) ** 2).sum())
    std = (squares / (n - 1)) ** 0.5
    return mean, std if std > 1e-8 else 1.0


def _take(split: SplitData, name: str, idx: np.ndarray) -> SplitData:
    t = torch.as_tensor(idx, dtype=torch.long)
    return SplitData(
        name=name,
        frames=split.frames[t].contiguous(),
        audio=split.audio[t].contiguous(),
        labels=split.labels[t].contiguous(),
        sample_ids=[split.sample_ids[i] for i in idx],
        discrepancy=split.discrepancy[idx],
        bins=split.bins[idx],
        groups=None if split.groups is None else [split.groups[i] for i in idx],
    )


def _concat(a: SplitData, b: SplitData, name: str) -> SplitData:
    groups = (
        None
        if a.groups is None and b.groups is None
        else [*(a.groups or [None] * len(a)), *(b.groups or [None] * len(b))]
    )
    return SplitData(
        name=name,
        frames=torch.cat([a.frames, b.frames]),
        audio=torch.cat([a.audio, b.audio]),
        labels=torch.cat([a.labels, b.labels]),
        sample_ids=[*a.sample_ids, *b.sample_ids],
        discrepancy=np.concatenate([a.discrepancy, b.discrepancy]),
        bins=np.concatenate([a.bins, b.bins]),
        groups=groups,
    )


def resplit(data: ReevalData, seed: int) -> ReevalData:
    """``data`` with train and val pooled and re-drawn for ``seed``; test stays fixed.

    The draw keeps the sizes of the given train and val splits, stratifies by discrepancy bin and
    class, and keeps every group (speaker, source video) in one split, with the one splitter of
    mmcurate (:func:`mmcurate.store.splits.assign_splits`). Seeds that re-draw the data make the
    spread across seeds include split variance (``--resplit``).
    """
    pool = _concat(data.train, data.val, "pool")
    n_train, n_val = len(data.train), len(data.val)
    ratios = (n_train / (n_train + n_val), n_val / (n_train + n_val), 0.0)
    labels = np.asarray(pool.labels.numpy(), dtype=object)
    drawn = assign_splits(np.maximum(pool.bins, 0), labels, pool.groups, ratios, seed)
    train = _take(pool, "train", np.flatnonzero(drawn == "train"))
    val = _take(pool, "val", np.flatnonzero(drawn == "val"))
    mean, std = _audio_stats(train)
    how = (
        "groups kept whole"
        if pool.groups is not None and any(g is not None for g in pool.groups)
        else "no groups known"
    )
    return dataclasses.replace(
        data,
        train=train,
        val=val,
        audio_mean=mean,
        audio_std=std,
        split_note=(
            f"{data.split_note}; train/val re-drawn for seed {seed} (stratified by bin and class, {how}; test fixed)"
        ),
    )

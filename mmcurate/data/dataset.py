"""Decode per item: :class:`AVDataset`, for sets too large to hold decoded in memory.

It yields exactly what :class:`AVTensors` holds for the same rows and config (same decode
function, same audio length choice), so a stage can switch between the two by set size alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import Dataset

from mmcurate.common.errors import MMCurateError
from mmcurate.data.config import TensorConfig
from mmcurate.data.records import (
    LabelIndexer,
    SampleRecord,
    check_columns,
    length_records_from_table,
    record_from_dict,
    records_from_table,
)
from mmcurate.data.sample import (
    check_sample_rates,
    choose_audio_frames,
    decode_sample,
    sample_frame_count,
)
from mmcurate.data.tensors import cache_matches, cached_config
from mmcurate.data.threads import single_intraop_thread
from mmcurate.features import AudioFeatureConfig


class AVDataset(Dataset):
    """Lazy per-item decoding of a shard table (memory-mapped by :func:`read_shards`) or of an
    indexable sequence of dict rows (a list, or a ``datasets.Dataset`` with ``Audio(decode=False)``).

    Items are dicts: ``frames`` (T, 3, S, S) uint8, ``audio`` (1, bins, audio_frames) in
    ``cfg.audio_dtype``, ``label`` int64 scalar tensor, ``sample_id`` str; the default
    ``DataLoader`` collate batches them. The constructor reads only lengths (the
    ``audio_num_samples`` column, cache shapes or FLAC headers) to fix ``audio_frames`` the way
    :func:`build_av_tensors` does; pass ``cfg.audio_frames`` to skip even that.
    """

    def __init__(
        self,
        rows: pa.Table | Sequence[Mapping[str, Any]],
        classes: Sequence[str],
        cfg: TensorConfig | None = None,
        features_config: AudioFeatureConfig | str | dict[str, Any] | None = None,
    ):
        self.cfg = cfg or TensorConfig()
        self.classes = list(classes)
        self._labels = LabelIndexer(self.classes)
        if isinstance(rows, pa.Table):
            check_columns(rows.column_names, "the table")
        elif not (hasattr(rows, "__getitem__") and hasattr(rows, "__len__")):
            raise MMCurateError("AVDataset needs a pyarrow Table or an indexable sequence of dict rows")
        self._rows = rows
        self._cache_ok = cache_matches(rows, self.cfg, features_config)
        self._cached_cfg = cached_config(rows, features_config)
        if self.cfg.audio_frames is not None:
            self.audio_frames = self.cfg.audio_frames
        else:
            if isinstance(rows, pa.Table):
                sizing = length_records_from_table(rows, self.classes)
            else:
                sizing = [self.record(i) for i in range(len(self))]
            counts = [sample_frame_count(r, self.cfg, self._cache_ok) for r in sizing]
            self.audio_frames = choose_audio_frames(counts, self.cfg)

    def __len__(self) -> int:
        return self._rows.num_rows if isinstance(self._rows, pa.Table) else len(self._rows)

    def record(self, i: int) -> SampleRecord:
        """The stored media of row ``i`` (nothing decoded yet)."""
        if isinstance(self._rows, pa.Table):
            return records_from_table(self._rows.slice(i, 1), self.classes)[0]
        return record_from_dict(self._rows[i], self._labels, i)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i = i % len(self)
        rec = self.record(i)
        check_sample_rates([rec], self.cfg, self._cache_ok, self._cached_cfg)
        with single_intraop_thread():
            out = decode_sample(rec, self.cfg, self.audio_frames, self._cache_ok)
        audio = out.audio.astype(np.dtype(self.cfg.audio_dtype))[None]
        return {
            "frames": torch.from_numpy(out.frames),
            "audio": torch.from_numpy(audio),
            "label": torch.tensor(rec.label, dtype=torch.int64),
            "sample_id": rec.sample_id,
        }

    @property
    def sample_ids(self) -> list[str]:
        if isinstance(self._rows, pa.Table):
            return [str(s) for s in self._rows.column("sample_id").to_pylist()]
        return [str(self._rows[i]["sample_id"]) for i in range(len(self))]

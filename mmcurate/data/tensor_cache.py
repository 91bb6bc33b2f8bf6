"""A decoded set on disk, memory-mapped: decode once, train many times, in as many processes as there are cores.

``mmcurate score`` trains 2 x folds x repeats models (and reeval many more) on the same decoded
tensors. Holding them in RAM makes peak memory grow with the set (about 25 KB a clip at 32 px), and
per-batch decoding through a DataLoader is slow and cannot run inside pool workers. The cache writes
the training tensors once as ``.npy`` files and opens them with ``np.load(mmap_mode="r")``:

* a rerun, a second seed, another fold count or modality reuse one decode (the key holds only what
  changes the tensors: the data's fingerprint, the :class:`TensorConfig`, the classes and the sample
  order, and :data:`TENSOR_FORMAT`);
* forked pool workers share the file's pages, and batches are gathered by index, so no process ever
  holds a copy of the whole set: resident memory beyond the (reclaimable) page cache does not grow
  with the set;
* the build decodes :data:`BUILD_ROWS` rows at a time and appends them to the files (bounded RAM),
  in a temporary folder renamed into place once complete and its ``key.json`` written last, so an
  interrupted build (a ``.tmp-`` folder, or a folder without a matching ``key.json``) is never read.

Audio is stored float16: every path rounds features to float16 (:class:`TensorConfig`), so the
cache holds the same values in half the bytes, and a batch is cast to ``audio_dtype`` when gathered.
The cache lives in ``<data folder>/tensor_cache/<key hash>/``; entries of data that changed since
(another fingerprint) are removed whenever a new entry is written, so it holds at most one entry
per tensor config and sample set of the current data, each :func:`cache_size_gb` large.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from mmcurate.common.atomic import TMP_PREFIX, fsync_dir, make_temp_dir
from mmcurate.common.hashing import config_hash
from mmcurate.common.progress import progress_bar
from mmcurate.data.config import TensorConfig
from mmcurate.data.records import length_records_from_table, records_from_table
from mmcurate.data.sample import check_sample_rates, choose_audio_frames, sample_frame_count
from mmcurate.data.tensors import AVTensors, DecodeTargets, cache_matches, cached_config, decode_into
from mmcurate.store.io import rows_at

#: version of the on-disk layout; bump it when the files or the decode change, so old entries are rebuilt
TENSOR_FORMAT = 1
#: the cache's folder name inside a data folder (an ingest)
CACHE_DIR = "tensor_cache"
KEY_FILE = "key.json"
ARRAYS = ("frames", "audio", "has_audio", "has_frames", "labels")
#: rows decoded per step of a build: what a build holds in RAM besides the mapped files
BUILD_ROWS = 512
#: room left free on the disk besides the entry itself
DISK_MARGIN_BYTES = 512 * 2**20
#: a temporary build folder this old is a killed build's debris
STALE_TMP_SECONDS = 6 * 3600

#: decodes into a cache done by this process (a real counter: a cache hit does not move it)
BUILDS = 0


@dataclass(frozen=True)
class CacheKey:
    """What the cached tensors depend on; equal keys mean identical arrays."""

    data_fingerprint: str
    config: TensorConfig
    classes: tuple[str, ...]
    sample_ids: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        ids = hashlib.sha256("\n".join(self.sample_ids).encode()).hexdigest()
        return {
            "format": TENSOR_FORMAT,
            "data_fingerprint": self.data_fingerprint,
            "tensor_config": self.config.to_dict(),
            "classes": list(self.classes),
            "samples": len(self.sample_ids),
            "sample_ids_sha256": ids,
        }

    def digest(self) -> str:
        return config_hash(self.to_dict(), length=16)


def cache_size_gb(n: int, cfg: TensorConfig, audio_frames: int | None = None) -> float:
    """Disk size of a cache entry: frames uint8, audio float16 (an upper bound without ``audio_frames``)."""
    frames = cfg.num_frames * 3 * cfg.image_size**2
    audio = 2 * cfg.audio.num_bins * (audio_frames or cfg.audio_frames or cfg.max_audio_frames)
    return n * (frames + audio + 10) / 1e9


class TensorCache:
    """The ``tensor_cache`` folder of one data folder."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @classmethod
    def of(cls, data_dir: str | os.PathLike[str]) -> TensorCache:
        return cls(Path(data_dir) / CACHE_DIR)

    def entry(self, key: CacheKey) -> Path:
        return self.root / key.digest()

    def has_room(self, n: int, cfg: TensorConfig) -> bool:
        """Whether the disk can hold a new entry of ``n`` samples (with a margin)."""
        probe = self.root if self.root.exists() else self.root.parent
        try:
            free = shutil.disk_usage(probe).free
        except OSError:
            return False
        return free >= cache_size_gb(n, cfg) * 1e9 + DISK_MARGIN_BYTES

    def open(self, key: CacheKey) -> AVTensors | None:
        """The cached tensors of ``key``, memory-mapped; None when there is no complete entry for it."""
        folder = self.entry(key)
        try:
            stored = json.loads((folder / KEY_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if stored.get("key") != key.to_dict():
            return None
        try:
            arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in ARRAYS}
        except (OSError, ValueError):
            return None
        n = len(key.sample_ids)
        if any(a.shape[:1] != (n,) for a in arrays.values()) or list(arrays["audio"].shape) != stored.get(
            "audio_shape"
        ):
            return None
        with warnings.catch_warnings():  # read-only maps: torch warns that it cannot write them (nothing does)
            warnings.simplefilter("ignore", UserWarning)
            tensors = {name: torch.from_numpy(a) for name, a in arrays.items()}
        return AVTensors(
            frames=tensors["frames"],
            audio=tensors["audio"],
            labels=tensors["labels"],
            sample_ids=list(key.sample_ids),
            classes=list(key.classes),
            config=key.config,
            has_audio=tensors["has_audio"],
            has_frames=tensors["has_frames"],
            stats={**stored.get("stats", {}), "tensor_cache": str(folder), "decoded": False},
        )

    def build(self, key: CacheKey, rows: pa.Table, workers: int = 0, order: np.ndarray | None = None) -> AVTensors:
        """Decode ``rows`` (a shard table in ``key.sample_ids`` order, or rows ``order`` of it: taken
        :data:`BUILD_ROWS` at a time, so a memory-mapped table is never copied whole; ``order`` is a
        permutation of its rows) into a new entry, then open it."""
        global BUILDS
        cfg, classes = key.config, list(key.classes)
        started = time.perf_counter()
        self.root.mkdir(parents=True, exist_ok=True)
        self.clean(key.data_fingerprint)
        cache_ok = cache_matches(rows, cfg, None)
        sizing = length_records_from_table(rows, classes)
        audio_frames = choose_audio_frames([sample_frame_count(r, cfg, cache_ok) for r in sizing], cfg)
        del sizing
        order = np.arange(rows.num_rows) if order is None else np.asarray(order, dtype=np.int64)
        if len(order) != rows.num_rows:
            raise ValueError("order must be a permutation of the rows")
        n, s, t = len(order), cfg.image_size, cfg.num_frames
        ids = rows.column("sample_id").to_pylist()
        if [str(ids[i]) for i in order] != list(key.sample_ids):
            raise ValueError("rows are not in the key's sample order")
        dest = self.entry(key)
        tmp = make_temp_dir(TMP_PREFIX + dest.name + ".", self.root)
        files: dict[str, Any] = {}
        try:
            shapes = {
                "frames": ((n, t, 3, s, s), np.uint8),
                "audio": ((n, 1, cfg.audio.num_bins, audio_frames), np.float16),
                "has_audio": ((n,), np.bool_),
                "has_frames": ((n,), np.bool_),
                "labels": ((n,), np.int64),
            }
            files = {name: _npy_file(tmp / f"{name}.npy", shape, dtype) for name, (shape, dtype) in shapes.items()}
            used = 0
            with progress_bar("decode frames + audio into the tensor cache", total=n) as advance:
                for start in range(0, n, BUILD_ROWS):
                    records = records_from_table(rows_at(rows, order[start : start + BUILD_ROWS]), classes)
                    check_sample_rates(records, cfg, cache_ok, cached_config(rows, None))
                    # one chunk in RAM, appended to the files with plain writes: the build's resident memory is
                    # one chunk, not the written pages of the whole entry (as writing through a memmap would be)
                    chunk = {
                        name: np.zeros((len(records), *shape[1:]), dtype) for name, (shape, dtype) in shapes.items()
                    }
                    out = DecodeTargets(chunk["frames"], chunk["audio"], chunk["has_audio"], chunk["has_frames"])
                    used += decode_into(records, cfg, audio_frames, cache_ok, out, 0, workers, advance)
                    chunk["labels"][:] = [r.label for r in records]
                    for name, fh in files.items():
                        fh.write(np.ascontiguousarray(chunk[name]).tobytes())
                    del records, chunk, out
            for fh in files.values():
                fh.flush()
                os.fsync(fh.fileno())
                fh.close()
            stats = {
                "seconds": round(time.perf_counter() - started, 3),
                "samples": n,
                "cached_features_used": used,
                "audio_frames": audio_frames,
                "workers": workers,
            }
            doc = {"key": key.to_dict(), "audio_shape": [n, 1, cfg.audio.num_bins, audio_frames], "stats": stats}
            (tmp / KEY_FILE).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            with open(tmp / KEY_FILE, "rb") as fh:
                os.fsync(fh.fileno())
            self._install(tmp, dest)
        except BaseException:
            for fh in files.values():
                fh.close()
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        BUILDS += 1
        opened = self.open(key)
        if opened is None:  # pragma: no cover - the entry was just written
            raise OSError(f"{dest}: the tensor cache entry just written cannot be read back")
        opened.stats["decoded"] = True
        return opened

    def open_or_build(self, key: CacheKey, rows: Any, workers: int = 0) -> AVTensors:
        """The entry of ``key``, decoding it first when there is none; ``rows()`` gives the shard table
        (called only on a miss, so a hit reads no media)."""
        return self.open(key) or self.build(key, rows(), workers)

    def _install(self, tmp: Path, dest: Path) -> None:
        if dest.exists():  # an incomplete or unreadable entry (open() refused it), or a concurrent build's
            if self.open_key(dest) is not None:
                shutil.rmtree(tmp, ignore_errors=True)
                return
            old = dest.with_name(TMP_PREFIX + dest.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(dest, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, dest)
        fsync_dir(self.root)

    @staticmethod
    def open_key(folder: Path) -> dict[str, Any] | None:
        """An entry's stored key (None: no readable key.json, i.e. not a complete entry)."""
        try:
            return json.loads((folder / KEY_FILE).read_text(encoding="utf-8")).get("key")
        except (OSError, ValueError, AttributeError):
            return None

    def clean(self, data_fingerprint: str) -> list[str]:
        """Remove entries of other data (another fingerprint: never usable again), folders without a
        readable key, and old build temporaries; return what was removed."""
        removed: list[str] = []
        if not self.root.is_dir():
            return removed
        now = time.time()
        for p in sorted(self.root.iterdir()):
            if p.name.startswith(TMP_PREFIX):
                with contextlib.suppress(OSError):
                    if now - p.stat().st_mtime < STALE_TMP_SECONDS:  # perhaps a live build
                        continue
            else:
                key = self.open_key(p) if p.is_dir() else None
                if key is not None and key.get("data_fingerprint") == data_fingerprint:
                    continue
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    p.unlink()
            removed.append(p.name)
        return removed

    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.root.rglob("*") if f.is_file()) if self.root.is_dir() else 0


def _npy_file(path: Path, shape: tuple[int, ...], dtype: Any) -> Any:
    """An open ``.npy`` file with its header written; the caller appends the rows' bytes in order."""
    fh = open(path, "wb")  # noqa: SIM115 - closed by the build once every row is written
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_2_0(fh, header)
    return fh


def key_of(data_fingerprint: str, cfg: TensorConfig, classes: Sequence[str], sample_ids: Sequence[str]) -> CacheKey:
    return CacheKey(data_fingerprint, cfg, tuple(classes), tuple(str(s) for s in sample_ids))

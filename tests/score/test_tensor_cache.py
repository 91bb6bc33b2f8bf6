"""The memory-mapped tensor cache: the same arrays as decoding into memory (so the same scores), one
decode per data and tensor config, a new entry for other data or another config, and a partial entry
never read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import run_cli
from test_score import TINY_OOF

from mmcurate.common.atomic import TMP_PREFIX
from mmcurate.common.errors import MMCurateError
from mmcurate.data import TensorConfig, build_av_tensors, read_shards
from mmcurate.data import tensor_cache as tc
from mmcurate.data.tensor_cache import CACHE_DIR, TensorCache, key_of
from mmcurate.store import IngestDir

pytestmark = pytest.mark.slow  # real scoring runs

CFG = TensorConfig(image_size=16, num_frames=2)


def _key(ingest: IngestDir, cfg: TensorConfig = CFG, fingerprint: str | None = None) -> tc.CacheKey:
    ids = ingest.read_manifest(["sample_id"]).column("sample_id").to_pylist()
    return key_of(fingerprint or ingest.fingerprint(), cfg, ingest.read_classes(), ids)


def test_cache_and_memory_paths_give_identical_scores(small_work: Path, tmp_path: Path) -> None:
    """Scoring from the memory-mapped cache and from in-memory tensors gives the same bytes."""
    a, b = tmp_path / "cache", tmp_path / "memory"
    shutil.copytree(small_work, a)
    shutil.copytree(small_work, b)
    proc = run_cli("score", "--workdir", str(a), *TINY_OOF)
    assert proc.returncode == 0, proc.stderr
    assert "memory-mapped from" in proc.stderr and "decoded now" in proc.stderr
    proc = run_cli("score", "--workdir", str(b), *TINY_OOF, "--no-tensor-cache")
    assert proc.returncode == 0, proc.stderr
    assert "memory-mapped" not in proc.stderr
    assert [p.name for p in (a / "ingest" / CACHE_DIR).iterdir()] and not (b / "ingest" / CACHE_DIR).exists()
    assert (a / "ingest" / "scores.parquet").read_bytes() == (b / "ingest" / "scores.parquet").read_bytes()


def test_cached_arrays_equal_the_in_memory_ones(
    small_work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Built in several chunks (BUILD_ROWS small), the mapped arrays equal build_av_tensors' exactly."""
    ingest = IngestDir(tmp_path / "ingest")
    shutil.copytree(small_work / "ingest", ingest.path)
    monkeypatch.setattr(tc, "BUILD_ROWS", 48)
    key = _key(ingest)
    cached = TensorCache.of(ingest.path).build(key, read_shards(ingest.path, list(key.sample_ids)), workers=2)
    memory = build_av_tensors(read_shards(ingest.path), ingest.read_classes(), CFG, workers=2)
    assert isinstance(cached.frames.numpy().base, np.memmap) or cached.frames.numpy().base is not None
    assert cached.audio_frames == memory.audio_frames
    for name in ("frames", "has_audio", "has_frames", "labels"):
        assert np.array_equal(getattr(cached, name).numpy(), getattr(memory, name).numpy()), name
    assert str(cached.audio.dtype) == "torch.float16"
    assert np.array_equal(cached.audio.float().numpy(), memory.audio.numpy())
    assert cached.sample_ids == memory.sample_ids


def test_a_second_run_does_not_decode_again(small_work: Path, tmp_path: Path) -> None:
    """Another seed (and a rerun) memory-maps the entry the first run wrote; nothing is decoded."""
    work = tmp_path / "w"
    shutil.copytree(small_work, work)
    assert run_cli("score", "--workdir", str(work), *TINY_OOF).returncode == 0
    [entry] = (work / "ingest" / CACHE_DIR).iterdir()
    stamps = {p.name: p.stat().st_mtime_ns for p in entry.iterdir()}
    proc = run_cli("score", "--workdir", str(work), *TINY_OOF, "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    assert "decoded by an earlier run" in proc.stderr and "decoded now" not in proc.stderr
    assert [p.name for p in (work / "ingest" / CACHE_DIR).iterdir()] == [entry.name]
    assert {p.name: p.stat().st_mtime_ns for p in entry.iterdir()} == stamps

    # in-process, the build counter moves on a miss only
    ingest = IngestDir(work / "ingest")
    cache, key = TensorCache.of(ingest.path), _key(ingest)
    rows = lambda: read_shards(ingest.path, list(key.sample_ids))  # noqa: E731
    before = tc.BUILDS
    first = cache.open_or_build(key, rows)
    second = cache.open_or_build(key, rows)
    assert tc.BUILDS == before + 1 and first.stats["decoded"] and not second.stats["decoded"]


def test_other_data_or_config_makes_a_new_entry_and_a_partial_one_is_never_used(
    small_work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest = IngestDir(tmp_path / "ingest")
    shutil.copytree(small_work / "ingest", ingest.path)
    cache = TensorCache.of(ingest.path)
    key = _key(ingest)
    ids = list(key.sample_ids)
    rows = lambda: read_shards(ingest.path, ids)  # noqa: E731
    cache.build(key, rows())
    assert cache.open(key) is not None

    # another tensor config: its own entry, the first kept
    bigger = _key(ingest, TensorConfig(image_size=24, num_frames=2))
    assert cache.entry(bigger) != cache.entry(key) and cache.open(bigger) is None
    cache.build(bigger, rows())
    assert cache.open(key) is not None and cache.open(bigger) is not None

    # a changed ingest (another fingerprint): a new entry; the old data's entries are removed
    changed = _key(ingest, fingerprint="0" * 16)
    assert cache.open(changed) is None
    before = tc.BUILDS
    cache.open_or_build(changed, rows)
    assert tc.BUILDS == before + 1
    assert sorted(p.name for p in cache.root.iterdir()) == [cache.entry(changed).name]

    # an interrupted build leaves no entry: a bad label in the second chunk fails it after the first
    monkeypatch.setattr(tc, "BUILD_ROWS", 32)
    table = rows()
    bad = table.set_column(
        table.column_names.index("label"),
        "label",
        [["?" if i == 40 else x for i, x in enumerate(table["label"].to_pylist())]],
    )
    fresh = _key(ingest, TensorConfig(image_size=8, num_frames=2))
    with pytest.raises(MMCurateError, match="not in the class list"):
        cache.build(fresh, bad)
    assert not cache.entry(fresh).exists() and cache.open(fresh) is None
    assert not [p for p in cache.root.iterdir() if p.name.startswith(TMP_PREFIX)]

    # (the build removed the entries of other data first: the "changed" one)
    assert not cache.entry(changed).exists()

    # a killed build's folders: a complete-looking temporary and an entry without key.json are never read
    cache.build(key, rows())
    done = cache.entry(key)
    shutil.copytree(done, cache.root / f"{TMP_PREFIX}{cache.entry(fresh).name}.abcd1234")
    shutil.copytree(done, cache.entry(fresh))
    (cache.entry(fresh) / "key.json").unlink()
    assert cache.open(fresh) is None
    # ... nor one whose key.json names another key (or is cut short)
    (cache.entry(fresh) / "key.json").write_text((done / "key.json").read_text())
    assert cache.open(fresh) is None
    (cache.entry(fresh) / "key.json").write_text((done / "key.json").read_text()[:50])
    assert cache.open(fresh) is None
    # the next build replaces the partial entry with a complete one
    built = cache.open_or_build(fresh, rows)
    assert built.stats["decoded"] and built.frames.shape[-1] == 8
    assert json.loads((cache.entry(fresh) / "key.json").read_text())["key"] == fresh.to_dict()


def test_score_without_cache_room_falls_back_and_says_so(small_work: Path, tmp_path: Path) -> None:
    """--no-tensor-cache with a tiny memory budget still streams per batch (the last fallback)."""
    work = tmp_path / "w"
    shutil.copytree(small_work, work)
    proc = run_cli("score", "--workdir", str(work), *TINY_OOF, "--no-tensor-cache", "--memory-budget-gb", "0.0001")
    assert proc.returncode == 0, proc.stderr
    assert "decoding per batch" in proc.stderr and not (work / "ingest" / CACHE_DIR).exists()
    assert pq.read_table(work / "ingest" / "scores.parquet").num_rows == 140

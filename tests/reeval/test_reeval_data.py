"""Reeval data sources: balanced export (Parquet and save_to_disk), datasets loading, ingest+score."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _reeval_fixtures import synthetic_rows, write_balanced_export, write_ingest_dir

from mmcurate.common.errors import MMCurateError, StageNotReadyError
from mmcurate.reeval.config import TensorSettings
from mmcurate.reeval.data import resolve_splits, resplit
from mmcurate.reeval.sources import (
    load_balanced_dir,
    load_hub_dataset,
    load_ingest_dir,
    resolve_source,
)
from mmcurate.store import IngestDir, Workdir
from mmcurate.store.bins import assign_bins, make_edges

CLASSES = ["cat", "dog", "owl"]
SETTINGS = TensorSettings(image_size=16, num_frames=3)


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return synthetic_rows({"train": 12, "val": 6, "test": 9}, CLASSES, seed=3)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory, rows: list[dict]) -> Path:
    # the val split under the Hub's usual name, so the alias is exercised
    out = tmp_path_factory.mktemp("export") / "balanced"
    return write_balanced_export(rows, CLASSES, out, bins=4, split_names={"val": "validation"})


def _by_id(data, split: str) -> dict[str, int]:  # noqa: ANN001
    s = data.split(split)
    return {sid: i for i, sid in enumerate(s.sample_ids)}


def test_balanced_export_loads_with_splits_labels_and_discrepancy(export_dir: Path, rows: list[dict]) -> None:
    data = load_balanced_dir(export_dir, SETTINGS)
    assert data.classes == CLASSES and data.source_kind == "balanced"
    assert [len(data.split(s)) for s in ("train", "val", "test")] == [12, 6, 9]
    assert data.split_note == "splits as given by the source"
    assert data.train.frames.shape == (12, 3, 3, 16, 16) and data.train.frames.dtype == torch.uint8
    assert data.train.audio.shape[:2] == (12, 1) and data.train.audio.dtype == torch.float32
    assert data.num_bins == 4 and data.bin_edges == [-1.0, -0.5, 0.0, 0.5, 1.0]
    pos = _by_id(data, "test")
    for r in (r for r in rows if r["split"] == "test"):
        i = pos[r["sample_id"]]
        assert data.test.labels[i].item() == CLASSES.index(r["label"])
        assert data.test.discrepancy[i] == pytest.approx(r["discrepancy"])
        assert data.test.bins[i] == min(3, int((r["discrepancy"] + 1) / 2 * 4))
    # frames keep their content: the "owl" (class 2) pictures are brighter than the "cat" ones
    labels = data.train.labels
    assert data.train.frames[labels == 2].float().mean() > data.train.frames[labels == 0].float().mean() + 30


def test_a_single_shard_with_a_split_column(tmp_path: Path, rows: list[dict]) -> None:
    export = write_balanced_export(rows, CLASSES, tmp_path / "one", bins=4, one_file=True)
    assert [p.name for p in (export / "data").iterdir()] == ["train-00000-of-00001.parquet"]
    data = load_balanced_dir(export, SETTINGS)
    assert [len(data.split(s)) for s in ("train", "val", "test")] == [12, 6, 9]


def test_datasets_loading_and_save_to_disk_give_the_same_tensors(export_dir: Path, tmp_path: Path) -> None:
    import datasets

    direct = load_balanced_dir(export_dir, SETTINGS)
    via_datasets = load_hub_dataset(str(export_dir), SETTINGS, cache_dir=str(tmp_path / "cache"))
    dd = datasets.load_dataset(str(export_dir), cache_dir=str(tmp_path / "cache"))
    assert sorted(dd) == ["test", "train", "validation"]
    dd.save_to_disk(str(tmp_path / "only_hf" / "hf"))
    from_disk = load_balanced_dir(tmp_path / "only_hf", SETTINGS)
    for other in (via_datasets, from_disk):
        assert other.classes == direct.classes
        for split in ("train", "val", "test"):
            a, b = direct.split(split), other.split(split)
            order = [b.sample_ids.index(s) for s in a.sample_ids]
            assert sorted(a.sample_ids) == sorted(b.sample_ids)
            assert torch.equal(a.frames, b.frames[order]) and torch.equal(a.audio, b.audio[order])
            assert torch.equal(a.labels, b.labels[order])
            np.testing.assert_array_equal(a.bins, b.bins[order])


@pytest.mark.parametrize(
    ("with_splits", "sizes", "note"),
    [
        ("all", (12, 6, 9), "as given"),
        ("no_val", None, "10 % of train"),
        ("none", None, "80/10/10"),
    ],
)
def test_ingest_dir_splits(tmp_path: Path, rows: list[dict], with_splits: str, sizes: tuple | None, note: str) -> None:
    ingest = write_ingest_dir(rows, CLASSES, tmp_path / "ingest", with_splits=with_splits)
    data = load_ingest_dir(ingest, SETTINGS, bins=4)
    assert note in data.split_note and data.source_kind == "ingest"
    got = tuple(len(data.split(s)) for s in ("train", "val", "test"))
    assert sum(got) == len(rows)
    if sizes:
        assert got == sizes
    if with_splits == "no_val":  # 18 train rows, 10 % dealt by the quota rule of balance's splitter
        assert got == (16, 2, 9) and len(set(data.val.labels.tolist())) == 2
    if with_splits == "none":
        assert got == (21, 3, 3)
    d_of = {r["sample_id"]: r["discrepancy"] for r in rows}
    for split in ("train", "val", "test"):
        s = data.split(split)
        np.testing.assert_allclose(s.discrepancy, [d_of[i] for i in s.sample_ids])
        np.testing.assert_array_equal(s.bins, assign_bins(s.discrepancy, make_edges(4)))
    again = load_ingest_dir(ingest, SETTINGS, bins=4)
    assert again.fingerprint() == data.fingerprint()  # deterministic carving


def test_fallback_splits_are_stratified_deterministic_and_group_disjoint() -> None:
    labels = ["a"] * 10 + ["b"] * 20
    splits, note = resolve_splits([None] * 30, labels, "m.parquet")
    assert [splits.count(k) for k in ("train", "val", "test")] == [24, 3, 3]
    assert {labels[i] for i, s in enumerate(splits) if s == "val"} == {"a", "b"}
    assert resolve_splits([None] * 30, labels, "m.parquet") == (splits, note)
    # a manifest with groups (speakers, source videos): no group may land in two splits
    groups = [f"g{i // 3}" for i in range(30)]
    grouped, note = resolve_splits([None] * 30, labels, "m.parquet", groups)
    assert "groups kept whole" in note and set(grouped) == {"train", "val", "test"}
    for g in set(groups):
        assert len({grouped[i] for i in range(30) if groups[i] == g}) == 1, g
    # train + test only: validation is carved out of train, groups kept whole, test untouched
    given: list[str | None] = ["test" if i < 6 else "train" for i in range(30)]
    carved, note = resolve_splits(given, labels, "m.parquet", groups)
    assert carved[:6] == ["test"] * 6 and "val" in carved and "groups kept whole" in note
    for g in set(groups[6:]):
        assert len({carved[i] for i in range(6, 30) if groups[i] == g}) == 1, g
    with pytest.raises(MMCurateError, match="no split while others do"):
        resolve_splits(["train", None, "test"], ["a", "a", "a"], "m.parquet")
    with pytest.raises(MMCurateError, match="no test split"):
        resolve_splits(["train", "val"], ["a", "a"], "m.parquet")


def test_reeval_bins_are_balance_bins_for_every_sample(tmp_path: Path) -> None:
    """Confidences on a 0.05 grid (441 pairs): float subtraction puts many d right on a bin edge,
    where any other binning formula than balance's disagrees (62 of 441 did with the old one)."""
    from mmcurate.balance import BalanceConfig, plan_balance

    grid = [round(0.05 * k, 2) for k in range(21)]
    pairs = [(a, v) for a in grid for v in grid]
    base = synthetic_rows({"train": len(pairs)}, CLASSES, seed=1, frames=1)
    rows = [
        {**r, "split": ("train", "val", "test")[i % 3], "p_audio": a, "p_visual": v, "discrepancy": a - v}
        for i, (r, (a, v)) in enumerate(zip(base, pairs, strict=True))
    ]
    ingest = write_ingest_dir(rows, CLASSES, tmp_path / "ingest")
    _, balance_bins, _, plan, _ = plan_balance(IngestDir(ingest), BalanceConfig(bins=10))
    pool_ids = sorted(r["sample_id"] for r in rows)
    balance_bin_of = dict(zip(pool_ids, balance_bins.tolist(), strict=True))
    data = load_ingest_dir(ingest, TensorSettings(image_size=8, num_frames=1), bins=10)
    assert data.bin_edges == [float(e) for e in plan.edges]
    for split in ("train", "val", "test"):
        s = data.split(split)
        assert [balance_bin_of[i] for i in s.sample_ids] == s.bins.tolist(), split


def test_a_balance_record_beside_an_unfinished_export_is_refused(export_dir: Path) -> None:
    """A folder with balance.json is a balanced output: its export must be complete (export.json), or
    reeval would read a half-written export as found."""
    from mmcurate.common.errors import MMCurateError

    record = export_dir / "balance.json"
    record.write_text('{"bin_edges": [-1.0, -0.3, 0.0, 0.3, 1.0]}')
    try:
        with pytest.raises(MMCurateError, match="export.json: missing"):
            load_balanced_dir(export_dir, SETTINGS)
    finally:
        record.unlink()


def test_resplit_redraws_train_and_val_per_seed_keeps_test_and_groups(tmp_path: Path) -> None:
    rows = synthetic_rows({"train": 24, "val": 6, "test": 6}, CLASSES, seed=5, frames=1)
    rows = [{**r, "group": f"spk{i % 9}" if r["split"] != "test" else f"t{i}"} for i, r in enumerate(rows)]
    ingest = write_ingest_dir(rows, CLASSES, tmp_path / "ingest", with_groups=True)
    data = load_ingest_dir(ingest, TensorSettings(image_size=8, num_frames=1), bins=4)
    a, b, a_again = resplit(data, 1), resplit(data, 2), resplit(data, 1)
    for d in (a, b):
        assert d.test.sample_ids == data.test.sample_ids and torch.equal(d.test.frames, data.test.frames)
        assert sorted(d.train.sample_ids + d.val.sample_ids) == sorted(data.train.sample_ids + data.val.sample_ids)
        assert abs(len(d.val) - len(data.val)) <= 3  # sizes kept as far as whole groups allow
        train_groups, val_groups = set(d.train.groups), set(d.val.groups)
        assert not train_groups & val_groups and "re-drawn for seed" in d.split_note
        pos = {sid: i for i, sid in enumerate(data.train.sample_ids + data.val.sample_ids)}
        frames = torch.cat([data.train.frames, data.val.frames])
        assert all(torch.equal(d.val.frames[k], frames[pos[sid]]) for k, sid in enumerate(d.val.sample_ids))
    assert a.val.sample_ids == a_again.val.sample_ids and a.fingerprint() == a_again.fingerprint()
    assert a.val.sample_ids != b.val.sample_ids and a.fingerprint() != b.fingerprint()


def test_source_resolution(tmp_path: Path, export_dir: Path, rows: list[dict]) -> None:
    assert resolve_source(str(export_dir), None) == ("balanced", str(export_dir))
    assert resolve_source("some-org/some.set", None) == ("hub", "some-org/some.set")
    work = tmp_path / "work"
    write_ingest_dir(rows, CLASSES, work / "ingest")
    assert resolve_source(str(work), None) == ("ingest", str(work / "ingest"))
    with pytest.raises(StageNotReadyError, match="mmcurate balance"):
        resolve_source(None, Workdir(work))
    with pytest.raises(MMCurateError, match="no such directory"):
        resolve_source(str(tmp_path / "nope" / "deeper" / "x"), None)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(MMCurateError, match="is a file"):
        resolve_source(str(tmp_path / "file.txt"), None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MMCurateError, match="neither a balanced dataset"):
        resolve_source(str(tmp_path / "empty"), None)


def test_bad_inputs_name_the_file_and_the_reason(tmp_path: Path, rows: list[dict]) -> None:
    import pyarrow.parquet as pq

    export = write_balanced_export(rows, CLASSES, tmp_path / "bal", bins=4)
    shard = export / "data" / "train-00000-of-00001.parquet"
    pq.write_table(pq.read_table(shard).drop(["discrepancy"]), shard)
    with pytest.raises(MMCurateError, match="missing column.*discrepancy"):
        load_balanced_dir(export, SETTINGS)

    broken = [dict(r) for r in rows]
    broken[5]["frames"] = [b"not a jpeg"] * 2
    export2 = write_balanced_export(broken, CLASSES, tmp_path / "bal2", bins=4)
    with pytest.raises(MMCurateError, match=broken[5]["sample_id"].replace("/", ".")):
        load_balanced_dir(export2, SETTINGS)

    odd = [dict(r, split="holdout") if r["split"] == "val" else r for r in rows]
    export3 = write_balanced_export(odd, CLASSES, tmp_path / "bal3", bins=4)
    with pytest.raises(MMCurateError, match="unknown split name 'holdout'"):
        load_balanced_dir(export3, SETTINGS)

    ingest = write_ingest_dir(rows, CLASSES, tmp_path / "ingest")
    (ingest / "scores.parquet").unlink()
    with pytest.raises(StageNotReadyError, match="mmcurate score"):
        load_ingest_dir(ingest, SETTINGS)


def _mapped_deleted_files() -> list[str]:
    """This process's memory maps of unlinked reeval tensor files (Linux /proc)."""
    with open("/proc/self/maps") as fh:
        return [line for line in fh if "reeval-tensors." in line and "(deleted)" in line]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps (Linux)")
@pytest.mark.parametrize("source", ["ingest", "balanced"])
def test_a_scratch_folder_maps_the_tensors_from_disk_with_the_values_of_the_in_ram_path(
    tmp_path: Path, rows: list[dict], export_dir: Path, source: str
) -> None:
    """With a scratch folder (reeval's results folder) the decoded set is memory-mapped, so the run's
    memory does not grow with the data: each split is a view of the mapped files (their pages are page
    cache, not private memory), the files are gone from the folder, and every split holds the values, in
    the order, the in-RAM decode gives; the audio statistics agree too."""
    if source == "ingest":
        ingest = write_ingest_dir(rows, CLASSES, tmp_path / "ingest")
        in_ram = load_ingest_dir(ingest, SETTINGS, bins=4)
        before = len(_mapped_deleted_files())
        mapped = load_ingest_dir(ingest, SETTINGS, bins=4, scratch=tmp_path / "out")
    else:
        in_ram = load_balanced_dir(export_dir, SETTINGS)
        before = len(_mapped_deleted_files())
        mapped = load_balanced_dir(export_dir, SETTINGS, scratch=tmp_path / "out")
    assert len(_mapped_deleted_files()) > before  # the defect (decoded into RAM) maps nothing
    assert list((tmp_path / "out").iterdir()) == []  # unlinked once mapped: nothing left behind
    for name in ("train", "val", "test"):
        a, b = in_ram.split(name), mapped.split(name)
        assert a.sample_ids == b.sample_ids
        assert torch.equal(a.frames, b.frames) and torch.equal(a.labels, b.labels)
        assert b.audio.dtype == torch.float16 and torch.equal(a.audio, b.audio.float())
        np.testing.assert_array_equal(a.bins, b.bins)
    assert mapped.test.frames.untyped_storage().data_ptr() == mapped.train.frames.untyped_storage().data_ptr()
    assert (mapped.audio_mean, mapped.audio_std) == pytest.approx((in_ram.audio_mean, in_ram.audio_std), rel=1e-12)
    assert mapped.fingerprint() == in_ram.fingerprint()
    pooled = resplit(mapped, seed=1)  # a re-draw copies train + val: it still works on mapped splits
    assert len(pooled.train) + len(pooled.val) == len(mapped.train) + len(mapped.val)


def test_batches_of_mapped_audio_are_float32_and_equal_to_the_in_ram_ones(tmp_path: Path, rows: list[dict]) -> None:
    from mmcurate.reeval.batches import make_batch

    ingest = write_ingest_dir(rows, CLASSES, tmp_path / "ingest")
    in_ram = load_ingest_dir(ingest, SETTINGS, bins=4)
    mapped = load_ingest_dir(ingest, SETTINGS, bins=4, scratch=tmp_path / "out")
    idx = torch.tensor([3, 0, 5])
    a = make_batch(in_ram.train, in_ram, idx, torch.device("cpu"))
    b = make_batch(mapped.train, mapped, idx, torch.device("cpu"))
    assert b.audio.dtype == torch.float32 and torch.equal(a.audio, b.audio) and torch.equal(a.frames, b.frames)


def _buffer_addresses(table) -> set[int]:  # noqa: ANN001 - a pyarrow Table
    return {b.address for col in table.columns for chunk in col.chunks for b in chunk.buffers() if b is not None}


def test_rows_at_gives_the_rows_in_order_without_copying_the_media() -> None:
    """The decode takes a few hundred rows at a time from a memory-mapped shard table; ``take`` would
    copy (and first concatenate) the media of every chunk into private memory each time."""
    import pyarrow as pa

    from mmcurate.store.io import rows_at

    chunks = [
        pa.table({"sample_id": [f"s{k}{i}" for i in range(5)], "frames": [bytes([k, i]) * 50 for i in range(5)]})
        for k in range(4)
    ]
    table = pa.concat_tables(chunks)
    order = np.array([7, 8, 9, 0, 1, 15, 3, 19, 18])
    got = rows_at(table, order)
    assert got.equals(table.take(pa.array(order)))
    assert _buffer_addresses(got) <= _buffer_addresses(table)  # slices share the source's buffers
    assert not _buffer_addresses(table.take(pa.array(order))) <= _buffer_addresses(table)  # take does not
    assert rows_at(table, np.array([], dtype=np.int64)).num_rows == 0

"""Grow a balanced set (issue 16 part 2): the saved fold ensemble, candidates scored with them and
the out-of-fold calibration, several pools balanced together, and the dry-run needs table.

Real av_digits clips: the seed pool is the 140-clip ``small_work`` ingest (32 px), the candidates
35 other clips; scorers use test_score's TINY settings."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import run_cli, write_av_digits_manifest
from test_score import TINY

from mmcurate.balance.needs import bin_needs
from mmcurate.data import build_av_tensors, read_shards
from mmcurate.score.scorers import apply_calibration, load_scorer
from mmcurate.score.train import InMemorySource
from mmcurate.store import IngestDir
from mmcurate.store.bins import assign_bins, make_edges

pytestmark = pytest.mark.slow  # quick lane: python -m pytest -m 'not slow'


def _one_line_error(proc) -> str:  # type: ignore[no-untyped-def]
    assert proc.returncode != 0
    err = " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr, proc.stderr
    return err


@pytest.fixture(scope="module")
def pools(av_digits: Path, small_work: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``seed``: small_work's ingest scored out-of-fold (TINY, scorers saved); ``cand``: 35 other
    av_digits clips (the 21st-25th of each container family) scored with the seed's scorers."""
    root = tmp_path_factory.mktemp("grow")
    seed = root / "seed"
    shutil.copytree(small_work / "ingest", seed)
    everything = write_av_digits_manifest(av_digits, root / "all.csv", per_format=25)
    lines = everything.read_text().splitlines()
    header, rows = lines[0], lines[1:]
    taken = {
        r.split(",")[0] for r in (small_work / "..").resolve().joinpath("inputs.csv").read_text().splitlines()[1:]
    }
    fresh = [r for r in rows if r.split(",")[0] not in taken]
    assert len(fresh) == 35
    (root / "cand.csv").write_text("\n".join([header, *fresh]) + "\n")
    (root / "classes.txt").write_text("\n".join(str(k) for k in range(10)) + "\n")
    cand = root / "cand"
    proc = run_cli(
        "ingest",
        str(av_digits),
        "--manifest",
        str(root / "cand.csv"),
        "--group-column",
        "speaker",
        "--classes",
        str(root / "classes.txt"),
        "--out",
        str(cand),
        "--size",
        "32",
    )
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("score", str(seed), *TINY)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("score", str(seed), "--candidates", str(cand))
    assert proc.returncode == 0, proc.stderr
    assert "not out-of-fold" in " ".join(proc.stderr.split())
    return {"seed": seed, "cand": cand, "root": root}


def _scorer_dir(seed: Path) -> Path:
    return IngestDir(seed).scorers(json.loads((seed / "scores.json").read_text())["scorer_id"])


def test_saved_scorers_reload_and_candidates_get_the_out_of_fold_calibration(pools: dict[str, Path]) -> None:
    seed, cand = pools["seed"], pools["cand"]
    folder = _scorer_dir(seed)
    assert {p.name for p in folder.iterdir()} >= {"audio.pt", "visual.pt", "scorer.json"}
    described = json.loads((folder / "scorer.json").read_text())
    assert described["classes"] == IngestDir(seed).read_classes()
    assert described["manifest_fingerprint"] == IngestDir(seed).fingerprint()
    assert described["tensor_config"]["audio_frames"] == 32
    audio = torch.load(folder / "audio.pt", weights_only=True)
    assert len(audio["checkpoints"]) == len(audio["audio_stats"]) and all(std > 0 for _, std in audio["audio_stats"])
    assert len(set(audio["seeds"])) == described["config"]["folds"]  # one member per fold
    assert all(described["calibration"][m]["method"] == "floor" for m in ("audio", "visual")), described["calibration"]

    meta = json.loads((cand / "scores.json").read_text())
    assert meta["source"] == "candidates" and meta["out_of_fold"] is False and "not out-of-fold" in meta["note"]
    assert meta["scorer_dir"] == str(folder.resolve())
    assert meta["calibration"] == described["calibration"]  # the seed's parameters, not refitted on the candidates

    # reload the saved models, score the candidates again by hand: the same raw and calibrated confidences
    saved = load_scorer(folder)
    scores = pq.read_table(cand / "scores.parquet")
    ids = scores.column("sample_id").to_pylist()
    tensors = build_av_tensors(read_shards(cand, ids), saved.classes, saved.tensor_config)
    y = tensors.labels.numpy()
    assert (scores.column("fold").to_numpy() == -1).all()
    for m in ("audio", "visual"):
        raw, per = saved.predict(InMemorySource(tensors, m), torch.device("cpu"))
        assert len(per) >= json.loads((_scorer_dir(pools["seed"]) / "scorer.json").read_text())["config"]["folds"]
        rows = np.arange(len(y))
        assert np.allclose(scores.column(f"p_{m}_uncalibrated").to_numpy(), raw[rows, y], atol=1e-6)
        calibrated = apply_calibration(raw, described["calibration"][m])[rows, y]
        assert np.allclose(scores.column(f"p_{m}").to_numpy(), calibrated, atol=1e-9)
        assert not np.allclose(calibrated, raw[rows, y], atol=1e-3)  # the calibration does something here
    d = scores.column("discrepancy").to_numpy()
    assert np.allclose(d, scores.column("p_audio").to_numpy() - scores.column("p_visual").to_numpy())


def test_saved_scorers_resume_from_their_markers(pools: dict[str, Path]) -> None:
    """A second `mmcurate score` finds the fold jobs and their kept models done and does not train them again."""
    folder = _scorer_dir(pools["seed"])
    before = {m: (folder / f"{m}.pt").stat().st_mtime_ns for m in ("audio", "visual")}
    proc = run_cli("score", str(pools["seed"]), *TINY)
    assert proc.returncode == 0, proc.stderr
    assert {m: (folder / f"{m}.pt").stat().st_mtime_ns for m in ("audio", "visual")} == before


def _record_class_list(ingest_dir: Path, classes: list[str]) -> None:
    """The manifest's record of the class list (readers check classes.json against it) set to ``classes``."""
    from mmcurate.common.hashing import config_hash
    from mmcurate.store.ingest_dir import GENERATION_KEY

    store = IngestDir(ingest_dir)
    generation = {**store.generation(), "classes": config_hash(classes)}
    table = pq.read_table(store.manifest_path)
    metadata = {**(table.schema.metadata or {}), GENERATION_KEY: json.dumps(generation, sort_keys=True).encode()}
    pq.write_table(table.replace_schema_metadata(metadata), store.manifest_path, compression="zstd")


def test_candidates_with_another_class_list_are_refused_in_one_line(pools: dict[str, Path], tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(pools["cand"], other)
    classes = json.loads((other / "classes.json").read_text())
    (other / "classes.json").write_text(json.dumps(classes[::-1]))  # same names, another ClassLabel order
    _record_class_list(other, classes[::-1])  # as an ingest with that list records it in its manifest
    err = _one_line_error(run_cli("score", str(pools["seed"]), "--candidates", str(other)))
    assert "class list differs" in err and str(other / "classes.json") in err, err


def test_two_pools_balance_together_and_each_row_comes_from_its_own_pool(
    pools: dict[str, Path], tmp_path: Path
) -> None:
    seed, cand = pools["seed"], pools["cand"]
    out = tmp_path / "balanced"
    proc = run_cli(
        "balance",
        "--accept-weak-scores",  # tiny scorers (TINY): the self-check fails them, as it should
        "--pool",
        str(seed),
        "--pool",
        str(cand),
        "--per-bin",
        "500",
        "--shortfall",
        "best-effort",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    selection = pq.read_table(out / "selection.parquet")
    by_pool = dict(zip(selection.column("sample_id").to_pylist(), selection.column("pool").to_pylist(), strict=True))
    assert set(by_pool.values()) == {"seed", "cand"}  # every clip of both pools is taken (500 per bin > 175)
    assert sum(v == "cand" for v in by_pool.values()) == 35
    meta = json.loads((out / "balance.json").read_text())
    assert meta["pool_dirs"] == {"seed": str(seed.resolve()), "cand": str(cand.resolve())}
    assert meta["pools"]["cand"]["scores"] == "candidates" and meta["pools"]["seed"]["out_of_fold"] is True
    exported = {}
    for shard in sorted((out / "data").glob("*.parquet")):
        exported.update(
            {r["sample_id"]: r for r in pq.read_table(shard, columns=["sample_id", "pool", "frames"]).to_pylist()}
        )
    assert set(exported) == set(by_pool)
    for name, folder in (("seed", seed), ("cand", cand)):
        ids = sorted(s for s, p in by_pool.items() if p == name)[:5]
        media = IngestDir(folder).read_media(ids)
        for sid, frames in zip(ids, media.column("frames").to_pylist(), strict=True):
            assert exported[sid]["pool"] == name
            assert [f["bytes"] for f in exported[sid]["frames"]] == frames  # read from that pool's own shards
    card = (out / "README.md").read_text()
    assert "| pool `cand` | 35 of 35 clips; scores: candidates, not out-of-fold" in card


def test_pools_sharing_a_sample_id_are_refused_in_one_line(pools: dict[str, Path], tmp_path: Path) -> None:
    again = tmp_path / "again"
    shutil.copytree(pools["seed"], again)
    err = _one_line_error(run_cli("balance", "--pool", str(pools["seed"]), "--pool", str(again), "--dry-run"))
    assert "is in two pools" in err and str(pools["seed"]) in err and str(again) in err, err


def test_needs_table_counts_seed_pool_and_candidates_per_bin_and_class() -> None:
    """Hand-checked: 3 bins, classes a/b, target 3 per bin; the sample in bin -1 counts nowhere."""
    bins = np.array([0, 0, 1, 1, 1, 2, 0, 1, 2, 2, -1])
    labels = np.array(["a", "b", "a", "a", "b", "a", "a", "b", "b", "b", "a"])
    candidate = np.array([False] * 6 + [True] * 4 + [False])
    needs = bin_needs(bins, labels, candidate, ["a", "b"], 3, 3)
    assert needs.have.tolist() == [[1, 1], [2, 1], [1, 0]]
    assert needs.supply.tolist() == [[1, 0], [0, 1], [0, 2]]
    assert needs.need.tolist() == [1, 0, 2]
    assert needs.short_after.tolist() == [0, 0, 0]
    assert needs.share == 2 and needs.class_short.tolist() == [[1, 1], [0, 1], [1, 2]]


def test_dry_run_prints_what_each_bin_needs_and_what_the_candidates_hold(pools: dict[str, Path]) -> None:
    seed, cand = pools["seed"], pools["cand"]
    env_columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "400"  # no wrapping of the table
    try:
        proc = run_cli(
            "balance",
            "--pool",
            str(seed),
            "--pool",
            str(cand),
            "--per-bin",
            "30",
            "--dry-run",
            "--shortfall",
            "best-effort",
        )
    finally:
        if env_columns is None:
            os.environ.pop("COLUMNS")
        else:
            os.environ["COLUMNS"] = env_columns
    assert proc.returncode == 0, proc.stderr
    edges = make_edges(10)
    counts = {}
    for name, folder in (("seed", seed), ("cand", cand)):
        d = pq.read_table(folder / "scores.parquet", columns=["discrepancy"]).column("discrepancy").to_numpy()
        counts[name] = np.bincount(assign_bins(d, edges), minlength=10)
    printed = {}
    for line in proc.stderr.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 8 and re.fullmatch(r"\d+", cells[0]):
            printed[int(cells[0])] = cells
    assert sorted(printed) == list(range(10)), proc.stderr
    for b in range(10):
        have, need = int(counts["seed"][b]), max(0, 30 - int(counts["seed"][b]))
        assert printed[b][2:6] == [
            str(have),
            str(need),
            str(int(counts["cand"][b])),
            str(max(0, need - int(counts["cand"][b]))),
        ], (b, printed[b])

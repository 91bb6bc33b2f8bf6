"""The balance stage's contract in seconds (the quick lane, ``-m 'not slow'``): a real store-format ingest of
60 tiny clips, imported scores, ``mmcurate balance --bins 2`` through the console entry point: it exits 0,
selects the same number of clips from each bin, and writes the published export (card and data shards)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from _fixtures_ingest import make_ingest_dir

from mmcurate.store import IngestDir


def _mm(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    from mmcurate.cli import main

    capsys.readouterr()
    try:
        main(list(argv))
        code = 0
    except SystemExit as ended:
        code = int(ended.code or 0)
    return code, capsys.readouterr().err


def test_tiny_balance_selects_evenly_over_bins_and_exports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ingest_dir = make_ingest_dir(tmp_path / "work" / "ingest", n=60, with_features=False)
    ids = IngestDir(ingest_dir).read_manifest(["sample_id"]).column("sample_id").to_pylist()
    rng = np.random.default_rng(0)
    scores = tmp_path / "scores.csv"
    with open(scores, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["sample_id", "p_audio", "p_visual"])
        for sid in ids:
            w.writerow([sid, *rng.uniform(size=2).round(4)])
    code, err = _mm(capsys, "score", str(ingest_dir), "--scores-from", str(scores))
    assert code == 0, err
    out = tmp_path / "balanced"
    code, err = _mm(capsys, "balance", "--workdir", str(tmp_path / "work"), "--bins", "2", "--out", str(out))
    assert code == 0, err
    assert (out / "README.md").is_file() and (out / "mmcurate_config.json").is_file()
    with open(out / "report" / "bins.csv", newline="") as fh:
        after = [int(r["after"]) for r in csv.DictReader(fh)]
    assert len(after) == 2 and after[0] == after[1] > 0, after
    rows = pq.read_table(sorted((out / "data").glob("*.parquet"))).to_pylist()
    assert len(rows) == sum(after) and {r["sample_id"] for r in rows} <= set(ids)
    assert [sum(r["bin"] == b for r in rows) for b in (0, 1)] == after  # the published rows are the selection
    for r in rows:
        assert r["discrepancy"] == pytest.approx(r["p_audio"] - r["p_visual"])
        assert r["frames"] and r["audio"]["bytes"]

"""Balance: bins, water-filling, shortfall choices, grouped splits, and the real end-to-end
ingest -> scores -> balance -> Hugging Face export on av_digits clips."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from mmcurate.balance import (
    assign_bins,
    assign_splits,
    make_edges,
    parse_ratios,
    plan_bins,
    water_fill,
)
from mmcurate.common.errors import MMCurateError

ENV = {**os.environ, "MMCURATE_NO_PROGRESS": "1"}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mmcurate", *args], capture_output=True, text=True, env=ENV, timeout=900
    )


def test_bins_cover_the_closed_interval() -> None:
    edges = make_edges(10)
    assert np.allclose(edges, np.linspace(-1, 1, 11))
    d = np.array([-1.0, -0.95, -0.8, 0.0, 0.7999, 1.0])
    assert assign_bins(d, edges).tolist() == [0, 0, 1, 5, 8, 9]
    custom = make_edges(3, [-0.5, 0.0, 0.5])
    assert assign_bins(np.array([-0.9, -0.5, 0.25, 0.5, 0.9]), custom).tolist() == [-1, 0, 1, 1, -1]
    with pytest.raises(MMCurateError, match="strictly increasing"):
        make_edges(3, [0.0, 0.0, 1.0])


def test_water_fill_spreads_as_evenly_as_capacity_allows() -> None:
    rng = np.random.default_rng(0)
    assert water_fill(np.array([5, 1, 10]), 9, rng).tolist() == [4, 1, 4]
    assert water_fill(np.array([3, 3, 3]), 9, rng).tolist() == [3, 3, 3]
    assert water_fill(np.array([2, 0, 50]), 30, rng).tolist() == [2, 0, 28]
    take = water_fill(np.array([10, 10, 10]), 4, rng)  # 4 over 3 classes: 2/1/1 in some order
    assert sorted(take.tolist()) == [1, 1, 2]
    assert water_fill(np.array([1, 2]), 10, rng).tolist() == [1, 2]  # cannot exceed the pool


def test_plan_never_skews_silently() -> None:
    pool = np.array([3, 40, 50, 12])
    edges = make_edges(4)
    plan = plan_bins(pool, edges, None, None, "ask")
    assert plan.take.tolist() == [3, 3, 3, 3] and plan.policy == "uniform"
    with pytest.raises(MMCurateError) as err:
        plan_bins(pool, edges, 10, None, "ask")
    msg = str(err.value)
    assert "--shortfall shrink" in msg and "--shortfall best-effort" in msg and "bin 0 has 3" in msg
    assert plan_bins(pool, edges, 10, None, "shrink").take.tolist() == [3, 3, 3, 3]
    best = plan_bins(pool, edges, 10, None, "best-effort")
    assert best.take.tolist() == [3, 10, 10, 10] and best.shortfall.tolist() == [7, 0, 0, 0]
    with pytest.raises(MMCurateError, match="hold no samples"):
        plan_bins(np.array([0, 5]), make_edges(2), None, None, "ask")


def test_ungrouped_splits_are_proportional_in_every_cell() -> None:
    rng = np.random.default_rng(1)
    bins = rng.integers(0, 5, 1000)
    labels = rng.choice(np.array(["a", "b", "c"], dtype=object), 1000)
    splits = assign_splits(bins, labels, None, parse_ratios("80/10/10"), seed=3)
    for b in range(5):
        for c in "abc":
            cell = splits[(bins == b) & (labels == c)]
            for name, r in zip(("train", "val", "test"), (0.8, 0.1, 0.1)):
                assert abs((cell == name).sum() - r * len(cell)) <= 1.01
    again = assign_splits(bins, labels, None, parse_ratios("80/10/10"), seed=3)
    assert (again == splits).all()


def test_grouped_splits_never_divide_a_group() -> None:
    rng = np.random.default_rng(2)
    n = 600
    groups = [f"spk{int(g)}" for g in rng.integers(0, 30, n)]
    bins = rng.integers(0, 4, n)
    labels = rng.choice(np.array(["x", "y"], dtype=object), n)
    splits = assign_splits(bins, labels, groups, parse_ratios("80/10/10"), seed=0)
    where: dict[str, set] = {}
    for g, s in zip(groups, splits):
        where.setdefault(g, set()).add(s)
    assert all(len(s) == 1 for s in where.values())
    shares = {s: float((splits == s).mean()) for s in ("train", "val", "test")}
    assert abs(shares["train"] - 0.8) < 0.05 and abs(shares["val"] - 0.1) < 0.05 and abs(shares["test"] - 0.1) < 0.05
    with pytest.raises(MMCurateError, match="cannot span splits"):
        assign_splits(bins[:10], labels[:10], ["g1"] * 5 + ["g2"] * 5, parse_ratios("80/10/10"), seed=0)


# ---- end to end on real clips ----------------------------------------------------------------


@pytest.fixture(scope="module")
def small_ingest(av_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """140 real av_digits clips ingested, and a scores CSV that follows the ground-truth conditions."""
    root = tmp_path_factory.mktemp("balance")
    rows = list(csv.DictReader(open(av_digits / "labels.csv")))
    by_fmt: dict[str, list] = {}
    for r in rows:
        by_fmt.setdefault(r["format"], []).append(r)
    chosen = [r for fmt in sorted(by_fmt) for r in by_fmt[fmt][:20]]
    manifest = root / "inputs.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "speaker", "condition"])
        for r in chosen:
            w.writerow([r["path"], r["label"], r["speaker"], r["condition"]])
    work = root / "work"
    proc = _cli(
        "ingest",
        str(av_digits),
        "--manifest",
        str(manifest),
        "--group-column",
        "speaker",
        "--workdir",
        str(work),
        "--size",
        "64",
    )
    assert proc.returncode == 0, proc.stderr
    rng = np.random.default_rng(0)
    scores = root / "scores.csv"
    with open(scores, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["sample_id", "p_audio", "p_visual"])
        for r in chosen:  # spread d over [-1, 1]: conditions shift it, noise fills the middle
            base = {"clean": 0.0, "visual_mismatch": 0.7, "visual_noise": 0.5, "audio_noise": -0.7}[r["condition"]]
            d = float(np.clip(base + rng.uniform(-0.9, 0.9), -0.99, 0.99))
            pa_ = 0.5 + d / 2
            w.writerow([r["path"], f"{pa_:.6f}", f"{pa_ - d:.6f}"])
    return work, scores


@pytest.mark.slow
def test_balance_end_to_end_with_imported_scores(small_ingest: tuple[Path, Path], tmp_path: Path) -> None:
    import datasets

    work, scores = small_ingest
    proc = _cli("score", "--workdir", str(work), "--scores-from", str(scores))
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "balanced"
    proc = _cli("balance", "--workdir", str(work), "--bins", "4", "--out", str(out), "--dry-run")
    assert proc.returncode == 0 and not out.exists(), proc.stderr
    assert "balance plan (uniform)" in proc.stderr
    proc = _cli("balance", "--workdir", str(work), "--bins", "4", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "running `mmcurate score` first" not in proc.stderr  # imported scores are fresh

    sel = pq.read_table(out / "selection.parquet").to_pylist()
    per_bin = np.bincount([r["bin"] for r in sel], minlength=4)
    assert len(set(per_bin.tolist())) == 1 and per_bin[0] > 0  # exactly uniform
    meta = json.loads((out / "balance.json").read_text())
    assert meta["summary"]["chi_square_after"]["p_value"] == pytest.approx(1.0)
    assert meta["summary"]["chi_square_before"]["statistic"] > 0
    speakers: dict[str, set] = {}
    for r in sel:
        speakers.setdefault(r["group"], set()).add(r["split"])
    assert all(len(s) == 1 for s in speakers.values())  # no speaker in two splits
    for f in ("report/report.md", "report/histogram.png", "report/bins.csv", "report/classes.csv", "README.md"):
        assert (out / f).is_file(), f

    disk = datasets.load_from_disk(str(out / "hf"))
    parquet = datasets.load_dataset("parquet", data_dir=str(out / "data"))
    assert sorted(disk) == sorted(parquet)
    for split in disk:
        a = disk[split].cast_column("audio", datasets.Audio(decode=False)).to_list()
        b = parquet[split].cast_column("audio", datasets.Audio(decode=False)).to_list()
        assert [r["sample_id"] for r in a] == [r["sample_id"] for r in b]
        assert [r["audio"]["bytes"] for r in a] == [r["audio"]["bytes"] for r in b]
    total = sum(disk[s].num_rows for s in disk)
    assert total == len(sel)

    # deterministic: a second run into another folder gives byte-identical selection and shards
    out2 = tmp_path / "balanced2"
    assert _cli("balance", "--workdir", str(work), "--bins", "4", "--out", str(out2)).returncode == 0
    assert (out / "selection.parquet").read_bytes() == (out2 / "selection.parquet").read_bytes()
    for f in sorted((out / "data").glob("*.parquet")):
        assert f.read_bytes() == (out2 / "data" / f.name).read_bytes()

    # the same scores made in another wall time (a rescoring run records its fold timings): same card
    meta_path = work / "ingest" / "scores.json"
    score_meta = json.loads(meta_path.read_text())
    score_meta.setdefault("metrics", {})["folds"] = [{"fold": 0, "accuracy": 0.5, "seconds": 12.3, "resumed": False}]
    score_meta["elapsed_seconds"] = 99.0
    meta_path.write_text(json.dumps(score_meta))
    out3 = tmp_path / "balanced3"
    assert _cli("balance", "--workdir", str(work), "--bins", "4", "--out", str(out3)).returncode == 0
    score_meta["metrics"]["folds"][0].update(seconds=45.6, resumed=True)
    score_meta["elapsed_seconds"] = 11.0
    meta_path.write_text(json.dumps(score_meta))
    out4 = tmp_path / "balanced4"
    assert _cli("balance", "--workdir", str(work), "--bins", "4", "--out", str(out4)).returncode == 0
    assert (out3 / "README.md").read_bytes() == (out4 / "README.md").read_bytes()
    assert (out3 / "balance.json").read_bytes() == (out4 / "balance.json").read_bytes()
    assert "12.3" not in (out3 / "README.md").read_text()


@pytest.mark.slow
def test_unmeetable_target_explains_the_choice(small_ingest: tuple[Path, Path]) -> None:
    work, scores = small_ingest
    assert _cli("score", "--workdir", str(work), "--scores-from", str(scores)).returncode == 0
    proc = _cli("balance", "--workdir", str(work), "--bins", "4", "--per-bin", "500", "--dry-run")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--shortfall shrink" in proc.stderr and "--shortfall best-effort" in proc.stderr
    proc = _cli(
        "balance", "--workdir", str(work), "--bins", "4", "--per-bin", "500", "--shortfall", "best-effort", "--dry-run"
    )
    assert proc.returncode == 0 and "best-effort" in proc.stderr


@pytest.mark.slow
def test_balance_scores_first_when_scores_are_missing(small_ingest: tuple[Path, Path], tmp_path: Path) -> None:
    work, _ = small_ingest
    copy = tmp_path / "work"
    shutil.copytree(work, copy)
    for f in ("scores.parquet", "scores.json"):
        (copy / "ingest" / f).unlink(missing_ok=True)
    proc = _cli(
        "balance",
        "--workdir",
        str(copy),
        "--bins",
        "2",
        "--folds",
        "2",
        "--epochs",
        "1",
        "--avg-last",
        "1",
        "--width",
        "4",
        "--image-size",
        "16",
        "--audio-frames",
        "32",
        "--dry-run",
    )
    assert proc.returncode == 0, proc.stderr
    assert "scores are missing; running `mmcurate score` first" in proc.stderr
    scores = pq.read_table(copy / "ingest" / "scores.parquet")
    assert scores.num_rows == 140 and set(scores.column("fold").to_pylist()) == {0, 1}


# ---- the plan a newcomer sees: small sets, empty bins, marked clips ------------------------------


@pytest.fixture(scope="module")
def narrow_work(small_ingest: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 140 clips with imported scores whose d lies in [-0.39, 0.59]: 5 of 10 equal-width bins are empty."""
    work, _ = small_ingest
    copy = tmp_path_factory.mktemp("narrow") / "work"
    shutil.copytree(work, copy, ignore=shutil.ignore_patterns("balanced", "scores.*"))
    manifest = pq.read_table(copy / "ingest" / "manifest.parquet", columns=["sample_id", "label"]).to_pylist()
    classes = sorted({r["label"] for r in manifest})
    rng = np.random.default_rng(1)
    scores = copy.parent / "narrow.csv"
    with open(scores, "w", newline="") as fh:  # the audio scorer is right 80 % of the time, the visual one guesses
        w = csv.writer(fh)
        w.writerow(["sample_id", "p_audio", "p_visual", "pred_audio", "pred_visual"])
        for r in manifest:
            d = float(rng.uniform(-0.39, 0.59))
            pred_audio = r["label"] if rng.uniform() < 0.8 else str(rng.choice(classes))
            w.writerow([r["sample_id"], f"{0.4 + d / 2:.6f}", f"{0.4 - d / 2:.6f}", pred_audio, rng.choice(classes)])
    proc = _cli("score", "--workdir", str(copy), "--scores-from", str(scores))
    assert proc.returncode == 0, proc.stderr
    return copy


def _table_rows(stderr: str, title: str) -> list[str]:
    """The lines of the plan table titled ``title`` (not a terminal: a title, a header, one line per bin)."""
    lines = stderr.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    assert lines[start + 1].split()[:3] == ["bin", "range", "pool"], lines[start + 1]
    rows = []
    for line in lines[start + 2 :]:
        if not line.split() or not line.split()[0].isdigit():
            break
        rows.append(line)
    return rows


@pytest.mark.slow
def test_dry_run_shows_the_plan_table_whatever_the_target(narrow_work: Path) -> None:
    proc = _cli("balance", "--workdir", str(narrow_work), "--bins", "10", "--per-bin", "5", "--dry-run")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    rows = _table_rows(proc.stderr, "balance plan: cannot be met")
    assert len(rows) == 10 and "[-1, -0.8)" in rows[0]  # every bin, one line each, the empty ones too
    error = proc.stderr.strip().splitlines()[-1]
    assert "hold no samples" in error or "cannot be met" in error
    assert "Largest that works: `mmcurate balance --bins " in proc.stderr and "--per-bin " in proc.stderr
    # what it names works
    flags = proc.stderr.split("Largest that works: `mmcurate balance ")[1].split("`")[0].split()
    ok = _cli("balance", "--workdir", str(narrow_work), *flags, "--dry-run")
    assert ok.returncode == 0, ok.stderr
    assert "balance plan (uniform)" in ok.stderr


@pytest.mark.slow
def test_headline_bins_10_on_a_small_set_uses_the_bins_that_work(narrow_work: Path, tmp_path: Path) -> None:
    dry = _cli("balance", "--workdir", str(narrow_work), "--bins", "10", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    said = [line for line in dry.stderr.splitlines() if "hold no samples; using --bins" in line]
    assert len(said) == 1, dry.stderr
    chosen = int(said[0].split("using --bins ")[1].split()[0])
    assert 1 <= chosen < 10
    rows = _table_rows(dry.stderr, "balance plan (uniform)")
    assert len(rows) == chosen  # the table is one line per bin when not a terminal (a pipe here)
    assert len(dry.stderr.splitlines()) < 40, dry.stderr
    out = tmp_path / "balanced"
    proc = _cli("balance", "--workdir", str(narrow_work), "--bins", "10", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((out / "balance.json").read_text())
    assert meta["config"]["bins"] == chosen and meta["config"]["bins_requested"] == 10
    assert len(meta["summary"]["edges"]) == chosen + 1
    card = (out / "README.md").read_text()
    assert "--bins 10 asked" in card and f"used --bins {chosen}" in card
    # small validation/test bins are called out
    assert min(meta["summary"]["split_bins"]["val"]) < 10  # 52 clips a bin, 10 % of them in val
    said = " ".join(proc.stderr.split())  # a line wrapped at 80 columns reads the same
    assert "warning: balance: val bin(s)" in said and "fewer than 10" in said


@pytest.mark.slow
def test_exclude_leaves_marked_clips_out(narrow_work: Path, tmp_path: Path) -> None:
    ids = pq.read_table(narrow_work / "ingest" / "manifest.parquet").column("sample_id").to_pylist()
    marked = ids[:30]
    listing = tmp_path / "marked.txt"
    listing.write_text("# clips marked in mmcurate browse\n" + "\n".join(marked) + "\n\n")
    out = tmp_path / "balanced"
    proc = _cli("balance", "--workdir", str(narrow_work), "--bins", "2", "--exclude", str(listing), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    sel = set(pq.read_table(out / "selection.parquet").column("sample_id").to_pylist())
    assert sel and not sel & set(marked)
    meta = json.loads((out / "balance.json").read_text())
    assert meta["summary"]["excluded"] == 30 and meta["summary"]["exclude_file"] == "marked.txt"
    assert "30 samples left out by --exclude marked.txt" in (out / "README.md").read_text()
    # without the list the marked clips are eligible (the same plan picks some of them)
    plain = _cli("balance", "--workdir", str(narrow_work), "--bins", "2", "--out", str(tmp_path / "plain"))
    assert plain.returncode == 0, plain.stderr
    assert set(pq.read_table(tmp_path / "plain" / "selection.parquet").column("sample_id").to_pylist()) & set(marked)
    # an unknown id is one line naming the file and the line
    listing.write_text("# marked\n" + marked[0] + "\nnot/a/clip.mp4\n")
    bad = _cli("balance", "--workdir", str(narrow_work), "--bins", "2", "--exclude", str(listing), "--dry-run")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert f"{listing}:3: unknown sample_id 'not/a/clip.mp4'" in bad.stderr


def _no_constant(name: str) -> None:
    raise AssertionError(f"{name} in a JSON file")


@pytest.mark.slow
def test_card_is_a_page_and_what_is_published_names_no_local_folder(narrow_work: Path, tmp_path: Path) -> None:
    from mmcurate.push.files import collect_local_files

    out = tmp_path / "balanced"
    proc = _cli("balance", "--workdir", str(narrow_work), "--bins", "2", "--split", "70/10/20", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    card = (out / "README.md").read_text()
    body = card.split("\n---\n", 1)[1]
    assert 40 <= len(body.splitlines()) <= 150 and len(card.splitlines()) <= 220, len(card.splitlines())
    for heading in ("## How it was made", "## Splits and bins", "## Scorer accuracy", "## Limitations and biases"):
        assert heading in body, heading
    assert "## Citation" in body and "@misc{" in body
    assert "mmcurate balance --bins 2 --split 70/10/20 --seed 0" in body
    assert "NaN" not in card and "```json" not in card  # the configuration is in its own file
    # the scorers against chance, from the scores table (these imported scores carry each prediction)
    rows = {
        line.split("|")[1].strip(): line
        for line in body.splitlines()
        if line.startswith("| audio |") or line.startswith("| visual |")
    }
    assert rows["audio"].rstrip().endswith("| yes |") and rows["visual"].rstrip().endswith("| **no** |")
    assert "The visual scorer is not above chance" in body
    # the full configuration: strict JSON next to the card
    config = json.loads((out / "mmcurate_config.json").read_text(), parse_constant=_no_constant)
    assert config["balance"]["balance_config"]["bins"] == 2
    assert config["ingest"]["raw_dir"] == "<raw>"
    # what push uploads names no folder of this machine
    published = collect_local_files(out)
    assert {f.rel for f in published} >= {"README.md", "mmcurate_config.json"}
    home = os.path.expanduser("~").encode()
    needles = [str(tmp_path).encode(), str(narrow_work).encode(), str(narrow_work.resolve()).encode(), home + b"/"]
    needles.append(b"/work/shared")  # the raw folder
    for f in published:
        data = f.path.read_bytes()
        for needle in needles:
            assert needle not in data, (f.rel, needle)

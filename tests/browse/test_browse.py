"""``mmcurate browse``: the static site, built with the real pipeline and driven in headless Chromium.

The scored and balanced sites are built over real av_digits clips (ingested by ``mmcurate
ingest``, scores imported with ``mmcurate score --scores-from``, balanced by ``mmcurate
balance``); larger and hostile sets come from the on-disk fixture writer. The browser tests
skip, with the reason, where Chromium is not installed (CI installs Debian's package).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _chromium import chromium_path, launch
from _fixtures_ingest import make_ingest_dir
from conftest import run_cli

PER_FAMILY = 5  # 7 container families -> 35 clips


# ---- inputs built with the real pipeline ---------------------------------------------------


@pytest.fixture(scope="module")
def work(av_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """35 av_digits clips ingested (64 px), scores imported, and a balanced set over 2 bins."""
    root = tmp_path_factory.mktemp("browse")
    rows = list(csv.DictReader(open(av_digits / "labels.csv")))
    by_fmt: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_fmt.setdefault(r["format"], []).append(r)
    chosen = [r for fmt in sorted(by_fmt) for r in by_fmt[fmt][:PER_FAMILY]]
    with open(root / "inputs.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "split", "speaker"])
        for r in chosen:
            w.writerow([r["path"], r["label"], r["split"], r["speaker"]])
    work = root / "work"
    proc = run_cli(
        "ingest",
        str(av_digits),
        "--manifest",
        str(root / "inputs.csv"),
        "--group-column",
        "speaker",
        "--workdir",
        str(work),
        "--size",
        "64",
    )
    assert proc.returncode == 0, proc.stderr
    rng = np.random.default_rng(0)
    with open(root / "scores.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["sample_id", "p_audio", "p_visual"])
        for k, r in enumerate(chosen):
            p_a, p_v = (0.4, 0.4) if k == 0 else (0.6, 0.2) if k == 1 else (rng.uniform(), rng.uniform())
            w.writerow([r["path"], f"{p_a:.6f}", f"{p_v:.6f}"])  # k=0: a tie; k=1: on a cell edge
    proc = run_cli("score", "--workdir", str(work), "--scores-from", str(root / "scores.csv"))
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("balance", "--workdir", str(work), "--bins", "2", "--split", "60/20/20")
    assert proc.returncode == 0, proc.stderr
    return work


@pytest.fixture(scope="module")
def big_ingest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 fixture clips (real on-disk format) with imported scores plus a discrepancy_std column."""
    root = tmp_path_factory.mktemp("browse_big")
    ingest = make_ingest_dir(
        root / "ingest",
        n=600,
        classes=("a", "b", "c", "d", "e"),
        frames_per_clip=2,
        frame_size=16,
        audio_seconds=0.05,
        rows_per_shard=128,
        with_features=False,
    )
    ids = pq.read_table(ingest / "manifest.parquet").column("sample_id").to_pylist()
    rng = np.random.default_rng(1)
    pq.write_table(
        pa.table({"sample_id": ids, "p_audio": rng.uniform(size=600), "p_visual": rng.uniform(size=600)}),
        root / "scores.parquet",
    )
    proc = run_cli("score", str(ingest), "--scores-from", str(root / "scores.parquet"))
    assert proc.returncode == 0, proc.stderr
    scores = pq.read_table(ingest / "scores.parquet")
    std = pa.array(np.round(rng.uniform(0.01, 0.2, size=scores.num_rows), 4))
    _rewrite_scores(ingest, _with_std(scores, std))
    return ingest


def _rewrite_scores(ingest: Path, scores: pa.Table) -> None:
    """Edited scores, written the way the score stage writes them (scores.json then records the new table)."""
    from mmcurate.store import IngestDir

    store = IngestDir(ingest)
    store.write_scores(scores, store.read_scores_meta())


def _with_std(scores: pa.Table, std: pa.Array) -> pa.Table:
    """``scores`` with these discrepancy_std values (imported scores carry the column, all null)."""
    if "discrepancy_std" in scores.column_names:
        return scores.set_column(scores.schema.get_field_index("discrepancy_std"), "discrepancy_std", std)
    return scores.append_column("discrepancy_std", std)


def _scores(ingest: Path) -> dict[str, dict[str, Any]]:
    return {r["sample_id"]: r for r in pq.read_table(ingest / "scores.parquet").to_pylist()}


def _hist_bin(d: float, bins: int = 20) -> int:
    """The bar of the report's histogram (matplotlib = numpy.histogram) that holds ``d``."""
    return int(np.argmax(np.histogram([d], bins=bins, range=(-1, 1))[0]))


def _cell(p_visual: float, p_audio: float, grid: int = 25) -> tuple[int, int]:
    """The (x, y) cell of the report's hist2d (numpy.histogram2d) that holds a sample."""
    h = np.histogram2d([p_visual], [p_audio], bins=grid, range=[[0, 1], [0, 1]])[0]
    x, y = np.argwhere(h == 1)[0]
    return int(x), int(y)


def _build(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("browse", *args)


# ---- the browser ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    exe = chromium_path()
    if exe is None:
        pytest.skip("Chromium not installed (apt-get install chromium; set MMCURATE_CHROMIUM to use another)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        ctx = launch(p, tmp_path_factory.mktemp("chromium-profile"), exe, viewport={"width": 1280, "height": 900})
        yield ctx
        ctx.close()


class Page:
    """One opened site: the Playwright page, its console errors and every URL it requested."""

    def __init__(self, ctx: Any, index_html: Path) -> None:
        self.page = ctx.new_page()
        self.page.set_default_timeout(15000)
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(index_html.resolve().as_uri())
        self.ready()

    def ready(self) -> None:
        self.page.wait_for_selector("body[data-state=ready]", timeout=15000)

    def act(self, fn: Any, *args: Any) -> None:
        """Do something that re-renders the cards, and wait until the new cards are in."""
        before = self.page.evaluate("MMB.renders")
        fn(*args)
        self.page.wait_for_function(
            f"MMB.renders > {before} && document.body.dataset.state === 'ready'", timeout=15000
        )

    def ids(self) -> list[str]:
        return self.page.eval_on_selector_all(".card", "cs => cs.map(c => c.dataset.sampleId)")

    def close(self) -> None:
        self.page.close()


def _open(browser: Any, index_html: Path) -> Page:
    return Page(browser, index_html)


# ---- the scored site, clicked ------------------------------------------------------------------


@pytest.mark.slow
def test_scored_site_in_chromium(work: Path, browser: Any, tmp_path: Path) -> None:
    ingest = work / "ingest"
    proc = _build(str(ingest))
    assert proc.returncode == 0, proc.stderr
    index_html = ingest / "browse" / "index.html"
    assert proc.stdout.strip() == str(index_html)
    assert "initial load" in proc.stderr and "per page of cards" in proc.stderr
    scores = _scores(ingest)
    by_d = sorted(scores, key=lambda s: (scores[s]["discrepancy"], s))
    view = _open(browser, index_html)
    page = view.page
    assert view.ids() == by_d  # everything, sorted by d ascending

    # a histogram bar opens exactly its samples
    bars: dict[int, list[str]] = {}
    for sid in by_d:
        bars.setdefault(_hist_bin(scores[sid]["discrepancy"]), []).append(sid)
    bar = max(bars, key=lambda k: (len(bars[k]), k))
    assert len(bars[bar]) >= 2
    view.act(page.click, f'#hist rect[data-bin="{bar}"]')
    assert view.ids() == bars[bar]
    assert "plot selection: d in" in page.inner_text("#selection")

    # the cards' media load: the stored JPEG frames (64 px), and the FLAC audio plays (muted, as a click would)
    page.locator(".card").first.scroll_into_view_if_needed()
    page.wait_for_function(
        "[...document.querySelector('.card').querySelectorAll('img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    widths = page.evaluate("[...document.querySelector('.card').querySelectorAll('img')].map(i => i.naturalWidth)")
    assert widths == [64, 64, 64]
    page.evaluate("() => { const a = document.querySelector('.card audio'); a.muted = true; return a.play(); }")
    page.wait_for_function(
        "() => { const a = document.querySelector('.card audio'); return a.readyState >= 2"
        " && (a.currentTime > 0 || a.ended); }"
    )
    audio = page.evaluate(
        "() => { const a = document.querySelector('.card audio');"
        " return {err: a.error && a.error.code, dur: a.duration}; }"
    )
    assert audio["err"] is None and audio["dur"] > 0.1

    # a density cell opens exactly its samples
    cells: dict[tuple[int, int], list[str]] = {}
    for sid in by_d:
        cells.setdefault(_cell(scores[sid]["p_visual"], scores[sid]["p_audio"]), []).append(sid)
    edge_cell = _cell(0.2, 0.6)  # the sample placed exactly on a cell edge
    view.act(page.click, f'#density rect[data-cell="{edge_cell[0]},{edge_cell[1]}"]')
    assert view.ids() == cells[edge_cell]
    cell = max(cells, key=lambda c: (len(cells[c]), c))
    view.act(page.click, f'#density rect[data-cell="{cell[0]},{cell[1]}"]')
    assert view.ids() == cells[cell]

    # filters: class, then preferred modality, then sort by d descending
    view.act(page.click, "#clear-selection")
    label = scores[by_d[0]]["label"]
    classes = json.loads((ingest / "classes.json").read_text())
    view.act(page.select_option, "#f-class", str(classes.index(label)))
    assert view.ids() == [s for s in by_d if scores[s]["label"] == label]
    view.act(page.select_option, "#f-pref", "2")  # audio
    assert view.ids() == [s for s in by_d if scores[s]["label"] == label and scores[s]["discrepancy"] > 0]
    view.act(page.select_option, "#f-pref", "-1")
    view.act(page.select_option, "#f-sort", "desc")
    assert view.ids() == [s for s in reversed(by_d) if scores[s]["label"] == label]
    view.act(page.select_option, "#f-class", "-1")
    view.act(page.select_option, "#f-sort", "asc")

    # the tie is "tie", and the per-class table gives each class's share of audio-preferred samples
    tie = next(s for s in by_d if scores[s]["discrepancy"] == 0)
    assert "tie" in page.inner_text(f'.card[data-sample-id="{tie}"]')
    shares = page.eval_on_selector_all(
        "#classes tbody tr", "rs => rs.map(r => [r.cells[0].textContent, r.cells[3].dataset.share])"
    )
    for name, share in shares:
        mine = [scores[s]["discrepancy"] > 0 for s in scores if scores[s]["label"] == name]
        assert float(share) == pytest.approx(sum(mine) / len(mine), abs=1e-6), name
    view.act(page.click, f'#classes tbody tr[data-class="{classes.index(label)}"]')
    assert view.ids() == [s for s in by_d if scores[s]["label"] == label]

    page.screenshot(path=str(tmp_path / "browse.png"), full_page=True)
    assert (tmp_path / "browse.png").stat().st_size > 10_000
    assert view.errors == []
    assert [u for u in view.requests if not u.startswith("file://")] == []  # offline: nothing from elsewhere
    view.close()


@pytest.mark.slow
def test_balanced_site_shows_the_selection_with_bins_and_splits(work: Path, browser: Any) -> None:
    balanced = work / "balanced"
    proc = _build("--workdir", str(work))  # the work directory resolves to its balanced folder
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(balanced / "browse" / "index.html")
    selection = pq.read_table(balanced / "selection.parquet").to_pylist()
    order = [r["sample_id"] for r in sorted(selection, key=lambda r: (r["discrepancy"], r["sample_id"]))]
    bin_of = {r["sample_id"]: r["bin"] for r in selection}
    split_of = {r["sample_id"]: r["split"] for r in selection}
    view = _open(browser, balanced / "browse" / "index.html")
    page = view.page
    assert view.ids() == order  # the balanced samples only, not the 35 ingested
    view.act(page.select_option, "#f-bin", "1")
    assert view.ids() == [s for s in order if bin_of[s] == 1]
    view.act(page.select_option, "#f-bin", "-1")
    splits = page.eval_on_selector_all("#f-split option", "os => os.map(o => [o.value, o.textContent])")
    test_code = next(v for v, text in splits if text == "test")
    view.act(page.select_option, "#f-split", test_code)
    assert view.ids() == [s for s in order if split_of[s] == "test"] and view.ids()
    text = page.inner_text(".card")
    assert "split\ntest" in text.replace("\t", "\n") or "split test" in text
    assert view.errors == []
    view.close()


def test_ingest_only_site_has_cards_and_filters_without_scores(work: Path, browser: Any, tmp_path: Path) -> None:
    ingest = tmp_path / "ingest"
    shutil.copytree(work / "ingest", ingest, ignore=shutil.ignore_patterns("scores.*", "browse"))
    proc = _build(str(ingest))
    assert proc.returncode == 0, proc.stderr
    manifest = pq.read_table(ingest / "manifest.parquet").to_pylist()
    view = _open(browser, ingest / "browse" / "index.html")
    page = view.page
    assert view.ids() == [r["sample_id"] for r in manifest]
    assert page.is_hidden("#plots") and page.is_hidden("#l-pref") and page.is_visible("#f-class")
    classes = json.loads((ingest / "classes.json").read_text())
    view.act(page.select_option, "#f-class", str(classes.index("7")))
    assert view.ids() == [r["sample_id"] for r in manifest if r["label"] == "7"]
    page.wait_for_function("[...document.querySelectorAll('.card img')].every(i => i.complete && i.naturalWidth > 0)")
    assert view.errors == []
    view.close()


# ---- scale: lazy chunks, page weight, uncertainty ---------------------------------------------------


@pytest.mark.slow
def test_cards_load_a_page_at_a_time(big_ingest: Path, browser: Any, tmp_path: Path) -> None:
    site = tmp_path / "site"
    proc = _build(str(big_ingest), "--out", str(site), "--page-size", "24")
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((site / "browse.json").read_text())
    weight = meta["page_weight"]
    index_bytes = (site / "data" / "index.js").stat().st_size
    assert weight["initial_bytes"] == (site / "index.html").stat().st_size + index_bytes
    assert index_bytes < 600 * 16 + 4000  # ~12 bytes a sample: no card details in the initial load
    n_chunks = len(list((site / "data" / "chunks").glob("c*.js")))
    assert n_chunks == weight["chunks"] == 600 // 16 + 1
    scores = _scores(big_ingest)
    view = _open(browser, site / "index.html")
    page = view.page
    assert page.evaluate("MMB.chunkRequests") == 2  # 24 cards in d order: chunks 0 and 1 only
    assert not any("/data/chunks/c5.js" in u for u in view.requests)
    view.act(page.click, "#next")
    assert page.evaluate("MMB.chunkRequests") == 3
    by_d = sorted(scores, key=lambda s: (scores[s]["discrepancy"], s))
    assert view.ids() == by_d[24:48]
    sid = view.ids()[0]
    std = scores[sid]["discrepancy_std"]
    assert f"\u00b1 {std:.3f}" in page.inner_text(f'.card[data-sample-id="{sid}"]')
    view.close()


def test_balanced_site_shows_uncertainty_only_from_its_own_scorer(work: Path, tmp_path: Path) -> None:
    from mmcurate.browse.index import build_index
    from mmcurate.browse.sources import open_source

    ingest = tmp_path / "ingest"
    shutil.copytree(work / "ingest", ingest, ignore=shutil.ignore_patterns("browse"))
    scores = pq.read_table(ingest / "scores.parquet")
    std = pa.array(np.linspace(0.01, 0.3, scores.num_rows))
    _rewrite_scores(ingest, _with_std(scores, std))
    src = open_source(work / "balanced", ingest)
    assert src.kind == "balanced" and "discrepancy_std" in src.samples.column_names and not src.notes
    data = build_index(src, None)
    assert data.index["has_std"] and data.index["bins"] == ["[-1, 0)", "[0, 1]"]
    wanted = dict(zip(scores.column("sample_id").to_pylist(), std.to_pylist(), strict=True))
    fields = data.index["fields"]
    for row in data.cards:
        assert row[fields.index("d_std")] == pytest.approx(wanted[row[fields.index("id")]], abs=1e-6)

    other = scores.set_column(
        scores.schema.get_field_index("scorer_id"), "scorer_id", pa.array(["another"] * scores.num_rows)
    )
    other = _with_std(other, std)
    _rewrite_scores(ingest, other)
    src = open_source(work / "balanced", ingest)
    assert "discrepancy_std" not in src.samples.column_names and "another scorer" in src.notes[0]


# ---- hostile text ----------------------------------------------------------------------------


def test_labels_and_paths_are_shown_literally_never_run(browser: Any, tmp_path: Path) -> None:
    nasty = (
        '<img src=x onerror="window.__pwned=1">',
        "</script><script>window.__pwned=2</script>",
        "[red]x[/red] &amp;",
    )
    folder = tmp_path / "in[bold]gest<b>&amp;"
    make_ingest_dir(
        folder, n=6, classes=nasty, frames_per_clip=1, frame_size=16, audio_seconds=0.05, with_features=False
    )
    env = {**os.environ, "MMCURATE_NO_PROGRESS": "1", "COLUMNS": "400"}  # no wrapping in the summary table
    proc = subprocess.run(
        [sys.executable, "-m", "mmcurate", "browse", str(folder)], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{folder / 'browse' / 'index.html'}\n"
    assert f"{folder} (ingest)" in proc.stderr  # Rich markup in a path is printed, not interpreted
    view = _open(browser, folder / "browse" / "index.html")
    page = view.page
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("document.querySelectorAll('img[src=x]').length") == 0
    assert page.title() == f"{folder.parent.name}/{folder.name} \u2014 mmcurate browse"
    assert "in[bold]gest&lt;b&gt;&amp;amp; \u2014" in (folder / "browse" / "index.html").read_text()  # escaped
    labels = page.eval_on_selector_all(".card .label", "ls => ls.map(l => l.textContent)")
    assert sorted(set(labels)) == sorted(nasty)
    assert view.errors == []
    view.close()


# ---- rebuilds: incremental, deterministic, atomic ---------------------------------------------


def _media_files(site: Path) -> dict[str, tuple[int, int]]:
    files = [p for p in (site / "media").rglob("*") if p.is_file()]
    return {p.relative_to(site).as_posix(): (p.stat().st_ino, p.stat().st_size) for p in files}


def test_rebuild_reuses_media_and_repairs_what_is_missing(big_ingest: Path, tmp_path: Path) -> None:
    from mmcurate.browse import BrowseOptions, build_site

    site = tmp_path / "site"
    first = build_site(big_ingest, site, BrowseOptions(max_frames=2))
    files = _media_files(site)
    assert first.media.written == len(files) > 600 and first.media.reused == 0
    html, index = (site / "index.html").read_bytes(), (site / "data" / "index.js").read_bytes()
    chunk = (site / "data" / "chunks" / "c3.js").read_bytes()

    second = build_site(big_ingest, site, BrowseOptions(max_frames=2))
    assert second.media.written == 0 and second.media.reused == len(files)
    assert _media_files(site) == files  # same inodes: nothing rewritten
    assert (site / "index.html").read_bytes() == html and (site / "data" / "index.js").read_bytes() == index
    assert (site / "data" / "chunks" / "c3.js").read_bytes() == chunk  # deterministic

    gone, cut = sorted(files)[:2]
    (site / gone).unlink()
    (site / cut).write_bytes((site / cut).read_bytes()[:10])  # as a crash could leave it
    debris = site / "media" / cut.split("/")[1] / ".tmp-0123456789abcdef0123.jpg.k2x9_a7q"  # as put() names them
    debris.write_bytes(b"partial")
    (site / ".tmp-data.abcd1234").mkdir()  # as atomic_dir names them
    third = build_site(big_ingest, site, BrowseOptions(max_frames=2))
    assert third.media.written == 2
    assert {k: v[1] for k, v in _media_files(site).items()} == {k: v[1] for k, v in files.items()}
    assert not debris.exists() and not (site / ".tmp-data.abcd1234").exists()

    fewer = build_site(big_ingest, site, BrowseOptions(max_frames=1))
    assert fewer.media.removed > 0 and fewer.media.written == 0
    assert len(_media_files(site)) == fewer.media.files


# ---- errors, the CLI, --serve -------------------------------------------------------------------


@pytest.mark.slow
def test_errors_are_one_line(tmp_path: Path, work: Path) -> None:
    (tmp_path / "empty").mkdir()
    proc = _build(str(tmp_path / "empty"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "not an mmcurate output" in proc.stderr
    proc = _build(str(tmp_path / "absent"))
    assert proc.returncode == 2 and "folder not found" in proc.stderr
    moved = tmp_path / "balanced"
    shutil.copytree(work / "balanced", moved, ignore=shutil.ignore_patterns("hf", "data", "browse"))
    meta = json.loads((moved / "balance.json").read_text())
    meta["ingest_dir"] = str(tmp_path / "gone")
    (moved / "balance.json").write_text(json.dumps(meta))
    proc = _build(str(moved))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--ingest-dir" in proc.stderr
    proc = _build(str(moved), "--ingest-dir", str(work / "ingest"), "--no-media", "--out", str(tmp_path / "site"))
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    proc = _build(str(work / "ingest"), "--out", str(tmp_path / "mine"))
    assert proc.returncode == 2 and "not a browse site" in proc.stderr
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_help_explains_every_option() -> None:
    proc = run_cli("browse", "--help")
    assert proc.returncode == 0
    for opt in (
        "--workdir",
        "--out",
        "--ingest-dir",
        "--max-frames",
        "--no-media",
        "--page-size",
        "--hist-bins",
        "--grid",
        "--serve",
        "--port",
    ):
        assert opt in proc.stdout, opt
    assert "browse" in run_cli("--help").stdout


def test_serve_listens_on_loopback_only(work: Path, tmp_path: Path) -> None:
    from mmcurate.browse.serve import make_server

    server = make_server(tmp_path, 0)
    assert server.server_address[0] == "127.0.0.1"
    server.server_close()
    site = tmp_path / "site"
    env = {**os.environ, "MMCURATE_NO_PROGRESS": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mmcurate",
            "browse",
            str(work / "ingest"),
            "--out",
            str(site),
            "--serve",
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == str(site / "index.html")
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/index.html")
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert b"mmcurate browse" in resp.read()
        flac = next((site / "media").rglob("*.flac"))
        with urllib.request.urlopen(url.replace("index.html", flac.relative_to(site).as_posix()), timeout=10) as resp:
            assert resp.headers["Content-Type"] == "audio/flac" and resp.read() == flac.read_bytes()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ---- what a newcomer needs: the balance's bins, legends, search, links, marks -----------------------

_LABELS_OVER_DATA = """() => {
  const bad = [];
  for (const id of ["density", "hist"]) {
    const svg = document.getElementById(id), f = svg.querySelector(".frame").getBoundingClientRect();
    for (const t of svg.querySelectorAll("text")) {
      const r = t.getBoundingClientRect();
      const across = r.left < f.right - 0.5 && r.right > f.left + 0.5;
      if (r.width && across && r.top < f.bottom - 0.5 && r.bottom > f.top + 0.5)
        bad.push(id + ": " + t.textContent);
    }
  }
  return bad;
}"""


@pytest.mark.slow
def test_balanced_page_has_bins_legends_search_links_and_marks(work: Path, browser: Any, tmp_path: Path) -> None:
    balanced = work / "balanced"
    proc = _build(str(balanced))
    assert proc.returncode == 0, proc.stderr
    site = balanced / "browse"
    selection = pq.read_table(balanced / "selection.parquet").to_pylist()
    order = [r["sample_id"] for r in sorted(selection, key=lambda r: (r["discrepancy"], r["sample_id"]))]
    edges = json.loads((balanced / "balance.json").read_text())["summary"]["edges"]
    view = _open(browser, site / "index.html")
    page = view.page

    # the histogram's bars are the balance's bins, its inner edges drawn; each bar opens its bin
    assert page.eval_on_selector_all("#hist rect.hit", "rs => rs.length") == len(edges) - 1
    drawn = page.eval_on_selector_all("#hist line.edge", "ls => ls.map(l => Number(l.dataset.edge))")
    assert drawn == pytest.approx(edges[1:-1])
    bin_of = {r["sample_id"]: r["bin"] for r in selection}
    view.act(page.click, '#hist rect[data-bin="1"]')
    assert view.ids() == [s for s in order if bin_of[s] == 1]
    view.act(page.click, "#clear-selection")
    # colour legends, and no label drawn over the plotted data
    assert page.eval_on_selector_all("#density-legend rect", "rs => rs.length") == 9
    assert "samples per balance bin" in page.eval_on_selector("#hist-legend", "g => g.textContent")
    assert page.evaluate(_LABELS_OVER_DATA) == []

    # links to the balance report and the dataset card, relative and pointing at real files
    links = page.eval_on_selector_all("#links a", "as => as.map(a => [a.textContent, a.getAttribute('href')])")
    hrefs = dict(links)
    assert hrefs["dataset card"] == "../README.md" and hrefs["balance report"] == "../report/report.md"
    assert all((site / h).resolve().is_file() for h in hrefs.values())

    # search by sample id or path (case-insensitive substring)
    query = order[0].rsplit("/", 1)[-1][:6].upper()
    view.act(page.fill, "#f-search", query)
    assert view.ids() == [s for s in order if query.lower() in s.lower()] and view.ids()
    view.act(page.fill, "#f-search", "")
    assert view.ids() == order

    # the players know the clip's length before anyone presses play
    page.wait_for_function("() => { const a = document.querySelector('.card audio'); return a.duration > 0.1; }")
    assert page.evaluate("document.querySelector('.card audio').paused")

    # mark two clips, download the list, and balance leaves them out
    page.locator(".card input.mark").nth(0).check()
    page.locator(".card input.mark").nth(2).check()
    assert page.inner_text("#marked-count") == "2 clips marked"
    with page.expect_download() as dl:
        page.click("#export-marked")
    listing = tmp_path / "marked.txt"
    dl.value.save_as(listing)
    lines = [line for line in listing.read_text().splitlines() if line and not line.startswith("#")]
    assert lines == sorted([order[0], order[2]])
    assert view.errors == []
    view.close()
    out = tmp_path / "rebalanced"
    proc = run_cli("balance", "--workdir", str(work), "--bins", "2", "--exclude", str(listing), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    kept = set(pq.read_table(out / "selection.parquet").column("sample_id").to_pylist())
    assert not kept & set(lines)

    # the page names no folder of this machine
    for f in [site / "index.html", *sorted((site / "data").rglob("*.js"))]:
        text = f.read_text()
        assert str(work) not in text and str(work.resolve()) not in text and "/work/shared" not in text, f


def test_both_weak_clips_are_flagged(work: Path, browser: Any, tmp_path: Path) -> None:
    """Scores imported with three clips low on both sides: the importer flags them both_weak, the page too."""
    from mmcurate.score.assemble import both_weak_threshold

    ingest = tmp_path / "ingest"
    shutil.copytree(work / "ingest", ingest, ignore=shutil.ignore_patterns("browse"))
    scores = pq.read_table(ingest / "scores.parquet")
    ids = scores.column("sample_id").to_pylist()
    p_a, p_v = scores.column("p_audio").to_pylist(), scores.column("p_visual").to_pylist()
    low = set(ids[:3])
    rows = [(sid, 0.01, 0.01) if sid in low else (sid, a, v) for sid, a, v in zip(ids, p_a, p_v)]
    threshold = both_weak_threshold(len(json.loads((ingest / "classes.json").read_text())))
    weak = {sid for sid, a, v in rows if a < threshold and v < threshold}
    assert low <= weak
    with open(tmp_path / "scores.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["sample_id", "p_audio", "p_visual"])
        w.writerows(rows)
    proc = run_cli("score", str(ingest), "--scores-from", str(tmp_path / "scores.csv"))
    assert proc.returncode == 0, proc.stderr
    proc = _build(str(ingest))
    assert proc.returncode == 0, proc.stderr
    view = _open(browser, ingest / "browse" / "index.html")
    flagged = view.page.eval_on_selector_all(
        ".card", "cs => cs.filter(c => c.querySelector('.weak')).map(c => c.dataset.sampleId)"
    )
    assert set(flagged) == weak
    assert view.errors == []
    view.close()

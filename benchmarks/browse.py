"""``mmcurate browse`` at 3000 and 30000 samples: build time, page weight, load time in headless Chromium.

For each size, in the same run:

* **build**: ``build_site`` into a fresh folder (cold: every media file written), then again into
  the same folder (warm: media reused, only the index and card chunks rewritten);
* **page weight**: bytes read on opening the page (index.html + data/index.js) and per page of
  cards (card chunks of the first page, the worst case of one chunk per card, media);
* **load time**: Chromium (Debian's, headless) from navigation start to the first page of cards
  drawn (``MMB.firstReadyAt``), median of ``--loads`` fresh pages; then the time from a click on
  the fullest histogram bar, and from choosing a class filter, to the new cards drawn;
* **baseline**: the same site built with every card in one chunk (what a page without lazy
  loading reads before it can show anything), loaded the same way; ratios are lazy / baseline.

3000 samples are the av_digits clips, ingested by ``mmcurate ingest`` (224 px frames, 16 kHz
FLAC) with seeded imported scores; 30000 are synthetic clips written in the real on-disk format
(``tests/_fixtures_ingest.py``: 3 frames of 32 px noise, 0.1 s tones), so their media bytes are
not realistic but the index and card data are. Usage::

    python benchmarks/browse.py [--data ../shared/data/av_digits] [--sizes 3000,30000] [--loads 3]
        [--out benchmarks/results/browse.json]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from _chromium import chromium_path, launch  # noqa: E402
from _fixtures_ingest import make_ingest_dir  # noqa: E402

from mmcurate.browse import BrowseOptions, build_site  # noqa: E402


def _cli(*args: str) -> None:
    env = {**os.environ, "MMCURATE_NO_PROGRESS": "1"}
    proc = subprocess.run([sys.executable, "-m", "mmcurate", *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"mmcurate {' '.join(args)} failed:\n{proc.stderr}")


def _import_scores(ingest: Path, ids: list[str], p_audio: np.ndarray, p_visual: np.ndarray) -> None:
    path = ingest.parent / "scores-in.parquet"
    pq.write_table(pa.table({"sample_id": ids, "p_audio": p_audio, "p_visual": p_visual}), path)
    _cli("score", str(ingest), "--scores-from", str(path))


def av_digits_ingest(data: Path, root: Path) -> Path:
    """All av_digits clips through ``mmcurate ingest``, with scores that follow the conditions."""
    rows = list(csv.DictReader(open(data / "labels.csv")))
    with open(root / "inputs.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "split", "speaker"])
        for r in rows:
            w.writerow([r["path"], r["label"], r["split"], r["speaker"]])
    work = root / "work"
    _cli(
        "ingest",
        str(data),
        "--manifest",
        str(root / "inputs.csv"),
        "--group-column",
        "speaker",
        "--workdir",
        str(work),
        "--workers",
        "2",
    )
    rng = np.random.default_rng(0)
    shift = {"clean": 0.3, "visual_mismatch": 0.7, "visual_noise": 0.5, "audio_noise": -0.6}
    d = np.clip([shift[r["condition"]] + rng.normal(0, 0.3) for r in rows], -0.98, 0.98)
    p_audio = np.clip(0.5 + d / 2 + rng.normal(0, 0.05, len(rows)), 0, 1)
    _import_scores(work / "ingest", [r["path"] for r in rows], p_audio, np.clip(p_audio - d, 0, 1))
    return work / "ingest"


def synthetic_ingest(n: int, root: Path) -> Path:
    classes = tuple(f"class{k:02d}" for k in range(10))
    ingest = make_ingest_dir(
        root / "ingest",
        n=n,
        classes=classes,
        frames_per_clip=3,
        frame_size=32,
        audio_seconds=0.1,
        rows_per_shard=256,
        with_features=False,
        seed=n,
    )
    ids = pq.read_table(ingest / "manifest.parquet").column("sample_id").to_pylist()
    rng = np.random.default_rng(n)
    _import_scores(ingest, ids, rng.beta(2, 1, n), rng.beta(1.5, 1.5, n))
    return ingest


#: In-page timing of one interaction: from the event to the new cards in the DOM (no driver overhead).
_TIME_ACTION = """([kind, selector, value]) => new Promise(resolve => {
  const r0 = MMB.renders, t0 = performance.now(), el = document.querySelector(selector);
  if (kind === "change") { el.value = value; el.dispatchEvent(new Event("change")); }
  else el.dispatchEvent(new MouseEvent("click", {bubbles: true}));
  (function poll() {
    if (MMB.renders > r0 && document.body.dataset.state === "ready") resolve(performance.now() - t0);
    else setTimeout(poll, 0);
  })();
})"""


def index_only_ingest(n: int, root: Path) -> Path:
    """A manifest and imported scores for ``n`` samples, no shards: enough for a ``--no-media`` site."""
    ingest = root / "ingest"
    ingest.mkdir(parents=True)
    ids = [f"class{k % 10:02d}/clip_{k:06d}.mp4" for k in range(n)]
    labels = [f"class{k % 10:02d}" for k in range(n)]
    splits = [("train", "val", "test")[k % 3] for k in range(n)]
    sha = [hashlib.sha256(i.encode()).hexdigest() for i in ids]
    pq.write_table(
        pa.table({"sample_id": ids, "path": ids, "label": labels, "split": splits, "sha256": sha}),
        ingest / "manifest.parquet",
    )
    rng = np.random.default_rng(n)
    _import_scores(ingest, ids, rng.beta(2, 1, n), rng.beta(1.5, 1.5, n))
    return ingest


def load_times(ctx: Any, index_html: Path, loads: int) -> dict[str, float]:
    """Median ms to the first cards, then to the cards of a histogram bar and of a class filter."""
    first, bar, cls = [], [], []
    for _ in range(loads):
        page = ctx.new_page()
        page.goto(index_html.resolve().as_uri())
        page.wait_for_function("window.MMB && MMB.firstReadyAt", timeout=120000)
        first.append(page.evaluate("MMB.firstReadyAt"))
        fullest = page.eval_on_selector_all(
            "#hist rect[data-bin]",
            "rs => rs.reduce((b, r) => +r.getAttribute('height') > +b.getAttribute('height') ? r : b)"
            ".getAttribute('data-bin')",
        )
        bar.append(page.evaluate(_TIME_ACTION, ["click", f'#hist rect[data-bin="{fullest}"]', None]))
        cls.append(page.evaluate(_TIME_ACTION, ["change", "#f-class", "3"]))
        page.close()
    return {
        "first_cards_ms": round(statistics.median(first), 1),
        "bar_click_ms": round(statistics.median(bar), 1),
        "class_filter_ms": round(statistics.median(cls), 1),
    }


def measure(ingest: Path, root: Path, ctx: Any | None, loads: int, media: bool = True) -> dict[str, Any]:
    site = root / "site"
    opts = BrowseOptions(media=media)
    t = time.perf_counter()
    cold = build_site(ingest, site, opts)
    cold_s = time.perf_counter() - t
    t = time.perf_counter()
    warm = build_site(ingest, site, opts)
    warm_s = time.perf_counter() - t
    n = cold.source.samples.num_rows
    out: dict[str, Any] = {
        "samples": n,
        "build_cold_s": round(cold_s, 2),
        "build_warm_s": round(warm_s, 2),
        "warm_over_cold": round(warm_s / cold_s, 3),
        "warm_media_written": warm.media.written,
        "media_files": cold.media.files,
        "media_mib": round(cold.media.bytes_total / 2**20, 1),
        "weight": cold.weight.to_dict(),
        "index_bytes_per_sample": round(cold.weight.index_bytes / n, 2),
        "lazy_bytes_to_first_cards": cold.weight.initial_bytes + cold.weight.first_page_card_bytes,
    }
    if ctx is not None:
        out["chromium"] = load_times(ctx, site / "index.html", loads)
    # the baseline: the same site with every card in one chunk (rebuilt in place: media reused)
    base = build_site(ingest, site, BrowseOptions(chunk_size=n, media=media))
    out["baseline_bytes_to_first_cards"] = base.weight.initial_bytes + base.weight.first_page_card_bytes
    if ctx is not None:
        out["chromium_baseline"] = load_times(ctx, site / "index.html", loads)
        out["first_cards_lazy_over_baseline"] = round(
            out["chromium"]["first_cards_ms"] / out["chromium_baseline"]["first_cards_ms"], 3
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "av_digits")
    ap.add_argument("--sizes", default="3000,30000")
    ap.add_argument("--loads", type=int, default=3)
    ap.add_argument(
        "--index-only-sizes",
        default="",
        help="Also sizes (e.g. 100000) built --no-media from a manifest and scores only (no shards).",
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    os.environ["MMCURATE_NO_PROGRESS"] = "1"
    exe = chromium_path()
    if exe is None:
        print("chromium not found: page load times are skipped", file=sys.stderr)
    results = []
    with tempfile.TemporaryDirectory(prefix="mmcurate-browse-bench-") as tmp:
        from contextlib import ExitStack

        with ExitStack() as stack:
            ctx = None
            if exe is not None:
                from playwright.sync_api import sync_playwright

                pw = stack.enter_context(sync_playwright())
                ctx = launch(pw, Path(tmp) / "profile", exe, viewport={"width": 1280, "height": 900})
                stack.callback(ctx.close)
            runs = [(int(s), True) for s in args.sizes.split(",") if s]
            runs += [(int(s), False) for s in args.index_only_sizes.split(",") if s]
            for size, media in runs:
                root = Path(tmp) / f"n{size}{'' if media else '-index-only'}"
                root.mkdir()
                t = time.perf_counter()
                real = media and size == 3000 and (args.data / "labels.csv").is_file()
                if not media:
                    ingest, data = index_only_ingest(size, root), "manifest + scores only (--no-media)"
                elif real:
                    ingest, data = av_digits_ingest(args.data, root), "av_digits (real ingest)"
                else:
                    ingest, data = synthetic_ingest(size, root), "synthetic (fixture writer)"
                prep = time.perf_counter() - t
                r = {"data": data, "prepare_s": round(prep, 1), **measure(ingest, root, ctx, args.loads, media)}
                print(json.dumps(r, indent=2), flush=True)
                results.append(r)
                if args.out:  # after each size: removing 100k+ media files at the end takes a while
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

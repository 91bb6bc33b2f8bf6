"""BalanceMM format throughput on the balanced av_digits set: export and import, against baselines in the same run.

Builds a balanced av_digits set (ingest with the default settings, confidences imported from the
ground-truth ``condition`` so no scorer is trained, ``balance --bins 4 --shortfall shrink``), then times, on the same
selected clips and the same number of processes:

* **export balancemm**: ``mmcurate export --format balancemm --audio-preset vggsound_stft`` (HDF5 frames,
  spectrograms computed from the stored FLAC, pickled; unit markers, staging and install);
* **export hub** (baseline): the balance stage's own Hub export of the same selection
  (Parquet shards + ``save_to_disk`` + card), what mmcurate writes without this format;
* **import balancemm**: ``mmcurate ingest EXPORT --layout balancemm`` (HDF5 frames checked, pickles read
  with the restricted unpickler, spectrograms as the feature cache);
* **ingest media** (baseline): ``mmcurate ingest`` of the same clips from the video files with
  ``--features vggsound_stft``, which yields the same frames and the same cached spectrograms.

Reported: clips per second of each and the two ratios. The machine is shared: run it with
``nice`` and read the ratios (measured in the same run), not the absolute rates. Usage::

    nice -n 10 python benchmarks/formats.py [--data ../shared/data/av_digits] [--per-format N] [--workers 2]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("MMCURATE_NO_PROGRESS", "1")

from mmcurate.balance import STAGE as BALANCE  # noqa: E402
from mmcurate.balance import BalanceConfig  # noqa: E402
from mmcurate.export import export_balanced  # noqa: E402
from mmcurate.formats.config import ExportConfig  # noqa: E402
from mmcurate.formats.export import STAGE as EXPORT  # noqa: E402
from mmcurate.ingest import STAGE as INGEST  # noqa: E402
from mmcurate.ingest import DecodeConfig, IngestConfig  # noqa: E402
from mmcurate.score import STAGE as SCORE  # noqa: E402
from mmcurate.score import ScoreStageConfig  # noqa: E402
from mmcurate.store import Workdir  # noqa: E402

PRESET = "vggsound_stft"


def write_inputs(data: Path, dest: Path, per_format: int | None) -> list[dict[str, str]]:
    rows = list(csv.DictReader(open(data / "labels.csv")))
    if per_format:
        by_fmt: dict[str, list[dict[str, str]]] = {}
        for r in rows:
            by_fmt.setdefault(r["format"], []).append(r)
        rows = [r for fmt in sorted(by_fmt) for r in by_fmt[fmt][:per_format]]
    with open(dest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "split", "speaker"])
        w.writerows([r["path"], r["label"], r["split"], r["speaker"]] for r in rows)
    return rows


def write_scores(rows: list[dict[str, str]], dest: Path) -> None:
    """Confidences from the ground-truth condition, jittered by a hash of the path (no training)."""
    base = {
        "clean": (0.8, 0.6),
        "audio_noise": (0.2, 0.7),
        "visual_mismatch": (0.9, 0.15),
        "visual_noise": (0.85, 0.2),
    }
    with open(dest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["sample_id", "p_audio", "p_visual"])
        for r in rows:
            h = int(hashlib.sha256(r["path"].encode()).hexdigest()[:8], 16) / 2**32
            a, v = base[r["condition"]]
            w.writerow(
                [r["path"], round(min(1, max(0, a - 0.3 + 0.6 * h)), 4), round(min(1, max(0, v + 0.3 - 0.6 * h)), 4)]
            )


def timed(fn) -> float:  # noqa: ANN001
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "av_digits")
    ap.add_argument("--per-format", type=int, default=None, help="clips per container family (default: all 3000)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "formats.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mmcurate-bench-formats-") as tmp_:
        tmp = Path(tmp_)
        work = Workdir(tmp / "work")
        rows = write_inputs(args.data, tmp / "inputs.csv", args.per_format)
        write_scores(rows, tmp / "scores.csv")
        INGEST.run(
            work,
            IngestConfig(raw_dir=args.data, manifest=tmp / "inputs.csv", group_column="speaker", workers=args.workers),
        )
        SCORE.run(work, ScoreStageConfig(scores_from=tmp / "scores.csv"))
        BALANCE.run(work, BalanceConfig(bins=4, shortfall="shrink"))  # exactly uniform over the 4 bins
        selection = work.balanced.read_selection()
        n = selection.num_rows
        selected = set(selection["sample_id"].to_pylist())

        t_export = timed(
            lambda: EXPORT.run(work, ExportConfig(out=tmp / "bmm", audio_preset=PRESET, workers=args.workers))
        )
        t_hub = timed(
            lambda: export_balanced(
                work.ingest.path, work.balanced.selection_path, tmp / "hub", {}, show_summary=False
            )
        )
        t_import = timed(
            lambda: INGEST.run(
                Workdir(tmp / "imp"), IngestConfig(raw_dir=tmp / "bmm", layout="balancemm", workers=args.workers)
            )
        )
        with open(tmp / "selected.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["path", "label", "split", "speaker"])
            w.writerows([r["path"], r["label"], r["split"], r["speaker"]] for r in rows if r["path"] in selected)
        t_media = timed(
            lambda: INGEST.run(
                Workdir(tmp / "media"),
                IngestConfig(
                    raw_dir=args.data,
                    manifest=tmp / "selected.csv",
                    group_column="speaker",
                    workers=args.workers,
                    decode=DecodeConfig(features=PRESET),
                ),
            )
        )
        bmm_bytes = sum(p.stat().st_size for p in (tmp / "bmm").rglob("*") if p.is_file())
    result = {
        "data": str(args.data),
        "clips": n,
        "workers": args.workers,
        "machine": f"{os.cpu_count()} cores, shared with other jobs (run with nice); compare the ratios",
        "export_balancemm_clips_per_s": round(n / t_export, 2),
        "export_hub_clips_per_s": round(n / t_hub, 2),
        "export_balancemm_vs_hub_time": round(t_export / t_hub, 2),
        "import_balancemm_clips_per_s": round(n / t_import, 2),
        "ingest_media_clips_per_s": round(n / t_media, 2),
        "import_vs_media_ingest_time": round(t_import / t_media, 2),
        "balancemm_bytes_per_clip": round(bmm_bytes / n),
        "seconds": {
            "export_balancemm": round(t_export, 2),
            "export_hub": round(t_hub, 2),
            "import_balancemm": round(t_import, 2),
            "ingest_media": round(t_media, 2),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

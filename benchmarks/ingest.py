"""Ingest throughput on the 3000 av_digits clips, against the field's reference preprocessing.

Three measurements in the same run, on the same files and the same number of processes:

* **mmcurate**: ``run_ingest`` (decode, pick 3 frames, 224 px JPEG, 16 kHz FLAC, Arrow shards,
  manifest) with ``--workers N``;
* **pure decode**: PyAV demux + decode of every video frame and audio sample, nothing else
  (the floor any decoder-based ingest pays);
* **baseline**: what the reference repos do today: per clip, an ``ffmpeg`` subprocess writes
  1-fps JPEG frames (224 px) and another writes a 16 kHz mono WAV to disk, then both are read
  back (PIL, soundfile). The ffmpeg binary comes from ``imageio-ffmpeg``.

Reported: clips per second of each, mmcurate's speed-up over the baseline (target >= 3x) and its
time relative to pure decoding (target <= 1.5x). Usage::

    python benchmarks/ingest.py [--data ../shared/data/av_digits] [--workers 2] [--limit N]
    python benchmarks/ingest.py --data ../shared/data/clips --out benchmarks/results/ingest_clips.json

``--data`` is a folder with ``labels.csv`` (path,label) or ``INDEX.csv`` (the real-clips set: its
clips with both streams are used).
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
import soundfile as sf
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mmcurate.ingest import IngestConfig, IngestRequest, run_ingest  # noqa: E402


def pure_decode(path: str) -> int:
    """Decode every frame and audio sample of one clip; return frames decoded."""
    n = 0
    with av.open(path) as c:
        streams = [s for s in (c.streams.video[:1] + c.streams.audio[:1])]
        for s in streams:
            s.codec_context.thread_count = 1
        for packet in c.demux(streams):
            for _ in packet.decode():
                n += 1
    return n


def baseline_clip(args: tuple[str, str, str]) -> int:
    """Reference-style preprocessing of one clip: ffmpeg -> JPEG frames + WAV on disk -> read back."""
    ffmpeg, path, work = args
    out = Path(work) / Path(path).stem
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [ffmpeg, "-loglevel", "error", "-y", "-threads", "1", "-i", path, "-vf", "fps=1,scale=224:224,format=yuvj420p",
         "-q:v", "2", str(out / "frame_%05d.jpg")],
        check=True,
    )
    subprocess.run(
        [ffmpeg, "-loglevel", "error", "-y", "-threads", "1", "-i", path, "-vn", "-ac", "1", "-ar", "16000",
         str(out / "audio.wav")],
        check=True,
    )
    frames = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(out.glob("frame_*.jpg"))]
    audio, _ = sf.read(out / "audio.wav", dtype="float32")
    shutil.rmtree(out)
    return len(frames) + int(audio.size > 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "av_digits")
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--limit", type=int, default=None, help="use only the first N clips (quick check)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "ingest.json")
    args = ap.parse_args()
    os.environ.setdefault("MMCURATE_NO_PROGRESS", "1")
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    if (args.data / "labels.csv").is_file():
        rows = list(csv.DictReader(open(args.data / "labels.csv")))[: args.limit]
    else:  # e.g. ../shared/data/clips: INDEX.csv lists files (label = their folder); keep decodable A/V ones
        rows = [
            {"path": r["file"], "label": r["file"].split("/")[0]}
            for r in csv.DictReader(open(args.data / "INDEX.csv"))
            if r["video_frames"] not in ("", "0") and r["audio_samples"]
        ][: args.limit]
    paths = [str(args.data / r["path"]) for r in rows]
    n = len(paths)
    results: dict[str, object] = {"clips": n, "workers": args.workers, "cpu_count": os.cpu_count()}

    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "inputs.csv"
        with open(manifest, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["path", "label"])
            w.writerows([[r["path"], r["label"]] for r in rows])

        t = time.perf_counter()
        with mp.get_context("fork").Pool(args.workers) as pool:
            pool.map(pure_decode, paths, chunksize=8)
        t_decode = time.perf_counter() - t

        t = time.perf_counter()
        run_ingest(IngestRequest(raw_dir=args.data, out_dir=Path(tmp) / "ingest", manifest=manifest,
                                 config=IngestConfig(workers=args.workers)))
        t_ours = time.perf_counter() - t

        t = time.perf_counter()
        work = Path(tmp) / "baseline"
        with ThreadPoolExecutor(args.workers) as pool:  # each thread drives one ffmpeg process at a time
            list(pool.map(baseline_clip, [(ffmpeg, p, str(work)) for p in paths]))
        t_base = time.perf_counter() - t

    results.update(
        {
            "seconds": {"mmcurate": round(t_ours, 2), "pure_decode": round(t_decode, 2), "baseline_ffmpeg": round(t_base, 2)},
            "clips_per_second": {"mmcurate": round(n / t_ours, 1), "pure_decode": round(n / t_decode, 1),
                                 "baseline_ffmpeg": round(n / t_base, 1)},
            "speedup_vs_baseline": round(t_base / t_ours, 2),
            "ingest_over_pure_decode": round(t_ours / t_decode, 2),
        }
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

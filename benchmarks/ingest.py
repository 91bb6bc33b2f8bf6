"""Ingest throughput against the field's practice and two PyAV baselines, and ingest's peak memory.

Throughput: measurements in the same run, on the same files, with the same number of processes,
in ``--repeats`` rounds (each round measures every method once; medians are reported, and each
ratio's range over the rounds, since a shared or virtual machine's speed drifts by 10-20 %):

* **mmcurate**: ``run_ingest`` (probe, decode, pick the frames, 224 px JPEG, 16 kHz FLAC, Arrow
  shards, manifest) with ``--workers N``, sampling ``--frames 3`` or ``--fps 1``;
* **seek extractor**: what a careful user writes with PyAV: per wanted time, seek to the
  keyframe before it and decode forward to the frame; audio decoded from a demux of the audio
  stream alone; frames scaled to 224 px in memory (no JPEG, no shards);
* **decode all**: PyAV demux + decode of every video frame and audio sample, nothing else;
* **practice**: what the reference repos do: per clip, an ``ffmpeg`` subprocess writes 1-fps
  JPEG frames (224 px) and another writes a 16 kHz mono WAV to disk, then both are read back
  (PIL, soundfile). The ffmpeg binary comes from ``imageio-ffmpeg``.

Data sets: ``--data`` is a folder with ``labels.csv`` (av_digits), ``INDEX.csv`` (the real-clips
set: its clips with both streams), or a generated corpus (:mod:`mmcurate.synth.clips`, encoded once
into ``benchmarks/results/corpus_<data>_gop<N>``; keyframes every ``--gop`` frames: 60 = 2 s by
default, 12 is what PyAV's encoders do unless told, 250 is the ``ffmpeg`` command line's x264
default): ``real-length``, 40 clips of 10 s at 640x360 30 fps (H.264/AAC MP4 and VP9/Opus WebM);
``long``, 4 clips of 60 s at 1280x720 30 fps, about 12 Mbit/s (more compressed video per clip than
sparse decoding keeps at once). Reported: wall and CPU seconds of each method (CPU of the whole
process tree, children included: on a machine shared with other jobs it moves far less than wall
time), clips per second, and mmcurate's ratios to each baseline, each from the same round.

mmcurate's ingest runs in a child interpreter, timed inside it after an untimed one-clip ingest.
``--baseline-tree DIR`` also measures the ingest of another checkout (say a worktree of the
commit before a change) the same way in the same rounds, as ``before``. ``--gop 60,250`` measures
several corpora in one run (rounds within each); ``--baselines practice`` leaves out the seek
extractor and decode-all (on long clips at long GOPs the seek extractor alone takes minutes);
``--markdown FILE`` writes the table of seconds and ratios (CPU and wall, medians and ranges). ``--profile`` measures
instead where one process's CPU goes per clip (open, demux, audio, sampled and full video
decoding) and the ceiling that decoding the sampled video alone puts on the ratio to the practice.

Memory (``--memory 3000,30000``): peak RSS of ``mmcurate ingest`` (the main process, each worker,
and the sum over the process tree) on that many inputs: hard links to av_digits clips in label
folders in a temporary folder (removed afterwards). Usage::

    nice python benchmarks/ingest.py --data real-length --sampling frames3,fps1 --gop 60 --repeats 3
    nice python benchmarks/ingest.py --data long --sampling frames3,fps1 --gop 250 --baseline-tree ../wt-base
    nice python benchmarks/ingest.py --data real-length --sampling frames3,fps1 --gop 60 --profile
    # issue 26 (--fps 1 on long clips): both GOP lengths, the practice and the tree before the change, one run
    nice python benchmarks/ingest.py --data long --gop 60,250 --limit 2 --sampling frames3,fps1 \
        --baselines practice --baseline-tree ../wt-base --with-profile --profile-limit 1 \
        --markdown benchmarks/results/ingest_fps1_table.md
    nice python benchmarks/ingest.py --data ../shared/data/av_digits --limit 1500
    nice python benchmarks/ingest.py --memory 3000,30000
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import multiprocessing as mp
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
import soundfile as sf
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mmcurate.ingest import DecodeConfig  # noqa: E402
from mmcurate.ingest.decode import scale_and_crop, scan_end, target_times  # noqa: E402
from mmcurate.synth.clips import LONG_SPECS, REAL_LENGTH_SPECS, write_corpus  # noqa: E402

SAMPLINGS = {"frames3": {"frames": 3}, "fps1": {"fps": 1.0}}
#: How each sampling is asked for on the command line (``--frames 3`` is the default).
SAMPLINGS_FLAG = {"frames3": "--frames 3 (default)", "fps1": "--fps 1"}
#: Generated corpora: their clip specs and default number of clips.
GENERATED = {"real-length": (REAL_LENGTH_SPECS, 40), "long": (LONG_SPECS, 4)}


# ----------------------------------------------------------------------------- baselines


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


def seek_extract(args: tuple[str, str]) -> int:
    """The seek-based PyAV extractor: for each wanted time, seek to the keyframe before it and
    decode forward to the first frame at or past it; audio from an audio-only demux, resampled
    to 16 kHz mono. Returns frames + audio samples kept."""
    path, sampling = args
    cfg = DecodeConfig(**SAMPLINGS[sampling])
    kept = []
    c = av.open(path)
    try:
        v = c.streams.video[0]
        v.codec_context.thread_count = 1
        start = (c.start_time or 0) / av.time_base
        if c.duration:
            duration = c.duration / av.time_base
        elif v.duration:
            duration = float(v.duration * v.time_base)
        else:  # no duration declared (e.g. a live WebM): read the packet timestamps
            duration = (scan_end(Path(path), [v.index]) or start) - start
        half_frame = 0.5 / float(v.average_rate or 30)
        for t in target_times(start, duration, cfg):
            try:
                c.seek(int(t / v.time_base), stream=v, backward=True, any_frame=False)
            except av.error.FFmpegError:  # no index (e.g. some FLV): decode from the start instead
                c.close()
                c = av.open(path)
                v = c.streams.video[0]
                v.codec_context.thread_count = 1
            for frame in c.decode(v):
                if frame.time is not None and frame.time + 1e-6 >= t - half_frame:
                    kept.append(scale_and_crop(frame, 224))
                    break
    finally:
        c.close()
    n_audio = 0
    with av.open(path) as c:
        if c.streams.audio:
            a = c.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=16000)
            chunks = []
            for packet in c.demux(a):
                for frame in packet.decode():
                    chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
            n_audio = int(sum(x.size for x in chunks))
    return len(kept) + n_audio


def practice_clip(args: tuple[str, str, str]) -> int:
    """Reference-style preprocessing of one clip: ffmpeg -> JPEG frames + WAV on disk -> read back."""
    ffmpeg, path, work = args
    out = Path(work) / Path(path).stem
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            ffmpeg,
            "-loglevel",
            "error",
            "-y",
            "-threads",
            "1",
            "-i",
            path,
            "-vf",
            "fps=1,scale=224:224,format=yuvj420p",
            "-q:v",
            "2",
            str(out / "frame_%05d.jpg"),
        ],
        check=True,
    )
    subprocess.run(
        [
            ffmpeg,
            "-loglevel",
            "error",
            "-y",
            "-threads",
            "1",
            "-i",
            path,
            "-vn",
            "-ac",
            "1",
            "-ar",
            "16000",
            str(out / "audio.wav"),
        ],
        check=True,
    )
    frames = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(out.glob("frame_*.jpg"))]
    audio, _ = sf.read(out / "audio.wav", dtype="float32")
    shutil.rmtree(out)
    return len(frames) + int(audio.size > 0)


# ----------------------------------------------------------------------------- data


def load_rows(
    data: str, corpus_dir: Path | None, n_generated: int | None, gop: int, limit: int | None
) -> tuple[Path, list[dict[str, str]]]:
    if data in GENERATED:
        specs, default_n = GENERATED[data]
        folder = corpus_dir or REPO / "benchmarks" / "results" / f"corpus_{data.replace('-', '_')}"
        folder = folder.with_name(f"{folder.name}_gop{gop}")
        paths = write_corpus(folder, n_generated or default_n, tuple(dataclasses.replace(s, gop=gop) for s in specs))
        rows = [{"path": p.relative_to(folder).as_posix(), "label": p.parent.name} for p in paths]
        return folder, rows[:limit]
    folder = Path(data)
    if (folder / "labels.csv").is_file():
        with open(folder / "labels.csv", newline="") as fh:
            return folder, list(csv.DictReader(fh))[:limit]
    # e.g. ../shared/data/clips: INDEX.csv lists files (label = their folder); keep decodable A/V ones
    with open(folder / "INDEX.csv", newline="") as fh:
        rows = [
            {"path": r["file"], "label": r["file"].split("/")[0]}
            for r in csv.DictReader(fh)
            if r["video_frames"] not in ("", "0") and r["audio_samples"]
        ]
    return folder, rows[:limit]


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (pool workers, ffmpeg): unlike wall
    time, it hardly moves when other jobs share the machine."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Timer:
    """Wall and CPU seconds of one measured block."""

    def __init__(self, seconds: dict[str, float], cpu: dict[str, float], name: str) -> None:
        self.seconds, self.cpu, self.name = seconds, cpu, name

    def __enter__(self) -> None:
        self.t, self.c = time.perf_counter(), cpu_seconds()

    def __exit__(self, *exc: object) -> None:
        self.seconds[self.name] = time.perf_counter() - self.t
        self.cpu[self.name] = cpu_seconds() - self.c


#: Runs one ingest in a child interpreter that imports mmcurate from the tree on its PYTHONPATH
#: (this checkout, or ``--baseline-tree``): both are measured the same way, in the same rounds. An
#: untimed ingest of the first clip's first 2 s first (imports, codec and scaler set-up are not throughput); then wall
#: and CPU seconds of the measured ingest, its pool workers included (they are joined before
#: ``run_ingest`` returns, so their CPU is in RUSAGE_CHILDREN).
_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from mmcurate.ingest import DecodeConfig, IngestConfig, run_ingest
from mmcurate.store import Workdir

a = json.loads(sys.argv[1])

def cpu():
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

def ingest(manifest, out, workers):
    config = IngestConfig(raw_dir=Path(a["root"]), out=Path(out), manifest=Path(manifest), workers=workers,
                          decode=DecodeConfig(**a["decode"]))
    run_ingest(Workdir(Path(a["work"])), config)

ingest(a["warm_manifest"], a["out"] + "_warm", 1)
t, c = time.perf_counter(), cpu()
ingest(a["manifest"], a["out"], a["workers"])
print("RESULT " + json.dumps({"wall": time.perf_counter() - t, "cpu": cpu() - c}))
"""


def ingest_in_child(tree: Path, args: dict[str, object]) -> tuple[float, float]:
    """Wall and CPU seconds of one ``run_ingest`` by the mmcurate of ``tree`` (see ``_CHILD``)."""
    env = {**os.environ, "PYTHONPATH": str(tree), "MMCURATE_NO_PROGRESS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(args)], env=env, cwd=tree, capture_output=True, text=True
    )
    lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"ingest with {tree} failed:\n{done.stderr[-3000:]}")
    result = json.loads(lines[-1][len("RESULT ") :])
    return result["wall"], result["cpu"]


def throughput(args: argparse.Namespace, gop: int) -> dict[str, object]:
    """Every method on the corpus of keyframe interval ``gop``, in ``args.repeats`` rounds."""
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    root, rows = load_rows(args.data, args.corpus_dir, args.generate, gop, args.limit)
    paths = [str(root / r["path"]) for r in rows]
    n = len(paths)
    w = args.workers
    ctx = mp.get_context("fork")
    trees = {"mmcurate": REPO}
    if args.baseline_tree is not None:
        trees["before"] = args.baseline_tree.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "inputs.csv"
        with open(manifest, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "label"])
            writer.writerows([[r["path"], r["label"]] for r in rows])
        warm = Path(tmp) / "warm.csv"
        # the first 2 s of the first clip: enough to import and set up the codecs, cheap on a long clip
        warm.write_text(f"path,label,start,end\n{rows[0]['path']},{rows[0]['label']},0,2\n")

        # warm-up, untimed: first-call costs (imports, codec and scaler set-up) are not throughput
        if "decode-all" in args.baselines:
            pure_decode(paths[0])
        if "seek" in args.baselines:
            for sampling in args.sampling:
                seek_extract((paths[0], sampling))
        practice_clip((ffmpeg, paths[0], str(Path(tmp) / "warm_practice")))

        rounds: list[tuple[dict[str, float], dict[str, float]]] = []
        for rep in range(args.repeats):
            # each round measures every method once, in the same order: a slow spell of the
            # machine then hits one round's methods alike rather than one method's every run
            seconds, cpu = {}, {}
            if "decode-all" in args.baselines:
                with Timer(seconds, cpu, "decode_all"), ctx.Pool(w) as pool:
                    pool.map(pure_decode, paths, chunksize=2)

            for sampling in args.sampling:
                if "seek" in args.baselines:
                    with Timer(seconds, cpu, f"seek_extractor_{sampling}"), ctx.Pool(w) as pool:
                        pool.map(seek_extract, [(p, sampling) for p in paths], chunksize=2)

                for name, tree in trees.items():
                    key = f"{name}_{sampling}"
                    seconds[key], cpu[key] = ingest_in_child(
                        tree,
                        {
                            "root": str(root.resolve()),
                            "work": tmp,
                            "manifest": str(manifest),
                            "warm_manifest": str(warm),
                            "out": str(Path(tmp) / f"ingest_{key}_{rep}"),
                            "workers": w,
                            "decode": SAMPLINGS[sampling],
                        },
                    )
                    shutil.rmtree(Path(tmp) / f"ingest_{key}_{rep}", ignore_errors=True)

            work = Path(tmp) / "practice"
            with Timer(seconds, cpu, "practice_ffmpeg"), ThreadPoolExecutor(w) as pool:
                # each thread drives one ffmpeg process at a time
                list(pool.map(practice_clip, [(ffmpeg, p, str(work)) for p in paths]))
            rounds.append((seconds, cpu))
            print(
                f"gop {gop}, round {rep + 1}/{args.repeats}: " + json.dumps({k: round(v, 2) for k, v in cpu.items()}),
                file=sys.stderr,
            )

    def ratios(measure: dict[str, float]) -> dict[str, float]:
        out: dict[str, float] = {}
        for sampling in args.sampling:
            for name in trees:
                ours = measure[f"{name}_{sampling}"]
                out[f"{sampling}: {name} / practice"] = round(measure["practice_ffmpeg"] / ours, 2)
                if "seek" in args.baselines:
                    out[f"{sampling}: {name} / seek extractor"] = round(
                        measure[f"seek_extractor_{sampling}"] / ours, 2
                    )
                if "decode-all" in args.baselines:
                    out[f"{sampling}: {name} / decode all"] = round(measure["decode_all"] / ours, 2)
            if "before" in trees:
                out[f"{sampling}: mmcurate / before"] = round(
                    measure[f"before_{sampling}"] / measure[f"mmcurate_{sampling}"], 2
                )
        return out

    def median(values: list[float]) -> float:
        return float(np.median(values))

    seconds = {k: median([r[0][k] for r in rounds]) for k in rounds[0][0]}
    cpu = {k: median([r[1][k] for r in rounds]) for k in rounds[0][1]}
    wall_rounds = [ratios(r[0]) for r in rounds]
    cpu_rounds = [ratios(r[1]) for r in rounds]
    return {
        "data": args.data,
        "gop": gop if args.data in GENERATED else None,
        "clips": n,
        "workers": w,
        "rounds": len(rounds),
        "trees": {name: str(tree) for name, tree in trees.items()},
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg()[0],
        "per_round": {
            "seconds": [{k: round(v, 3) for k, v in r[0].items()} for r in rounds],
            "cpu_seconds": [{k: round(v, 3) for k, v in r[1].items()} for r in rounds],
        },
        "seconds (median over rounds)": {k: round(v, 2) for k, v in seconds.items()},
        "clips_per_second (median)": {k: round(n / v, 1) for k, v in seconds.items()},
        "cpu_seconds (median over rounds; the process tree's, children included)": {
            k: round(v, 2) for k, v in cpu.items()
        },
        "cpu_seconds_per_clip (median)": {k: round(v / n, 4) for k, v in cpu.items()},
        "speed_ratios_wall (median over rounds of each round's ratio; higher is faster mmcurate)": {
            k: round(median([r[k] for r in wall_rounds]), 2) for k in wall_rounds[0]
        },
        "speed_ratios_wall_range (min, max over rounds)": {
            k: [min(r[k] for r in wall_rounds), max(r[k] for r in wall_rounds)] for k in wall_rounds[0]
        },
        "speed_ratios_cpu (same, from CPU time: robust on a shared machine)": {
            k: round(median([r[k] for r in cpu_rounds]), 2) for k in cpu_rounds[0]
        },
        "speed_ratios_cpu_range (min, max over rounds)": {
            k: [min(r[k] for r in cpu_rounds), max(r[k] for r in cpu_rounds)] for k in cpu_rounds[0]
        },
    }


# ----------------------------------------------------------------------------- profile


def profile(args: argparse.Namespace, gop: int) -> dict[str, object]:
    """Where one process's CPU time goes per clip, clip after clip (``time.process_time``; the
    practice's from its ffmpeg children): opening the file, demuxing every packet without decoding,
    mmcurate's decoding without video (open, demux, audio decode and resampling), with the sampled
    video, and with every video frame; and the share of video packets the sampling decoded. The
    ceiling is the practice's CPU over the sampled video's decoding alone: the ratio mmcurate would
    reach if everything else (audio, demux, JPEG, FLAC, shards) cost nothing."""
    import imageio_ffmpeg

    from mmcurate.ingest.decode import decode_clip

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    root, rows = load_rows(args.data, args.corpus_dir, args.generate, gop, args.limit)
    paths = [root / r["path"] for r in rows][: args.profile_limit]
    kept: list[object] = []

    def per_clip(fn) -> float:  # type: ignore[no-untyped-def]
        fn(paths[0])  # warm-up
        kept.clear()
        t = cpu_seconds()
        for p in paths:
            kept.append(fn(p))
        return (cpu_seconds() - t) / len(paths)

    def open_only(p: Path) -> None:
        with av.open(str(p)):
            pass

    def demux_only(p: Path) -> None:
        with av.open(str(p)) as c:
            for _ in c.demux():
                pass

    out: dict[str, object] = {"data": args.data, "gop": gop, "clips": len(paths)}
    with tempfile.TemporaryDirectory() as tmp:
        practice = per_clip(lambda p: practice_clip((ffmpeg, str(p), tmp)))
    no_video = per_clip(lambda p: decode_clip(p, DecodeConfig(), video=False))
    every = per_clip(lambda p: decode_clip(p, DecodeConfig(), video_mode="all"))
    ms = {
        "practice (ffmpeg subprocesses)": practice,
        "open": per_clip(open_only),
        "demux every packet": per_clip(demux_only),
        "decode without video (open, demux, audio)": no_video,
        "decode every video frame (video part)": every - no_video,
    }
    for sampling in args.sampling:
        cfg = DecodeConfig(**SAMPLINGS[sampling])
        ms[f"decode {sampling} (video part)"] = per_clip(lambda p, cfg=cfg: decode_clip(p, cfg)) - no_video
        clips = list(kept)
        decoded = sum(c.video_packets_decoded or c.native_frame_count for c in clips)
        out[f"{sampling}: share of video packets decoded"] = round(
            decoded / sum(c.native_frame_count for c in clips), 3
        )
        out[f"{sampling}: ceiling (practice / sampled video decoding alone)"] = round(
            practice / ms[f"decode {sampling} (video part)"], 2
        )
    out["cpu_ms_per_clip"] = {k: round(v * 1000, 1) for k, v in ms.items()}
    return out


# ----------------------------------------------------------------------------- memory


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                out += [int(x) for x in fh.read().split()]
    except OSError:
        pass
    return out


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_memory(n_inputs: int, av_digits: Path, workers: int) -> dict[str, object]:
    """Run ``mmcurate ingest`` on ``n_inputs`` hard-linked av_digits clips; sample its process tree."""
    with open(av_digits / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    with tempfile.TemporaryDirectory(prefix="mmcurate_mem_") as tmp:
        raw = Path(tmp) / "raw"
        for k in range(n_inputs):
            r = rows[k % len(rows)]
            src = av_digits / r["path"]
            dst = raw / r["label"] / f"{k:06d}_{src.name}"
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
        env = {**os.environ, "MMCURATE_NO_PROGRESS": "1", "PYTHONPATH": str(REPO)}
        cmd = [
            sys.executable,
            "-m",
            "mmcurate",
            "ingest",
            str(raw),
            "--out",
            str(Path(tmp) / "out"),
            "--workers",
            str(workers),
        ]
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        peaks = {"main_hwm_kb": 0, "worker_hwm_kb": 0, "tree_pss_kb": 0, "tree_rss_kb": 0}
        timeline: list[tuple[float, int]] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                kids = _children(proc.pid)
                peaks["main_hwm_kb"] = max(peaks["main_hwm_kb"], _status_kb(proc.pid, "VmHWM"))
                for kid in kids:
                    peaks["worker_hwm_kb"] = max(peaks["worker_hwm_kb"], _status_kb(kid, "VmHWM"))
                pss = sum(_pss_kb(p) for p in [proc.pid, *kids])
                rss = sum(_status_kb(p, "VmRSS") for p in [proc.pid, *kids])
                peaks["tree_pss_kb"] = max(peaks["tree_pss_kb"], pss)
                peaks["tree_rss_kb"] = max(peaks["tree_rss_kb"], rss)
                timeline.append((round(time.perf_counter() - t, 1), pss))
                stop.wait(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        stop.set()
        sampler.join()
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        elapsed = time.perf_counter() - t
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"ingest failed on {n_inputs} inputs: {err[-2000:]}")
    step = max(1, len(timeline) // 12)
    return {
        "inputs": n_inputs,
        "seconds": round(elapsed, 1),
        "main_peak_rss_mb": round(max(peaks["main_hwm_kb"], usage.ru_maxrss) / 1024, 1),
        "worker_peak_rss_mb": round(peaks["worker_hwm_kb"] / 1024, 1),
        "tree_peak_pss_mb": round(peaks["tree_pss_kb"] / 1024, 1),
        "tree_peak_rss_mb": round(peaks["tree_rss_kb"] / 1024, 1),
        "pss_timeline_mb": [(s, round(kb / 1024, 1)) for s, kb in timeline[::step]],
    }


# ----------------------------------------------------------------------------- report


def _span(values: list[float], digits: int = 2) -> str:
    """Median and range of per-round values, as the tables print them."""
    return f"{np.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def markdown_table(runs: list[dict[str, object]], args: argparse.Namespace) -> str:
    """The throughput of each GOP length and sampling: seconds of mmcurate, the practice and the
    baseline tree ('before'), wall and CPU (medians and ranges over the rounds), and mmcurate's
    speed ratios to each (median of the rounds' ratios, range), CPU first."""
    names = [n for n in ("mmcurate", "before") if n in runs[0]["trees"]]  # type: ignore[operator]
    head = ["GOP", "sampling", "measure"]
    head += [f"{n} s" for n in names] + ["practice s"]
    head += [f"mmcurate / {b}" for b in ["practice", *(["before"] if "before" in names else [])]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run in runs:
        rounds = run["per_round"]  # type: ignore[index]
        for sampling in args.sampling:
            for measure, key in (("CPU", "cpu_seconds"), ("wall", "seconds")):
                per = rounds[key]  # type: ignore[index]
                cells = [str(run["gop"]), f"`{SAMPLINGS_FLAG[sampling]}`", measure]
                cells += [_span([r[f"{n}_{sampling}"] for r in per], 1) for n in names]
                cells.append(_span([r["practice_ffmpeg"] for r in per], 1))
                ours = [r[f"mmcurate_{sampling}"] for r in per]
                for base in ["practice_ffmpeg", *([f"before_{sampling}"] if "before" in names else [])]:
                    ratio = [r[base] / o for r, o in zip(per, ours, strict=True)]
                    text = f"{np.median(ratio):.2f}x ({min(ratio):.2f}-{max(ratio):.2f})"
                    cells.append(f"**{text}**" if measure == "CPU" else text)
                lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data",
        default=str(REPO.parent / "shared" / "data" / "av_digits"),
        help="a data folder, or a generated corpus: 'real-length' (10-s clips) or 'long' (60-s 720p clips)",
    )
    ap.add_argument(
        "--corpus-dir",
        type=Path,
        default=None,
        help="where a generated corpus is kept (default benchmarks/results/corpus_<data>; _gop<N> is appended)",
    )
    ap.add_argument("--generate", type=int, default=None, help="clips in a generated corpus (real-length 40, long 4)")
    ap.add_argument(
        "--gop",
        default="60",
        help="keyframe interval (frames) of a generated corpus; comma-separated to measure several in one run",
    )
    ap.add_argument(
        "--baseline-tree",
        type=Path,
        default=None,
        help="another mmcurate checkout (e.g. a git worktree of an older commit): its ingest is measured "
        "in the same rounds, as 'before'",
    )
    ap.add_argument(
        "--profile",
        action="store_true",
        help="instead of throughput: where one process's CPU goes per clip (open, demux, audio, video decoding)",
    )
    ap.add_argument(
        "--with-profile",
        action="store_true",
        help="after the throughput of each GOP length, its profile too (as --profile), in the same results",
    )
    ap.add_argument(
        "--profile-limit", type=int, default=None, help="profile only the first N clips (it runs in one process)"
    )
    ap.add_argument(
        "--baselines",
        default="practice,seek,decode-all",
        help="comma-separated baselines to measure besides mmcurate (and --baseline-tree): practice (always), "
        "seek, decode-all",
    )
    ap.add_argument("--markdown", type=Path, default=None, help="also write the throughput table here (Markdown)")
    ap.add_argument("--sampling", default="frames3", help="comma-separated: frames3, fps1")
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="measure every method this many times, in rounds; report medians (and the ratios' range)",
    )
    ap.add_argument("--limit", type=int, default=None, help="use only the first N clips (quick check)")
    ap.add_argument("--memory", default=None, help="comma-separated input counts: measure peak RSS instead")
    ap.add_argument("--av-digits", type=Path, default=REPO.parent / "shared" / "data" / "av_digits")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    args.sampling = [s for s in args.sampling.split(",") if s]
    args.baselines = {b for b in args.baselines.split(",") if b} | {"practice"}
    if not args.baselines <= {"practice", "seek", "decode-all"}:
        ap.error(f"--baselines {','.join(sorted(args.baselines))}: choose from practice, seek, decode-all")
    gops = [int(g) for g in args.gop.split(",") if g]
    for s in args.sampling:
        if s not in SAMPLINGS:
            ap.error(f"--sampling {s!r}: choose from {', '.join(SAMPLINGS)}")
    os.environ.setdefault("MMCURATE_NO_PROGRESS", "1")
    if args.memory:
        counts = [int(x) for x in args.memory.split(",")]
        runs = [peak_memory(n, args.av_digits, args.workers) for n in counts]
        results: dict[str, object] = {"memory": runs, "workers": args.workers}
        if len(runs) >= 2:
            a, b = runs[0], runs[-1]
            results["growth"] = {
                k: round(b[k] / a[k] - 1, 3) for k in ("main_peak_rss_mb", "worker_peak_rss_mb", "tree_peak_pss_mb")
            }
        out = args.out or REPO / "benchmarks" / "results" / "ingest_memory.json"
    else:
        if args.data not in GENERATED:
            gops = gops[:1]  # a data folder has the keyframes it has
        gop_names = "_".join(f"gop{g}" for g in gops)
        name = f"{args.data.replace('-', '_')}_{gop_names}" if args.data in GENERATED else Path(args.data).name
        load_at_start = os.getloadavg()
        if args.profile:
            runs = [profile(args, g) for g in gops]
            out = args.out or REPO / "benchmarks" / "results" / f"ingest_profile_{name}.json"
        else:
            runs = []
            for g in gops:
                runs.append(throughput(args, g))
                if args.with_profile:
                    runs[-1]["profile"] = profile(args, g)
            out = args.out or REPO / "benchmarks" / "results" / f"ingest_{name}.json"
        results = runs[0] if len(runs) == 1 else {"runs": runs}
        results["load_average_at_start"] = [round(x, 2) for x in load_at_start]
        results["load_average_at_end_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
        if args.markdown is not None and not args.profile:
            args.markdown.parent.mkdir(parents=True, exist_ok=True)
            args.markdown.write_text(markdown_table(runs, args) + "\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""Where `mmcurate score`'s time goes, and how close its training loop comes to the machine's peak.

On one ingest (3000 av_digits clips by default), with the CPU defaults and one torch thread (as
each scoring job runs):

* **start-up**: importing mmcurate's CLI in a fresh interpreter;
* **decode**: the ingest's shards into training tensors (``build_av_tensors``), once per run;
* per modality, **one training epoch** split into its parts, each timed separately over the same
  batches: gathering the batch, augmentation, preparation (standardisation), forward, backward,
  optimiser step (AdamW), weight average (EMA); then **evaluation** of the held-out and inner rows;
* **assembly**: calibration, uncertainty and the scores table for the whole set;
* **FLOP/s**: the training step's floating-point operations (forward + backward, counted by
  ``torch.utils.flop_counter``) over its measured time, next to a plain float32 matmul's FLOP/s
  measured in the same run with the same thread count (the practical peak of these cores).

A whole run's time is then the epochs the jobs trained (from a finished ``scores.json``, if the
ingest has one) times these per-epoch costs. Results: OUT.md and OUT.json.

    nice python benchmarks/score_profile.py --ingest /tmp/mmb/av_digits/work/ingest \
--out benchmarks/results/score_profile
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mmcurate.common.scoring import ScoreConfig  # noqa: E402
from mmcurate.data import build_av_tensors, read_shards  # noqa: E402
from mmcurate.execution.distributed import SINGLE  # noqa: E402
from mmcurate.score.assemble import ModalityRuns, assemble_scores  # noqa: E402
from mmcurate.score.augment import augment  # noqa: E402
from mmcurate.score.runner import _tensor_config  # noqa: E402
from mmcurate.score.train import InMemorySource, Standardizer, _Attempt, chunks_of, prepare  # noqa: E402
from mmcurate.store import IngestDir  # noqa: E402


def matmul_peak(threads: int, n: int = 1024, reps: int = 20) -> float:
    """FLOP/s of a float32 n x n matmul with ``threads`` threads (best of ``reps``)."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def conv_efficiency(threads: int, batch: int = 64) -> list[dict[str, Any]]:
    """FLOP/s of one 3 x 3 convolution (forward + backward) at each ResNet-18 stage's width and map size
    of the CPU-sized visual scorer (width 8, 48 px frames: 12 x 12 maps after the stem, halving per
    stage), channels-last as the scorer runs: what bounds the training loop when channels are few."""
    torch.set_num_threads(threads)
    out = []
    for channels, size in ((8, 12), (16, 6), (32, 3), (64, 2), (64, 12), (128, 12)):
        conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(memory_format=torch.channels_last)
        x = torch.randn(batch, channels, size, size).to(memory_format=torch.channels_last).requires_grad_()
        best = float("inf")
        for _ in range(10):
            t = time.perf_counter()
            conv(x).sum().backward()
            best = min(best, time.perf_counter() - t)
        flops = 3 * 2 * batch * channels * channels * 9 * size * size  # forward + two backward products
        out.append({"channels": channels, "map": size, "flop_per_s": flops / best})
    return out


def cpu() -> float:
    return time.process_time()


def startup_seconds() -> float:
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import mmcurate.cli"], check=True, env={**os.environ, "PYTHONPATH": str(REPO)}
    )
    return time.perf_counter() - t


def profile_epoch(
    source: InMemorySource, rows: torch.Tensor, cfg: ScoreConfig, classes: int, n_frames: int
) -> dict[str, Any]:
    """One epoch of a job's training, each part timed over the same batches."""
    stats = Standardizer.fit(source, rows, cfg.frame_norm)
    run = _Attempt(source, rows, classes, cfg, 0, torch.device("cpu"), n_frames, SINGLE, stats)
    times: dict[str, float] = defaultdict(float)
    order = rows[torch.randperm(len(rows), generator=run.gen)]
    chunks = chunks_of(order, cfg.batch_size, True)
    flops = 0
    run.trained.train()
    for i, idx in enumerate(chunks):
        t = time.perf_counter()
        [raw] = list(source.batches([idx]))
        times["gather batch"] += time.perf_counter() - t
        window = None
        if source.modality == "visual" and cfg.train_frames < run.n_frames:
            window = slice(0, cfg.train_frames)
        t = time.perf_counter()
        if cfg.augment:
            raw = augment(raw if window is None else raw[:, window], source.modality, run.aug_gen)
            window = None
        times["augment"] += time.perf_counter() - t
        t = time.perf_counter()
        x = prepare(raw, source.modality, run.device, run.stats, window)
        y = run.labels[idx]
        times["prepare (standardise)"] += time.perf_counter() - t
        counter = FlopCounterMode(display=False) if i == 0 else None
        if counter is not None:
            counter.__enter__()
        t = time.perf_counter()
        loss = F.cross_entropy(run.trained(x), y)
        times["forward"] += time.perf_counter() - t
        run.opt.zero_grad(set_to_none=True)
        t = time.perf_counter()
        loss.backward()
        times["backward"] += time.perf_counter() - t
        if counter is not None:
            counter.__exit__(None, None, None)
            flops = counter.get_total_flops()
        t = time.perf_counter()
        run.opt.step()
        times["optimiser step"] += time.perf_counter() - t
        t = time.perf_counter()
        run._update_ema()
        times["weight average (EMA)"] += time.perf_counter() - t
    n_eval = max(1, len(rows) // 4)  # one job evaluates its held-out fold and inner split: about a quarter
    t = time.perf_counter()
    run.predict(rows[:n_eval], classes, ema=True)
    times["evaluation"] += time.perf_counter() - t
    steps = len(chunks)
    compute = times["forward"] + times["backward"]
    return {
        "steps": steps,
        "batch": cfg.batch_size,
        "seconds": {k: round(v, 3) for k, v in times.items()},
        "epoch_seconds": round(sum(times.values()), 3),
        "flop_per_step": int(flops),
        "training_flop_per_s": flops * steps / compute if compute else 0.0,
        "step_flop_per_s_all_parts": flops * steps / sum(v for k, v in times.items() if k != "evaluation"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ingest", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per job (the CPU default is 1)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "score_profile")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ingest = IngestDir(args.ingest)
    cfg = ScoreConfig(device="cpu").resolved(False)
    classes = ingest.read_classes()
    ids = ingest.read_manifest().column("sample_id").to_pylist()
    result: dict[str, Any] = {"ingest": str(args.ingest), "samples": len(ids), "threads": args.threads}
    result["startup_seconds"] = round(startup_seconds(), 2)
    t, c = time.perf_counter(), cpu()
    tensors = build_av_tensors(read_shards(ingest.path, ids), classes, _tensor_config(cfg), workers=args.threads)
    result["decode"] = {"wall_seconds": round(time.perf_counter() - t, 2), "cpu_seconds": round(cpu() - c, 2)}
    torch.set_num_threads(args.threads)
    rows = torch.arange(int(len(ids) * 0.8 * 0.9))  # a fold job's fit rows at 5 folds, 10 % inner split
    result["epoch"] = {
        m: profile_epoch(InMemorySource(tensors, m), rows, cfg, len(classes), int(tensors.frames.shape[1]))
        for m in ("audio", "visual")
    }
    y = tensors.labels.numpy()
    rng = np.random.default_rng(0)
    runs = {m: ModalityRuns.empty(1, len(y), len(classes)) for m in ("audio", "visual")}
    folds = np.arange(len(y)) % cfg.folds
    for m in runs:
        for k in range(cfg.folds):
            held = np.flatnonzero(folds == k)
            p = rng.dirichlet(np.ones(len(classes)), len(held))
            runs[m].add(0, held, p, rng.random((4, len(held))).astype(np.float32))
    t = time.perf_counter()
    assemble_scores(y, folds, runs, cfg.calibration)
    result["assembly_seconds"] = round(time.perf_counter() - t, 2)
    result["matmul_flop_per_s"] = matmul_peak(args.threads)
    result["conv3x3"] = conv_efficiency(args.threads)
    meta_path = ingest.path / "scores.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        epochs: dict[str, int] = defaultdict(int)
        for f in meta["metrics"].get("folds", []):
            epochs[f["modality"]] += int(f.get("epochs") or 0)
        result["epochs_trained_by_fold_jobs"] = dict(epochs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


def markdown(r: dict[str, Any]) -> str:
    peak = r["matmul_flop_per_s"]
    lines = [
        "# Where `mmcurate score`'s time goes",
        "",
        f"{r['samples']} clips of `{r['ingest']}`; CPU defaults; {r['threads']} torch thread(s) per job (as each "
        "scoring job runs). Times in seconds, one process.",
        "",
        f"- start-up (import the CLI in a fresh interpreter): {r['startup_seconds']} s",
        f"- decode the shards into training tensors (once per run): {r['decode']['wall_seconds']} s wall, "
        f"{r['decode']['cpu_seconds']} CPU-s",
        f"- assembly (calibration, uncertainty, table) of the whole set: {r['assembly_seconds']} s",
        f"- float32 matmul (1024 x 1024), same threads, same run: {peak / 1e9:.1f} GFLOP/s",
        "",
        "| part of one training epoch | audio s | visual s |",
        "|---|---:|---:|",
    ]
    a, v = r["epoch"]["audio"], r["epoch"]["visual"]
    for part in a["seconds"]:
        lines.append(f"| {part} | {a['seconds'][part]:.3f} | {v['seconds'].get(part, 0):.3f} |")
    lines += [
        f"| **epoch total** ({a['steps']} steps of {a['batch']}) | {a['epoch_seconds']:.3f} "
        f"| {v['epoch_seconds']:.3f} |",
        "",
        "| modality | FLOP per step (fwd + bwd) | FLOP/s in forward + backward | share of matmul peak "
        "| FLOP/s over the whole step | share |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for m, e in r["epoch"].items():
        lines.append(
            f"| {m} | {e['flop_per_step'] / 1e9:.3f} G | {e['training_flop_per_s'] / 1e9:.2f} G "
            f"| {e['training_flop_per_s'] / peak:.0%} | {e['step_flop_per_s_all_parts'] / 1e9:.2f} G "
            f"| {e['step_flop_per_s_all_parts'] / peak:.0%} |"
        )
    lines += [
        "",
        "One 3 x 3 convolution, forward + backward, batch 64, channels-last, same threads: FLOP/s by width",
        "",
        "| channels | map | GFLOP/s | share of matmul peak |",
        "|---:|---:|---:|---:|",
        *[
            f"| {c['channels']} | {c['map']} x {c['map']} | {c['flop_per_s'] / 1e9:.2f} "
            f"| {c['flop_per_s'] / peak:.0%} |"
            for c in r.get("conv3x3", [])
        ],
    ]
    if "epochs_trained_by_fold_jobs" in r:
        lines += ["", f"Epochs the fold jobs of the finished run trained: {r['epochs_trained_by_fold_jobs']}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

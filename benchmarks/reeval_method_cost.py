"""Training cost of each re-evaluation method relative to ``joint``, measured in one process.

Loads the source once, then trains every method (``--fresh``) with the same settings and seed,
recording wall-clock and process CPU seconds per run; ratios are against ``joint`` from the same
run. CPU seconds are the steadier figure on a shared machine (one torch thread). Methods that
train extra models say so: UMT's teachers are the ``audio_only`` / ``visual_only`` runs, reused
when they ran earlier in the same list (their cost is then reported on their own rows).

    python benchmarks/reeval_method_cost.py --source /tmp/balanced --out /tmp/cost --epochs 6
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

import torch  # noqa: E402

from mmcurate.reeval.config import (  # noqa: E402
    ReevalConfig,  # noqa: E402
    TensorSettings,
    TrainConfig,
)
from mmcurate.reeval.sources import load_source, resolve_source  # noqa: E402
from mmcurate.reeval.trainer import train_run  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", required=True, help="a balanced export, Hub repo id or ingest+score dir")
    ap.add_argument("--out", required=True)
    ap.add_argument("--methods", default="all")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--width", type=int, default=4)
    ap.add_argument("--image-size", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=1, help="time each method this often; ratios: medians over rounds")
    args = ap.parse_args()

    torch.set_num_threads(1)
    kind, location = resolve_source(args.source, None)
    data = load_source(kind, location, TensorSettings(image_size=args.image_size), bins=10)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, width=args.width)
    # an untimed first run: the first training in a process pays one-off costs (kernels, allocator)
    train_run(
        "joint",
        data,
        TrainConfig(epochs=1, batch_size=args.batch_size, width=args.width),
        args.seed,
        Path(args.out) / "warmup",
        torch.device("cpu"),
        fresh=True,
    )
    names = ReevalConfig(methods=args.methods).method_list()
    timed: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    acc: dict[str, float] = {}
    for _ in range(args.rounds):
        for name in names:
            wall, cpu = time.perf_counter(), time.process_time()
            run = train_run(name, data, cfg, args.seed, Path(args.out), torch.device("cpu"), fresh=True)
            timed[name].append((time.perf_counter() - wall, time.process_time() - cpu))
            acc[name] = run.test["accuracy"]["overall"]
    joint = timed.get("joint")
    rows = []
    print(f"{'method':<12} {'wall s':>8} {'cpu s':>8} {'cpu / joint (median over rounds)':>34}")
    for name, times in timed.items():
        ratios = [c / j[1] for (_, c), j in zip(times, joint)] if joint else []
        row = {
            "method": name,
            "wall_s": [t[0] for t in times],
            "cpu_s": [t[1] for t in times],
            "test_acc": acc[name],
            "cpu_ratio_median": statistics.median(ratios) if ratios else None,
            "cpu_ratios": ratios,
        }
        rows.append(row)
        shown = f"{row['cpu_ratio_median']:.2f} ({', '.join(f'{r:.2f}' for r in ratios)})" if ratios else "n/a"
        print(f"{name:<12} {statistics.median(row['wall_s']):8.1f} {statistics.median(row['cpu_s']):8.1f} {shown:>34}")
    settings = {
        "source": args.source,
        "epochs": args.epochs,
        "width": args.width,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "train_size": len(data.train),
        "threads": 1,
        "rounds": args.rounds,
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "method_cost.json").write_text(json.dumps({"settings": settings, "runs": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

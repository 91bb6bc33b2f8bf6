"""What `mmcurate reeval` costs per method, and what the whole run costs beyond its training runs.

Runs the real command once (the default methods unless ``--methods``, ``--seeds``, ``--fresh``) in a
child process, measures its wall-clock and CPU seconds from outside, and reads the per-run and
per-method times the command itself records (``timings.json``). The difference between the whole
run and the sum of its training runs is what is paid once: start-up, loading the source into tensors
(once, shared by every method and seed), the report. Results: OUT.md and OUT.json.

    nice python benchmarks/reeval_time.py --source /tmp/accept/b480 --work /tmp/reeval-time \
--out benchmarks/results/reeval_time
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", required=True, help="a balanced export (or anything `mmcurate reeval` reads)")
    ap.add_argument("--work", type=Path, required=True, help="the reeval --out folder (replaced)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "reeval_time")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--methods", default=None, help="default: the command's default methods")
    args = ap.parse_args()
    argv = [sys.executable, "-m", "mmcurate", "reeval", args.source, "--out", str(args.work), "--overwrite"]
    argv += ["--seeds", args.seeds, "--fresh", "--device", "cpu"]
    if args.methods:
        argv += ["--methods", args.methods]
    env = {**os.environ, "MMCURATE_NO_PROGRESS": "1"}
    wall, cpu = time.perf_counter(), children_cpu()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=REPO)
    wall, cpu = time.perf_counter() - wall, children_cpu() - cpu
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        return proc.returncode
    timings = json.loads((args.work / "timings.json").read_text())
    results = json.loads((args.work / "results.json").read_text())
    sizes = results["data"]["split_sizes"]
    runs_wall = sum(r.get("seconds", 0.0) for r in timings["runs"])
    runs_cpu = sum(r.get("cpu_seconds", 0.0) for r in timings["runs"])
    doc: dict[str, Any] = {
        "source": args.source,
        "split_sizes": sizes,
        "seeds": args.seeds,
        "device": timings["device"],
        "command": {"wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1)},
        "runs": {"wall_seconds": round(runs_wall, 1), "cpu_seconds": round(runs_cpu, 1)},
        "methods": timings["methods"],
        "load_average_end": os.getloadavg()[0],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    total = sum(sizes.values())
    lines = [
        "# `mmcurate reeval`: time per method",
        "",
        f"{total} clips ({', '.join(f'{k} {v}' for k, v in sizes.items())}) of `{args.source}`; seeds "
        f"{args.seeds}; the command's defaults (CPU); device: {timings['device']}; load average at the end "
        f"{doc['load_average_end']:.1f} on {os.cpu_count()} cores. One process trains the runs one after "
        "another; CPU seconds hold on a loaded machine, wall seconds do not.",
        "",
        "| method | runs | wall s per run | CPU-s per run | CPU vs joint |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {m['method']} | {m['runs_timed']} | {m['seconds']} | {m['cpu_seconds']} | {m['cpu_vs_joint']} |"
            for m in doc["methods"]
        ),
        "",
        f"Whole command: {doc['command']['wall_seconds']} s wall, {doc['command']['cpu_seconds']} CPU-s. Its "
        f"training runs: {doc['runs']['wall_seconds']} s wall, {doc['runs']['cpu_seconds']} CPU-s. The rest "
        f"({doc['command']['wall_seconds'] - doc['runs']['wall_seconds']:.1f} s wall, "
        f"{doc['command']['cpu_seconds'] - doc['runs']['cpu_seconds']:.1f} CPU-s) is paid once per command: "
        "start-up, reading the source into tensors (once; every method and seed trains on the same tensors), "
        "the report and plots.",
        "",
    ]
    args.out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

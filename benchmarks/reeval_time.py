"""What `mmcurate reeval` costs per method, and what the whole run costs beyond its training runs.

Runs the real command once (the default methods unless ``--methods``, ``--seeds``, ``--fresh``) in a
child process (with ``--before TREE``, that tree's code first, then this checkout's, in the same run),
measures its wall-clock and CPU seconds from outside, and reads the per-run and
per-method times the command itself records (``timings.json``). The difference between the whole
run and the sum of its training runs is what is paid once: start-up, loading the source into tensors
(once, shared by every method and seed), the report. Results: OUT.md and OUT.json.

    git worktree add /tmp/wt-serial HEAD~1
    nice python benchmarks/reeval_time.py --source /tmp/accept/b480 --work /tmp/reeval-time \
--before /tmp/wt-serial --out benchmarks/results/reeval_time
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from score_speed import RUN_FROM_TREE, children_cpu  # noqa: E402  (run each tree's own code, timed alike)


def reeval_once(tree: Path, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Run ``mmcurate reeval`` with ``tree``'s code into ``work``; its times, from outside and from its
    own ``timings.json``."""
    argv = [sys.executable, "-c", RUN_FROM_TREE, str(tree), "reeval", args.source, "--out", str(work)]
    argv += ["--overwrite", "--seeds", args.seeds, "--fresh", "--device", "cpu"]
    if args.methods:
        argv += ["--methods", args.methods]
    env = {**os.environ, "MMCURATE_NO_PROGRESS": "1"}
    wall, cpu = time.perf_counter(), children_cpu()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=REPO)
    wall, cpu = time.perf_counter() - wall, children_cpu() - cpu
    if proc.returncode != 0:
        raise SystemExit(f"{tree}: reeval failed:\n{proc.stderr[-3000:]}")
    timings = json.loads((work / "timings.json").read_text())
    runs = timings["runs"]
    return {
        "tree": str(tree),
        "device": timings["device"],
        "engine_line": next((ln for ln in proc.stderr.splitlines() if " run(s) on " in ln), ""),
        "command": {"wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1)},
        "runs": {
            "wall_seconds": round(sum(r.get("seconds", 0.0) for r in runs), 1),
            "cpu_seconds": round(sum(r.get("cpu_seconds", 0.0) for r in runs), 1),
        },
        "methods": timings["methods"],
        "results_sha256": hashlib.sha256((work / "results.json").read_bytes()).hexdigest(),
        "split_sizes": json.loads((work / "results.json").read_text())["data"]["split_sizes"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", required=True, help="a balanced export (or anything `mmcurate reeval` reads)")
    ap.add_argument("--work", type=Path, required=True, help="a folder for the reeval outputs (replaced)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "reeval_time")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--methods", default=None, help="default: the command's default methods")
    ap.add_argument("--before", type=Path, default=None, help="a tree (git worktree) whose code is the baseline")
    args = ap.parse_args()
    trees = ([("before", args.before)] if args.before else []) + [("after", REPO)]
    shutil.rmtree(args.work, ignore_errors=True)
    done = {label: reeval_once(tree, args, args.work / label) for label, tree in trees}
    doc: dict[str, Any] = {
        "source": args.source,
        "seeds": args.seeds,
        "trees": done,
        "load_average_end": os.getloadavg()[0],
        "cores": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    sizes = done["after"]["split_sizes"]
    lines = [
        "# `mmcurate reeval`: time per method" + (", before and after" if args.before else ""),
        "",
        f"{sum(sizes.values())} clips ({', '.join(f'{k} {v}' for k, v in sizes.items())}) of `{args.source}`; "
        f"seeds {args.seeds}; each tree's defaults (CPU); load average at the end {doc['load_average_end']:.1f} on "
        f"{doc['cores']} cores. CPU seconds hold on a loaded machine, wall seconds do not.",
        "",
    ]
    for label, r in done.items():
        extra = r["command"]["cpu_seconds"] - r["runs"]["cpu_seconds"]
        lines += [
            f"## {label}: `{r['tree']}`",
            "",
            f"{r['engine_line'] or 'one run at a time'}; device {r['device']}.",
            "",
            "| method | runs | wall s per run | CPU-s per run | CPU vs joint |",
            "|---|---:|---:|---:|---:|",
            *(
                f"| {m['method']} | {m['runs_timed']} | {m['seconds']} | {m['cpu_seconds']} | {m['cpu_vs_joint']} |"
                for m in r["methods"]
            ),
            "",
            f"Whole command: {r['command']['wall_seconds']} s wall, {r['command']['cpu_seconds']} CPU-s. Its "
            f"training runs: {r['runs']['wall_seconds']} s wall, {r['runs']['cpu_seconds']} CPU-s (summed over "
            f"runs). The command's CPU-s beyond its runs' ({extra:.1f}) "
            "is paid once: start-up, reading the source into tensors (once: every method and seed trains on the same "
            "tensors), the report and plots.",
            "",
        ]
    if args.before:
        b, a = done["before"]["command"], done["after"]["command"]
        same = done["before"]["results_sha256"] == done["after"]["results_sha256"]
        lines += [
            f"Ratio after / before: wall {a['wall_seconds'] / b['wall_seconds']:.2f}, CPU "
            f"{a['cpu_seconds'] / b['cpu_seconds']:.2f}. results.json {'identical' if same else 'DIFFERENT'} "
            "(sha256).",
            "",
        ]
    args.out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

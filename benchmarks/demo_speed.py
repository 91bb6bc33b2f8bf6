"""``mmcurate demo`` before and after, in one run: wall and CPU seconds of the whole demo.

Each tree (``--baseline-tree``, a checkout of the code before, e.g. ``git worktree add /tmp/before
d942917``; and this tree) runs ``mmcurate demo`` in a fresh work directory in a child interpreter
(import, generation of the synthetic set, ingest, score, report, balance, reeval), rounds
alternating between the trees. Ratios are against the baseline measured in the same run; CPU
seconds hold on a loaded machine, wall time does not.

    nice python benchmarks/demo_speed.py --baseline-tree /tmp/before --out benchmarks/results/demo_speed
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from score_speed import RUN_FROM_TREE, _commit, children_cpu  # noqa: E402


def demo_once(tree: Path, work: Path) -> dict[str, Any]:
    if work.exists():
        shutil.rmtree(work)
    env = {**os.environ, "MMCURATE_NO_PROGRESS": "1"}
    cpu, wall = children_cpu(), time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", RUN_FROM_TREE, str(tree), "demo", "--workdir", str(work)],
        env=env,
        capture_output=True,
        text=True,
    )
    wall, cpu = time.perf_counter() - wall, children_cpu() - cpu
    if proc.returncode != 0:
        raise SystemExit(f"{tree}: demo failed:\n{proc.stderr[-3000:]}")
    return {"wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline-tree", type=Path, required=True, help="checkout of the code before")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--scratch", type=Path, default=Path("/tmp/mmcurate-demo-speed"))
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "demo_speed")
    args = ap.parse_args()
    trees = {"before": args.baseline_tree.resolve(), "after": REPO}
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in trees}
    for r in range(args.rounds):
        for name in list(trees) if r % 2 == 0 else list(reversed(trees)):
            runs[name].append(demo_once(trees[name], args.scratch / name))
            print(name, r, runs[name][-1], flush=True)
    med = {
        k: {m: float(np.median([x[m] for x in v])) for m in ("wall_seconds", "cpu_seconds")} for k, v in runs.items()
    }
    result = {
        "baseline_commit": _commit(args.baseline_tree),
        "after_commit": _commit(REPO),
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "runs": runs,
        "median": med,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    b, a = med["before"], med["after"]
    text = "\n".join(
        [
            f"# `mmcurate demo` before ({result['baseline_commit']}) and after ({result['after_commit']})",
            "",
            f"Each tree's own defaults, fresh work directory, {args.rounds} round(s) in one run; load average at "
            f"the end {result['load_average_at_end'][0]:.1f} on {result['cpu_count']} cores.",
            "",
            "| | wall s (median) | CPU s (median) |",
            "|---|---:|---:|",
            f"| before | {b['wall_seconds']:.1f} | {b['cpu_seconds']:.1f} |",
            f"| after | {a['wall_seconds']:.1f} | {a['cpu_seconds']:.1f} |",
            "",
            f"Ratio after / before: wall {a['wall_seconds'] / b['wall_seconds']:.2f}, "
            f"CPU {a['cpu_seconds'] / b['cpu_seconds']:.2f}.",
            "",
        ]
    )
    args.out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()

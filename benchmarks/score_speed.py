"""``mmcurate score`` before and after, on the same ingest, in one run: time and the AUROC it reaches.

Each tree (``--baseline-tree`` = a checkout of the code before, e.g. ``git worktree add /tmp/before
d942917``; and this tree) scores a copy of the same ingest folder with its own defaults, in a child
interpreter (so its import and start-up are counted), rounds alternating between the trees. Per run:
wall seconds, CPU seconds of the child and its children, and on sets with ground-truth conditions the
AUROC of d (calibrated) per condition against the clean clips. Ratios are against the baseline
measured in the same run.

    git worktree add /tmp/before d942917
    nice python benchmarks/score_speed.py --ingest /tmp/mmb/av_digits/work/ingest \
--baseline-tree /tmp/before --rounds 1 --out benchmarks/results/score_speed

The machine may be shared: CPU seconds hold on a loaded machine, wall time does not.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _discrepancy_eval import condition_aurocs  # noqa: E402

#: run ``mmcurate`` from the tree given as the first argument. An editable install's import finder
#: would otherwise serve this checkout's package even with the other tree first on PYTHONPATH
RUN_FROM_TREE = """
import runpy, sys
tree = sys.argv.pop(1)
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "").lower()]
sys.path.insert(0, tree)
import mmcurate
assert mmcurate.__file__.startswith(tree), (mmcurate.__file__, tree)
sys.argv[0] = "mmcurate"
runpy.run_module("mmcurate", run_name="__main__", alter_sys=True)
"""


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def score_once(tree: Path, ingest: Path, work: Path, extra: list[str]) -> dict[str, Any]:
    """Copy ``ingest`` to ``work`` (without scores) and score it with ``tree``'s code; timed."""
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(
        ingest, work, ignore=shutil.ignore_patterns("scores.*", "score_runs", "scorers", "tensor_cache", ".mmcurate*")
    )
    env = {**os.environ, "MMCURATE_NO_PROGRESS": "1"}
    cpu, wall = children_cpu(), time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", RUN_FROM_TREE, str(tree), "score", str(work), *extra],
        env=env,
        capture_output=True,
        text=True,
    )
    wall, cpu = time.perf_counter() - wall, children_cpu() - cpu
    if proc.returncode not in (0, 2):
        raise SystemExit(f"{tree}: score failed:\n{proc.stderr[-3000:]}")
    scores = pq.read_table(work / "scores.parquet").sort_by("sample_id")
    manifest = pq.read_table(work / "manifest.parquet").sort_by("sample_id")
    meta = json.loads((work / "scores.json").read_text())
    out: dict[str, Any] = {"wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1)}
    if "condition" in manifest.column_names:
        cond = np.asarray(manifest.column("condition").to_pylist(), dtype=object)
        sev = (
            np.asarray(manifest.column("severity").to_pylist(), dtype=object)
            if "severity" in manifest.column_names
            else cond
        )
        aur = condition_aurocs(scores.column("discrepancy").to_numpy(), cond, sev)
        out["auroc"] = {k: round(v["auroc"], 4) for k, v in aur.items()}
    out["oof_accuracy"] = {m: meta["metrics"].get(f"oof_accuracy_{m}") for m in ("audio", "visual")}
    out["self_check"] = (meta.get("health") or {}).get("status", "n/a")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ingest", type=Path, required=True, help="an ingest folder (not modified: copies are scored)")
    ap.add_argument("--baseline-tree", type=Path, required=True, help="checkout of the code before")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--scratch", type=Path, default=Path("/tmp/mmcurate-score-speed"))
    ap.add_argument("--extra", default="", help="extra options for both trees' `mmcurate score`")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "score_speed")
    args = ap.parse_args()
    trees = {"before": args.baseline_tree.resolve(), "after": REPO}
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in trees}
    extra = args.extra.split()
    for r in range(args.rounds):
        order = list(trees) if r % 2 == 0 else list(reversed(trees))
        for name in order:
            res = score_once(trees[name], args.ingest, args.scratch / name, extra)
            runs[name].append(res)
            print(name, r, res, flush=True)
    result = {
        "ingest": str(args.ingest),
        "samples": pq.read_metadata(args.ingest / "manifest.parquet").num_rows,
        "baseline_tree": str(args.baseline_tree),
        "baseline_commit": _commit(args.baseline_tree),
        "after_commit": _commit(REPO),
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


def _commit(tree: Path) -> str:
    proc = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return proc.stdout.strip() or "unknown"


def markdown(result: dict[str, Any]) -> str:
    before, after = result["runs"]["before"], result["runs"]["after"]

    def med(runs: list[dict[str, Any]], key: str) -> float:
        return float(np.median([r[key] for r in runs]))

    lines = [
        f"# `mmcurate score` before ({result['baseline_commit']}) and after ({result['after_commit']})",
        "",
        f"{result['samples']} clips of `{result['ingest']}`, each tree's defaults, {len(before)} round(s), "
        f"both measured in the same run; load average at the end {result['load_average_at_end'][0]:.1f} "
        f"on {result['cpu_count']} cores (CPU seconds hold under load, wall time does not).",
        "",
        "| | wall s (median) | CPU s (median) | self-check | out-of-fold accuracy audio / visual |",
        "|---|---:|---:|---|---|",
    ]
    for name, runs in (("before", before), ("after", after)):
        acc = runs[0]["oof_accuracy"]
        lines.append(
            f"| {name} | {med(runs, 'wall_seconds'):.1f} | {med(runs, 'cpu_seconds'):.1f} | {runs[0]['self_check']} "
            f"| {acc['audio']} / {acc['visual']} |"
        )
    lines += [
        "",
        f"Ratio after / before: wall {med(after, 'wall_seconds') / med(before, 'wall_seconds'):.2f}, "
        f"CPU {med(after, 'cpu_seconds') / med(before, 'cpu_seconds'):.2f}.",
        "",
    ]
    if "auroc" in before[0]:
        lines += ["| condition | AUROC before | AUROC after | change |", "|---|---:|---:|---:|"]
        for cond, b in before[0]["auroc"].items():
            a = after[0]["auroc"].get(cond)
            lines.append(
                f"| {cond} | {b:.4f} | {a:.4f} | {a - b:+.4f} |" if a is not None else f"| {cond} | {b} | | |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

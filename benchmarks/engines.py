"""Engine overhead and scaling: ``--engine ray`` against the local engine, in one run, on av_digits.

Ray is started once (as a running cluster would be) with this machine's cores, on loopback; its
start-up time is reported apart. Then, in the same process and on the same inputs:

* ingest of ``--clips`` av_digits clips: local with 1 and 2 worker processes, Ray with 1 and 2
  tasks at once (``--cpus-per-job`` 2 and 1 on a 2-CPU instance); clips/s each, and the ray/local
  ratio at 2 workers (target <= 1.2x); outputs are checked to be the same bytes;
* the out-of-fold score of that ingest (``--folds`` 5 by default): local (inline, one job after the
  other) against Ray (one task per job, each with all cores, so one at a time: the engine's own
  overhead); wall times and their ratio; scores checked byte-equal.

    nice -n 10 python benchmarks/engines.py --out /tmp/engines            # the issue's figures
    nice -n 10 python benchmarks/engines.py --out /tmp/engines --clips 600 --epochs 3   # a quicker look

Run it with ``nice`` on a shared machine and quote ratios from one run, not absolute figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

os.environ.setdefault("MMCURATE_NO_PROGRESS", "1")

from conftest import SHARED_DATA, write_av_digits_manifest  # noqa: E402

from mmcurate.execution import ExecutionConfig, available_cores  # noqa: E402
from mmcurate.ingest import IngestConfig, run_ingest  # noqa: E402
from mmcurate.score import ScoreConfig, ScoreStageConfig, run_score  # noqa: E402
from mmcurate.store import Workdir  # noqa: E402


def digest(folder: Path, names: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and (p.name in names or p.parent.name == "shards"):
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def ingest_once(
    av_digits: Path, manifest: Path, work: Path, workers: int, execution: ExecutionConfig
) -> tuple[float, int]:
    shutil.rmtree(work, ignore_errors=True)
    started = time.perf_counter()
    result = run_ingest(
        Workdir(work),
        IngestConfig(
            raw_dir=av_digits, manifest=manifest, group_column="speaker", workers=workers, execution=execution
        ),
    )
    return time.perf_counter() - started, result.n_ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--clips", type=int, default=3000, help="av_digits clips to ingest (all 3000 by default)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=12, help="scorer epochs (12: the default)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument(
        "--score-only", action="store_true", help="ingest once (locally), compare the engines on score only"
    )
    args = ap.parse_args()

    import ray

    av_digits = SHARED_DATA / "av_digits"
    args.out.mkdir(parents=True, exist_ok=True)
    per_format = None if args.clips >= 3000 else max(1, args.clips // 7)
    manifest = write_av_digits_manifest(av_digits, args.out / "inputs.csv", per_format=per_format)
    cores = available_cores()
    started = time.perf_counter()
    ray.init(num_cpus=cores, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    ray_start = time.perf_counter() - started
    print(
        f"machine: {cores} cores (shared with other jobs: compare ratios, not absolute figures); "
        f"ray start-up {ray_start:.1f} s (not counted below)"
    )

    figures: dict[str, dict] = {"ray_start_seconds": {"value": round(ray_start, 2)}}
    digests = {}
    rows = []
    runs = [
        ("local, 1 worker", 1, ExecutionConfig()),
        ("ray, 1 task at a time", 0, ExecutionConfig(engine="ray", cpus_per_job=cores)),
        (f"local, {cores} workers", cores, ExecutionConfig()),
        (f"ray, {cores} tasks at a time", 0, ExecutionConfig(engine="ray")),
    ]
    for name, workers, execution in runs[2:3] if args.score_only else runs:
        work = args.out / "ingest-work"
        seconds, n = ingest_once(av_digits, manifest, work, workers, execution)
        digests[name] = digest(work / "ingest", ("manifest.parquet", "failures.jsonl", "classes.json"))
        rows.append((name, seconds, n / seconds))
        figures[f"ingest: {name}"] = {
            "seconds": round(seconds, 2),
            "clips_per_second": round(n / seconds, 2),
            "clips": n,
        }
        print(f"ingest {n} clips, {name:<24} {seconds:7.1f} s  {n / seconds:6.1f} clips/s")
    same = len(set(digests.values())) == 1
    if not args.score_only:
        ratio = rows[3][1] / rows[2][1]
        print(
            f"ingest: ray/local wall time at {cores} workers = {ratio:.2f}x (target <= 1.2x); "
            f"outputs identical: {same}"
        )
        print(
            f"ingest scaling: local {rows[2][2] / rows[0][2]:.2f}x, ray {rows[3][2] / rows[1][2]:.2f}x "
            f"from 1 to {cores} workers"
        )
        figures["ingest_ratio_ray_over_local"] = {"value": round(ratio, 3), "identical_outputs": same}

    scorer = ScoreConfig(folds=args.folds, epochs=args.epochs, repeats=args.repeats, device="cpu")
    score_digests, times = {}, {}
    for name, execution in (("local", ExecutionConfig()), ("ray", ExecutionConfig(engine="ray"))):
        work = args.out / f"score-{name}"
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(args.out / "ingest-work", work)
        started = time.perf_counter()
        run_score(Workdir(work), ScoreStageConfig(scorer_settings=scorer, execution=execution))
        times[name] = time.perf_counter() - started
        score_digests[name] = hashlib.sha256((work / "ingest" / "scores.parquet").read_bytes()).hexdigest()
        print(
            f"score {args.folds}-fold x {args.repeats} repeat(s), {args.epochs} epochs, {name:<6} {times[name]:7.1f} s"
        )
    sratio = times["ray"] / times["local"]
    same_scores = score_digests["ray"] == score_digests["local"]
    print(
        f"score: ray/local wall time = {sratio:.2f}x (target <= 1.2x; both train one job at a time with {cores} "
        f"threads: the engine's overhead); scores identical: {same_scores}"
    )
    figures["score"] = {
        "local_seconds": round(times["local"], 2),
        "ray_seconds": round(times["ray"], 2),
        "ratio_ray_over_local": round(sratio, 3),
        "identical_scores": same_scores,
    }
    (args.out / "engines.json").write_text(json.dumps(figures, indent=2))
    ray.shutdown()
    return 0 if same and same_scores else 1


if __name__ == "__main__":
    raise SystemExit(main())

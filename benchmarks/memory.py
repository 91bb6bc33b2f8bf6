"""Peak memory of ``mmcurate score`` against the set's size: memory-mapped tensor cache vs in-memory decode.

For each size in ``--sizes`` (default 3000,12000): ``n`` av_digits clips, repeated under distinct
names (hard links in label folders, as ``benchmarks/ingest.py --memory`` does) past its 3000, are
ingested at ``--size 48`` (2 workers), then scored twice, each time from a fresh copy of the ingest
without scores:

* **cache**: ``mmcurate score --epochs 1 --no-save-scorers`` (the default: the decode goes into
  ``tensor_cache/`` and every job memory-maps it);
* **memory**: the same with ``--no-tensor-cache`` (the whole set decoded into the main process's RAM,
  the pool workers forked with it);
* **reeval** (with ``--reeval``): ``mmcurate reeval`` on the scored cache-mode ingest (the biased data, every
  clip), one method, one epoch: ``--methods joint --epochs 1``, to see how re-evaluation's memory grows.

The process tree is sampled every second from ``/proc``: peak RSS of the main process (VmHWM and
``ru_maxrss``), of any worker (VmHWM), and of the tree: RSS, RssAnon (private memory, what cannot be
dropped under pressure) and PSS (shared pages split between the processes). A memory-mapped file's pages
count in RSS (RssFile) while a process touches them, but they are page cache: clean, shared, and
dropped when memory is short; RssAnon is the figure that must stay flat. Seconds and CPU-seconds
(user + system of the whole tree) are reported next to each other. Usage::

    nice python benchmarks/memory.py --sizes 3000,12000 --out benchmarks/results/memory.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AV_DIGITS = REPO.parent / "shared" / "data" / "av_digits"
SCORE_ARGS = ["--epochs", "1", "--no-save-scorers"]
REEVAL_ARGS = ["--methods", "joint", "--epochs", "1", "--seeds", "0"]


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                out += [int(x) for x in fh.read().split()]
    except OSError:
        pass
    return out


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += _children(p)
    return out


def _status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem"):
                    out[key] = int(rest.split()[0])
    except OSError:
        pass
    return out


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_sampled(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    """Run ``cmd``; its peaks (MB), seconds and CPU-seconds."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peaks = dict.fromkeys(("main_hwm", "worker_hwm", "tree_rss", "tree_anon", "tree_file", "tree_pss"), 0)
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            pids = _tree(proc.pid)
            st = {p: _status(p) for p in pids}
            peaks["main_hwm"] = max(peaks["main_hwm"], st[proc.pid].get("VmHWM", 0))
            for p in pids[1:]:
                peaks["worker_hwm"] = max(peaks["worker_hwm"], st[p].get("VmHWM", 0))
            peaks["tree_rss"] = max(peaks["tree_rss"], sum(s.get("VmRSS", 0) for s in st.values()))
            peaks["tree_anon"] = max(peaks["tree_anon"], sum(s.get("RssAnon", 0) for s in st.values()))
            peaks["tree_file"] = max(peaks["tree_file"], sum(s.get("RssFile", 0) for s in st.values()))
            peaks["tree_pss"] = max(peaks["tree_pss"], sum(_pss_kb(p) for p in pids))
            stop.wait(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    stop.set()
    sampler.join()
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {err[-2000:]}")
    out = {f"{k}_mb": round(v / 1024, 1) for k, v in peaks.items()}
    out["main_ru_maxrss_mb"] = round(usage.ru_maxrss / 1024, 1)
    out["seconds"] = round(time.perf_counter() - t, 1)
    out["cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 1)  # wait4: the child and its reaped descendants
    return out


def ingest(n: int, av_digits: Path, root: Path, env: dict[str, str]) -> Path:
    with open(av_digits / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    raw = root / "raw"
    for k in range(n):
        r = rows[k % len(rows)]
        src = av_digits / r["path"]
        dst = raw / r["label"] / f"{k:06d}_{src.name}"
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
    out = root / "ingest"
    cmd = [sys.executable, "-m", "mmcurate", "ingest", str(raw), "--out", str(out), "--size", "48", "--workers", "2"]
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"ingest of {n} clips failed: {done.stderr[-2000:]}")
    shutil.rmtree(raw)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="3000,12000")
    ap.add_argument("--av-digits", type=Path, default=AV_DIGITS)
    ap.add_argument("--extra", default="", help="more score arguments, space-separated (e.g. '--repeats 1')")
    ap.add_argument("--modes", default="cache,memory")
    ap.add_argument("--reeval", action="store_true", help="also re-evaluate the scored ingest (mode 'reeval')")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "memory.json")
    args = ap.parse_args()
    env = {**os.environ, "MMCURATE_NO_PROGRESS": "1", "PYTHONPATH": str(REPO)}
    results = []
    for n in [int(x) for x in args.sizes.split(",")]:
        with tempfile.TemporaryDirectory(prefix="mmcurate_scoremem_") as tmp:
            base = ingest(n, args.av_digits, Path(tmp), env)
            for mode in args.modes.split(","):
                work = Path(tmp) / mode
                shutil.copytree(base, work)
                cmd = [sys.executable, "-m", "mmcurate", "score", str(work), *SCORE_ARGS, *args.extra.split()]
                if mode == "memory":
                    cmd.append("--no-tensor-cache")
                res = run_sampled(cmd, env)
                cache = work / "tensor_cache"
                res["cache_mb"] = (
                    round(sum(f.stat().st_size for f in cache.rglob("*") if f.is_file()) / 2**20, 1)
                    if cache.exists()
                    else 0.0
                )
                row = {"clips": n, "mode": mode, "command": " ".join(["mmcurate", *cmd[3:]]), **res}
                print(json.dumps(row), flush=True)
                results.append(row)
                if args.reeval and mode == "cache":
                    cmd = [sys.executable, "-m", "mmcurate", "reeval", str(work), *REEVAL_ARGS]
                    cmd += ["--out", str(work / "reeval")]
                    row = {"clips": n, "mode": "reeval", "command": " ".join(["mmcurate", *cmd[3:]])}
                    row.update(run_sampled(cmd, env))
                    print(json.dumps(row), flush=True)
                    results.append(row)
                shutil.rmtree(work)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""The published re-evaluation on an av_digits-style set: speaker-disjoint, with paired intervals.

Issue 24, item 3. Draws av_digits-style sets with :mod:`mmcurate.synth.avdigits` (FSDD speech +
MNIST digits; one set uses every FSDD recording at most once: at most 3000 clips, 6 speakers;
``--sets K`` draws K sets with other seeds, so a recording appears in up to K clips with other
pictures and corruptions), then runs the chain as a user would, each stage a
``python -m mmcurate`` process:

1. ``ingest`` with the speaker as the group column (the generator's own split is left out: it
   shares speakers between its splits);
2. ``score`` (the CPU defaults, or ``--score-args``);
3. ``balance --bins B --split S --shortfall shrink`` **without** ``--ignore-groups``: whole
   speakers per split (6 speakers: 67/16/17 gives 4 / 1 / 1), exactly uniform over the bins;
4. ``reeval`` of every method with ``--seeds``; with ``--time-methods`` each method first runs in
   its own process (CPU seconds per method, minus a process that only loads the data and reuses a
   finished run), then one run over all methods reuses every finished run and writes the tables.

An exactly uniform set is as large as its sparsest bin allows; the report names that bin and its
pool when the test split is under ``--min-test`` clips (the extreme visual-preferred bin needs
clips whose audio is ruined and whose picture is clean: harsh ``--audio-noise``).

Then it tests the seed paper's two findings with paired statistics on the same test clips, per
method (the imbalance methods, i.e. every method but the unimodal and joint baselines; a method
at chance is not counted, and if a unimodal reference is at chance the report says the findings
cannot be tested):

(a) on each preferred subset the method loses to that modality's unimodal model: the mean over
    d > 0 clips of correct(method) - correct(audio_only), and over d < 0 clips against
    visual_only, each with its paired 95 % bootstrap interval (clips and seeds) and the exact
    sign test (:mod:`mmcurate.reeval.stats`);
(b) a compromise that loses most at large |d|: the method beats the *other* unimodal model on
    each side (it lies between the two), and its loss to the preferred model per clip is larger
    on |d| > T_large than on |d| <= T_large (difference of the two regions' mean losses, clips
    resampled within each region, seeds paired).

Writes ``OUT/reeval_av_digits.md`` (or, with ``--publish``, ``benchmarks/results/reeval_av_digits.md``
plus the full tables under ``benchmarks/results/reeval_av_digits/``) with the sizes, the groups
statement, wall and CPU seconds per stage and per method, and the findings.

    # trial (minutes)
    python benchmarks/reeval_av_digits.py --out /tmp/rad-trial --clips 600 --bins 4 --epochs 5 --seeds 0 \\
        --time-methods
    # the published run (hours)
    python benchmarks/reeval_av_digits.py --out /tmp/rad --sets 2 --clips 3000 --bins 10 --epochs 20 \\
        --seeds 0,1,2 --time-methods --publish

Every stage is skipped when its output is complete, so an interrupted run continues.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MMCURATE_SHARED_DATA", REPO.parent / "shared" / "data"))
sys.path.insert(0, str(REPO))

from mmcurate.reeval.methods import METHODS  # noqa: E402
from mmcurate.reeval.stats import Bootstrap, paired_difference  # noqa: E402

BASELINES = ("audio_only", "visual_only", "joint")
PREFERRED = {"audio": "audio_only", "visual": "visual_only"}


# ----------------------------------------------------------------------------------------- stages


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_stage(name: str, argv: list[str], timings: dict[str, dict[str, float]], log: Path) -> None:
    """One ``python -m mmcurate`` process; its wall and CPU seconds (process tree) go to ``timings``."""
    cmd = [sys.executable, "-m", "mmcurate", *argv]
    print(f"[{name}] {shlex.join(cmd)}", flush=True)
    env = {**os.environ, "MMCURATE_NO_PROGRESS": "1", "PYTHONPATH": str(REPO)}
    cpu0, t0 = _cpu_children(), time.perf_counter()
    with open(log, "a") as fh:
        fh.write(f"\n$ {shlex.join(cmd)}\n")
        fh.flush()
        proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)
    wall, cpu = time.perf_counter() - t0, _cpu_children() - cpu0
    timings[name] = {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1)}
    print(f"[{name}] exit {proc.returncode}: {wall:.0f} s wall, {cpu:.0f} CPU-s", flush=True)
    if proc.returncode != 0:
        sys.exit(f"{name} failed (exit {proc.returncode}); see {log}")


def generate(raw: Path, args: argparse.Namespace) -> Path:
    """Draw the set(s) (once) and write one ingest manifest with the speaker as group and no split.

    ``--sets K`` draws K sets with seeds ``data_seed + k`` into ``raw/set<k>``: each uses every FSDD
    recording at most once, so a recording can appear in up to K clips, with other pictures and
    corruptions. The speaker stays the group, so no recording crosses splits either."""
    from mmcurate.synth.avdigits import AVDigitsSpec, _floats, _levels, generate_avdigits

    rows = []
    for k in range(args.sets):
        spec = AVDigitsSpec(
            n_clips=args.clips,
            seed=args.data_seed + k,
            visual_mismatch=args.visual_mismatch,
            visual_noise=args.visual_noise,
            audio_noise=args.audio_noise,
            audio_snr_db=_floats(args.snr),
            visual_levels=_levels(args.visual_levels),
        )
        folder = raw / f"set{k}"
        if not (folder / "labels.csv").is_file():
            generate_avdigits(folder, spec, SHARED / "fsdd" / "recordings", SHARED / "mnist_t10k")
        with open(folder / "labels.csv", newline="") as src:
            for r in csv.DictReader(src):
                rows.append([f"set{k}/{r['path']}", r["label"], r["speaker"], r["condition"], r["severity"]])
    manifest = raw.parent / "inputs.csv"
    with open(manifest, "w", newline="") as dst:
        w = csv.writer(dst)
        w.writerow(["path", "label", "speaker", "condition", "severity"])
        w.writerows(rows)
    return manifest


# ----------------------------------------------------------------------------------------- findings


def load_correctness(reeval: Path, methods: list[str], seeds: list[int]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """method -> (seeds, clips) correctness from the runs' predictions; the test clips' discrepancy."""
    out: dict[str, np.ndarray] = {}
    d = None
    ids = None
    for m in methods:
        rows = []
        for s in seeds:
            t = pq.read_table(reeval / "runs" / m / f"seed{s}" / "predictions.parquet")
            if ids is None:
                ids, d = t.column("sample_id").to_pylist(), np.asarray(t.column("discrepancy").to_pylist(), float)
            assert t.column("sample_id").to_pylist() == ids, f"{m} seed {s}: other test clips"
            rows.append(np.asarray(t.column("pred").to_pylist()) == np.asarray(t.column("label").to_pylist()))
        out[m] = np.stack(rows).astype(np.float64)
    assert d is not None
    return out, d


def _ci(x: Any) -> dict[str, Any]:
    return x.to_dict() if hasattr(x, "to_dict") else x


def findings(reeval: Path, seeds: list[int], large: float) -> dict[str, Any]:
    """Per imbalance method: (a) and (b) with paired intervals (see the module docstring)."""
    doc = json.loads((reeval / "results.json").read_text())
    methods = [r for r in dict.fromkeys(run["method"] for run in doc["runs"])]
    correct, d = load_correctness(reeval, methods, seeds)
    boot = Bootstrap(len(seeds))
    audio_side, visual_side = d > 0, d < 0
    side_pref = np.where(audio_side, 0, 1)  # 0: audio_only preferred, 1: visual_only
    uni = np.stack([correct["audio_only"], correct["visual_only"]])  # (2, seeds, clips)
    n_clips = d.size
    idx = np.arange(n_clips)
    pref = uni[side_pref, :, idx].T  # (seeds, clips): the preferred model's correctness per clip
    other = uni[1 - side_pref, :, idx].T
    scored = audio_side | visual_side
    outer, inner = scored & (np.abs(d) > large), scored & (np.abs(d) <= large)
    out: dict[str, Any] = {"large": large, "methods": {}, "at_chance": doc.get("at_chance", {})}
    for m in methods:
        if m in ("audio_only", "visual_only"):
            continue
        c = correct[m]
        entry: dict[str, Any] = {
            "a_audio": _ci(paired_difference(c[:, audio_side], pref[:, audio_side], boot, "a_audio")),
            "a_visual": _ci(paired_difference(c[:, visual_side], pref[:, visual_side], boot, "a_visual")),
            "b_other_audio": _ci(paired_difference(c[:, audio_side], other[:, audio_side], boot, "a_audio")),
            "b_other_visual": _ci(paired_difference(c[:, visual_side], other[:, visual_side], boot, "a_visual")),
        }
        loss_outer = boot.means((c - pref)[:, outer], "b_outer")
        loss_inner = boot.means((c - pref)[:, inner], "b_inner")
        gap = loss_outer - loss_inner
        mean_gap = (
            float((c - pref)[:, outer].mean() - (c - pref)[:, inner].mean()) if outer.any() and inner.any() else None
        )
        lo, hi = (
            (float(np.quantile(gap, 0.025)), float(np.quantile(gap, 0.975))) if mean_gap is not None else (None, None)
        )
        entry["b_large_minus_small"] = {
            "mean": mean_gap,
            "ci_low": lo,
            "ci_high": hi,
            "outer": int(outer.sum()),
            "inner": int(inner.sum()),
        }
        a_holds = all(entry[k] and entry[k]["significant"] and entry[k]["mean"] < 0 for k in ("a_audio", "a_visual"))
        compromise = all(
            entry[k] and entry[k]["significant"] and entry[k]["mean"] > 0 for k in ("b_other_audio", "b_other_visual")
        )
        worst_large = mean_gap is not None and hi is not None and hi < 0
        entry["a_holds"], entry["b_holds"] = a_holds, bool(compromise and worst_large)
        entry["b_compromise"], entry["b_worst_at_large"] = compromise, bool(worst_large)
        out["methods"][m] = entry
    out["test_clips"] = int(n_clips)
    out["audio_pref_clips"], out["visual_pref_clips"] = int(audio_side.sum()), int(visual_side.sum())
    return out


def size_check(summary: dict[str, Any], min_test: int) -> str | None:
    """A sentence when the balanced test split is smaller than ``min_test``, naming the bin whose pool limited it."""
    test = int(summary.get("split_sizes", {}).get("test", 0))
    if test >= min_test:
        return None
    pools = summary.get("pool_per_bin") or []
    edges = summary.get("edges") or []
    if not pools:
        return f"the test split holds {test} clips (fewer than {min_test})"
    b = int(np.argmin(pools))
    where = f"[{edges[b]:+.1f}, {edges[b + 1]:+.1f})" if len(edges) > b + 1 else f"bin {b}"
    return (
        f"the test split holds {test} clips (fewer than {min_test}), too few for paired intervals narrower than "
        f"10-point differences: an exactly uniform set is limited by its sparsest bin, {where} with {pools[b]} of "
        f"{sum(pools)} scored clips (pools per bin: {', '.join(map(str, pools))}). Draw more clips of the kind that "
        "lands there (for the most visual-preferred bins: more, harsher --audio-noise; for the most audio-preferred: "
        "--visual-mismatch), or use fewer --bins"
    )


def _fmt(e: dict[str, Any] | None, flagged: bool = False) -> str:
    if not e or e.get("mean") is None:
        return ""
    text = f"{100 * e['mean']:+.1f} [{100 * e['ci_low']:+.1f}, {100 * e['ci_high']:+.1f}]"
    marked = e.get("significant", e["ci_low"] > 0 or e["ci_high"] < 0) and not flagged
    return f"**{text}**" if marked else text


def write_markdown(path: Path, args: argparse.Namespace, info: dict[str, Any], f: dict[str, Any]) -> None:
    doc = info["results"]
    sizes = doc["data"]["split_sizes"]
    imbalance = [m for m in f["methods"] if m not in BASELINES]
    flagged = set(f["at_chance"])
    counted = [m for m in imbalance if m not in flagged]
    a = [m for m in counted if f["methods"][m]["a_holds"]]
    b = [m for m in counted if f["methods"][m]["b_holds"]]
    reuse = (
        ""
        if args.sets == 1
        else f" to {args.data_seed + args.sets - 1}: each FSDD recording in up to {args.sets} clips"
    )
    lines = [
        "# All methods on a speaker-disjoint av_digits-style set, with paired intervals (issue 24)",
        "",
        f"Set: {args.sets} x {args.clips} clips drawn by `mmcurate.synth.avdigits` (seed {args.data_seed}{reuse}; "
        "visual mismatch "
        f"{args.visual_mismatch}, visual noise {args.visual_noise} at {args.visual_levels}, audio noise "
        f"{args.audio_noise} at SNR {args.snr} dB), ingested with the speaker as group, scored with "
        f"`mmcurate score {args.score_args}`, balanced with `mmcurate balance --bins {args.bins} --split {args.split} "
        f"--shortfall shrink` (groups kept whole: no `--ignore-groups`), re-evaluated with `mmcurate reeval "
        f"--methods {args.methods} --seeds {args.seeds} --epochs {args.epochs} {args.reeval_args}`.",
        "",
        f"Balanced set: {sum(sizes.values())} clips ({info['per_bin']} per bin); train {sizes['train']}, val "
        f"{sizes['val']}, test {sizes['test']} ({f['audio_pref_clips']} audio-preferred, {f['visual_pref_clips']} "
        "visual-preferred).",
        "",
        doc["groups"]["text"],
        "",
        *([f"**Size**: {info['size_note']}", ""] if info.get("size_note") else []),
        f"Full tables (accuracy with intervals, paired differences per subset and bin, contributions, diagnostics): "
        f"[{info['tables_link']}]({info['tables_link']}).",
        "",
        "## The seed paper's findings, tested with paired intervals",
        "",
        "Per imbalance method, on the same test clips and seeds: the difference in accuracy (points) to the "
        "preferred unimodal model on each side, to the other unimodal model on each side, and how much larger the "
        f"per-clip loss to the preferred model is on |d| > {f['large']:g} than on |d| <= {f['large']:g}. Brackets: "
        "95 % paired bootstrap over clips and seeds; **bold**: the interval excludes 0 and the exact sign test "
        "agrees (for the last column: the interval excludes 0).",
        "",
        "| method | (a) d>0 vs Audio-only | (a) d<0 vs Visual-only | d>0 vs Visual-only | d<0 vs Audio-only | "
        f"loss at \\|d\\|>{f['large']:g} minus \\|d\\|<={f['large']:g} | (a) | (b) |",
        "|---|---:|---:|---:|---:|---:|:-:|:-:|",
    ]
    for m, e in f["methods"].items():
        title = METHODS[m].title + (" (at chance)" if m in flagged else "")
        cells = [_fmt(e[k], m in flagged) for k in ("a_audio", "a_visual", "b_other_audio", "b_other_visual")]
        cells.append(_fmt(e["b_large_minus_small"], m in flagged))
        verdicts = ["n/a" if m in flagged else ("yes" if e[k] else "no") for k in ("a_holds", "b_holds")]
        lines.append(f"| {title} | " + " | ".join(cells + verdicts) + " |")
    lines += [
        "",
        f"- (a) holds, significantly on both sides, for {len(a)} of {len(counted)} imbalance methods that learned"
        + (f": {', '.join(METHODS[m].title for m in a)}" if a else "")
        + ".",
        f"- (b) holds (between the two unimodal models on both sides, and a significantly larger loss at large |d|) "
        f"for {len(b)} of {len(counted)}" + (f": {', '.join(METHODS[m].title for m in b)}" if b else "") + ".",
    ]
    references = sorted(flagged & {"audio_only", "visual_only"})
    if references:
        lines.append(
            f"- **The findings cannot be tested here**: the unimodal reference(s) {', '.join(references)} did not "
            "learn (test accuracy not clearly above chance)."
        )
    left_out = sorted(flagged & set(imbalance))
    if left_out:
        lines.append(f"- Not counted (test accuracy not clearly above chance): {', '.join(left_out)}.")
    lines += ["", "## Time", "", "| stage | wall s | CPU s |", "|---|---:|---:|"]
    for stage, t in info["timings"].items():
        lines.append(f"| {stage} | {t['wall_s']} | {t['cpu_s']} |")
    if info.get("per_method"):
        lines += [
            "",
            "Per method (its own `reeval` process, minus a process that only loads the data and reuses every run; "
            f"{len(args.seeds.split(','))} seed(s)):",
            "",
            "| method | wall s | CPU s | CPU / joint | CPU s of its process |",
            "|---|---:|---:|---:|---:|",
        ]
        joint = info["per_method"].get("joint", {}).get("cpu_s") or None
        for m, t in info["per_method"].items():
            ratio = f"{t['cpu_s'] / joint:.2f}x" if joint else ""
            lines.append(f"| {m} | {t['wall_s']} | {t['cpu_s']} | {ratio} | {t['process_cpu_s']} |")
    lines += [
        "",
        f"Machine: {os.cpu_count()} CPU cores seen, shared with other jobs; torch threads 1 per run. Warnings the "
        "run gave:",
        "",
    ]
    lines += [f"- {w}" for w in doc.get("warnings", [])] or ["- none"]
    lines.append("")
    path.write_text("\n".join(lines))


# ----------------------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="work folder (set, ingest, scores, balance, reeval)")
    ap.add_argument("--clips", type=int, default=3000, help="clips to draw (FSDD holds 3000 recordings)")
    ap.add_argument("--data-seed", type=int, default=24)
    ap.add_argument(
        "--sets", type=int, default=1, help="draw this many sets (seeds data-seed + k): FSDD caps one set at 3000"
    )
    ap.add_argument("--visual-mismatch", type=float, default=0.15)
    ap.add_argument("--visual-noise", type=float, default=0.15)
    ap.add_argument("--audio-noise", type=float, default=0.30)
    ap.add_argument(
        "--snr",
        default="-20,-15,-10,-5",
        help="audio-noise SNR levels: harsh ones fill the most visual-preferred bins, which limit a uniform set",
    )
    ap.add_argument("--visual-levels", default="60:24,90:32,120:40")
    ap.add_argument("--bins", type=int, default=10)
    ap.add_argument("--split", default="67/16/17", help="balance --split (6 speakers: 4 / 1 / 1)")
    ap.add_argument("--score-args", default="", help="extra `mmcurate score` options, e.g. '--epochs 4'")
    ap.add_argument("--methods", default="all")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--reeval-args", default="", help="extra `mmcurate reeval` options")
    ap.add_argument("--min-test", type=int, default=300, help="warn (in the report too) below this many test clips")
    ap.add_argument("--large", type=float, default=0.4, help="|d| above which a clip counts as large-discrepancy")
    ap.add_argument("--workers", type=int, default=2, help="ingest decoding processes")
    ap.add_argument("--time-methods", action="store_true", help="run each method in its own process first")
    ap.add_argument("--publish", action="store_true", help="write into benchmarks/results/")
    args = ap.parse_args()

    out = args.out.resolve()
    work = out / "work"
    out.mkdir(parents=True, exist_ok=True)
    log = out / "stages.log"
    timings_path = out / "timings.json"
    saved = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    timings: dict[str, dict[str, float]] = saved.get("stages", {})
    per_method: dict[str, dict[str, float]] = saved.get("per_method", {})

    def save() -> None:
        timings_path.write_text(json.dumps({"stages": timings, "per_method": per_method}, indent=1))

    if not all((out / "raw" / f"set{k}" / "labels.csv").is_file() for k in range(args.sets)):
        t0, c0 = time.perf_counter(), time.process_time()
        manifest = generate(out / "raw", args)
        timings["generate"] = {
            "wall_s": round(time.perf_counter() - t0, 1),
            "cpu_s": round(time.process_time() - c0, 1),
        }
    else:
        manifest = generate(out / "raw", args)
    ingest = work / "ingest"
    if not (ingest / "manifest.parquet").is_file():
        run_stage(
            "ingest",
            [
                "ingest",
                str(out / "raw"),
                "--workdir",
                str(work),
                "--manifest",
                str(manifest),
                "--group-column",
                "speaker",
                "--size",
                "64",
                "--workers",
                str(args.workers),
            ],
            timings,
            log,
        )
        save()
    if not (ingest / "scores.parquet").is_file():
        run_stage("score", ["score", "--workdir", str(work), *shlex.split(args.score_args)], timings, log)
        save()
    balanced = work / "balanced"
    if not (balanced / "export.json").is_file():
        run_stage(
            "balance",
            [
                "balance",
                "--workdir",
                str(work),
                "--bins",
                str(args.bins),
                "--split",
                args.split,
                "--shortfall",
                "shrink",
                "--out",
                str(balanced),
            ],
            timings,
            log,
        )
        save()
    reeval = work / "reeval"
    common = [
        "reeval",
        str(balanced),
        "--out",
        str(reeval),
        "--seeds",
        args.seeds,
        "--epochs",
        str(args.epochs),
        "--device",
        "cpu",
        *shlex.split(args.reeval_args),
    ]
    from mmcurate.reeval.config import ReevalConfig

    methods = ReevalConfig(methods=args.methods).method_list()
    if args.time_methods:
        for m in methods:
            if m not in per_method:
                run_stage(m, [*common, "--methods", m], per_method, log)
                save()
        # what each of those processes spent besides training: loading the data, reusing a run, its report
        run_stage("reeval overhead (one finished run reused)", [*common, "--methods", "joint"], timings, log)
    run_stage(
        "reeval (all, reusing finished runs)" if args.time_methods else "reeval",
        [*common, "--methods", args.methods],
        timings,
        log,
    )
    save()
    per_method_net = {}
    if args.time_methods:
        overhead = timings["reeval overhead (one finished run reused)"]
        for m, t in per_method.items():
            per_method_net[m] = {
                "wall_s": round(max(0.0, t["wall_s"] - overhead["wall_s"]), 1),
                "cpu_s": round(max(0.0, t["cpu_s"] - overhead["cpu_s"]), 1),
                "process_cpu_s": t["cpu_s"],
            }
    seeds = [int(s) for s in args.seeds.split(",")]
    f = findings(reeval, seeds, args.large)
    results = json.loads((reeval / "results.json").read_text())
    balance_meta = json.loads((balanced / "balance.json").read_text())
    summary = balance_meta.get("summary", {})
    size_note = size_check(summary, args.min_test)
    if size_note:
        print(f"warning: {size_note}", file=sys.stderr)
    taken = summary.get("taken") or balance_meta.get("targets") or []
    per_bin = str(taken[0]) if taken and len(set(taken)) == 1 else "/".join(map(str, taken)) or "?"
    if args.publish:
        target = REPO / "benchmarks" / "results" / "reeval_av_digits"
        md_path = REPO / "benchmarks" / "results" / "reeval_av_digits.md"
        link = "reeval_av_digits/results.md"
    else:
        target, md_path, link = out / "tables", out / "reeval_av_digits.md", "tables/results.md"
    target.mkdir(parents=True, exist_ok=True)
    for p in reeval.iterdir():
        if p.is_file() and p.suffix in (".md", ".json", ".csv", ".png") and not p.name.startswith("."):
            shutil.copy2(p, target / p.name)
    (target / "findings.json").write_text(json.dumps(f, indent=1))
    info = {
        "size_note": size_note,
        "results": results,
        "timings": timings,
        "per_method": per_method_net,
        "per_bin": per_bin,
        "tables_link": link,
    }
    write_markdown(md_path, args, info, f)
    print(md_path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

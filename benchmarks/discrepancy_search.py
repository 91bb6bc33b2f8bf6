"""How the CPU defaults of ``mmcurate score`` were chosen: scorer variants on the *tuning* sets only.

Each (set, modality, scorer settings, repeat) is trained out-of-fold once with every epoch's
held-out prediction recorded, and cached; audio and visual variants are then combined freely,
with any averaging window, calibration and number of repeats, and judged by the AUROC of d per
condition (generated AV-digits sets) and the Spearman correlation of d with the ground truth
(demo-synth sets), *across* sets. The benchmark sets of ``benchmarks/discrepancy.py`` are never
touched here. Usage (small and niced: the CPU is shared)::

    nice -n 10 python benchmarks/discrepancy_search.py --cache /tmp/mmcurate-bench --sets t1,t2,td1 \\
        --audio 'epochs=12' --visual 'epochs=12' 'epochs=12,image_size=48' --repeats 1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _discrepancy_eval import condition_aurocs, spearman  # noqa: E402
from _sets import prepare_set  # noqa: E402

from mmcurate.common.hashing import config_hash  # noqa: E402
from mmcurate.data import TensorConfig, build_av_tensors, read_shards  # noqa: E402
from mmcurate.score.config import ScoreConfig  # noqa: E402
from mmcurate.score.folds import stratified_folds  # noqa: E402
from mmcurate.score.train import InMemorySource, fit_predict  # noqa: E402
from mmcurate.store import IngestDir  # noqa: E402

MODALITIES = ("audio", "visual")
_TENSORS: dict[tuple[str, int], Any] = {}


def parse_cfg(text: str, base: ScoreConfig) -> ScoreConfig:
    """``key=value,key=value`` over a base config (ints, floats, bools, strings)."""
    changes: dict[str, Any] = {}
    for item in filter(None, text.split(",")):
        k, v = item.split("=")
        f = {x.name: x for x in dataclasses.fields(ScoreConfig)}[k]
        kind = str(f.type)
        changes[k] = (
            (v.lower() in ("1", "true", "yes"))
            if "bool" in kind
            else (int(v) if "int" in kind and "." not in v else float(v) if ("float" in kind or "int" in kind) else v)
        )
    return dataclasses.replace(base, **changes).resolved(False)


def set_tensors(name: str, cache: Path, image_size: int, audio_frames: int | None) -> Any:
    key = (name, image_size)
    if key not in _TENSORS:
        ingest = prepare_set(name, cache)
        manifest = IngestDir(ingest).read_manifest()
        ids = manifest.column("sample_id").to_pylist()
        tcfg = TensorConfig(image_size=image_size, num_frames=3, audio_frames=audio_frames)
        tensors = build_av_tensors(read_shards(ingest, ids), IngestDir(ingest).read_classes(), tcfg, workers=2)
        _TENSORS[key] = (tensors, manifest)
    return _TENSORS[key]


#: fields added after the first cached runs, with the value those runs had (left out of the key at that value)
_LATER_FIELDS = {"augment": False}


def training_fields(cfg: ScoreConfig) -> dict[str, Any]:
    """The settings a training run depends on (calibration is applied afterwards), for the cache key."""
    d = cfg.content_dict()
    d.pop("calibration", None)
    for k, v in _LATER_FIELDS.items():
        if d.get(k) == v:
            d.pop(k, None)
    return d


def run_variant(
    name: str, cache: Path, modality: str, cfg: ScoreConfig, repeat: int, clean_only: bool = False
) -> dict[str, Any]:
    """Out-of-fold arrays of one (set, modality, config, repeat), cached as npz."""
    key = config_hash([name, modality, training_fields(cfg), repeat, "intact" if clean_only else False], length=12)
    path = cache / name / "runs" / f"{modality}-{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    tensors, manifest = set_tensors(name, cache, int(cfg.image_size), cfg.audio_frames)
    labels = manifest.column("label").to_pylist()
    n, c = len(labels), len(tensors.classes)
    folds = stratified_folds(labels, cfg.folds, cfg.seed + 7919 * repeat)
    usable = intact_for(modality, _truth(manifest)) if clean_only else np.ones(n, dtype=bool)
    source = InMemorySource(tensors, modality)
    probs = np.zeros((n, c))
    held_true = np.zeros((cfg.epochs, n), dtype=np.float32)
    td_sum = np.zeros(n)
    td_cnt = np.zeros(n)
    wall, cpu = time.perf_counter(), time.process_time()
    for k in range(cfg.folds):
        held = np.flatnonzero(folds == k)
        train = np.flatnonzero((folds != k) & usable)
        seed = cfg.seed * 1000 + repeat * 100 + k * 10 + MODALITIES.index(modality)
        res = fit_predict(
            source,
            train,
            held,
            c,
            cfg,
            seed,
            torch.device("cpu"),
            int(tensors.frames.shape[1]),
            record_all_epochs=True,
        )
        probs[held] = res.probs
        held_true[:, held] = res.held_true
        tt = np.nan_to_num(res.train_true, nan=0.0)
        td_sum[train] += tt.sum(0)
        td_cnt[train] += (~np.isnan(res.train_true)).sum(0)
    out = {
        "probs": probs,
        "held_true": held_true,
        "td": td_sum / np.maximum(td_cnt, 1),
        "folds": folds,
        "wall": np.array(time.perf_counter() - wall),
        "cpu": np.array(time.process_time() - cpu),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def intact_for(modality: str, truth: dict[str, np.ndarray]) -> np.ndarray:
    """Clips whose evidence in ``modality`` is intact: what a reference scorer may train on."""
    from _discrepancy_eval import intact_mask

    return intact_mask(modality, truth)


def _truth(manifest: Any) -> dict[str, np.ndarray]:
    cols = manifest.column_names
    out = {}
    for k in ("condition", "severity", "expected_discrepancy", "regime", "audio_clarity", "visual_clarity"):
        if k in cols:
            out[k] = np.asarray(manifest.column(k).to_pylist(), dtype=object)
    if "expected_discrepancy" in out:
        out["expected_discrepancy"] = out["expected_discrepancy"].astype(float)
    return out


def confidence(runs: list[dict[str, Any]], y: np.ndarray, window: int | None, epochs: int) -> np.ndarray:
    """True-class confidence averaged over repeats and the last ``window`` epochs (None = the
    configured window, i.e. the stored ``probs``); ``window=0`` uses training dynamics."""
    rows = np.arange(len(y))
    vals = []
    for r in runs:
        if window is None:
            vals.append(r["probs"][rows, y])
        elif window == 0:
            vals.append(r["td"])
        else:
            vals.append(r["held_true"][epochs - window :].mean(0))
    return np.mean(vals, axis=0)


def evaluate(name: str, cache: Path, pa: np.ndarray, pv: np.ndarray) -> dict[str, Any]:
    _, manifest = _TENSORS.get((name, 0)) or (None, IngestDir(prepare_set(name, cache)).read_manifest())
    t = _truth(manifest)
    d = pa - pv
    if "condition" in t:
        res = condition_aurocs(d, t["condition"], t["severity"])
        return {k: round(v["auroc"], 4) for k, v in res.items()} | {
            f"{k}@{lv}": round(x["auroc"], 4) for k, v in res.items() for lv, x in v["levels"].items() if lv != k
        }
    return {"spearman": round(spearman(d, t["expected_discrepancy"]), 4)}


def clean_accuracy(name: str, cache: Path, runs: list[dict[str, Any]]) -> float:
    manifest = IngestDir(prepare_set(name, cache)).read_manifest()
    t = _truth(manifest)
    y = _labels(name, cache)
    p = np.mean([r["probs"] for r in runs], axis=0)
    m = t["condition"] == "clean" if "condition" in t else np.ones(len(y), dtype=bool)
    return round(float((p.argmax(1) == y)[m].mean()), 4)


def _labels(name: str, cache: Path) -> np.ndarray:
    ingest = prepare_set(name, cache)
    classes = IngestDir(ingest).read_classes()
    idx = {c: i for i, c in enumerate(classes)}
    return np.asarray([idx[x] for x in IngestDir(ingest).read_manifest().column("label").to_pylist()])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/mmcurate-bench"))
    ap.add_argument("--sets", default="t1,t2,td1")
    ap.add_argument("--audio", nargs="+", default=[""])
    ap.add_argument("--visual", nargs="+", default=[""])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--windows", default="half", help="comma list: half (configured), all, N (last N epochs), td")
    ap.add_argument("--clean-only", action="store_true", help="reference ceiling: train on clean clips only")
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: on a shared CPU more threads spin and waste time)"
    )
    ap.add_argument("--out", type=Path, default=None, help="append JSON lines of results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    base = ScoreConfig(repeats=1)
    for name in args.sets.split(","):
        for atext in args.audio:
            for vtext in args.visual:
                acfg, vcfg = parse_cfg(atext, base), parse_cfg(vtext, base)
                ar = [run_variant(name, args.cache, "audio", acfg, r, args.clean_only) for r in range(args.repeats)]
                vr = [run_variant(name, args.cache, "visual", vcfg, r, args.clean_only) for r in range(args.repeats)]
                y = _labels(name, args.cache)
                for w in args.windows.split(","):
                    wa = {"half": None, "all": acfg.epochs, "td": 0}.get(
                        w, None if w == "half" else int(w) if w.isdigit() else None
                    )
                    wv = {"half": None, "all": vcfg.epochs, "td": 0}.get(
                        w, None if w == "half" else int(w) if w.isdigit() else None
                    )
                    pa = confidence(ar, y, wa, acfg.epochs)
                    pv = confidence(vr, y, wv, vcfg.epochs)
                    row = {
                        "set": name,
                        "audio": atext,
                        "visual": vtext,
                        "repeats": args.repeats,
                        "window": w,
                        "clean_only": args.clean_only,
                        "acc_a": clean_accuracy(name, args.cache, ar),
                        "acc_v": clean_accuracy(name, args.cache, vr),
                        "cpu_a": round(float(sum(r["cpu"] for r in ar)), 1),
                        "cpu_v": round(float(sum(r["cpu"] for r in vr)), 1),
                        **evaluate(name, args.cache, pa, pv),
                    }
                    print(json.dumps(row), flush=True)
                    if args.out:
                        with open(args.out, "a") as fh:
                            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

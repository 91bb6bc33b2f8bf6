"""Screen: would averaging a scorer's held-out confidence over more of its training separate damaged clips better?

Why: on the other-domain sets the audio degradations (a competing source, reverberation) score well below
the clean-trained ceiling, because the scorer also trains on damaged clips and learns to read them. A clip
it learns late should be less confident early in training; averaging the held-out confidence over more
epochs than the anneal (a checkpoint ensemble over the trajectory, as dataset cartography averages
in-sample confidence) might keep that trace. This script runs the default fold jobs of one modality (same
folds and seeds as ``mmcurate score``, so its "final" column equals the default run) and, every search
epoch, also predicts the held-out fold with the weight average the rule watches. It then compares the
AUROC of the damaged clips against intact ones for several averaging windows, both of the modality's own
true-class confidence and of an uncalibrated d whose other side comes from the set's kept default run
(``--keep-runs`` of ``discrepancy.py``).

    python benchmarks/confidence_window.py --cache /tmp/mmb --sets ob1,ot2,ob2,ot1,b1 --modality audio

Screen only: it patches the job's inner evaluation to add the held-out prediction; nothing in mmcurate
uses it. Results: ``benchmarks/results/confidence_window.md``.
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _discrepancy_eval import auroc  # noqa: E402
from discrepancy import truth  # noqa: E402

from mmcurate.data import build_av_tensors, read_shards  # noqa: E402
from mmcurate.score import train as T  # noqa: E402
from mmcurate.score.config import ScoreConfig  # noqa: E402
from mmcurate.score.runner import MODALITIES, _folds, _tensor_config  # noqa: E402
from mmcurate.store import IngestDir  # noqa: E402

#: averaging windows over (search epochs S, anneal epochs A): name -> rows of the stacked (S + A) x n matrix
WINDOWS = {
    "anneal (default)": lambda s, a: a,
    "last half of search + anneal": lambda s, a: np.concatenate([s[len(s) // 2 :], a]),
    "search from epoch 1 + anneal": lambda s, a: np.concatenate([s[1:], a]),
    "whole trajectory": lambda s, a: np.concatenate([s, a]),
}


def trajectories(
    ingest: Path, modality: str, seed: int
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Per fold: held-out rows, search-epoch true-class confidences (EMA weights), anneal-epoch ones."""
    cfg = ScoreConfig(seed=seed, device="cpu").resolved(False)
    store = IngestDir(ingest)
    man, classes = store.read_manifest(), store.read_classes()
    ids = man.column("sample_id").to_pylist()
    tcfg = _tensor_config(cfg)
    tensors = build_av_tensors(read_shards(ingest, ids), classes, tcfg, workers=1)
    y = tensors.labels
    folds = _folds(cfg, man.column("label").to_pylist(), man.column("group").to_pylist(), 0)
    current: dict[str, object] = {}
    plain = T._inner_eval

    def watched(run, inner_t, labels, num_classes, ema=False):  # type: ignore[no-untyped-def]
        out = plain(run, inner_t, labels, num_classes, ema)
        held = current["held"]
        p = run.predict(held, num_classes, True)
        current["rows"].append(p.gather(1, labels[held][:, None])[:, 0].numpy())  # type: ignore[union-attr]
        return out

    T._inner_eval = watched
    helds, searches, anneals = [], [], []
    try:
        for k in range(cfg.folds):
            held, train = np.flatnonzero(folds == k), np.flatnonzero(folds != k)
            current["held"], current["rows"] = torch.as_tensor(held), []
            job_seed = cfg.seed * 1000 + k * 10 + MODALITIES.index(modality)
            res = T.fit_predict(
                T.InMemorySource(tensors, modality),
                train,
                held,
                len(classes),
                cfg,
                job_seed,
                torch.device("cpu"),
                int(tensors.frames.shape[1]),
            )
            helds.append(held)
            searches.append(np.stack(current["rows"]))  # type: ignore[arg-type]
            anneals.append(res.held_true)
    finally:
        T._inner_eval = plain
    return helds, searches, anneals, y.numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=Path("/tmp/mmcurate-bench"), help="generated sets and their ingests")
    ap.add_argument("--sets", default="ob1,ot2,ob2,ot1,b1")
    ap.add_argument("--modality", default="audio", choices=MODALITIES)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "confidence_window.md")
    args = ap.parse_args()
    torch.set_num_threads(1)
    other = "visual" if args.modality == "audio" else "audio"
    lines = [
        f"| set | window | {args.modality} condition | AUROC of own confidence | AUROC of d (uncalibrated) |",
        "|---|---|---|---:|---:|",
    ]
    for name in args.sets.split(","):
        ingest = args.cache / name / "work" / "ingest"
        cpu = time.process_time()
        helds, searches, anneals, y = trajectories(ingest, args.modality, args.seed)
        cond = truth(IngestDir(ingest).read_manifest())["condition"]
        kept = glob.glob(str(ingest / f"score_runs_seed{args.seed}" / "*" / ""))
        p_other = np.full(len(y), np.nan)
        for k, held in enumerate(helds):
            if kept:
                probs = np.load(Path(kept[0]) / f"fold{k}-{other}.npz")["probs"]
                p_other[held] = probs[np.arange(len(held)), y[held]]
        conds = sorted(c for c in set(cond.tolist()) if c.startswith(args.modality + "_"))
        for window, rows in WINDOWS.items():
            p = np.zeros(len(y))
            for held, s, a in zip(helds, searches, anneals):
                p[held] = rows(s, a).mean(0)
            d = p - p_other if args.modality == "audio" else p_other - p
            sign = -1.0 if args.modality == "audio" else 1.0
            for c in conds:
                own = auroc(-p[cond == c], -p[cond == "clean"])
                dd = auroc(sign * d[cond == c], sign * d[cond == "clean"]) if kept else float("nan")
                lines.append(f"| {name} | {window} | {c} | {own:.3f} | {dd:.3f} |")
        print(name, "CPU-s", round(time.process_time() - cpu, 1), flush=True)
        print("\n".join(lines[-len(conds) * len(WINDOWS) :]), flush=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

"""Re-assemble kept scorings of two seeds and check how well ``discrepancy_std`` covers the change
of ``d`` between them, without retraining.

Why: the coverage of the uncertainty is decided in the assembly (the spread model and its fitted
scale), not in training; studying it on kept job arrays costs seconds instead of a scoring per seed.
Make the arrays with ``benchmarks/discrepancy.py --seeds 0,1 --keep-runs`` (they land in
``INGEST/score_runs_seed<seed>``), then::

    python benchmarks/coverage_study.py /tmp/mmcurate-bench/ob1/work/ingest /tmp/mmcurate-bench/ob3/work/ingest

Prints, per set, the shares of clips within 1 and 2 predicted standard errors of the change
between the seeds (68 % and 95 % if the stds are right) and what each assembly fitted.

``--variants`` also tries other ways of fitting the coverage to the inner-split second opinions (by
replacing ``assemble.coverage_scaled`` in this process only; the package is not changed):

* ``joint``: the package's until this study: one factor on the clips with second opinions of both modalities;
* ``joint+power``: a factor and an exponent of the standard error, on the same clips;
* ``per-modality``: one factor per modality, each on all its clips with second opinions (about 3x the
  clips), the modalities' standard errors then combined;
* ``per-modality+moderated`` (the package's now): ``per-modality``, then each clip's variance pooled with its
  own second opinions (empirical Bayes, ``assemble.coverage_scaled``);
* ``per-modality+joint``: the per-modality factors, then one joint factor as ``joint``;
* ``per-modality+power``, ``per-modality+power+joint``: the same with a factor and an exponent per modality.

Results: benchmarks/results/discrepancy_coverage_study.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import mmcurate.score.assemble as assemble_module  # noqa: E402
from mmcurate.common.scoring import ScoreConfig  # noqa: E402
from mmcurate.models.unimodal import MODALITIES  # noqa: E402
from mmcurate.score.assemble import assemble_scores  # noqa: E402
from mmcurate.score.runner import ScorePlan, read_runs  # noqa: E402
from mmcurate.score.uncertainty import NOMINAL_COVERAGE, coverage_scale  # noqa: E402
from mmcurate.store import IngestDir  # noqa: E402


def assemble_kept(ingest: Path, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """``d``, ``discrepancy_std`` and the uncertainty metrics of the kept scoring of ``seed``."""
    cfg = ScoreConfig(seed=seed, device="cpu").resolved(False)
    plan = ScorePlan.of(IngestDir(ingest), cfg, allow_missing=False, save_scorers=False)
    runs = read_runs(plan, ingest / f"score_runs_seed{seed}" / plan.scorer_id)
    a = assemble_scores(plan.y, plan.fold_sets[0], runs, cfg.calibration)
    order = np.argsort(np.asarray(plan.sample_ids))
    return a.columns["discrepancy"][order], a.columns["discrepancy_std"][order], a.metrics["uncertainty"]


def seed_to_seed(ingest: Path, s0: int, s1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict, dict]:
    """Per clip ``z = |d_0 - d_1| / sqrt(std_0^2 + std_1^2)``, the change and that predicted SE; both
    scorings' uncertainty metrics."""
    d0, e0, m0 = assemble_kept(ingest, s0)
    d1, e1, m1 = assemble_kept(ingest, s1)
    change, se = np.abs(d0 - d1), np.sqrt(e0**2 + e1**2)
    return change / np.maximum(se, 1e-12), change, se, m0, m1


VARIANTS = (
    "joint",
    "joint+power",
    "per-modality",
    "per-modality+moderated",
    "per-modality+joint",
    "per-modality+power",
    "per-modality+power+joint",
)


def _scale_and_power(change: np.ndarray, se: np.ndarray, power: bool) -> tuple[float, float, float]:
    """(k, g, m): the standard error ``k * m * (se / m) ** g`` covering ``change`` best (g = 1 without power)."""
    ok = np.isfinite(change) & np.isfinite(se) & (se > 0)
    change, se = change[ok], se[ok]
    m = float(np.median(se)) if len(se) else 1.0
    best = (np.inf, 1.0, 1.0)
    for g in np.round(np.arange(0.5, 2.501, 0.05), 2) if power else [1.0]:
        k, sh = coverage_scale(change / (m * (se / m) ** g))
        miss = max(abs(sh["within_1_se"] - NOMINAL_COVERAGE[0]), abs(sh["within_2_se"] - NOMINAL_COVERAGE[1]))
        if round(miss, 3) < best[0] - 1e-9 or (round(miss, 3) == best[0] and abs(g - 1) < abs(best[2] - 1)):
            best = (round(miss, 3), k, float(g))
    return best[1], best[2], m


PACKAGE_FIT = assemble_module.coverage_scaled


def use_variant(name: str) -> None:
    """Replace the coverage fit of :func:`assemble_scores` in this process by variant ``name`` (repeats = 1;
    no minimum number of second opinions, unlike the package, except ``per-modality+moderated``, which is
    the package's)."""
    if name == "per-modality+moderated":
        assemble_module.coverage_scaled = PACKAGE_FIT
        return

    def fitted(std_a: np.ndarray, std_v: np.ndarray, audio: Any, visual: Any) -> tuple[np.ndarray, dict[str, Any]]:
        audio, visual = audio.first_per_clip(), visual.first_per_clip()
        both, ia, iv = np.intersect1d(audio.rows, visual.rows, return_indices=True)
        change = np.abs(audio.delta[ia] - visual.delta[iv])
        power = "power" in name
        if name.startswith("joint"):
            d_std = np.sqrt(std_a**2 + std_v**2)
            k, g, m = _scale_and_power(change, np.sqrt(2.0) * d_std[both], power)
            return k * m / np.sqrt(2.0) * (np.sqrt(2.0) * d_std / m) ** g, {}
        stds = []
        for op, std in ((audio, std_a), (visual, std_v)):
            k, g, m = _scale_and_power(np.abs(op.delta), np.sqrt(2.0) * op.sigma, power)
            stds.append(k * m / np.sqrt(2.0) * (np.sqrt(2.0) * np.maximum(std, 0.0) / m) ** g)
        out = np.sqrt(stds[0] ** 2 + stds[1] ** 2)
        if name.endswith("+joint"):
            out = out * coverage_scale(change / np.maximum(np.sqrt(2.0) * out[both], 1e-12))[0]
        return out, {}

    assemble_module.coverage_scaled = fitted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ingests", nargs="+", type=Path, help="ingest folders holding score_runs_seed<seed>")
    ap.add_argument("--seeds", default="0,1", help="the two kept seeds")
    ap.add_argument("--variants", action="store_true", help="also try the other coverage fits (see above)")
    args = ap.parse_args()
    if args.variants:
        study(args.ingests, args.seeds)
        return
    s0, s1 = (int(s) for s in args.seeds.split(","))
    print("| set | within 1 SE | within 2 SE | mean abs change | mean predicted SE | fit (seed a / seed b) |")
    print("|---|---:|---:|---:|---:|---|")
    for ingest in args.ingests:
        z, change, se, m0, m1 = seed_to_seed(ingest, s0, s1)
        fits = " / ".join(
            ", ".join(f"{mod} {m['discrepancy_coverage'][mod]['scale']}" for mod in MODALITIES) for m in (m0, m1)
        )
        print(
            f"| {ingest.parent.parent.name} | {(z < 1).mean():.1%} | {(z < 2).mean():.1%} | "
            f"{change.mean():.3f} | {se.mean():.3f} | {fits} |"
        )


def study(ingests: list[Path], seeds: str) -> None:
    """One row per set and variant: shares within 1 and 2 SE of the change between the two seeds."""
    s0, s1 = (int(s) for s in seeds.split(","))
    print("| set | fit | within 1 SE (68 %) | within 2 SE (95 %) | both within 8 points |")
    print("|---|---|---:|---:|---|")
    for ingest in ingests:
        for name in VARIANTS:
            use_variant(name)
            z = seed_to_seed(ingest, s0, s1)[0]
            w1, w2 = float((z < 1).mean()), float((z < 2).mean())
            ok = abs(w1 - NOMINAL_COVERAGE[0]) <= 0.08 and abs(w2 - NOMINAL_COVERAGE[1]) <= 0.08
            print(
                f"| {ingest.parent.parent.name} | {name} | {w1:.1%} | {w2:.1%} | {'yes' if ok else 'no'} |", flush=True
            )


if __name__ == "__main__":
    main()

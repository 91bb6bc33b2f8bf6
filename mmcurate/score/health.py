"""Do the scores mean anything? Checks of the scorers behind ``d``, with verdicts that speak.

Why: ``d = p_audio - p_visual`` is only as good as the two scorers. A scorer at chance gives every
clip about ``1/C`` and ``d`` then measures the other modality alone; a fold stuck on its initial
plateau gives its fifth of the clips a different scale; a few clips per class leave both scorers
guessing, and a ``d`` of about 0 then means "both wrong", not "balanced". None of that shows in
an exit status, so every scoring run is checked here, per modality and per fold, against chance:

* **above chance**: the modality's out-of-fold accuracy with a 95 % Wilson interval; the scorer
  *failed* when the interval's lower end is not above chance (the majority class's share), or when
  it is barely above it: its accuracy above chance, as a share of what is possible above chance
  (Cohen's kappa for balanced classes), under :data:`MIN_KAPPA`: most of its confidences are noise;
* **folds agree**: a fold whose accuracy is far below the other folds' (one-sided binomial test
  at 0.001 against the others' pooled accuracy, and at least 15 points below) is *failed*: it
  scored its clips on another scale; a fold that ended stuck after its restarts likewise;
* **enough clips**: fewer than :data:`MIN_CLIPS_PER_CLASS` clips in the smallest class gives a
  *warning* with the number needed.

Every verdict is one line naming the modality, the fold where there is one, the figure and the next
step. ``scores.json`` records them; ``balance`` refuses failed scores unless told otherwise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import binom

from mmcurate.common.proportions import wilson_interval

#: fewer clips than this in a class: the scorers are likely to be weak (see benchmarks/results/discrepancy.md)
MIN_CLIPS_PER_CLASS = 30
#: a fold at least this far below the others' accuracy (and significantly so) is flagged
FOLD_GAP = 0.15
#: a scorer whose (accuracy - chance) / (1 - chance) is below this is too weak to trust: on the small
#: benchmark sets (60-300 clips) failing scorers sat at 0.0-0.12, every scorer of the 1500-clip sets above 0.45
MIN_KAPPA = 0.2
FOLD_P = 0.001


@dataclass(frozen=True)
class Verdict:
    """One check's outcome: ``status`` is ``ok``, ``warn`` or ``fail``."""

    check: str
    status: str
    modality: str | None
    fold: int | None
    message: str

    def line(self) -> str:
        return f"score check failed: {self.message}" if self.status == "fail" else f"score: {self.message}"


def wilson(correct: int, n: int) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion (0, 1 for n = 0)."""
    return wilson_interval(correct, n) or (0.0, 1.0)


def chance_level(y: np.ndarray, num_classes: int) -> float:
    """What a scorer that ignores its input gets: the majority class's share (1/C when balanced)."""
    if len(y) == 0:
        return 1.0 / num_classes
    return float(np.bincount(y, minlength=num_classes).max() / len(y))


def check_scores(
    y: np.ndarray,
    folds: np.ndarray,
    preds: dict[str, np.ndarray],
    num_classes: int,
    job_reports: dict[tuple[str, int], dict[str, Any]] | None = None,
    patience: int | None = None,
) -> dict[str, Any]:
    """Verdicts on out-of-fold predictions (``preds[m]`` = predicted class per sample, first repeat's
    ``folds``), plus per-modality and per-fold figures, as a JSON-able dict for ``scores.json``:
    ``status`` (``ok``, ``warn`` or ``fail``), ``verdicts``, ``modalities``. ``patience``: the run's
    ``--patience``, from which a lagging fold's advice suggests a longer search."""
    y = np.asarray(y)
    chance = chance_level(y, num_classes)
    verdicts: list[Verdict] = []
    figures: dict[str, Any] = {}
    counts = np.bincount(y, minlength=num_classes)
    smallest = int(counts.min()) if len(counts) else 0
    for m, pred in preds.items():
        correct = pred == y
        acc = float(correct.mean()) if len(y) else 0.0
        lo, hi = wilson(int(correct.sum()), len(y))
        per_fold = []
        for k in sorted(set(folds.tolist())):
            inside = folds == k
            n_k, c_k = int(inside.sum()), int(correct[inside].sum())
            others_n, others_c = len(y) - n_k, int(correct.sum()) - c_k
            others = others_c / others_n if others_n else acc
            f_lo, f_hi = wilson(c_k, n_k)
            p_low = float(binom.cdf(c_k, n_k, others)) if n_k else 1.0
            report = (job_reports or {}).get((m, k), {})
            per_fold.append(
                {
                    "fold": k,
                    "n": n_k,
                    "accuracy": round(c_k / n_k, 4) if n_k else None,
                    "interval": [round(f_lo, 4), round(f_hi, 4)],
                    "others_accuracy": round(others, 4),
                    "p_below_others": round(p_low, 6),
                    **{key: report[key] for key in ("epochs", "stop", "restarts") if key in report},
                }
            )
            gap = others - (c_k / n_k if n_k else others)
            if n_k and p_low < FOLD_P and gap >= FOLD_GAP:
                verdicts.append(
                    Verdict(
                        "folds agree",
                        "fail",
                        m,
                        k,
                        f"{m} scorer of fold {k} is far below the other folds (accuracy {c_k / n_k:.2f} on "
                        f"{n_k} clips against {others:.2f}): its clips' confidences are on another scale; "
                        + _lagging_fold_advice(report, _other_epochs(job_reports, m, k), patience),
                    )
                )
            if report.get("stop") == "stuck":
                verdicts.append(
                    Verdict(
                        "folds agree",
                        "fail",
                        m,
                        k,
                        f"{m} scorer of fold {k} never left chance ({report.get('restarts', 0)} restarts): "
                        "check that this modality carries the label, or raise --restarts / --max-epochs",
                    )
                )
        kappa = (acc - chance) / (1 - chance) if chance < 1 else 0.0
        figures[m] = {
            "accuracy": round(acc, 4),
            "kappa": round(kappa, 4),
            "interval": [round(lo, 4), round(hi, 4)],
            "chance": round(chance, 4),
            "above_chance": bool(lo > chance and kappa >= MIN_KAPPA),
            "folds": per_fold,
        }
        if lo > chance and kappa < MIN_KAPPA:
            verdicts.append(
                Verdict(
                    "above chance",
                    "fail",
                    m,
                    None,
                    f"{m} scorer is barely above chance: out-of-fold accuracy {acc:.3f} against chance {chance:.3f} "
                    f"(kappa {kappa:.2f} < {MIN_KAPPA}) on {len(y)} clips; most of its confidences are noise and so "
                    "is d. " + _next_step(smallest, num_classes),
                )
            )
        if not lo > chance:
            verdicts.append(
                Verdict(
                    "above chance",
                    "fail",
                    m,
                    None,
                    f"{m} scorer is not above chance: out-of-fold accuracy {acc:.3f} "
                    f"(95 % interval {lo:.3f}-{hi:.3f}) against chance {chance:.3f} "
                    f"on {len(y)} clips; its confidences are noise and so is d. " + _next_step(smallest, num_classes),
                )
            )
    if smallest < MIN_CLIPS_PER_CLASS:
        verdicts.append(
            Verdict(
                "enough clips",
                "warn",
                None,
                None,
                f"the smallest class has {smallest} clips: scorers trained from scratch need about "
                f"{MIN_CLIPS_PER_CLASS} clips per class ({MIN_CLIPS_PER_CLASS * num_classes} for {num_classes} "
                "classes) to be reliable; add clips, merge classes, or import confidences of pretrained models "
                "with --scores-from",
            )
        )
    status = "fail" if any(v.status == "fail" for v in verdicts) else "warn" if verdicts else "ok"
    return {
        "status": status,
        "chance": round(chance, 4),
        "smallest_class": smallest,
        "min_clips_per_class": MIN_CLIPS_PER_CLASS,
        "verdicts": [asdict(v) | {"line": v.line()} for v in verdicts],
        "modalities": figures,
    }


def _other_epochs(reports: dict[tuple[str, int], dict[str, Any]] | None, modality: str, fold: int) -> list[int]:
    """Epochs the other folds' jobs of ``modality`` trained (those that say)."""
    return [
        int(r["epochs"]) for (m, k), r in (reports or {}).items() if m == modality and k != fold and r.get("epochs")
    ]


#: a lagging fold that stopped early is advised this many times the run's --patience. Measured on ot2 seed 0
#: (benchmarks/results/discrepancy_sets.md), whose visual fold 0 stopped after 35 epochs at 0.52 against
#: 0.59-0.75: --patience 6 changed nothing (36 epochs; the rule's window was already a third of the search),
#: 12 searched 60 epochs and reached 0.64, at +42 % CPU for the whole scoring
LONGER_SEARCH = 4


def _lagging_fold_advice(report: dict[str, Any], other_epochs: list[int], patience: int | None = None) -> str:
    """The next step for a fold far below the others, from how its own search ended. Why not "raise
    --restarts": restarts recover a job stuck at chance; a fold that learned less than the others most
    often ended its search early (on a stretch where its inner loss rose and fell) or ran out of epochs."""
    epochs, stop = report.get("epochs"), report.get("stop")
    typical = int(np.median(other_epochs)) if other_epochs else None
    if stop == "plateau" and epochs and typical and int(epochs) < typical:
        longer = f"--patience {LONGER_SEARCH * patience}" if patience else "a larger --patience"
        return (
            f"its search ended after {int(epochs)} epochs where the other folds trained {typical}: rerun "
            f"`mmcurate score --overwrite` with another --seed, or search longer with {longer} (every job "
            "then searches longer)"
        )
    if stop == "budget":
        return (
            f"it used its whole budget of {int(epochs)} epochs: rerun `mmcurate score --overwrite` with a larger "
            "--max-epochs or another --seed"
        )
    return "rerun `mmcurate score --overwrite` with another --seed"


def _next_step(smallest: int, num_classes: int) -> str:
    if smallest < MIN_CLIPS_PER_CLASS:
        return (
            f"With {smallest} clips in the smallest class, about {MIN_CLIPS_PER_CLASS} per class "
            f"({MIN_CLIPS_PER_CLASS * num_classes} in all) are needed, or import pretrained confidences "
            "with --scores-from"
        )
    return "Try --max-epochs 120, --restarts 4, or check that this modality carries the label"

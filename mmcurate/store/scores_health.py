"""How healthy the scorers behind a discrepancy are: one reader for the card, browse and the reports.

Why: a discrepancy made by scorers that sit at chance is noise, and every page that shows one must
say so. ``mmcurate score`` records its verdict in ``scores.json`` (key ``health``: status, chance,
smallest class, verdicts, and per modality accuracy, kappa, interval, chance, above_chance; key
``both_weak``: clips that neither scorer gets right, and the scores table's ``both_weak`` column).
Older or imported scores have no such key: the per-modality accuracy is then computed here from the
scores table when it holds the true class and each scorer's prediction (with a Wilson 95 % interval
against the majority-class rate), and is absent otherwise (``None``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from mmcurate.common.proportions import wilson_interval

SCORES_JSON = "scores.json"
SCORES_PARQUET = "scores.parquet"
MODALITIES = ("audio", "visual")


def scores_json_path(source: Path) -> Path | None:
    """``scores.json`` of an ingest folder, a work directory (its ``ingest/``) or the file itself."""
    source = Path(source)
    for candidate in (source, source / SCORES_JSON, source / "ingest" / SCORES_JSON):
        if candidate.name == SCORES_JSON and candidate.is_file():
            return candidate
    return None


def load_health(source: Path) -> dict[str, Any] | None:
    """The scorers' health for ``source`` (see the module doc), or None when nothing says it.

    The result always has ``status`` (``ok``/``warn``/``fail``, or None when computed here), ``chance``,
    ``modalities`` (audio/visual -> accuracy, chance, above_chance, and interval/kappa where known),
    ``origin`` (``scores.json`` or ``computed``) and, when the scores carry it, ``both_weak``
    (``{"count", "threshold"}``)."""
    path = scores_json_path(source)
    if path is None:
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    health = meta.get("health") if isinstance(meta, dict) else None
    if isinstance(health, dict) and isinstance(health.get("modalities"), dict):
        out = {**health, "origin": SCORES_JSON}
    else:
        computed = _computed(path.parent / SCORES_PARQUET)
        if computed is None:
            return None
        out = computed
    both = meta.get("both_weak") if isinstance(meta, dict) else None
    if isinstance(both, dict):
        out["both_weak"] = both
    return out


def _computed(scores: Path) -> dict[str, Any] | None:
    """Per-modality accuracy from the scores table (true class and predictions), against the majority class."""
    if not scores.is_file():
        return None
    names = set(pq.read_schema(scores).names)
    if not {"label", "pred_audio", "pred_visual"} <= names:
        return None
    table = pq.read_table(scores, columns=["label", "pred_audio", "pred_visual"]).to_pydict()
    labels = table["label"]
    if not labels:
        return None
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    chance = max(counts.values()) / len(labels)
    modalities: dict[str, Any] = {}
    for m in MODALITIES:
        pairs = [(p, y) for p, y in zip(table[f"pred_{m}"], labels, strict=True) if p is not None]
        if not pairs:
            continue
        n = len(pairs)
        correct = sum(p == y for p, y in pairs)
        acc = correct / n
        lo, hi = wilson_interval(correct, n, z=1.96) or (0.0, 1.0)
        modalities[m] = {
            "accuracy": round(acc, 4),
            "interval": [round(lo, 4), round(hi, 4)],
            "chance": round(chance, 4),
            "above_chance": lo > chance,
            "n": n,
        }
    if not modalities:
        return None
    weak = [m for m, v in modalities.items() if not v["above_chance"]]
    return {
        "status": None,
        "origin": "computed",
        "chance": round(chance, 4),
        "smallest_class": min(counts.values()),
        "verdicts": [],
        "modalities": modalities,
        "weak": weak,
    }


#: what each check of ``mmcurate score``'s self-check (mmcurate.score.health) means when it failed
FAILED_CHECK_WORDS = {"above chance": "not clearly above chance", "folds agree": "folds disagree"}


def failed_checks(health: dict[str, Any]) -> str:
    """The failed verdicts of a recorded self-check, each as "where: what", e.g. "visual fold 2: folds
    disagree; audio: not clearly above chance"."""
    words = []
    for v in health.get("verdicts", []):
        if v.get("status") != "fail":
            continue
        where = (v.get("modality") or "scores") + (f" fold {v['fold']}" if v.get("fold") is not None else "")
        words.append(f"{where}: {FAILED_CHECK_WORDS.get(v['check'], 'failed ' + repr(v['check']))}")
    return "; ".join(words)


def health_line(health: dict[str, Any] | None) -> str | None:
    """One line a page or log shows: each modality's accuracy against chance, and the status."""
    if not health:
        return None
    parts = []
    for m in MODALITIES:
        v = (health.get("modalities") or {}).get(m)
        if not isinstance(v, dict) or v.get("accuracy") is None:
            continue
        verdict = "above chance" if v.get("above_chance") else "NOT above chance"
        parts.append(
            f"{m} {float(v['accuracy']):.1%} ({verdict} {float(v.get('chance', health.get('chance', 0))):.1%})"
        )
    if not parts:
        return None
    status = health.get("status")
    return "scorers: " + ", ".join(parts) + (f"; health {status}" if status else "")

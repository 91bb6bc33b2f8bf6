"""How well a discrepancy matches the ground truth of a generated set (shared by the benchmark and the search)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import rankdata, spearmanr

#: corrupted condition -> sign of d that marks it (visual corruption: d > 0; audio noise: d < 0)
SIGN = {"visual_mismatch": 1.0, "visual_noise": 1.0, "audio_noise": -1.0}


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counted half (Mann-Whitney U / n1 n0)."""
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([pos, neg]))
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def condition_aurocs(d: np.ndarray, condition: np.ndarray, severity: np.ndarray) -> dict[str, dict[str, Any]]:
    """AUROC of (signed) d against clean, per condition and per severity level, with counts."""
    clean = d[condition == "clean"]
    out: dict[str, dict[str, Any]] = {}
    for cond, sign in SIGN.items():
        m = condition == cond
        if not m.any():
            continue
        row: dict[str, Any] = {"n": int(m.sum()), "auroc": auroc(sign * d[m], sign * clean), "levels": {}}
        for level in sorted(set(severity[m].tolist()), key=_level_key):
            mm = m & (severity == level)
            row["levels"][level] = {"n": int(mm.sum()), "auroc": auroc(sign * d[mm], sign * clean)}
        out[cond] = row
    return out


def _level_key(level: str) -> tuple[float, str]:
    digits = "".join(ch for ch in level.split("-occ")[0] if ch in "-.0123456789")
    try:
        return (float(digits), level)
    except ValueError:
        return (0.0, level)


def spearman(d: np.ndarray, expected: np.ndarray) -> float:
    return float(spearmanr(d, expected).statistic)


#: conditions that corrupt each modality's evidence
CORRUPTS = {"audio": ("audio_noise",), "visual": ("visual_mismatch", "visual_noise")}


def intact_mask(modality: str, truth: dict[str, np.ndarray]) -> np.ndarray:
    """Clips whose evidence in ``modality`` is intact (the reference ceiling's training clips):
    on AV-digits-style sets every clip whose condition does not corrupt that modality; on
    demo-synth sets, clips whose regime is clean in that modality (clarity range starting at 0.9)."""
    if "condition" in truth:
        return ~np.isin(truth["condition"], CORRUPTS[modality])
    clean_regimes = {"audio": ("audio_clean", "both_clean"), "visual": ("visual_clean", "both_clean")}[modality]
    return np.isin(truth["regime"], clean_regimes)

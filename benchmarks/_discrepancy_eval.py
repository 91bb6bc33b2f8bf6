"""How well a discrepancy matches the ground truth of a generated set (shared by the benchmark and the search)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import rankdata, spearmanr

#: corrupted condition -> sign of d that marks it (visual corruption: d > 0; audio corruption: d < 0); the
#: other-domain sets' conditions (visual_blur, audio_reverb, ...) take the sign of their modality prefix
SIGN = {"visual_mismatch": 1.0, "visual_noise": 1.0, "audio_noise": -1.0}


def sign_of(condition: str) -> float | None:
    """+1 for a visual corruption, -1 for an audio one, None for clean or unknown."""
    if condition in SIGN:
        return SIGN[condition]
    return {"visual": 1.0, "audio": -1.0}.get(condition.partition("_")[0])


def category(condition: str) -> str:
    """The issue's three families: visual mismatch, visual degradation, audio degradation (audio mismatch apart)."""
    if condition in ("visual_mismatch", "audio_mismatch"):
        return condition
    return "visual_degradation" if condition.startswith("visual_") else "audio_degradation"


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
    present = [c for c in SIGN if c in set(condition.tolist())]
    present += sorted(c for c in set(condition.tolist()) if c not in SIGN and sign_of(c) is not None)
    for cond in present:
        sign = sign_of(cond)
        m = condition == cond
        row: dict[str, Any] = {"n": int(m.sum()), "auroc": auroc(sign * d[m], sign * clean), "levels": {}}
        for level in sorted(set(severity[m].tolist()), key=_level_key):
            mm = m & (severity == level)
            row["levels"][level] = {"n": int(mm.sum()), "auroc": auroc(sign * d[mm], sign * clean)}
        out[cond] = row
    for cat in sorted({category(c) for c in present}):
        members = [c for c in present if category(c) == cat]
        if len(members) > 1 or members[0] != cat:
            m = np.isin(condition, members)
            pos = np.concatenate([sign_of(c) * d[condition == c] for c in members])
            neg = np.concatenate([sign_of(c) * clean for c in members[:1]])
            out[f"[{cat}]"] = {"n": int(m.sum()), "auroc": auroc(pos, neg), "levels": {}}
    return out


def _level_key(level: str) -> tuple[float, str]:
    digits = "".join(ch for ch in level.split("-occ")[0] if ch in "-.0123456789")
    try:
        return (float(digits), level)
    except ValueError:
        return (0.0, level)


def spearman(d: np.ndarray, expected: np.ndarray) -> float:
    return float(spearmanr(d, expected).statistic)


#: conditions that corrupt each modality's evidence (other-domain sets: by the condition's prefix)
CORRUPTS = {"audio": ("audio_noise",), "visual": ("visual_mismatch", "visual_noise")}


def intact_mask(modality: str, truth: dict[str, np.ndarray]) -> np.ndarray:
    """Clips whose evidence in ``modality`` is intact (the reference ceiling's training clips):
    on AV-digits-style sets every clip whose condition does not corrupt that modality; on
    demo-synth sets, clips whose regime is clean in that modality (clarity range starting at 0.9)."""
    if "condition" in truth:
        cond = truth["condition"].astype(str)
        return ~(np.isin(cond, CORRUPTS[modality]) | np.char.startswith(cond, modality + "_"))
    clean_regimes = {"audio": ("audio_clean", "both_clean"), "visual": ("visual_clean", "both_clean")}[modality]
    return np.isin(truth["regime"], clean_regimes)

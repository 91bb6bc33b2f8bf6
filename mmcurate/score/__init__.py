"""Stage 2, ``mmcurate score``: per-sample modality discrepancy from out-of-fold unimodal scorers.

Public surface: :func:`run_score`, :class:`ScoreConfig`, :func:`scores_state` (is a scores
file fresh for this data?), :func:`read_scores`, :func:`register_scorer` (plug in another
scorer), :func:`import_scores` (validate confidences computed elsewhere).
"""

from mmcurate.score.config import ScoreConfig
from mmcurate.score.importer import import_scores, validate_scores
from mmcurate.score.registry import available_scorers, register_scorer
from mmcurate.score.runner import SCORES, SCORES_META, ScoreResult, read_scores, run_score, scores_state, summarize

__all__ = [
    "SCORES", "SCORES_META", "ScoreConfig", "ScoreResult", "available_scorers", "import_scores", "read_scores",
    "register_scorer", "run_score", "scores_state", "summarize", "validate_scores",
]

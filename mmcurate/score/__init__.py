"""Stage 2, ``mmcurate score``: per-sample modality discrepancy from out-of-fold unimodal scorers.

Public surface: :data:`STAGE` / :func:`run_score` with :class:`ScoreStageConfig` (the stage),
:class:`ScoreConfig` (the built-in scorer's settings), :func:`scores_state` (is a scores file fresh
for this data?), :func:`read_scores`, :func:`register_scorer` (plug in another scorer),
:func:`import_scores` (validate confidences computed elsewhere).
"""

from mmcurate.common.stage import Stage
from mmcurate.score.config import BUILTIN_SCORER, ScoreConfig, ScoreStageConfig
from mmcurate.score.importer import import_scores, validate_scores
from mmcurate.score.registry import available_scorers, register_scorer
from mmcurate.score.runner import run_score, scores_state
from mmcurate.score.table import ScoreResult, print_summary, read_scores, summarize
from mmcurate.store import IngestDir, Workdir


def is_complete(workdir: Workdir, cfg: ScoreStageConfig) -> bool:
    """A finished ingest whose scores are fresh for its data (the recipe's fingerprint covers the settings)."""
    ingest = IngestDir(cfg.ingest_dir or workdir.ingest.path)
    return ingest.is_complete() and ingest.scores_state() == "fresh"


STAGE: Stage[ScoreStageConfig, ScoreResult] = Stage(
    name="score",
    config=ScoreStageConfig,
    reads=("ingest/manifest.parquet", "ingest/shards/*.arrow", "ingest/classes.json"),
    writes=("ingest/scores.parquet", "ingest/scores.json", "ingest/score_runs/<scorer>/", "ingest/scorers/<scorer>/"),
    run=run_score,
    summarize=print_summary,
    is_complete=is_complete,
    sections=("score",),
)

__all__ = [
    "BUILTIN_SCORER",
    "STAGE",
    "ScoreConfig",
    "ScoreResult",
    "ScoreStageConfig",
    "available_scorers",
    "import_scores",
    "read_scores",
    "register_scorer",
    "run_score",
    "scores_state",
    "summarize",
    "validate_scores",
]

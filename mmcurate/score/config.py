"""``mmcurate score``'s options, written once.

:class:`ScoreStageConfig` is the whole stage: which ingest folder, the built-in scorer's settings
(:class:`~mmcurate.common.scoring.ScoreConfig`, whose content fields are hashed into the scorer id;
shared with ``mmcurate balance``), imported or plugin scores instead, and how to run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from mmcurate.common.errors import MMCurateError
from mmcurate.common.files import regular_file_problem
from mmcurate.common.options import nested, opt
from mmcurate.common.scoring import BUILTIN_SCORER, CALIBRATIONS, CPU_DEFAULTS, GPU_DEFAULTS, ScoreConfig
from mmcurate.execution import ArrayJobConfig, ExecutionConfig

__all__ = ["BUILTIN_SCORER", "CALIBRATIONS", "CPU_DEFAULTS", "GPU_DEFAULTS", "ScoreConfig", "ScoreStageConfig"]


@dataclass(frozen=True)
class ScoreStageConfig:
    """``mmcurate score [INGEST_DIR]``: every setting of the stage."""

    ingest_dir: Path | None = opt(None, argument=True)
    scorer_settings: ScoreConfig = dataclasses.field(default_factory=ScoreConfig)
    scores_from: Path | None = opt(
        None,
        "Import confidences computed elsewhere (Parquet/CSV with sample_id, p_audio, p_visual) instead of training.",
    )
    scorer: str = opt(
        BUILTIN_SCORER,
        "Scorer to use: the built-in out-of-fold ResNet-18, or one registered by a plugin (entry point group "
        "mmcurate.scorers).",
    )
    allow_missing: bool = opt(
        False, "Score samples ingested without audio or video (zero-filled) instead of refusing."
    )
    overwrite: bool = opt(False, "Retrain even if finished fold results exist.")
    strict: bool = opt(
        False,
        "Exit with status 2 when the scores fail their self-check (a scorer not clearly above chance, a fold far "
        "below the others, a fold stuck at chance); the scores are written either way and scores.json records "
        "the verdicts.",
    )
    save_scorers: bool = opt(
        True,
        "Keep each fold's models (of the first repeat) in INGEST_DIR/scorers/<scorer>/ as a fold ensemble, so "
        "that `--candidates` can score new clips later. No extra training; disk: 2 checkpoints per fold and "
        "modality, 0.7 MB each at width 8 (about 14 MB at 5 folds; 45 MB per checkpoint at width 64).",
    )
    candidates: Path | None = opt(
        None,
        "Score the clips of another ingest folder with the scorers `mmcurate score` saved for INGEST_DIR (same "
        "calibration; the class lists must match) and write NEW_INGEST_DIR/scores.parquet. These scores are not "
        "out-of-fold: the models trained on INGEST_DIR and never saw the new clips.",
        metavar="NEW_INGEST_DIR",
    )
    array: ArrayJobConfig = dataclasses.field(default_factory=ArrayJobConfig)
    execution: ExecutionConfig = nested(ExecutionConfig)

    def __post_init__(self) -> None:
        if self.scores_from is not None:  # a FIFO or device would never finish reading
            problem = regular_file_problem(self.scores_from)
            if problem is not None and problem != "not found":
                raise MMCurateError(f"--scores-from {self.scores_from}: cannot read it ({problem})")

"""Stage 5, ``mmcurate reeval``: re-evaluate multimodal imbalance algorithms per modality-discrepancy subset.

Entry points: :data:`STAGE` / :func:`mmcurate.reeval.runner.run_reeval_stage` with :class:`ReevalConfig`
(everything), :func:`mmcurate.reeval.trainer.train_run` (one method, one seed),
:mod:`mmcurate.reeval.methods` (the method registry), and :func:`mmcurate.reeval.sources.load_source`
(any supported dataset -> :class:`ReevalData`).
"""

from pathlib import Path

from mmcurate.common.stage import Stage
from mmcurate.reeval.config import ReevalConfig
from mmcurate.reeval.runner import ReevalOutcome, run_reeval_stage

STAGE: Stage[ReevalConfig, ReevalOutcome] = Stage(
    name="reeval",
    config=ReevalConfig,
    claims_folder=True,  # --overwrite: write into a folder mmcurate did not make
    reads=("balanced/data/*.parquet (or hf/), a Hub repo ORG/NAME, or ingest/ with scores",),
    writes=(
        "reeval/results.json",
        "reeval/results.csv",
        "reeval/results_summary.csv",
        "reeval/results_differences.csv",
        "reeval/results.md",
        "reeval/*.png",
        "reeval/runs/",
    ),
    run=run_reeval_stage,
    is_complete=lambda workdir, cfg: (Path(cfg.out or workdir.reeval_dir) / "results.json").is_file(),
    sections=("reeval",),
    optional=True,
    on_change={"fresh": True},  # changed settings: retrain instead of resuming
)

__all__ = ["STAGE", "ReevalConfig", "ReevalOutcome", "run_reeval_stage"]

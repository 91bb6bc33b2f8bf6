"""Stage 4, ``mmcurate push``: an export (dataset card + Hub-layout Parquet shards) to a Hugging Face Hub dataset repo.

:data:`STAGE` / :func:`run_push` with :class:`PushConfig`; ``push_dataset`` does the work.
``huggingface_hub`` is imported only when a push starts, so ``mmcurate --help`` stays fast.
"""

from mmcurate.common.stage import Stage
from mmcurate.push.config import PushConfig
from mmcurate.push.push import PushResult, push_dataset, run_push
from mmcurate.push.repo_id import validate_repo_id
from mmcurate.push.summary import report

STAGE: Stage[PushConfig, PushResult] = Stage(
    name="push",
    config=PushConfig,
    reads=("balanced/README.md", "balanced/data/*.parquet", "balanced/export.json"),
    writes=("the Hub repository ORG/NAME",),
    run=run_push,
    summarize=report,
    sections=("push",),
    optional=True,  # never complete here: only the Hub knows what it holds (a rerun uploads only what is missing)
)

__all__ = ["STAGE", "PushConfig", "PushResult", "push_dataset", "run_push", "validate_repo_id"]

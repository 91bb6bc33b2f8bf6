"""Push an export (dataset card + Hub-layout Parquet shards) to a Hugging Face Hub dataset repo.

``push_dataset`` does the work; ``mmcurate push`` (``mmcurate.push.cli``) is its command line.
``huggingface_hub`` is imported only when a push starts, so ``mmcurate --help`` stays fast.
"""

from mmcurate.push.push import PushResult, push_dataset
from mmcurate.push.repo_id import validate_repo_id

__all__ = ["PushResult", "push_dataset", "validate_repo_id"]

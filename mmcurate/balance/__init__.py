"""Stage 3, ``mmcurate balance``: stratified sampling into a dataset with uniform discrepancy.

Public surface: :data:`STAGE` / :func:`run_balance` with :class:`BalanceConfig`, and the pieces it is
built from (:func:`make_edges`, :func:`assign_bins`, :func:`plan_bins`, :func:`water_fill`,
:func:`sample_within_bins`, and the splitter :func:`mmcurate.store.splits.assign_splits`) for users
who build their own selections.
"""

from mmcurate.balance.config import BalanceConfig
from mmcurate.balance.runner import BalanceResult, plan_balance, print_plan, run_balance
from mmcurate.balance.sampling import BinPlan, plan_bins, sample_within_bins, water_fill
from mmcurate.common.stage import Stage
from mmcurate.store.bins import assign_bins, make_edges
from mmcurate.store.splits import assign_splits, parse_ratios

STAGE: Stage[BalanceConfig, BalanceResult] = Stage(
    name="balance",
    config=BalanceConfig,
    reads=(
        "ingest/manifest.parquet",
        "ingest/scores.parquet (scores first when missing or stale)",
        "ingest/shards/*.arrow",
    ),
    writes=(
        "balanced/selection.parquet",
        "balanced/balance.json",
        "balanced/report/",
        "balanced/data/*.parquet",
        "balanced/hf/",
        "balanced/README.md",
        "balanced/export.json",
    ),
    run=run_balance,
)

__all__ = [
    "STAGE",
    "BalanceConfig",
    "BalanceResult",
    "BinPlan",
    "assign_bins",
    "assign_splits",
    "make_edges",
    "parse_ratios",
    "plan_balance",
    "plan_bins",
    "print_plan",
    "run_balance",
    "sample_within_bins",
    "water_fill",
]

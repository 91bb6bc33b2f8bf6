"""Stage 3, ``mmcurate balance``: stratified sampling into a dataset with uniform discrepancy.

Public surface: :data:`STAGE` / :func:`run_balance` with :class:`BalanceConfig`, and the pieces it is
built from (:func:`make_edges`, :func:`assign_bins`, :func:`plan_bins`, :func:`water_fill`,
:func:`sample_within_bins`, and the splitter :func:`mmcurate.store.splits.assign_splits`) for users
who build their own selections.
"""

from collections.abc import Mapping
from typing import Any

from mmcurate.balance.config import BalanceConfig
from mmcurate.balance.runner import BalanceResult, plan_balance, print_plan, run_balance, scoring_needs
from mmcurate.balance.sampling import BinPlan, plan_bins, sample_within_bins, water_fill
from mmcurate.common.errors import MMCurateError
from mmcurate.common.options import option_fields
from mmcurate.common.stage import Stage
from mmcurate.store import BalancedDir
from mmcurate.store.bins import assign_bins, make_edges
from mmcurate.store.splits import assign_splits, parse_ratios

#: keys of a recipe's ``export`` section (the Hugging Face dataset's card and shards), which balance writes
EXPORT_KEYS = ("license", "source_dataset", "max_shard_size", "no_features", "pretty_name")


def recipe_settings(resolved: Mapping[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Balance's options in a recipe: its own section, the ``export`` section's keys, and which scorer
    options the recipe set (scores made otherwise are then stale)."""
    section = dict(resolved.get("balance") or {})
    for key, value in (resolved.get("export") or {}).items():
        if key not in EXPORT_KEYS:
            raise MMCurateError(
                f"recipe {where}: export.{key} is not an export setting (valid: {', '.join(EXPORT_KEYS)})"
            )
        section.setdefault(key, value)
    scoring = {f.key for f in option_fields(BalanceConfig) if f.path[0] == "scoring"}
    return section, {"explicit_scoring": tuple(sorted(k for k in section if k in scoring and section[k] is not None))}


STAGE: Stage[BalanceConfig, BalanceResult] = Stage(
    name="balance",
    config=BalanceConfig,
    claims_folder=True,  # --overwrite: write into a folder mmcurate did not make
    reads=(
        "ingest/manifest.parquet",
        "ingest/scores.parquet (the score stage runs first when they are missing or stale)",
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
    is_complete=lambda workdir, cfg: BalancedDir(cfg.out or workdir.balanced.path).is_complete(),
    sections=("balance", "export"),
    recipe_settings=recipe_settings,
    needs=scoring_needs,
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

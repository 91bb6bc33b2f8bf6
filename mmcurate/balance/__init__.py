"""Stage 3, ``mmcurate balance``: stratified sampling into a dataset with uniform discrepancy.

Public surface: :func:`run_balance`, :class:`BalanceConfig`, and the pieces it is built from
(:func:`make_edges`, :func:`assign_bins`, :func:`plan_bins`, :func:`water_fill`,
:func:`sample_within_bins`, :func:`assign_splits`) for users who build their own selections.
"""

from mmcurate.balance.bins import assign_bins, make_edges
from mmcurate.balance.config import BalanceConfig
from mmcurate.balance.runner import BALANCE_META, SELECTION, BalanceResult, plan_balance, run_balance
from mmcurate.balance.sampling import BinPlan, plan_bins, sample_within_bins, water_fill
from mmcurate.balance.splits import assign_splits, parse_ratios

__all__ = [
    "BALANCE_META", "SELECTION", "BalanceConfig", "BalanceResult", "BinPlan", "assign_bins", "assign_splits",
    "make_edges", "parse_ratios", "plan_balance", "plan_bins", "run_balance", "sample_within_bins", "water_fill",
]

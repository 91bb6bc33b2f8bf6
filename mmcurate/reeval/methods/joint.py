"""``joint``: plain joint training of the late-fusion model (the field's "Baseline" row)."""

from __future__ import annotations

from mmcurate.reeval.methods.base import Method


class Joint(Method):
    name = "joint"
    title = "Joint (baseline)"
    reference = "late fusion, one cross-entropy on the fused logits"
    category = "baseline"
    aliases = ("baseline",)

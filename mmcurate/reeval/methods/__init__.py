"""The registry of re-evaluated methods: a new method is one new file plus one line here."""

from __future__ import annotations

from typing import Any

from mmcurate.common.errors import MMCurateError
from mmcurate.reeval.methods.agm import AGM
from mmcurate.reeval.methods.base import Method, Prediction, TrainContext
from mmcurate.reeval.methods.gblending import GBlending
from mmcurate.reeval.methods.greedy import Greedy
from mmcurate.reeval.methods.joint import Joint
from mmcurate.reeval.methods.mmpareto import MMPareto
from mmcurate.reeval.methods.ogm_ge import OGMGE
from mmcurate.reeval.methods.pmr import PMR
from mmcurate.reeval.methods.unimodal import AudioOnly, VisualOnly

#: method name -> class, in report order (unimodal references first, then the baseline)
METHODS: dict[str, type[Method]] = {
    cls.name: cls for cls in (AudioOnly, VisualOnly, Joint, OGMGE, GBlending, Greedy, PMR, AGM, MMPareto)
}


def get_method(name: str, **kwargs: Any) -> Method:
    """An instance of method ``name``; an unknown name is a user error listing the known ones."""
    if name not in METHODS:
        raise MMCurateError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    return METHODS[name](**kwargs)


__all__ = ["METHODS", "Method", "Prediction", "TrainContext", "get_method"]

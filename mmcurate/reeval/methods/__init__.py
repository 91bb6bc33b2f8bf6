"""The registry of re-evaluated methods: a new method is one new file plus one line here.

Names on the command line are matched loosely (case, ``-``/``_``/spaces ignored) against each
method's registry name, its title and its ``aliases``, so ``OGM-GE``, ``ogm_ge``, ``MMCosine`` and
``ReconBoost`` all work.
"""

from __future__ import annotations

import re
from typing import Any

from mmcurate.common.errors import MMCurateError
from mmcurate.reeval.methods.agm import AGM
from mmcurate.reeval.methods.amco import AMCo
from mmcurate.reeval.methods.base import CATEGORIES, Method, Prediction, TrainContext
from mmcurate.reeval.methods.cml import CML
from mmcurate.reeval.methods.gblending import GBlending
from mmcurate.reeval.methods.greedy import Greedy
from mmcurate.reeval.methods.joint import Joint
from mmcurate.reeval.methods.lfm import LFM
from mmcurate.reeval.methods.mbsd import MBSD
from mmcurate.reeval.methods.mla import MLA
from mmcurate.reeval.methods.mmcosine import MMCosine
from mmcurate.reeval.methods.mmpareto import MMPareto
from mmcurate.reeval.methods.ogm_ge import OGMGE
from mmcurate.reeval.methods.opm import OPM
from mmcurate.reeval.methods.pmr import PMR
from mmcurate.reeval.methods.reconboost import ReconBoost
from mmcurate.reeval.methods.relearning import ReLearning
from mmcurate.reeval.methods.umt import UMT
from mmcurate.reeval.methods.unimodal import AudioOnly, VisualOnly
from mmcurate.reeval.methods.valuation import Valuation

#: method name -> class, in report order (unimodal references first, then the baseline)
METHODS: dict[str, type[Method]] = {
    cls.name: cls
    for cls in (
        AudioOnly,
        VisualOnly,
        Joint,
        OGMGE,
        GBlending,
        Greedy,
        PMR,
        AGM,
        MMPareto,
        Valuation,
        MLA,
        OPM,
        AMCo,
        MMCosine,
        UMT,
        MBSD,
        CML,
        LFM,
        ReLearning,
        ReconBoost,
    )
}


def _key(text: str) -> str:
    """A spelling-insensitive key: lower case, letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _spellings() -> dict[str, str]:
    """Spelling key -> registry name; a registry name always wins, then the first method spelt so."""
    table = {_key(name): name for name in METHODS}
    for name, cls in METHODS.items():
        for spelling in (cls.title, *cls.aliases):
            table.setdefault(_key(spelling), name)
    return table


def lookup_method(text: str) -> str | None:
    """The registry name for a method as a user wrote it, or None when no method is spelt so
    (the spellings are built from :data:`METHODS` each time, so a method registered later counts)."""
    return _spellings().get(_key(text))


def resolve_method(text: str) -> str:
    """The registry name for a method as a user wrote it; an unknown one is a user error."""
    name = lookup_method(text)
    if name is None:
        known = ", ".join(METHODS)
        raise MMCurateError(f"unknown method {text!r}; choose from {known} (mmcurate reeval --list-methods)")
    return name


def get_method(name: str, **kwargs: Any) -> Method:
    """An instance of method ``name`` (any accepted spelling); an unknown name lists the known ones."""
    return METHODS[resolve_method(name)](**kwargs)


#: the default ``--methods``: the demo's eight, affordable on a CPU (``all`` runs the twenty)
DEFAULT_METHODS: tuple[str, ...] = ("audio_only", "visual_only", "joint", "ogm_ge", "greedy", "pmr", "agm", "mmpareto")

#: epoch hooks whose override makes a method's behaviour depend on the epoch (it must then declare a schedule)
EPOCH_HOOKS: tuple[str, ...] = ("on_epoch_start", "on_epoch_end", "train_batches", "train_subset")


def epochs_for_every_event(name: str, limit: int = 200, **params: Any) -> int:
    """The shortest run (at least 2 epochs) in which every event of the method's :meth:`Method.schedule` happens.

    Scaled schedules change with the run length, so each length is asked anew. A test that watches
    what a method reads while training runs it this long, so that no periodic hook hides behind a
    short run."""
    for epochs in range(2, limit + 1):
        method = get_method(name, width=1, epochs=epochs, **params)
        if all(method.schedule().values()):
            return epochs
    raise ValueError(f"method {name}: some event of its schedule never happens within {limit} epochs")


def method_catalog() -> list[dict[str, str]]:
    """One row per method, in report order: name, category, title, reference and paper title."""
    for cls in METHODS.values():
        assert cls.category in CATEGORIES, f"{cls.name}: category {cls.category!r} not in {CATEGORIES}"
    return [
        {"name": n, "category": c.category, "title": c.title, "reference": c.reference, "paper": c.paper}
        for n, c in METHODS.items()
    ]


__all__ = [
    "CATEGORIES",
    "DEFAULT_METHODS",
    "EPOCH_HOOKS",
    "METHODS",
    "Method",
    "Prediction",
    "TrainContext",
    "epochs_for_every_event",
    "get_method",
    "lookup_method",
    "method_catalog",
    "resolve_method",
]

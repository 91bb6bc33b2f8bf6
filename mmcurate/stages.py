"""The one registry of the stages, in pipeline order, and how one stage runs after the stages it needs.

Each entry names where the stage's :class:`~mmcurate.common.stage.Stage` and its click command live, as
text: a stage's module (and its torch, pyarrow or datasets imports) loads only when that stage is used, so
``mmcurate --help`` lists every command without importing any. Everything else about a stage (its
options, what it reads and writes, its recipe sections, when it is complete, what it needs first) is on
the Stage itself. The command line (:mod:`mmcurate.cli`), recipes (:mod:`mmcurate.pipeline`) and the
import-graph test read this table; nothing else lists the stages.

:func:`run_stage` is the one way a stage is run, from a command or a recipe: the stages it needs first
(balance needs score when the scores are missing or stale) are run through this registry, so no stage
imports another.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mmcurate.common.errors import MMCurateError

if TYPE_CHECKING:
    import click

    from mmcurate.common.stage import Stage
    from mmcurate.store import Workdir


@dataclass(frozen=True)
class StageEntry:
    """A stage's name, where its Stage and its command are (``module:attribute``), and its ``--help`` line."""

    name: str
    stage: str
    command: str
    summary: str


#: every stage, in the order a recipe runs them (the ones added later come last: each stage's recipe
#: fingerprint chains those of the stages before it, and existing work directories keep theirs)
REGISTRY: tuple[StageEntry, ...] = (
    StageEntry(
        "ingest",
        "mmcurate.ingest:STAGE",
        "mmcurate.ingest.cli:ingest",
        "Decode raw clips (frames + audio) into Arrow shards with a manifest.",
    ),
    StageEntry(
        "score",
        "mmcurate.score:STAGE",
        "mmcurate.score.cli:score",
        "Train unimodal scorers out-of-fold and write per-sample modality discrepancy.",
    ),
    StageEntry(
        "report",
        "mmcurate.score.report:REPORT_STAGE",
        "mmcurate.score.report_cli:report",
        "Plot and summarise a dataset's modality bias from its scores.",
    ),
    StageEntry(
        "balance",
        "mmcurate.balance:STAGE",
        "mmcurate.balance.cli:balance",
        "Sample a dataset whose discrepancy is uniform over bins; export it.",
    ),
    StageEntry(
        "push",
        "mmcurate.push:STAGE",
        "mmcurate.push.cli:push",
        "Push the balanced dataset (Parquet shards + card) to a Hugging Face Hub.",
    ),
    StageEntry(
        "reeval",
        "mmcurate.reeval:STAGE",
        "mmcurate.reeval.cli:reeval",
        "Re-evaluate unimodal, joint and imbalance-algorithm models per subset.",
    ),
    StageEntry(
        "export",
        "mmcurate.formats.export:STAGE",
        "mmcurate.formats.cli:export",
        "Write the balanced dataset in a layout the field's code loads (BalanceMM).",
    ),
    StageEntry(
        "browse",
        "mmcurate.browse:STAGE",
        "mmcurate.browse.cli:browse",
        "Build a static HTML browser of the samples: plots, filters, frames and audio.",
    ),
)
#: the stage names, in pipeline order
NAMES: tuple[str, ...] = tuple(e.name for e in REGISTRY)


def entry(name: str) -> StageEntry:
    for e in REGISTRY:
        if e.name == name:
            return e
    raise MMCurateError(f"unknown stage {name!r}; stages: {', '.join(NAMES)}")


def _load(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def load_stage(name: str) -> Stage[Any, Any]:
    """The :class:`Stage` of ``name`` (its module imported now)."""
    return _load(entry(name).stage)  # type: ignore[no-any-return]


def load_command(name: str) -> click.Command:
    """The click command of stage ``name`` (its module imported now)."""
    return _load(entry(name).command)  # type: ignore[no-any-return]


def run_stage(stage: Stage[Any, Any], workdir: Workdir, config: Any) -> Any:
    """Run ``stage`` after the stages it needs (each run with the fields the need gives, and summarized)."""
    from mmcurate.common.console import info  # rich: not for `mmcurate --help`
    from mmcurate.common.options import from_mapping

    for need in stage.needs(workdir, config):
        info(need.why)
        other = load_stage(need.stage)
        other_config = from_mapping(other.config, {}, f"{stage.name} needs {need.stage}", fixed=need.fields)
        other.summarize(other.run(workdir, other_config))
    return stage.run(workdir, config)

"""One shape for a stage: its settings, what it reads and writes, how it is run, and when it is done.

The command line (each stage's ``cli.py``), a recipe (``mmcurate run``) and Python callers all reach a
stage the same way: build its config dataclass (from click options generated from that dataclass, or
from a recipe section with :func:`mmcurate.common.options.from_mapping`), then run it with
:func:`mmcurate.stages.run_stage`, which first runs the stages it :attr:`~Stage.needs`. Everything the
pipeline used to decide by a stage's name is a field here: whether its output is complete, which recipe
sections configure it, what a changed setting means for it. :mod:`mmcurate.stages` lists the stages, once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:  # a type-only arrow: common stays below store
    from mmcurate.store import Workdir

C = TypeVar("C")
R = TypeVar("R")

#: what a recipe resolves into for one stage: (its options by recipe key, fields fixed by path)
RecipeSettings = tuple[dict[str, Any], dict[str, Any]]


@dataclass(frozen=True)
class Need:
    """Another stage that must run before this one: its name, the fields of its config (by path, as
    :func:`~mmcurate.common.options.from_mapping`'s ``fixed``) and the line that says why."""

    stage: str
    fields: Mapping[str, Any]
    why: str


def _quiet(result: Any) -> None:
    return None


def _never(workdir: Workdir, config: Any) -> bool:
    return False


def _nothing_needed(workdir: Workdir, config: Any) -> Sequence[Need]:
    return ()


@dataclass(frozen=True)
class Stage(Generic[C, R]):
    """A stage of the pipeline.

    ``reads``/``writes`` name the work-directory artefacts (``ingest/manifest.parquet``); the stage's
    ``--help`` ends with them (:meth:`epilog`) and ``mmcurate run --dry-run`` lists them
    (:meth:`describe`). ``run`` does the work and ``summarize`` prints the end-of-run table.

    For the pipeline: ``is_complete(workdir, config)`` says whether the output is finished and current
    (a finished stage whose settings did not change is skipped); ``sections`` are the recipe sections
    that configure it, its own first (empty: recipes do not run it); an ``optional`` stage runs only
    when the recipe has its section; ``recipe_settings`` turns the resolved recipe into the stage's
    options when they come from more than its own section; ``on_change`` are the fields set when its
    settings changed since the last run (start over instead of resuming). ``needs(workdir, config)``
    names the stages to run first (balance: score, when the scores are missing or stale).
    ``claims_folder``: its ``overwrite`` option lets it write into a folder mmcurate did not make (the
    user's word, which a recipe file may not give: :mod:`mmcurate.pipeline.trust`).
    """

    name: str
    config: type[C]
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    run: Callable[[Workdir, C], R]
    summarize: Callable[[R], None] = _quiet
    is_complete: Callable[[Workdir, C], bool] = _never
    sections: tuple[str, ...] = ()
    optional: bool = False
    claims_folder: bool = False
    recipe_settings: Callable[[Mapping[str, Any], str], RecipeSettings] | None = None
    on_change: Mapping[str, Any] = field(default_factory=dict)
    needs: Callable[[Workdir, C], Sequence[Need]] = _nothing_needed

    def __call__(self, workdir: Workdir, config: C) -> R:
        return self.run(workdir, config)

    @property
    def section(self) -> str | None:
        """The recipe section of its own options (None: not run by recipes)."""
        return self.sections[0] if self.sections else None

    def settings_from(self, resolved: Mapping[str, Any], where: str) -> RecipeSettings:
        """(options, fixed fields) of this stage in a resolved recipe."""
        if self.recipe_settings is not None:
            return self.recipe_settings(resolved, where)
        return dict(resolved.get(self.section or "") or {}), {}

    def describe(self) -> dict[str, Any]:
        return {"stage": self.name, "reads": list(self.reads), "writes": list(self.writes)}

    def epilog(self, extra: str = "") -> str:
        """The end of the command's ``--help``: ``extra`` (examples, environment), then what it reads and writes."""
        lines = ["\b", "Reads:", *(f"  {r}" for r in self.reads), "Writes:", *(f"  {w}" for w in self.writes)]
        return (extra.rstrip() + "\n\n" if extra else "") + "\n".join(lines)

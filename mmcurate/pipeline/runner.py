"""Run a recipe stage by stage, in Python, skipping stages whose outputs are complete and settings unchanged.

The stages and their order come from the registry (:mod:`mmcurate.stages`); what differs between them
is on each :class:`~mmcurate.common.stage.Stage` (its recipe sections, whether a recipe must name it to
run it, when its output is complete, what a changed setting means for it), so this module never asks
which stage it is running. Each stage's recipe section becomes its config dataclass
(:func:`mmcurate.common.options.from_mapping`: a YAML key is a field of that dataclass, so it can be
followed to the code that uses it) and the stage runs through :func:`mmcurate.stages.run_stage`, as the
command line runs it. Each stage's fingerprint hashes its own (resolved) sections together with the
fingerprint of the stage before it, so a changed setting reruns that stage and every stage after it,
while an unchanged, finished stage (``Stage.is_complete``) is skipped. Fingerprints live in
``WORKDIR/pipeline_state.json``; the resolved recipe (overrides applied, ``{workdir}`` filled in) is
saved as ``WORKDIR/recipe.resolved.yaml``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mmcurate.common.atomic import atomic_write_json, atomic_write_text
from mmcurate.common.console import info, summary_table, warn
from mmcurate.common.errors import MMCurateError
from mmcurate.common.hashing import config_hash
from mmcurate.common.options import from_mapping
from mmcurate.common.stage import Stage
from mmcurate.pipeline.recipe import Recipe, check_recipe, substitute
from mmcurate.stages import NAMES, load_stage, run_stage
from mmcurate.store import Workdir
from mmcurate.store.ownership import make_output_dir

#: the pipeline order (the registry's)
STAGES = NAMES


@dataclass
class StageReport:
    stage: str
    status: str  # ran, skipped (up to date), not configured, not selected, would run
    seconds: float = 0.0
    output: str = ""
    #: what the stage reads and writes (:meth:`Stage.describe`), for a stage that ran or would run
    io: dict[str, Any] = field(default_factory=dict)


@dataclass
class PipelineResult:
    workdir: Path
    stages: list[StageReport] = field(default_factory=list)


def stage_object(name: str) -> Stage[Any, Any]:
    return load_stage(name)


def stage_settings(stage: str, resolved: dict[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(options, fixed fields) of ``stage`` from the resolved recipe (see :meth:`Stage.settings_from`)."""
    obj = load_stage(stage)
    if not isinstance(resolved.get(obj.section or "") or {}, dict):
        raise MMCurateError(f"recipe {where}: section '{obj.section}' must be a mapping of option: value")
    return obj.settings_from(resolved, where)


def _config(stage: Stage[Any, Any], resolved: dict[str, Any], changed: bool, where: str) -> Any:
    section, fixed = stage_settings(stage.name, resolved, where)
    if changed:  # e.g. ingest replaces output made with the old settings, reeval starts its runs afresh
        fixed.update(stage.on_change)
    return from_mapping(stage.config, section, f"{where}: {stage.name}", command=stage.name, fixed=fixed)


def command_line(stage: str, resolved: dict[str, Any], where: str) -> str:
    """The ``mmcurate`` command equivalent to a stage's settings, for logs and ``--dry-run``."""
    section, fixed = stage_settings(stage, resolved, where)
    parts = ["mmcurate", stage]
    if "raw_dir" in fixed:
        parts.append(str(fixed["raw_dir"]))
    for key in sorted(section):
        value = section[key]
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if key == "token":  # never printed, whatever reached here
            parts.append(f"{flag} ***")
            continue
        if value is True:
            parts.append(flag)
        elif isinstance(value, dict):
            parts += [f"{flag} {k}={v}" for k, v in value.items()]
        elif isinstance(value, list):
            parts.append(f"{flag} {','.join(str(v) for v in value)}")
        else:
            parts.append(f"{flag} {value}")
    return " ".join(parts)


def _generate_source(resolved: dict[str, Any]) -> None:
    """Make the raw data a recipe's ``source.generate`` describes (the synthetic demo set)."""
    gen = (resolved.get("source") or {}).get("generate")
    if not gen:
        return
    from mmcurate.synth import generate

    raw = Path(resolved["source"]["raw_dir"])
    info(f"pipeline: generating the synthetic source set in {raw}")
    generate(raw, **gen)


def run_pipeline(
    recipe: Recipe,
    workdir: Path,
    only: tuple[str, ...] = (),
    from_stage: str | None = None,
    until: str | None = None,
    force: bool = False,
    dry_run: bool = False,
    runner: Callable[[Stage[Any, Any], Workdir, Any], Any] | None = None,
) -> PipelineResult:
    """Run the recipe's stages in order (see the module docstring for the skip rule)."""
    wd = Workdir(workdir)
    check_recipe(recipe.data, str(recipe.path))  # also for recipes built in Python: no secret reaches the disk
    resolved = substitute(recipe.data, workdir)
    selected = _selection(only, from_stage, until)
    make_output_dir(workdir, "--workdir")
    if not dry_run:
        atomic_write_text(workdir / Workdir.RESOLVED_RECIPE, yaml.safe_dump(resolved, sort_keys=False))
    state_path = workdir / Workdir.PIPELINE_STATE
    state = _read_state(state_path)
    run = runner or _run_stage
    result = PipelineResult(workdir)
    upstream = ""
    upstream_ran = False
    where = str(recipe.path)
    for name in STAGES:
        stage = load_stage(name)
        fingerprint = config_hash([upstream, {s: resolved.get(s) or {} for s in stage.sections}], length=16)
        upstream = fingerprint
        if not stage.sections or (stage.optional and resolved.get(stage.section or "") is None):
            result.stages.append(StageReport(name, "not configured"))
            continue
        if name not in selected:
            result.stages.append(StageReport(name, "not selected"))
            continue
        previous = state.get(name, {}).get("fingerprint")
        command = command_line(name, resolved, where)  # the summary's `command` column, whatever the status
        if not force and not upstream_ran and previous == fingerprint:
            if stage.is_complete(wd, _config(stage, resolved, False, where)):
                result.stages.append(StageReport(name, "skipped (up to date)", output=command))
                continue
        changed = previous is not None and previous != fingerprint
        config = _config(stage, resolved, changed or force, where)
        if dry_run:
            result.stages.append(StageReport(name, "would run", output=command, io=stage.describe()))
            continue
        if "source" in stage.sections:
            _generate_source(resolved)
        info(f"pipeline [{recipe.name}]: {command}")
        started = time.monotonic()
        run(stage, wd, config)
        state[name] = {"fingerprint": fingerprint, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        atomic_write_json(state_path, state)
        upstream_ran = True
        result.stages.append(StageReport(name, "ran", time.monotonic() - started, output=command, io=stage.describe()))
    return result


def _read_state(path: Path) -> dict[str, Any]:
    """pipeline_state.json; a damaged one is forgotten (every selected stage then runs), not trusted."""
    if not path.is_file():
        return {}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        state = None
    if not isinstance(state, dict) or not all(isinstance(v, dict) for v in state.values()):
        warn(f"{path}: unreadable pipeline state; running the selected stages again")
        return {}
    return state


def _run_stage(stage: Stage[Any, Any], workdir: Workdir, config: Any) -> Any:
    result = run_stage(stage, workdir, config)
    stage.summarize(result)
    return result


def _selection(only: tuple[str, ...], from_stage: str | None, until: str | None) -> set[str]:
    for name in (*only, from_stage, until):
        if name is not None and name not in STAGES:
            raise MMCurateError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    if only:
        return set(only)
    lo = STAGES.index(from_stage) if from_stage else 0
    hi = STAGES.index(until) if until else len(STAGES) - 1
    return set(STAGES[lo : hi + 1])


def print_result(result: PipelineResult) -> None:
    """The summary table, then (after a dry run) what each stage that would run reads and writes."""
    rows = [[s.stage, s.status, f"{s.seconds:.1f}" if s.seconds else "", s.output] for s in result.stages]
    summary_table(f"pipeline -> {result.workdir}", ["stage", "status", "seconds", "command"], rows)
    for s in result.stages:
        if s.status == "would run":
            info(f"{s.stage}: reads {', '.join(s.io['reads'])}; writes {', '.join(s.io['writes'])}")

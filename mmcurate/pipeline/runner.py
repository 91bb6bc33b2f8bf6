"""Run a recipe stage by stage, skipping stages whose outputs are complete and config unchanged.

Each stage's fingerprint hashes its own (resolved) section together with the fingerprint of
the stage before it, so a changed setting reruns that stage and every stage after it, while an
unchanged, finished stage is skipped. Fingerprints live in ``WORKDIR/pipeline_state.json``;
the resolved recipe (overrides applied, ``{workdir}`` filled in) is saved as
``WORKDIR/recipe.resolved.yaml``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import yaml

from mmcurate.common.atomic import atomic_write_json, atomic_write_text
from mmcurate.common.console import info, summary_table
from mmcurate.common.errors import MMCurateError
from mmcurate.common.hashing import config_hash
from mmcurate.common.workdir import stage_dir
from mmcurate.pipeline.args import section_args
from mmcurate.pipeline.recipe import STAGES, Recipe, substitute

STATE = "pipeline_state.json"
RESOLVED = "recipe.resolved.yaml"
#: export-section keys that the balance command takes under another name
EXPORT_KEYS = {"license": "license", "source_dataset": "source_dataset", "max_shard_size": "max_shard_size",
               "no_features": "no_features", "pretty_name": "pretty_name"}


@dataclass
class StageReport:
    stage: str
    status: str  # ran, skipped (up to date), not configured, not selected
    seconds: float = 0.0
    output: str = ""


@dataclass
class PipelineResult:
    workdir: Path
    stages: list[StageReport] = field(default_factory=list)


def _command(name: str) -> click.Command:
    from mmcurate.cli import LazyGroup, cli

    cmd = LazyGroup.get_command(cli, click.Context(cli), name)  # type: ignore[arg-type]
    assert cmd is not None
    return cmd


def _complete(stage: str, workdir: Path) -> bool:
    ingest = stage_dir("ingest", workdir)
    if stage == "ingest":
        return (ingest / "manifest.parquet").is_file()
    if stage == "score":
        from mmcurate.score import scores_state

        return (ingest / "manifest.parquet").is_file() and scores_state(ingest) == "fresh"
    if stage == "report":
        return (ingest / "report" / "report.md").is_file()
    if stage == "balance":
        return (stage_dir("balance", workdir) / "export.json").is_file()
    if stage == "reeval":
        return (stage_dir("reeval", workdir) / "results.json").is_file()
    return False  # push: always checked against the Hub (it uploads only what is missing)


def _stage_section(resolved: dict[str, Any], stage: str) -> dict[str, Any]:
    """What determines a stage: its section (ingest also takes ``source``, balance ``export``)."""
    if stage == "ingest":
        return {"source": resolved.get("source") or {}, "ingest": resolved.get("ingest") or {}}
    if stage == "balance":
        return {"balance": resolved.get("balance") or {}, "export": resolved.get("export") or {}}
    return {stage: resolved.get(stage) or {}}


def _args(stage: str, resolved: dict[str, Any], workdir: Path, changed: bool, where: str) -> list[str]:
    cmd = _command(stage)
    wd = ["--workdir", str(workdir)]
    if stage == "ingest":
        source = resolved.get("source") or {}
        ingest = dict(resolved.get("ingest") or {})
        layout = source.get("layout")
        if layout and layout != "manifest" and "layout" not in ingest:
            ingest["layout"] = layout
        if source.get("layout_options"):
            ingest.setdefault("layout_option", source["layout_options"])
        if source.get("manifest") and "manifest" not in ingest:
            ingest["manifest"] = source["manifest"]
        if changed:
            ingest["overwrite"] = True
        return [str(source["raw_dir"]), *wd, *section_args(cmd, ingest, f"{where}: ingest")]
    if stage == "balance":
        balance = dict(resolved.get("balance") or {})
        for key, value in (resolved.get("export") or {}).items():
            if key not in EXPORT_KEYS:
                raise MMCurateError(f"recipe {where}: export.{key} is not an export setting (valid: {', '.join(EXPORT_KEYS)})")
            balance.setdefault(EXPORT_KEYS[key], value)
        return [*wd, *section_args(cmd, balance, f"{where}: balance/export")]
    section = dict(resolved.get(stage) or {})
    if stage == "reeval" and changed:
        section["fresh"] = True
    return [*wd, *section_args(cmd, section, f"{where}: {stage}")]


def _generate_source(resolved: dict[str, Any]) -> None:
    gen = (resolved.get("source") or {}).get("generate")
    if not gen:
        return
    from mmcurate.demo import generate_demo_dataset

    raw = Path(resolved["source"]["raw_dir"])
    info(f"pipeline: generating the synthetic source set in {raw}")
    generate_demo_dataset(raw, **gen)


def run_pipeline(
    recipe: Recipe,
    workdir: Path,
    only: tuple[str, ...] = (),
    from_stage: str | None = None,
    until: str | None = None,
    force: bool = False,
    dry_run: bool = False,
    runner: Callable[[click.Command, list[str]], Any] | None = None,
) -> PipelineResult:
    """Run the recipe's stages in order (see the module docstring for the skip rule)."""
    resolved = substitute(recipe.data, workdir)
    selected = _selection(only, from_stage, until)
    workdir.mkdir(parents=True, exist_ok=True)
    if not dry_run:
        atomic_write_text(workdir / RESOLVED, yaml.safe_dump(resolved, sort_keys=False))
    state_path = workdir / STATE
    state: dict[str, Any] = json.loads(state_path.read_text()) if state_path.is_file() else {}
    run = runner or (lambda cmd, args: cmd.main(args=args, prog_name=f"mmcurate {cmd.name}", standalone_mode=False))
    result = PipelineResult(workdir)
    upstream = ""
    upstream_ran = False
    where = str(recipe.path)
    for stage in STAGES:
        section = _stage_section(resolved, stage)
        configured = stage not in ("report", "push", "reeval") or resolved.get(stage) is not None
        fingerprint = config_hash([upstream, section], length=16)
        upstream = fingerprint
        if not configured:
            result.stages.append(StageReport(stage, "not configured"))
            continue
        if stage not in selected:
            result.stages.append(StageReport(stage, "not selected"))
            continue
        previous = state.get(stage, {}).get("fingerprint")
        if not force and not upstream_ran and previous == fingerprint and _complete(stage, workdir):
            result.stages.append(StageReport(stage, "skipped (up to date)"))
            continue
        changed = previous is not None and previous != fingerprint
        args = _args(stage, resolved, workdir, changed or force, where)
        if dry_run:
            result.stages.append(StageReport(stage, "would run", output="mmcurate " + stage + " " + " ".join(args)))
            continue
        if stage == "ingest":
            _generate_source(resolved)
        info(f"pipeline [{recipe.name}]: mmcurate {stage} {' '.join(args)}")
        started = time.monotonic()
        run(_command(stage), args)
        state[stage] = {"fingerprint": fingerprint, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        atomic_write_json(state_path, state)
        upstream_ran = True
        result.stages.append(StageReport(stage, "ran", time.monotonic() - started))
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
    rows = [[s.stage, s.status, f"{s.seconds:.1f}" if s.seconds else "", s.output] for s in result.stages]
    summary_table(f"pipeline -> {result.workdir}", ["stage", "status", "seconds", "command"], rows)

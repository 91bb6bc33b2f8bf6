"""YAML recipes: one file drives ingest -> score -> balance/export (-> push) (-> reeval).

A recipe's sections are the stages; each section's keys are that command's options with
dashes as underscores (``sample_rate: 22050`` is ``--sample-rate 22050``), so every option of
every command can be set in a recipe. ``{workdir}`` inside a string is replaced by the work
directory, so a recipe can place generated data next to the outputs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mmcurate.common.errors import MMCurateError

#: Pipeline order; ``export`` options are applied by the balance command.
STAGES = ("ingest", "score", "report", "balance", "push", "reeval")
SECTIONS = ("name", "description", "source", "ingest", "score", "report", "balance", "export", "push", "reeval")


@dataclass
class Recipe:
    path: Path
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.data.get("name") or self.path.stem)

    def section(self, name: str) -> dict[str, Any]:
        value = self.data.get(name) or {}
        if not isinstance(value, dict):
            raise MMCurateError(f"recipe {self.path}: section '{name}' must be a mapping of option: value")
        return value


def load_recipe(path: Path) -> Recipe:
    """Parse and check a recipe file (unknown sections are errors, not silently ignored)."""
    if not path.is_file():
        raise MMCurateError(f"recipe {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise MMCurateError(f"recipe {path} is not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise MMCurateError(f"recipe {path} must be a YAML mapping with sections {', '.join(SECTIONS)}")
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise MMCurateError(f"recipe {path}: unknown section(s) {', '.join(unknown)}; valid: {', '.join(SECTIONS)}")
    if "raw_dir" not in (data.get("source") or {}):
        raise MMCurateError(f"recipe {path}: source.raw_dir is required (where the raw clips are)")
    return Recipe(path, data)


def apply_overrides(recipe: Recipe, overrides: list[str]) -> Recipe:
    """``--set section.key=value`` on the command line wins over the file (value parsed as YAML)."""
    data = copy.deepcopy(recipe.data)
    for item in overrides:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise MMCurateError(f"--set expects section.key=value (got {item!r})")
        key, raw = item.split("=", 1)
        section, option = key.split(".", 1)
        if section not in SECTIONS or section in ("name", "description"):
            raise MMCurateError(f"--set {item!r}: unknown section {section!r}")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        target = data.setdefault(section, {}) or {}
        data[section] = target
        parts = option.split(".")
        for p in parts[:-1]:
            target = target.setdefault(p, {})
        target[parts[-1]] = value
    return Recipe(recipe.path, data)


def substitute(value: Any, workdir: Path) -> Any:
    """Replace ``{workdir}`` in every string of a section."""
    if isinstance(value, str):
        return value.replace("{workdir}", str(workdir))
    if isinstance(value, list):
        return [substitute(v, workdir) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, workdir) for k, v in value.items()}
    return value

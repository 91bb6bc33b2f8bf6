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
from mmcurate.common.files import os_reason, read_regular_bytes, regular_file_problem
from mmcurate.stages import NAMES

#: Pipeline order (the registry's, :mod:`mmcurate.stages`).
STAGES = NAMES
#: a recipe's sections: each stage's (``Stage.sections``); ``source`` is read by ingest, ``export`` (the
#: Hugging Face dataset's card and shards) by balance, and ``formats`` holds ``mmcurate export``'s options
SECTIONS = (
    "name",
    "description",
    "source",
    "ingest",
    "score",
    "report",
    "balance",
    "export",
    "push",
    "reeval",
    "formats",
    "browse",
)
#: keys of the ``source`` section (where the raw data is, and how to read or make it)
SOURCE_KEYS = ("raw_dir", "layout", "layout_options", "manifest", "generate")
#: settings a recipe may not hold: a recipe is shared, copied and saved as recipe.resolved.yaml
SECRETS = {("push", "token"): "HF_TOKEN"}
#: a recipe is a page of settings: these bound what a file (or a --set value) may make the loader build
MAX_RECIPE_BYTES = 1 << 20
MAX_YAML_NODES = 100_000
MAX_YAML_DEPTH = 100


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
    problem = regular_file_problem(path)
    if problem == "not found":
        raise MMCurateError(f"recipe {path} does not exist")
    if problem is not None:
        raise MMCurateError(f"recipe {path}: cannot read it ({problem})")
    try:
        text = read_regular_bytes(path, MAX_RECIPE_BYTES, "a recipe").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MMCurateError(f"recipe {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise MMCurateError(f"recipe {path}: cannot read it ({os_reason(exc)})") from None
    data = load_yaml(text, f"recipe {path}") or {}
    check_recipe(data, str(path))
    return Recipe(path, data)


class YAMLSyntaxError(MMCurateError):
    """Text that is not YAML at all (a ``--set`` value then stays the literal text)."""


def load_yaml(text: str, what: str) -> Any:
    """``yaml.safe_load(text)`` with its document checked first: at most :data:`MAX_YAML_NODES`
    nodes once every alias is expanded (nested aliases multiply: a 395-byte file of them
    describes billions of values, which every later step would walk), no alias that contains
    itself, no nesting deeper than :data:`MAX_YAML_DEPTH`. A one-line error naming ``what`` otherwise."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_yaml_size(node, what)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise YAMLSyntaxError(f"{what} is not valid YAML{where}") from None
    except RecursionError:
        raise MMCurateError(f"{what}: nested more than {MAX_YAML_DEPTH} levels deep") from None
    finally:
        loader.dispose()


def _check_yaml_size(root: yaml.Node, what: str) -> None:
    """Count the nodes of ``root`` as if every alias were expanded (shared nodes counted once
    per reference, by memoising each node's expanded size), without expanding anything."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    # iterative post-order walk: (node, depth, children visited?)
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 0, False)]
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            sizes[key] = min(MAX_YAML_NODES + 1, 1 + sum(sizes[id(c)] for c in _yaml_children(node)))
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise MMCurateError(f"{what}: a YAML alias refers to itself (a recursive anchor)")
        if depth > MAX_YAML_DEPTH:
            raise MMCurateError(f"{what}: nested more than {MAX_YAML_DEPTH} levels deep")
        on_path.add(key)
        stack.append((node, depth, True))
        stack.extend((c, depth + 1, False) for c in _yaml_children(node) if id(c) not in sizes)
    if sizes[id(root)] > MAX_YAML_NODES:
        raise MMCurateError(
            f"{what}: its aliases expand to more than {MAX_YAML_NODES:,} values (nested YAML aliases); "
            "write the settings out instead"
        )


def _yaml_children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def check_recipe(data: Any, where: str) -> None:
    """A one-line error for a recipe whose shape is wrong: not a mapping, unknown sections, a section
    that is not a mapping, unknown ``source`` keys, a secret, a value that refers to itself."""
    if not isinstance(data, dict):
        raise MMCurateError(f"recipe {where} must be a YAML mapping with sections {', '.join(SECTIONS)}")
    for section, key in SECRETS:
        if isinstance(data.get(section), dict) and key in data[section]:
            refuse_secret(section, key, f"recipe {where}")
    unknown = sorted(map(str, set(data) - set(SECTIONS)))
    if unknown:
        raise MMCurateError(f"recipe {where}: unknown section(s) {', '.join(unknown)}; valid: {', '.join(SECTIONS)}")
    for name in SECTIONS:
        value = data.get(name)
        if name in ("name", "description"):
            if value is not None and not isinstance(value, (str, int, float)):
                raise MMCurateError(f"recipe {where}: '{name}' must be a single line of text")
        elif value is not None and not isinstance(value, dict):
            raise MMCurateError(
                f"recipe {where}: section '{name}' must be a mapping of option: value (got a {_kind(value)})"
            )
        _check_acyclic(value, f"{name}", where, ())
    source = data.get("source") or {}
    unknown_keys = sorted(map(str, set(source) - set(SOURCE_KEYS)))
    if unknown_keys:
        raise MMCurateError(
            f"recipe {where}: source.{unknown_keys[0]} is not a source setting (valid: {', '.join(SOURCE_KEYS)}); "
            "options of ingest go in the ingest section"
        )
    if "raw_dir" not in source or source["raw_dir"] in (None, ""):
        raise MMCurateError(f"recipe {where}: source.raw_dir is required (where the raw clips are)")


def refuse_secret(section: str, key: str, where: str) -> None:
    """The one-line refusal of a secret in a recipe (never quoting its value)."""
    raise MMCurateError(
        f"{where}: {section}.{key} may not be set in a recipe or with --set (recipes are shared and saved as "
        f"recipe.resolved.yaml); set {SECRETS[(section, key)]} or run `hf auth login` instead"
    )


def _check_acyclic(value: Any, path: str, where: str, parents: tuple[int, ...]) -> None:
    """A YAML anchor that refers to itself (``a: &x [*x]``) gives a structure that contains itself;
    every later step would recurse forever."""
    if not isinstance(value, (dict, list)):
        return
    if id(value) in parents:
        raise MMCurateError(f"recipe {where}: {path} refers to itself (a recursive YAML anchor)")
    children = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in children:
        _check_acyclic(child, f"{path}.{key}", where, (*parents, id(value)))


def _kind(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "true/false"}.get(
        type(value), type(value).__name__
    )


def apply_overrides(recipe: Recipe, overrides: list[str]) -> Recipe:
    """``--set section.key=value`` on the command line wins over the file (value parsed as YAML;
    ``null`` restores the default, an empty value is an error rather than a silent default)."""
    data = copy.deepcopy(recipe.data)
    for item in overrides:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise MMCurateError(f"--set expects section.key=value (got {item!r})")
        key, raw = item.split("=", 1)
        section, option = key.split(".", 1)
        if section not in SECTIONS or section in ("name", "description"):
            raise MMCurateError(f"--set {key}=...: unknown section {section!r}")
        parts = option.split(".")
        if (section, parts[0]) in SECRETS:
            refuse_secret(section, parts[0], "--set")
        if raw.strip() == "":
            raise MMCurateError(f"--set {key}= has no value; give one, or {key}=null for the default")
        try:
            value = load_yaml(raw, f"--set {key}")
        except YAMLSyntaxError:
            value = raw
        target = data.get(section)
        if target is None:
            target = data[section] = {}
        where = section
        for p in parts[:-1]:
            if not isinstance(target, dict):
                raise MMCurateError(f"--set {key}=...: {where} is a single value, not a mapping with keys")
            if target.get(p) is None:
                target[p] = {}
            target, where = target[p], f"{where}.{p}"
        if not isinstance(target, dict):
            raise MMCurateError(f"--set {key}=...: {where} is a single value, not a mapping with keys")
        target[parts[-1]] = value
    check_recipe(data, f"{recipe.path} (with --set)")
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

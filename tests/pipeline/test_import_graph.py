"""The package's import graph, built from the code: no circle between modules, no stage importing another stage.

Every ``import`` / ``from ... import`` statement of every module is an arrow, wherever it stands: at module
level, inside a function (an import deferred to call time still ties the two modules together, it only hides
the tie), and under ``if TYPE_CHECKING:`` (never executed, but the same design dependency; the package needs
none to dodge a circle, so none is excused). ``from package import name`` points at ``package.name`` when that
is a module, else at ``package``. Not arrows: the parent packages Python runs before a submodule (every
``pkg/__init__.py`` that re-exports its submodules would otherwise be a circle with each of them), and the
module names :mod:`mmcurate.stages` holds as text, which are loaded on use so that ``mmcurate --help`` stays
fast (:func:`test_the_registry_names_real_modules` checks those).

Stages (:data:`STAGES`: their packages, and the export stage's modules in :mod:`mmcurate.formats`) talk
through the work directory (:mod:`mmcurate.store`), never through each other's code; the orchestrators
(:mod:`mmcurate.pipeline`, :mod:`mmcurate.stages`, :mod:`mmcurate.cli`, :mod:`mmcurate.demo`) run stages and
so may name them. Libraries any stage may use (:mod:`mmcurate.export`, the Hugging Face writer balance writes
its dataset with; the formats of :mod:`mmcurate.formats`; :mod:`mmcurate.data`, :mod:`mmcurate.models`,
:mod:`mmcurate.features`, :mod:`mmcurate.recipes`, :mod:`mmcurate.execution`, :mod:`mmcurate.store`,
:mod:`mmcurate.common`) import no stage either.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "mmcurate"

#: each stage's modules, by name prefix. ``mmcurate.formats`` holds the field's formats, a library (the
#: BalanceMM layout and the safe unpickler, which the ingest adapter for a BalanceMM release reads with), and
#: the modules of the ``mmcurate export`` stage, which write that layout; only the latter are the stage.
STAGES = {
    "ingest": ("mmcurate.ingest",),
    "score": ("mmcurate.score",),
    "balance": ("mmcurate.balance",),
    "export": (
        "mmcurate.formats.export",
        "mmcurate.formats.balancemm_export",
        "mmcurate.formats.config",
        "mmcurate.formats.cli",
    ),
    "push": ("mmcurate.push",),
    "reeval": ("mmcurate.reeval",),
    "browse": ("mmcurate.browse",),
}
#: packages that run stages, and so may import them
ORCHESTRATORS = frozenset({"pipeline", "stages", "cli", "demo"})


def module_files(package: Path) -> dict[str, Path]:
    """Module name -> file, for every module of ``package`` (a package is its ``__init__.py``)."""
    root = package.parent
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import statement in ``path``, at any depth."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against this module's package
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield (sub if sub in modules else target), node.lineno


def import_graph(package: Path = PACKAGE) -> dict[str, dict[str, int]]:
    """Module -> {imported module of the package: first line importing it}."""
    modules = module_files(package)
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        edges: dict[str, int] = {}
        for target, line in imports_of(name, path, modules):
            while target and target not in modules:  # ``import a.b.c`` of a name inside a module
                target = target.rpartition(".")[0]
            if target and target != name and target.startswith(package.name):
                edges.setdefault(target, line)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One circle through each strongly connected group of modules (Tarjan's algorithm), shortest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted((_circle(graph, set(g)) for g in groups), key=len)


def _circle(graph: dict[str, dict[str, int]], group: set[str]) -> list[str]:
    """A shortest circle through the group's first module (breadth-first inside the group)."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in graph[v]:
                if w == start:
                    return [*paths[v], start]
                if w in group and w not in paths:
                    paths[w] = [*paths[v], w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError("a strongly connected group without a circle")


def package_of(module: str) -> str:
    """``mmcurate.score.runner`` -> ``score``; ``mmcurate.cli`` -> ``cli``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def stage_of(module: str, stages: dict[str, tuple[str, ...]] = STAGES) -> str | None:
    """The stage ``module`` belongs to, or None (a library, an orchestrator)."""
    for stage, prefixes in stages.items():
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return stage
    return None


def stage_crossings(graph: dict[str, dict[str, int]], stages: dict[str, tuple[str, ...]] = STAGES) -> list[str]:
    """``a -> b (line)`` for every import from one stage into another, or from a library into a stage."""
    found = []
    for source, edges in sorted(graph.items()):
        if package_of(source) in ORCHESTRATORS:
            continue
        src = stage_of(source, stages)
        for target, line in sorted(edges.items()):
            dst = stage_of(target, stages)
            if dst is not None and dst != src:
                found.append(f"{source} -> {target} (line {line})")
    return found


def test_no_module_imports_itself_round_a_circle() -> None:
    circles = cycles(import_graph())
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


def test_no_stage_imports_another_stage() -> None:
    crossings = stage_crossings(import_graph())
    assert not crossings, "imports between stage packages:\n" + "\n".join(crossings)


def test_the_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The checks above are only as good as the graph: a circle hidden in a function, a relative import, a
    ``from pkg import module`` and a TYPE_CHECKING import each make an arrow, and a circle or a stage crossing
    made of them is found."""
    pkg = tmp_path / "mmcurate"
    for folder in ("score", "balance", "common"):
        (pkg / folder).mkdir(parents=True)
        (pkg / folder / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "score" / "runner.py").write_text("from .table import rows\n")
    (pkg / "score" / "table.py").write_text("def rows():\n    from mmcurate.score.runner import x\n")
    (pkg / "balance" / "runner.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from mmcurate.score import table\n"
    )
    (pkg / "common" / "a.py").write_text("import mmcurate.common.b\n")
    (pkg / "common" / "b.py").write_text("from mmcurate.common import a\n")
    graph = import_graph(pkg)
    assert graph["mmcurate.balance.runner"] == {"mmcurate.score.table": 3}
    assert sorted(map(sorted, cycles(graph))) == [
        ["mmcurate.common.a", "mmcurate.common.a", "mmcurate.common.b"],
        ["mmcurate.score.runner", "mmcurate.score.runner", "mmcurate.score.table"],
    ]
    fake = {"score": ("mmcurate.score",), "balance": ("mmcurate.balance",)}
    assert stage_crossings(graph, fake) == ["mmcurate.balance.runner -> mmcurate.score.table (line 3)"]


def test_the_registry_names_real_modules() -> None:
    """The stages :mod:`mmcurate.stages` names as text (loaded on use) exist, with the attributes named."""
    from mmcurate.stages import REGISTRY

    for entry in REGISTRY:
        for ref in (entry.stage, entry.command):
            module, _, attr = ref.partition(":")
            assert (PACKAGE.parent / (module.replace(".", "/") + ".py")).is_file() or (
                PACKAGE.parent / module.replace(".", "/") / "__init__.py"
            ).is_file(), ref
            assert hasattr(importlib.import_module(module), attr), ref


@pytest.mark.parametrize("name", ["ingest", "balance"])
def test_a_command_loads_only_its_own_stage(name: str) -> None:
    """``mmcurate ingest`` loads neither the dataset adapters' name resolution nor the export stage, and no stage
    command loads another stage's package (a fresh interpreter, so earlier imports do not count)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from mmcurate.stages import load_command\n"
        f"load_command({name!r})\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m.startswith('mmcurate.'))))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(proc.stdout.split())
    others = sorted(m for m in loaded if stage_of(m) not in (None, name))
    assert not others, others
    if name == "ingest":
        assert "mmcurate.recipes.layouts" not in loaded
        assert "mmcurate.formats.export" not in loaded


def test_reading_a_balancemm_release_loads_the_format_not_the_export_stage() -> None:
    """``mmcurate ingest --layout balancemm`` reads with the format (:mod:`mmcurate.formats.balancemm`); the
    ``mmcurate export`` stage, which writes it, stays unloaded (``mmcurate.formats`` imports nothing)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from mmcurate.recipes.layouts import LAYOUTS\n"
        "LAYOUTS['balancemm']\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m.startswith('mmcurate.'))))\n"
    )
    loaded = set(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    )
    assert "mmcurate.formats.balancemm" in loaded
    assert not {m for m in loaded if stage_of(m) is not None}, sorted(m for m in loaded if stage_of(m))

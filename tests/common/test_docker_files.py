"""docker/Dockerfile, docker/Dockerfile.cuda and .dockerignore, checked without a Docker engine.

A small parser reads the Dockerfiles the way the builder does (line continuations, comments,
exec-form JSON, ARG/ENV substitution), so the checks below are about what a build would see:
valid instructions, COPY sources that exist in the build context and are not ignored, the
entry point, volumes and environment, and a torch pin that matches what the project tests with.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = [REPO / "docker" / "Dockerfile", REPO / "docker" / "Dockerfile.cuda"]
INSTRUCTIONS = {
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
}
TESTED_TORCH = "2.13.0"


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined; comments and parser directives dropped."""
    out: list[Instruction] = []
    buf: list[str] = []
    start = 0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):  # comment lines inside a continuation are removed
            continue
        if not buf:
            start = lineno
        if stripped.endswith("\\"):
            buf.append(stripped[:-1].strip())
            continue
        buf.append(stripped)
        joined = " ".join(b for b in buf if b)
        buf = []
        keyword, _, args = joined.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip(), start))
    assert not buf, "the file ends inside a line continuation"
    return out


def substitute(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), m.group(0)), value)


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def env_pairs(args: str) -> dict[str, str]:
    pairs = re.findall(r'(\w+)=("[^"]*"|\S+)', args)
    return {k: v.strip('"') for k, v in pairs}


def dockerignore_patterns() -> list[str]:
    path = REPO / ".dockerignore"
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def ignored(rel: str, patterns: list[str]) -> bool:
    """Whether the build context drops ``rel``: patterns are relative to the context root, ``**``
    spans folders, a matching folder drops everything under it, and the last matching line wins
    (``!`` re-includes), as in Docker's .dockerignore."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _pattern_regex(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch(p) for p in prefixes):
            result = not negate
    return result


@pytest.fixture(scope="module", params=DOCKERFILES, ids=lambda p: p.name)
def dockerfile(request: pytest.FixtureRequest) -> tuple[Path, list[Instruction]]:
    path: Path = request.param
    assert path.is_file(), f"{path} is missing"
    return path, parse_dockerfile(path.read_text())


def test_instructions_are_valid_and_start_with_from(dockerfile: tuple[Path, list[Instruction]]) -> None:
    path, instructions = dockerfile
    for ins in instructions:
        assert ins.keyword in INSTRUCTIONS, f"{path.name} line {ins.line}: unknown instruction {ins.keyword}"
        assert ins.args, f"{path.name} line {ins.line}: {ins.keyword} without arguments"
    keywords = [i.keyword for i in instructions]
    first_non_arg = next(k for k in keywords if k != "ARG")
    assert first_non_arg == "FROM"
    assert keywords.count("FROM") == 1, "single-stage build expected"
    for ins in instructions:
        if ins.keyword in ("ENTRYPOINT", "CMD", "VOLUME") and ins.args.startswith("["):
            exec_form(ins.args)  # valid JSON list of strings


def test_copy_sources_exist_and_are_not_dockerignored(dockerfile: tuple[Path, list[Instruction]]) -> None:
    path, instructions = dockerfile
    patterns = dockerignore_patterns()
    copies = [i for i in instructions if i.keyword in ("COPY", "ADD")]
    assert copies
    copied: set[str] = set()
    for ins in copies:
        assert ins.keyword == "COPY", f"{path.name} line {ins.line}: use COPY, not ADD"
        tokens = exec_form(ins.args) if ins.args.startswith("[") else ins.args.split()
        flags = [t for t in tokens if t.startswith("--")]
        assert not any(f.startswith("--from") for f in flags), "single-stage build: no COPY --from"
        *sources, _dest = [t for t in tokens if not t.startswith("--")]
        assert sources, f"{path.name} line {ins.line}: COPY needs a source and a destination"
        for src in sources:
            matches = list(REPO.glob(src))
            assert matches, f"{path.name} line {ins.line}: COPY source {src} does not exist in the repository"
            assert not ignored(src, patterns), f"{path.name} line {ins.line}: {src} is excluded by .dockerignore"
            copied.add(src)
    # what `pip install .` needs is in the context: pyproject, its readme, the package
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    readme = pyproject["project"].get("readme")
    needed = {"pyproject.toml", "mmcurate"} | ({readme} if isinstance(readme, str) else set())
    assert needed <= copied, f"{path.name}: pip install . needs {sorted(needed - copied)} copied"
    assert (REPO / "mmcurate" / "recipes" / "classes").is_dir() and {"pipelines", "manifests"} <= copied


def test_entrypoint_volumes_and_environment(dockerfile: tuple[Path, list[Instruction]]) -> None:
    path, instructions = dockerfile
    (entry,) = [i for i in instructions if i.keyword == "ENTRYPOINT"]
    assert exec_form(entry.args) == ["mmcurate"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts.get("mmcurate") == "mmcurate.cli:main"  # the entry point is the installed console script
    volumes = [v for i in instructions if i.keyword == "VOLUME" for v in exec_form(i.args)]
    assert {"/data", "/work"} <= set(volumes)
    env: dict[str, str] = {}
    for i in instructions:
        if i.keyword == "ENV":
            env.update(env_pairs(i.args))
    assert env["MMCURATE_WORKDIR"] == "/work/mmcurate-work"
    assert env["MMCURATE_WORKDIR"].startswith(tuple(v + "/" for v in volumes))  # outputs land in a volume
    workdirs = [i.args for i in instructions if i.keyword == "WORKDIR"]
    assert workdirs[-1] == "/work"


def _torch_install(instructions: list[Instruction]) -> tuple[str, str]:
    """(resolved RUN line installing torch, torch version pinned there)."""
    env: dict[str, str] = {}
    for i in instructions:
        if i.keyword == "ARG" and "=" in i.args:
            k, _, v = i.args.partition("=")
            env[k.strip()] = v.strip()
        if i.keyword == "RUN":
            run = substitute(i.args, env)
            m = re.search(r"torch==([\w.+]+)", run)
            if m:
                return run, m.group(1)
    raise AssertionError("no RUN line installs a pinned torch")


def test_torch_is_the_tested_pin_installed_before_the_package(dockerfile: tuple[Path, list[Instruction]]) -> None:
    path, instructions = dockerfile
    run, version = _torch_install(instructions)
    assert version == TESTED_TORCH
    torch_req = next(
        Requirement(r)
        for r in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
        if Requirement(r).name == "torch"
    )
    assert Version(version) in torch_req.specifier, f"pyproject.toml's {torch_req} rejects torch {version}"
    runs = [i for i in instructions if i.keyword == "RUN"]
    torch_at = next(n for n, i in enumerate(runs) if "torch==" in i.args)
    package_at = next(n for n, i in enumerate(runs) if re.search(r"pip install (\S+ )*\.(\s|$|&)", i.args + " "))
    assert torch_at < package_at, "torch must be installed before mmcurate so pip keeps that build"
    base = next(i.args for i in instructions if i.keyword == "FROM")
    if path.name == "Dockerfile":
        assert base == "python:3.11-slim"
        assert "--index-url https://download.pytorch.org/whl/cpu" in run
    else:
        assert re.fullmatch(r"nvidia/cuda:\d+\.\d+(\.\d+)?-(cudnn-)?runtime-ubuntu\d+\.\d+", base), base
        assert "/whl/cpu" not in run


def test_the_installed_torch_is_the_pinned_one() -> None:
    import torch

    assert torch.__version__.split("+")[0] == TESTED_TORCH


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    patterns = dockerignore_patterns()
    for rel in (".git", ".venv", "mmcurate-work", "data", "mmcurate/__pycache__", "mmcurate/data/__pycache__/x.pyc"):
        assert ignored(rel, patterns), f".dockerignore does not exclude {rel}"
    for rel in (
        "pyproject.toml",
        "mmcurate/cli.py",
        "mmcurate/data/shards.py",
        "pipelines/cremad.yaml",
        "manifests/classes/cremad.txt",
    ):
        assert not ignored(rel, patterns), f".dockerignore excludes {rel}, which the image needs"


def test_parser_catches_broken_dockerfiles() -> None:
    """The checks above can fail: a few broken files parse into what the assertions reject."""
    bad = parse_dockerfile("FROM x\nCOPY \\\n  missing_dir ./\nENTRYPOINT mmcurate\nFOO bar\n")
    assert [i.keyword for i in bad] == ["FROM", "COPY", "ENTRYPOINT", "FOO"]
    assert bad[1].args == "missing_dir ./" and not list(REPO.glob("missing_dir"))
    with pytest.raises(json.JSONDecodeError):
        exec_form(bad[2].args)
    with pytest.raises(AssertionError, match="continuation"):
        parse_dockerfile("FROM x\nRUN echo \\\n")
    assert ignored("mmcurate-work/ingest/x", ["mmcurate-work"]) and not ignored("mmcurate/x.py", ["mmcurate-work"])
    assert not ignored("data/keep.txt", ["data", "!data/keep.txt"])

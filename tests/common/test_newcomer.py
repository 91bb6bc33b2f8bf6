"""A newcomer's first hour, end to end (issue 25): clone the repository, run the README's own set-up line in a
fresh virtual environment, run the demo's fast variant, then a 60-clip set of their own through ingest, score and
the headline ``mmcurate balance --bins 10``.

The install line runs as the README gives it, with two environment settings so that it needs no network (CI may
have none): ``PIP_NO_INDEX=1`` (pip may only use what is installed) and no build isolation (the editable build uses
the installed setuptools). The fresh venv sees this interpreter's installed packages through a ``.pth`` line (a
plain ``--system-site-packages`` venv made from a venv sees the base Python's packages, not the venv's torch), so
the README's ``pip install torch==... --index-url ...`` is satisfied by the torch already here, as a wheel cache
would satisfy it offline. What this proves: the line is well-formed, its pins agree with what the project needs,
and the editable install of the clone gives a working ``mmcurate`` that imports the clone's code. What it cannot
prove offline: that the index serves that wheel.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

#: ``mmcurate demo`` shrunk to seconds (the overrides ``mmcurate demo --help`` documents)
DEMO_FAST = [
    *("--set", "source.generate.n_per_class=8", "--set", "score.folds=2", "--set", "score.epochs=1"),
    *("--set", "score.width=4", "--set", "score.image_size=16", "--set", "balance.bins=2"),
    *("--set", "reeval.methods=[audio_only,joint]", "--set", "reeval.epochs=2", "--set", "reeval.width=4"),
    *("--set", "balance.accept_weak_scores=true"),  # 48 clips, 1 epoch: plumbing, not scores worth trusting
]


def readme_install_line() -> str:
    """The Quickstart's first command, without its trailing ``&& mmcurate demo`` (run below with fast settings)."""
    text = (REPO_ROOT / "README.md").read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("python3 -m venv .venv"))
    assert line.endswith(" && mmcurate demo"), line
    return line.removesuffix(" && mmcurate demo")


def _run(cmd: str | list[str], cwd: Path, env: dict[str, str], timeout: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd,
        cwd=str(cwd),
        env=env,
        shell=isinstance(cmd, str),
        executable="/bin/bash" if isinstance(cmd, str) else None,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_clone_install_demo_and_a_60_clip_set(tmp_path: Path) -> None:
    clone = tmp_path / "mmcurate"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True, timeout=120)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MMCURATE_", "PYTHON", "VIRTUAL_ENV", "PIP_"))}
    env.update(
        PIP_NO_INDEX="1",
        PIP_NO_BUILD_ISOLATION="0",  # pip's inverted switch: "0" turns build isolation off
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        MMCURATE_NO_PROGRESS="1",
        HF_HUB_OFFLINE="1",
        HF_HOME=str(tmp_path / "hf"),
        PATH=os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(sys.prefix)),
    )
    # `python3` of the README is this interpreter (the same Python and its installed packages, see the docstring)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3").symlink_to(sys.executable)
    env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"
    install = readme_install_line()
    venv_part, _, rest = install.partition(" && ")
    assert venv_part == "python3 -m venv .venv"
    done = _run(venv_part, clone, env, 120)
    assert done.returncode == 0, done.stderr
    site = Path(
        subprocess.run(
            [
                str(clone / ".venv" / "bin" / "python"),
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (site / "zz_reuse_installed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # the venv's own old setuptools would shadow the installed one that torch requires (>= 77): online, pip would
    # fetch a newer one; offline, the installed one has to be visible
    for old in site.glob("setuptools*"):
        subprocess.run(["rm", "-rf", str(old)], check=True)
    done = _run(rest, clone, env, 600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]

    def mm(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
        line = ". .venv/bin/activate && mmcurate " + " ".join(shlex.quote(a) for a in args)
        return _run(line, clone, env, timeout)

    where = _run(". .venv/bin/activate && python -c 'import mmcurate; print(mmcurate.__file__)'", clone, env, 60)
    assert where.stdout.strip() == str(clone / "mmcurate" / "__init__.py"), where.stdout + where.stderr

    demo = mm("demo", *DEMO_FAST)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert (clone / "mmcurate-work" / "balanced" / "export.json").is_file()

    # their own 60 clips (6 classes x 10), through the headline commands in a work directory of their own
    raw = tmp_path / "my_clips"
    gen = _run(
        [str(clone / ".venv" / "bin" / "python"), "-c", "import sys; from pathlib import Path; "
         "from mmcurate.synth import generate; generate(Path(sys.argv[1]), n_per_class=10, seed=7)", str(raw)],
        clone, env, 300,
    )  # fmt: skip
    assert gen.returncode == 0, gen.stderr
    work = ["--workdir", str(tmp_path / "work")]
    ingest = mm("ingest", str(raw), "--manifest", str(raw / "demo_labels.csv"), *work)
    assert ingest.returncode == 0, ingest.stderr[-3000:]
    assert "60" in ingest.stderr
    score = mm("score", *work, "--folds", "3", "--epochs", "4")
    assert score.returncode == 0, score.stderr[-3000:]
    balance = mm("balance", "--bins", "10", *work)
    assert "Traceback" not in balance.stderr
    if balance.returncode == 0:
        assert (tmp_path / "work" / "balanced" / "export.json").is_file()
    else:  # too few clips for 10 bins, or scorers too weak to trust: one readable reason, exit 2
        assert balance.returncode == 2, balance.stderr[-3000:]
        errors = [ln for ln in balance.stderr.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and re.search(r"bin|self-check", errors[0]), balance.stderr[-3000:]

"""Shared test fixtures: where the real recordings are, and quiet progress output."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("MMCURATE_NO_PROGRESS", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest-xdist's workers set COLUMNS=80 and LINES=24; the commands the tests start would then wrap their
    # lines at 80 characters (the console honours COLUMNS) where a serial run's do not.
    for _name in ("COLUMNS", "LINES"):
        os.environ.pop(_name, None)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MMCURATE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Tiny models on shared cores: one intra-op thread is far faster (the CLI sets 1 for its own process
    too); the count is restored after each test. A module opts in with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


#: Start of every skip reason for missing shared data (counted by :func:`pytest_terminal_summary`).
MISSING_DATA = "real test data not found at"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{MISSING_DATA} {path} (set MMCURATE_SHARED_DATA)")
    return path


def missing_data_skips(skipped: list[object]) -> int:
    """How many skip reports (``terminalreporter.stats["skipped"]``) are for missing shared data."""
    n = 0
    for report in skipped:
        longrepr = getattr(report, "longrepr", None)
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
        n += MISSING_DATA in str(reason)
    return n


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line at the end: how many tests skipped for missing shared data, and where they looked."""
    n = missing_data_skips(terminalreporter.stats.get("skipped", []))
    if n:
        terminalreporter.write_line(
            f"mmcurate: {n} test(s) skipped: the shared test data (fsdd, mnist_t10k, av_digits, clips) was not "
            f"found at {SHARED_DATA}; set MMCURATE_SHARED_DATA to the folder that holds it (README: Quickstart)"
        )


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``: real recordings; tests skip where it is absent."""
    return _require(SHARED_DATA)


@pytest.fixture(scope="session")
def av_digits(shared_data: Path) -> Path:
    """The 3000 labelled audio-visual digit clips (labels.csv has ground-truth conditions)."""
    return _require(shared_data / "av_digits")


@pytest.fixture(scope="session")
def clips_dir(shared_data: Path) -> Path:
    """54 real clips in many containers and codecs; INDEX.csv says what each holds."""
    return _require(shared_data / "clips")


def run_cli(*args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """Run ``python -m mmcurate ARGS`` as a user would, without progress bars."""
    import sys

    env = {**os.environ, "MMCURATE_NO_PROGRESS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mmcurate", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def write_av_digits_manifest(av_digits: Path, dest: Path, per_format: int | None = None) -> Path:
    """An input manifest of av_digits clips (``per_format`` of each container family, or all),
    carrying speaker (group) and the ground-truth condition."""
    import csv

    rows = list(csv.DictReader(open(av_digits / "labels.csv")))
    if per_format is not None:
        by_fmt: dict[str, list[dict[str, str]]] = {}
        for r in rows:
            by_fmt.setdefault(r["format"], []).append(r)
        rows = [r for fmt in sorted(by_fmt) for r in by_fmt[fmt][:per_format]]
    with open(dest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "split", "speaker", "condition"])
        for r in rows:
            w.writerow([r["path"], r["label"], r["split"], r["speaker"], r["condition"]])
    return dest


@pytest.fixture(scope="session")
def small_work(av_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """140 av_digits clips (20 per container family) ingested at 32 px: the score tests' small set."""
    root = tmp_path_factory.mktemp("score_small")
    manifest = write_av_digits_manifest(av_digits, root / "inputs.csv", per_format=20)
    work = root / "work"
    proc = run_cli(
        "ingest",
        str(av_digits),
        "--manifest",
        str(manifest),
        "--group-column",
        "speaker",
        "--workdir",
        str(work),
        "--size",
        "32",
    )
    assert proc.returncode == 0, proc.stderr
    return work


@pytest.fixture(scope="session")
def av_digits_work(av_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A work directory with all 3000 av_digits clips ingested with the default settings
    (224 px frames, 16 kHz audio; speaker as group).

    Shared by the score, balance and reeval tests that need the real, full set (about 20 s)."""
    root = tmp_path_factory.mktemp("av_digits_full")
    manifest = write_av_digits_manifest(av_digits, root / "inputs.csv")
    work = root / "work"
    proc = run_cli(
        "ingest", str(av_digits), "--manifest", str(manifest), "--group-column", "speaker", "--workdir", str(work)
    )
    assert proc.returncode == 0, proc.stderr
    return work


@pytest.fixture(scope="session")
def av_digits_scored(av_digits_work: Path) -> Path:
    """``av_digits_work`` scored by ``mmcurate score`` with the CPU defaults (about 4 minutes on
    2 cores): the real out-of-fold discrepancy that the score and re-evaluation acceptance
    tests check."""
    # --no-save-scorers: the acceptance tests use the out-of-fold scores only (the grow tests cover the saved scorers)
    proc = run_cli("score", "--workdir", str(av_digits_work), "--no-save-scorers", timeout=1800)
    assert proc.returncode == 0, proc.stderr
    return av_digits_work

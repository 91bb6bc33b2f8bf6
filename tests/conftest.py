"""Shared test fixtures: where the real recordings are, and quiet progress output."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MMCURATE_NO_PROGRESS", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MMCURATE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real test data not found at {path} (set MMCURATE_SHARED_DATA)")
    return path


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

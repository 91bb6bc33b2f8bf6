"""Headless Chromium (Debian's package) driven by Playwright, for the tests and benchmarks of pages.

Never ``playwright install``: the browser is the system's ``chromium`` (``apt-get install
chromium``; ``.ci/run`` installs it). The flags keep it from reaching for the network, which on a
closed network makes it hang, and a fresh profile per launch keeps runs independent.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """``$MMCURATE_CHROMIUM``, else ``chromium`` on PATH, else None."""
    env = os.environ.get("MMCURATE_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def launch(playwright: Any, user_data_dir: Path, executable: str, **kwargs: Any) -> Any:
    """A persistent Chromium context with the project's flags and a fresh profile folder."""
    user_data_dir.mkdir(parents=True, exist_ok=True)
    return playwright.chromium.launch_persistent_context(
        str(user_data_dir), executable_path=executable, args=FLAGS, headless=True, **kwargs
    )

"""Modules a training stage's workers need are imported once in the driver, before the fork."""

from __future__ import annotations

import subprocess
import sys

_SCRIPT = """
import sys
from mmcurate.execution import TRAINING_IMPORTS, LocalExecutor, make_units

def imported_before_the_job(_):
    return "torch._dynamo" in sys.modules

assert "torch._dynamo" not in sys.modules
for preload in ((), TRAINING_IMPORTS):
    executor = LocalExecutor(2, preload)
    units = make_units([0, 1, 2, 3], 1, str)
    seen = [r for _, out in executor.map_units(imported_before_the_job, units) for r in out]
    print(bool(preload), all(seen), any(seen))
"""


def test_forked_workers_start_with_the_training_imports() -> None:
    """Without preload each worker would import torch._dynamo at its first optimiser (0.8 CPU-s each); with it
    every worker has it from the fork. Fails if the executor forgets the preload."""
    done = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[:2] == ["False False False", "True True True"]

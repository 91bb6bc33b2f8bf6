"""Freed memory goes back to the operating system (what keeps ingest's peak memory flat in the
number of shards it writes; the figures at 3k and 30k inputs are in benchmarks/ingest.py)."""

from __future__ import annotations

import os
import sys

import pytest

from mmcurate.common.memory import release_free_memory


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS line")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status (Linux)")
def test_freed_shard_sized_blocks_leave_the_resident_set_once_released() -> None:
    """An ingest shard's worth of media (3000 blocks of 20 KB, one in ten kept alive, as results
    outlive each other) is freed: glibc keeps the holes resident until asked to trim them."""
    if not release_free_memory():
        pytest.skip("the C library has no malloc_trim (not glibc)")
    blocks = [os.urandom(20_000) for _ in range(3000)]
    kept = blocks[::10]
    del blocks
    before = _rss_mb()
    assert release_free_memory()
    after = _rss_mb()
    assert len(kept) == 300
    assert before - after > 20, f"resident set {before:.1f} MB -> {after:.1f} MB: freed memory was not returned"


def _worker_rss_mb(_: int) -> float:
    return _rss_mb()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status (Linux)")
def test_prestarted_workers_do_not_start_with_what_the_driver_built_after() -> None:
    """Ingest prestarts its pool before it lists the inputs: a forked worker starts with every page
    its driver holds, so workers forked after the list exists each carry it (9 MB at 30k inputs)."""
    from mmcurate.execution import LocalExecutor, WorkUnit

    executor = LocalExecutor(2)
    executor.prestart()
    try:
        work_list = bytearray(80 << 20)  # what the driver builds after the prestart (touched: resident)
        work_list[::4096] = b"x" * len(work_list[::4096])
        driver = _rss_mb()
        units = [WorkUnit("u0", 0, (0, 1, 2, 3))]
        [(_, worker_rss)] = list(executor.map_units(_worker_rss_mb, units))
    finally:
        executor.close()
    assert len(work_list) == 80 << 20
    assert max(worker_rss) < driver - 60, f"workers hold {max(worker_rss):.0f} MB, the driver {driver:.0f} MB"


#: a child interpreter: optionally one tiny scoring job or reeval-free heap setting first, then a training-like loop
#: (20 blocks of 1-7 MB allocated and freed, ten times); prints the loop's minor page faults per round
_FAULTS_AFTER = """
import resource, sys
import numpy as np, torch
sys.path.insert(0, {tests!r})
what = sys.argv[1]
if what == "keep":
    from mmcurate.common.memory import keep_heap_for_training
    assert keep_heap_for_training()
elif what == "score":
    from _tensor_fixtures import random_av_tensors
    from mmcurate.common.scoring import ScoreConfig
    from mmcurate.score.train import InMemorySource, fit_predict
    cfg = ScoreConfig(width=4, image_size=16, batch_size=8, train_frames=1, num_frames=2, epochs=1)
    held = np.arange(0, 30, 5)
    fit_predict(InMemorySource(random_av_tensors(30), "audio"), np.setdiff1d(np.arange(30), held), held, 3, cfg,
                seed=0, device=torch.device("cpu"), n_frames=2)

def step():
    held = [torch.ones(256 * (k % 7 + 1), 1024) for k in range(20)]
    return sum(float(t[0, 0]) for t in held)

step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
"""


def _loop_faults(what: str) -> float:
    import subprocess
    from pathlib import Path

    code = _FAULTS_AFTER.format(tests=str(Path(__file__).resolve().parents[1]))
    out = subprocess.run([sys.executable, "-c", code, what], check=True, capture_output=True, text=True).stdout
    return float(out.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt (Linux)")
def test_a_training_process_keeps_its_freed_heap_mapped() -> None:
    """Each training step frees and reallocates the same tens of MB: with glibc's defaults the heap's top is
    trimmed at every free and faulted back, zero-filled, at the next step. A scoring job keeps it mapped
    (one call in ``fit_predict``), so a training-like loop after it faults a few pages a round, not thousands."""
    default, kept, after_job = _loop_faults("none"), _loop_faults("keep"), _loop_faults("score")
    assert default > 1000, f"the loop faulted only {default} pages a round with glibc's defaults: nothing to show"
    assert kept < default / 10, f"{kept} faults a round with the heap kept, {default} without"
    assert after_job < default / 10, f"after a scoring job {after_job} faults a round, {default} with the defaults"

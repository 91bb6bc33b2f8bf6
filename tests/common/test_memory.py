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

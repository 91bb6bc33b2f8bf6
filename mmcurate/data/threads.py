"""Run torch single-threaded while decoding many small clips.

Per-clip features are tiny tensor ops (a few hundred frames). With torch's default of one
intra-op thread per core, every op pays an OpenMP fork/join; on a shared, busy 2-core machine we
measured 8-50 ms per clip that way against 0.35 ms with one thread. Decoding parallelises over
clips instead (worker threads), so intra-op threading is switched off for the duration.
``torch.set_num_threads`` is process-wide, hence the reference count: the setting is restored
when the last concurrent user leaves.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch

_lock = threading.Lock()
_depth = 0
_saved = 1


@contextlib.contextmanager
def single_intraop_thread() -> Iterator[None]:
    """Within the block torch uses one intra-op thread; the previous count comes back after."""
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = torch.get_num_threads()
            if _saved != 1:
                torch.set_num_threads(1)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved != 1:
                torch.set_num_threads(_saved)

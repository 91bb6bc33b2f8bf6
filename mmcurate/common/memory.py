"""Give freed heap memory back to the operating system.

A process that builds and drops many megabyte-sized results (an ingest shard's JPEG and FLAC
bytes, 256 clips at a time) leaves glibc's heap fragmented: the memory is free for Python but
still counted in the process's resident size, which then creeps up with the number of shards
written. ``malloc_trim(0)`` returns the free pages at the top and inside the heap; calling it once
per shard costs well under a millisecond. Elsewhere than glibc it is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


def release_free_memory() -> bool:
    """Return free heap pages to the OS; True when the C library could be asked."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


__all__ = ["release_free_memory"]

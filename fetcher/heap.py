"""Handing the memory the process has freed back to the operating system, where the C library allows it.

glibc's malloc keeps what Python frees in its heaps (one arena per thread that allocated, so a worker of
`asyncio.to_thread` has its own) and gives pages back only from a heap's top: megabytes freed in the middle
stay resident for the rest of the process. `malloc_trim(0)` releases every whole free page of every arena.
Other C libraries (musl, macOS) have no such call, and nothing is done there.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # a C library without it (musl)
        return None


def release_freed_memory() -> None:
    """Return the freed pages of malloc's heaps to the system (glibc; elsewhere nothing). A few milliseconds:
    for after a large, short-lived allocation, not for hot paths."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)

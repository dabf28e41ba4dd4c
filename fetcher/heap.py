"""Handing the memory the process has freed back to the operating system, where the C library allows it.

glibc's malloc keeps what Python frees in its heaps (one arena per thread that allocated, so a worker of
`asyncio.to_thread` has its own) and gives pages back only from a heap's top: megabytes freed in the middle
stay resident for the rest of the process. `malloc_trim(0)` releases every whole free page of every arena.

Blocks of at least `M_MMAP_THRESHOLD` (128 kB) are mapped on their own and unmapped when freed, but glibc
raises that threshold to the size of each such block freed, up to 32 MB: after a run has freed a few large
blocks (a training's samples, HTTP bodies, zstd's workspaces), every block below their size comes from the
heaps, and what is freed among live blocks stays resident. `fix_mmap_threshold` sets the threshold, which
stops it sliding. Other C libraries (musl, macOS) have neither call, and nothing is done there.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from typing import Any

M_MMAP_THRESHOLD = -3  # mallopt's parameter number (glibc's malloc.h)
# glibc's own starting value: on the memory benchmark's first backfill of 1,000 tenants, peak RSS 150 to 151
# MB with it fixed against 160 to 162 MB sliding (11b8bec: 137 to 139); 64 kB gave no less (151.3).
MMAP_THRESHOLD = 128 * 1024


@functools.cache
def _libc_function(name: str) -> Any:  # a ctypes function, or None
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):  # a C library without it (musl has no malloc_trim, and ignores mallopt)
        return None


def fix_mmap_threshold(size: int = MMAP_THRESHOLD) -> bool:
    """Map blocks of `size` bytes and more on their own for the rest of the process (glibc; elsewhere
    nothing), instead of glibc's threshold that grows with each large block freed. Whether it was set.
    Cheap; for the start of a long command, before its threads and its large blocks."""
    mallopt = _libc_function("mallopt")
    return mallopt is not None and mallopt(M_MMAP_THRESHOLD, size) == 1


def release_freed_memory() -> None:
    """Return the freed pages of malloc's heaps to the system (glibc; elsewhere nothing). A few milliseconds:
    for after a large, short-lived allocation, not for hot paths."""
    trim = _libc_function("malloc_trim")
    if trim is not None:
        trim(0)

"""Handing the memory the process has freed back to the operating system, where the C library allows it.

glibc's malloc keeps what Python frees in its heaps (one arena per thread that allocated, so a worker of
`asyncio.to_thread` has its own) and gives pages back only from a heap's top: megabytes freed in the middle
stay resident for the rest of the process. `malloc_trim(0)` releases every whole free page of every arena.

Blocks of at least `M_MMAP_THRESHOLD` (128 kB) are mapped on their own and unmapped when freed, but glibc
raises that threshold to the size of each such block freed, up to 32 MB: after a run has freed a few large
blocks (a training's samples, HTTP bodies, zstd's workspaces), every block below their size comes from the
heaps, and what is freed among live blocks stays resident. `fix_mmap_threshold` sets the threshold, which
stops it sliding.

Setting it also stops glibc moving `M_TRIM_THRESHOLD` with it (to twice the threshold), leaving 128 kB: a
heap's top was then given back whenever 128 kB of it were free and faulted in again at the next allocation
(a first backfill of 1,000 tenants x 2 days: 105,000 to 116,000 minor page faults, against 46,000 with the
threshold sliding). `fix_mmap_threshold` therefore sets the trim threshold too, to `TRIM_THRESHOLD` (64 MB,
what glibc's own sliding reaches at most): 62,000 to 110,000 faults, median 79,000, at the same peak RSS.
What the fixed threshold still costs is the blocks above it mapped afresh each time: on a backfill of 20
tenants x 90 days, 118,000 more faults and 6,000 more `mmap`/`munmap` pairs than sliding (orjson's 10 MB
buffer for each page of 20 objects, asyncio's 256 kB TLS reads), about 0.12 CPU s per 1,000 score-days
(docs/benchmarks.md, "Memory of a first backfill: the margin"). Other C libraries (musl, macOS) have neither
call, and nothing is done there.

orjson parses a document of n bytes in a buffer of about 12 n bytes: its own 8 MiB one, kept for the process,
for documents under about 680 kB, and a new one for each larger document (a page of 20 objects of 230
controls is 850 kB: 10 MB). Mapped on its own, that buffer was faulted in afresh for every page: 500 minor
faults a page, which made the parse cost 1.4 to 1.9 times the same parse under glibc's sliding threshold.
`heap_blocks` serves it from the heap for the length of one parse, where the free block is found again by
the next page's.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import sys
from collections.abc import Iterator
from typing import Any

M_TRIM_THRESHOLD = -1  # mallopt's parameter numbers (glibc's malloc.h)
M_MMAP_THRESHOLD = -3
# glibc's own starting value: on the memory benchmark's first backfill of 1,000 tenants, peak RSS 150 to 151
# MB with it fixed against 160 to 162 MB sliding (11b8bec: 137 to 139); 64 kB gave no less (151.3).
MMAP_THRESHOLD = 128 * 1024
# Free memory at a heap's top kept before it is given back; `malloc_trim` (`release_freed_memory`) ignores it.
TRIM_THRESHOLD = 64 * 1024 * 1024
# The largest mmap threshold glibc accepts on a 64-bit system (DEFAULT_MMAP_THRESHOLD_MAX).
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024

_fixed: int | None = None  # the mmap threshold `fix_mmap_threshold` set, if it did


@functools.cache
def _libc_function(name: str) -> Any:  # a ctypes function, or None
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):  # a C library without it (musl has no malloc_trim, and ignores mallopt)
        return None


def fix_mmap_threshold(size: int = MMAP_THRESHOLD, trim: int = TRIM_THRESHOLD) -> bool:
    """Map blocks of `size` bytes and more on their own for the rest of the process (glibc; elsewhere
    nothing), instead of glibc's threshold that grows with each large block freed, and keep up to `trim`
    bytes free at a heap's top instead of giving them back (both in bytes). Whether both were set.
    Cheap; for the start of a long command, before its threads and its large blocks."""
    global _fixed
    mallopt = _libc_function("mallopt")
    fixed = mallopt is not None and mallopt(M_MMAP_THRESHOLD, size) == 1 and mallopt(M_TRIM_THRESHOLD, trim) == 1
    _fixed = size if fixed else None
    return fixed


@contextlib.contextmanager
def heap_blocks(size: int) -> Iterator[None]:
    """Within: blocks under `size` bytes come from malloc's heaps, not mapped on their own, where
    `fix_mmap_threshold` fixed the threshold below `size` (elsewhere, and above glibc's maximum, nothing).
    For one large, short-lived block that would otherwise be faulted in afresh each time (orjson's buffer).
    Two `mallopt` calls; the whole process's, so any thread's blocks made meanwhile come from heaps too."""
    fixed = _fixed
    mallopt = _libc_function("mallopt")
    if fixed is None or size <= fixed or size > MMAP_THRESHOLD_MAX or mallopt is None:
        yield
        return
    mallopt(M_MMAP_THRESHOLD, size)
    try:
        yield
    finally:
        mallopt(M_MMAP_THRESHOLD, fixed)


def release_freed_memory() -> None:
    """Return the freed pages of malloc's heaps to the system (glibc; elsewhere nothing). A few milliseconds:
    for after a large, short-lived allocation, not for hot paths."""
    trim = _libc_function("malloc_trim")
    if trim is not None:
        trim(0)

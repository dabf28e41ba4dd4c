"""fetcher.heap: malloc's threshold for mapping large blocks on their own."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
glibc_only = pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")

# Source of `large_block_mapped()`, for probes run in a child (mallopt changes the whole process, and the
# test process's malloc must stay as it was): an 8 MB block mapped and freed raises glibc's sliding threshold
# to 8 MB, so a 2 MB block is then mapped on its own (mallinfo2's hblkhd counts it) only if the threshold was
# fixed before. A block that fits in the free top of the heap is served from there whatever the threshold,
# hence 2 MB: after `fetcher run` stopped on a missing configuration the top holds about 300 kB. None off glibc.
LARGE_BLOCK_MAPPED = textwrap.dedent(
    """
    def large_block_mapped():
        import ctypes, platform, sys
        if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
            return None
        names = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")
        info = type("MallInfo2", (ctypes.Structure,), {"_fields_": [(name, ctypes.c_size_t) for name in names]})
        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = info
        libc.malloc.restype = ctypes.c_void_p
        libc.malloc.argtypes = [ctypes.c_size_t]
        libc.free.argtypes = [ctypes.c_void_p]
        libc.free(libc.malloc(8 << 20))
        before = libc.mallinfo2().hblkhd
        block = libc.malloc(2 << 20)
        mapped = libc.mallinfo2().hblkhd - before >= 2 << 20
        libc.free(block)
        return mapped
    """
)
PROBE = LARGE_BLOCK_MAPPED + textwrap.dedent(
    """
    import sys
    from fetcher.heap import fix_mmap_threshold

    fixed = fix_mmap_threshold() if sys.argv[1] == "fix" else None
    print(fixed, large_block_mapped())
    """
)


def probe(mode: str) -> str:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return done.stdout.strip()


@glibc_only
def test_a_fixed_threshold_keeps_blocks_above_it_mapped_after_a_larger_one_was_freed() -> None:
    assert probe("fix") == "True True"


@glibc_only
def test_without_it_glibc_serves_them_from_its_heaps() -> None:
    """The probe's control: glibc's threshold slides, which is what `fix_mmap_threshold` is for."""
    assert probe("slide") == "None False"

"""fetcher.heap: malloc's threshold for mapping large blocks on their own, and giving freed pages back."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc's malloc only"
)

# Run in a child: mallopt changes the whole process, and the test process's malloc must stay as it was.
# A 4 MB block mapped and freed raises glibc's sliding threshold to 4 MB; a 200 kB block is then mapped
# (mallinfo2's hblkhd counts it) only if the threshold was fixed before.
PROBE = textwrap.dedent(
    """
    import ctypes, sys
    from fetcher.heap import fix_mmap_threshold

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                     "keepcost")]

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    fixed = fix_mmap_threshold() if sys.argv[1] == "fix" else None
    libc.free(libc.malloc(4 << 20))
    before = libc.mallinfo2().hblkhd
    block = libc.malloc(200 << 10)
    mapped = libc.mallinfo2().hblkhd - before
    libc.free(block)
    print(fixed, mapped >= 200 << 10)
    """
)


def probe(mode: str) -> str:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return done.stdout.strip()


@glibc
def test_a_fixed_threshold_keeps_blocks_above_it_mapped_after_a_larger_one_was_freed() -> None:
    assert probe("fix") == "True True"


@glibc
def test_without_it_glibc_serves_them_from_its_heaps() -> None:
    """The probe's control: glibc's threshold slides, which is what `fix_mmap_threshold` is for."""
    assert probe("slide") == "None False"

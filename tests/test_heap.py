"""fetcher.heap: malloc's threshold for mapping large blocks on their own."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
glibc_only = pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")

# Source of `glibc()`, which the probes below share: the C library with mallinfo2, malloc and free typed, or
# None off glibc.
GLIBC_PRELUDE = textwrap.dedent(
    """
    def glibc():
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
        return libc
    """
)
# Source of `large_block_mapped()`, for probes run in a child (mallopt changes the whole process, and the
# test process's malloc must stay as it was): an 8 MB block mapped and freed raises glibc's sliding threshold
# to 8 MB, so a 2 MB block is then mapped on its own (mallinfo2's hblkhd counts it) only if the threshold was
# fixed before. A block that fits in the free top of the heap is served from there whatever the threshold,
# hence 2 MB: after `fetcher run` stopped on a missing configuration the top holds about 300 kB. None off glibc.
LARGE_BLOCK_MAPPED = textwrap.dedent(
    """
    def large_block_mapped():
        libc = glibc()
        if libc is None:
            return None
        libc.free(libc.malloc(8 << 20))
        before = libc.mallinfo2().hblkhd
        block = libc.malloc(2 << 20)
        mapped = libc.mallinfo2().hblkhd - before >= 2 << 20
        libc.free(block)
        return mapped
    """
)
# Source of `top_kept()`: 2 MB of 4 kB blocks (below any mmap threshold, above what the tcache holds) taken from the
# main heap and freed in reverse, so that each merges with the heap's top; whether at least 1 MB of free top
# stays (mallinfo2's keepcost) or was given back to the system at 128 kB, glibc's trim threshold once the mmap
# threshold is set. None off glibc.
TOP_KEPT = textwrap.dedent(
    """
    def top_kept():
        libc = glibc()
        if libc is None:
            return None
        blocks = [None] * 512  # made first: a list grown meanwhile would sit among the blocks, above them
        for i in range(512):
            blocks[i] = libc.malloc(4096)
        for block in reversed(blocks):
            libc.free(block)
        return libc.mallinfo2().keepcost >= 1 << 20
    """
)
PROBE = (
    GLIBC_PRELUDE
    + LARGE_BLOCK_MAPPED
    + TOP_KEPT
    + textwrap.dedent(
        """
        import sys
        from fetcher.heap import fix_mmap_threshold

        fixed = fix_mmap_threshold() if sys.argv[1] == "fix" else None
        print(fixed, large_block_mapped(), top_kept())
        """
    )
)


def probe(mode: str) -> str:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return done.stdout.strip()


@glibc_only
def test_a_fixed_threshold_keeps_blocks_above_it_mapped_after_a_larger_one_was_freed() -> None:
    """And the heap's free top is kept, not given back at glibc's 128 kB trim threshold."""
    assert probe("fix") == "True True True"


@glibc_only
def test_without_it_glibc_serves_them_from_its_heaps() -> None:
    """The probe's control: glibc's threshold slides, which is what `fix_mmap_threshold` is for."""
    assert probe("slide") == "None False True"


@glibc_only
def test_the_mmap_threshold_alone_gives_the_heaps_top_back_at_128_kb() -> None:
    """The trim threshold's control: glibc stops sliding it too once the mmap threshold is set."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            GLIBC_PRELUDE + TOP_KEPT + "import ctypes\nctypes.CDLL(None).mallopt(-3, 131072)\nprint(top_kept())",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "False"


# Source of a probe that parses a 1.2 MB list answer (1,200 strings of 1 kB: few Python objects, which malloc
# serves, not pymalloc's arenas) three times with the threshold fixed, as a run does: the minor page faults of
# the last two parses. orjson's buffer of about 14 MB was mapped afresh for each parse, its first 1.2 MB or so
# touched (300 faults a parse), until `heap_blocks` served it from the heap.
PARSE_PROBE = textwrap.dedent(
    """
    import resource
    import orjson
    from fetcher.graph import decode_json
    from fetcher.heap import fix_mmap_threshold
    from fetcher.models import TenantRef

    fix_mmap_threshold()
    body = orjson.dumps({"value": [f"{i:04}" + "x" * 1020 for i in range(1200)]})
    tenant = TenantRef("00000000-0000-0000-0000-000000000001")
    decode_json(body, tenant=tenant, status=200, url="u")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(2):
        decode_json(body, tenant=tenant, status=200, url="u")
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


@glibc_only
def test_orjson_buffer_for_a_large_body_is_not_faulted_in_again_for_each_parse() -> None:
    done = subprocess.run([sys.executable, "-c", PARSE_PROBE], capture_output=True, text=True, check=True)
    assert int(done.stdout) < 100

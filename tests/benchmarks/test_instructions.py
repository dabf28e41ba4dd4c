"""The instruction counter's arithmetic on callgrind profiles written out by hand (valgrind itself is too slow
for the suite: one run under it takes minutes, so the tool is run by hand, see docs/benchmarks.md)."""

from __future__ import annotations

import collections

import pytest

from benchmarks.instructions import Profile, arguments, parse, per_tenant, top_functions

PROFILE = """# callgrind format
version: 1
creator: callgrind-3.19.0
positions: line
events: Ir
summary: 1000
ob=(1) /usr/lib/libpython3.11.so.1.0
fl=(1) ceval.c
fn=(1) _PyEval_EvalFrameDefault
10 300
+2 50
cob=(2) /usr/lib/libc.so.6
cfl=(2) memcpy.S
cfn=(2) memcpy
calls=4 0
* 400
cob=(3) /usr/lib/libssl.so.3
cfn=(4) SSL_do_handshake
calls=3 0
* 0
fn=(3) _PyEval_EvalFrameDefault'2
5 20
ob=(2)
fl=(2)
fn=(2)
0 400
totals: 1000
"""


def test_a_profile_counts_each_functions_own_instructions_not_its_calls_and_the_handshake_calls() -> None:
    profile = parse(PROFILE.splitlines(keepends=True))
    assert profile == Profile(
        1000,
        collections.Counter({"_PyEval_EvalFrameDefault [libpython3.11.so.1.0]": 370, "memcpy [libc.so.6]": 400}),
        handshakes=3,
    )


def test_a_file_without_totals_is_refused() -> None:
    with pytest.raises(ValueError, match="no totals"):
        parse(["events: Ir\n", "fn=(1) f\n", "1 5\n"])


def test_per_tenant_is_the_difference_over_the_difference_in_tenants() -> None:
    small = Profile(5_000, collections.Counter({"a [x]": 100, "b [x]": 50}))
    large = Profile(8_000, collections.Counter({"a [x]": 1_000, "b [x]": 2_050, "c [y]": 30}))
    assert per_tenant(small, large, 10) == 300
    assert top_functions(small, large, 10, 2) == [("b [x]", 200.0), ("a [x]", 90.0)]


def test_the_smaller_count_must_be_smaller() -> None:
    with pytest.raises(SystemExit):
        arguments(["--tenants", "40", "10"])

"""The memory benchmark's first-night row: a 90-day backfill at concurrency 16 against the floor's."""

from __future__ import annotations

from benchmarks.harness import Measured
from benchmarks.memory import FIRST_NIGHT_CONCURRENCY, FIRST_NIGHT_DAYS, first_night_row
from benchmarks.session import FULL, QUICK

MB = 1024 * 1024


def _run(peak_mb: float, wall: float) -> Measured:
    return Measured(("x",), wall, 1.0, int(peak_mb * MB), 0, "", "")


def test_the_first_night_row_is_the_fetchers_peak_against_the_floors_and_informational() -> None:
    row = first_night_row(48, _run(512.0, 21.0), _run(320.0, 9.5))
    assert row.name == "memory: first night, peak RSS, 48 tenants x 90 days at concurrency 16"
    assert (row.measured, row.yardstick) == ("512.0 MB", "floor 320.0 MB (21.0 s; the floor 9.50 s)")
    assert (row.ratio, row.limit, row.value, row.unit) == (1.6, None, 512.0, "MB")


def test_the_first_night_is_90_days_at_16_with_more_tenants_than_the_budget_admits_at_full_size() -> None:
    """Full size: three times `concurrency`, so the day budget holds tenants back; --quick: a few seconds' worth."""
    assert (FIRST_NIGHT_DAYS, FIRST_NIGHT_CONCURRENCY) == (90, 16)
    assert FULL.first_night_tenants == 3 * FIRST_NIGHT_CONCURRENCY
    assert QUICK.first_night_tenants == FIRST_NIGHT_CONCURRENCY

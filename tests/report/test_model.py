"""The pure report rules: marks, sorting, totals, ranks and windows, on hand-made rows."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from fetcher.config import AuthConfig, TenantConfig
from fetcher.health import Mark, is_stale
from fetcher.report.model import (
    Sort,
    build_portfolio,
    chart_window,
    default_since,
    empty_latest,
    rank,
    tenant_rows,
    totals,
    why_no_data,
)
from fetcher.store.ledger import TenantState
from fetcher.store.reports import LatestScore

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
DAY = timedelta(hours=48)


def latest(
    tenant_id: str,
    percent: float | None,
    change: float | None = None,
    *,
    day: date = date(2026, 11, 28),
    name: str = "",
) -> LatestScore:
    return dataclasses.replace(
        empty_latest(tenant_id, name),
        score_date=day,
        percent=percent,
        current_score=percent,
        max_score=100.0,
        change_7d_points=change,
    )


def configured(tenant_id: str, name: str, *, enabled: bool = True) -> TenantConfig:
    return TenantConfig(tenant_id=tenant_id, name=name, auth=AuthConfig(), enabled=enabled)


def portfolio_ids(sort: Sort, scores: list[LatestScore], config: list[TenantConfig] | None = None) -> list[str]:
    result = build_portfolio(scores, config or [], now=NOW, max_age=DAY, sort=sort)
    return [r.tenant_id for r in result.rows]


@pytest.mark.parametrize(
    ("newest", "stale"),
    [(date(2026, 11, 28), False), (date(2026, 11, 27), False), (date(2026, 11, 26), True), (None, False)],
)
def test_a_tenant_is_stale_when_its_newest_midnight_is_older_than_max_age(newest: date | None, stale: bool) -> None:
    """As `fetcher status`: at noon on the 28th, 48 hours reach back to noon on the 26th, after its midnight."""
    assert is_stale(newest, NOW, DAY) is stale


def test_weakest_percent_comes_first_and_tenants_without_data_last() -> None:
    scores = [latest("b", 60.0), latest("a", 40.0, name="Zed"), empty_latest("c"), latest("d", 40.0, name="Aardvark")]

    assert portfolio_ids(Sort.PERCENT, scores) == ["d", "a", "b", "c"]


def test_change_sort_puts_the_largest_slip_first_and_no_change_last() -> None:
    scores = [latest("a", 50.0, +3.0), latest("b", 50.0, -7.0), latest("c", 50.0, None), latest("d", 50.0, -1.0)]

    assert portfolio_ids(Sort.CHANGE, scores) == ["b", "d", "a", "c"]


def test_name_sort_ignores_case() -> None:
    scores = [latest("1", 50.0, name="beta"), latest("2", 50.0, name="Alpha"), latest("3", 50.0, name="gamma")]

    assert portfolio_ids(Sort.NAME, scores) == ["2", "1", "3"]


def test_every_tenant_of_database_and_configuration_appears_once_with_its_marks() -> None:
    scores = [
        latest("kept", 50.0),
        latest("old", 50.0, day=date(2026, 10, 1)),
        latest("gone", 50.0),
        empty_latest("silent"),
    ]
    config = [
        configured("kept", "Kept"),
        configured("old", "Old"),
        configured("silent", "Silent"),
        configured("new", "New"),
        configured("off", "Off", enabled=False),
    ]

    rows = {r.tenant_id: r.marks for r in tenant_rows(scores, config, NOW, DAY)}

    assert rows == {
        "kept": (),
        "old": (Mark.STALE,),
        "gone": (Mark.NOT_CONFIGURED,),
        "silent": (Mark.NO_DATA,),
        "new": (Mark.NO_DATA,),
        "off": (Mark.NO_DATA, Mark.DISABLED),
    }


def test_the_configured_name_wins_over_the_stored_one() -> None:
    rows = tenant_rows([latest("a", 50.0, name="Stored")], [configured("a", "Configured")], NOW, DAY)

    assert [r.name for r in rows] == ["Configured"]


def test_totals_count_improved_slipped_unchanged_and_average_the_percentages() -> None:
    scores = [
        latest("a", 40.0, +2.0),
        latest("b", 60.0, -1.0),
        latest("c", 50.0, 0.0),
        latest("d", 30.0, None),
        empty_latest("e"),
    ]

    got = totals(tenant_rows(scores, [], NOW, DAY))

    expected: dict[str, Any] = {
        "tenants": 5,
        "with_data": 4,
        "average_percent": 45.0,
        "improved": 1,
        "slipped": 1,
        "unchanged": 1,
        "stale": 0,
        "no_data": 1,
        "not_configured": 5,
        "failing": 0,
    }
    assert dataclasses.asdict(got) == expected


def test_totals_of_nothing_have_no_average() -> None:
    assert totals([]).average_percent is None


def test_rank_counts_from_the_weakest_among_tenants_with_a_percent() -> None:
    rows = tenant_rows([latest("a", 70.0), latest("b", 20.0), empty_latest("c"), latest("d", 50.0)], [], NOW, DAY)

    assert [rank(rows, t) for t in ("b", "d", "a", "c")] == [(1, 3), (2, 3), (3, 3), (None, 3)]


def test_the_default_window_is_the_90_days_ending_on_the_newest_day() -> None:
    assert default_since(date(2026, 11, 28)) == date(2026, 8, 31)
    assert default_since(None) is None


def test_the_charts_share_one_window_ending_on_the_newest_day_of_any_tenant() -> None:
    scores = [latest("a", 50.0, day=date(2026, 11, 20)), latest("b", 60.0, day=date(2026, 11, 28)), empty_latest("c")]
    result = build_portfolio(scores, [], now=NOW, max_age=DAY)

    assert chart_window(result, None) == (date(2026, 8, 31), date(2026, 11, 28))
    assert chart_window(result, date(2026, 11, 1)) == (date(2026, 11, 1), date(2026, 11, 28))
    assert chart_window(build_portfolio([empty_latest("c")], [], now=NOW, max_age=DAY), None) is None


WHEN = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)


def _state(success: datetime | None, error: datetime | None, message: str = "") -> TenantState:
    return TenantState("t", "T", None, success, error, "permission" if error else None, message or None, 0)


@pytest.mark.parametrize(
    ("state", "why"),
    [
        (None, "never fetched: no run has reached this tenant yet"),
        (_state(None, None), "never fetched: no run has reached this tenant yet"),
        (_state(None, WHEN, "403: denied"), "last attempt failed 2026-11-29 02:00 UTC (permission): 403: denied"),
        (_state(WHEN - timedelta(days=1), WHEN, "403"), "last attempt failed 2026-11-29 02:00 UTC (permission): 403"),
        (
            _state(WHEN, WHEN - timedelta(days=1), "403"),
            "fetched 2026-11-29 02:00 UTC without error, but Graph had no secureScore for it "
            "(a new tenant's first score comes within a day or two)",
        ),
    ],
)  # fmt: skip
def test_a_tenant_without_data_says_why_from_its_ledger(state: TenantState | None, why: str) -> None:
    assert why_no_data(state) == why


def test_a_long_last_error_is_one_line_whole_with_its_fix_and_cut_only_past_the_limit() -> None:
    consent = "grant consent (https://login.example/adminconsent?client_id=x)"
    why = why_no_data(_state(None, WHEN, "denied\n" + "x" * 700 + " " + consent))
    assert "\n" not in why
    assert why.endswith(consent)  # the fix comes last in Graph's and our messages: never cut off

    huge = why_no_data(_state(None, WHEN, "x" * 5000))
    assert len(huge) < 2100
    assert huge.endswith("…")

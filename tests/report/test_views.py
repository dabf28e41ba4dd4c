"""The reporting views (migration 0002): the same columns and figures on SQLite and PostgreSQL, as defined."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from fetcher.config import DatabaseConfig
from fetcher.models import FetchContext, ProviderWarning
from fetcher.normalize import normalize_score
from fetcher.store import reports
from fetcher.store.engine import create_engine, downgrade, migrate, transaction
from fetcher.store.reports import ScorePoint
from fetcher.store.schema import control_changes, latest_scores, metadata, score_history, views
from fetcher.store.scores import save_score_days
from tests.report import reference
from tests.report.conftest import FETCHED, TODAY, Filled, days_ago, score_day, store

A = "aaaaaaaa-0000-4000-8000-00000000000a"
B = "bbbbbbbb-0000-4000-8000-00000000000b"
PROFILE_TABLES = {"control_profiles", "control_state_updates", "raw_control_profiles"}  # migrations 0005, 0006
CHANGE_FIELDS = (
    "tenant_id",
    "score_date",
    "previous_date",
    "control_name",
    "previous_score",
    "score",
    "change",
    "kind",
)


def _columns(connection: sa.Connection, name: str) -> list[str]:
    return [c["name"] for c in sa.inspect(connection).get_columns(name)]


@pytest.mark.parametrize("view", sorted(views.tables.values(), key=lambda t: t.name), ids=lambda t: t.name)
async def test_each_view_has_exactly_the_documented_columns(engine: AsyncEngine, view: sa.Table) -> None:
    async with engine.connect() as conn:
        columns = await conn.run_sync(_columns, view.name)

    assert columns == [c.name for c in view.columns]


async def test_score_history_is_the_simulated_score_of_every_stored_day(filled: Filled) -> None:
    engine = filled.engine()
    stored = {(r["tenant_id"], r["score_date"]): r for r in await reference.view(engine, score_history)}
    await engine.dispose()

    expected = {}
    for tenant in (*filled.healthy, filled.one_day, filled.dropped):
        for obj in filled.sim.expected_objects(tenant.tenant_id):
            day = obj["createdDateTime"][:10]
            expected[tenant.tenant_id, day] = (
                tenant.name,
                obj["currentScore"],
                obj["maxScore"],
                100.0 * obj["currentScore"] / obj["maxScore"],
            )
    got = {
        (tid, str(day)): (r["tenant_name"], r["current_score"], r["max_score"], r["percent"])
        for (tid, day), r in stored.items()
    }
    assert got == expected


async def test_latest_scores_equal_a_direct_computation_from_the_tables(filled: Filled) -> None:
    engine = filled.engine()
    tables = await reference.tables(engine)
    got = {r["tenant_id"]: r for r in await reference.view(engine, latest_scores)}
    await engine.dispose()

    assert got == reference.latest_scores(tables, TODAY)
    assert got[filled.healthy[0].tenant_id]["change_30d_points"] is not None
    assert got[filled.empty.tenant_id]["score_date"] is None


async def test_control_changes_equal_a_direct_comparison_of_consecutive_days(filled: Filled) -> None:
    engine = filled.engine()
    tables = await reference.tables(engine)
    got = await reference.view(engine, control_changes)
    await engine.dispose()

    expected = reference.control_changes(tables)
    assert len(expected) > 100, "the simulator should change some controls every day"
    assert sorted((tuple(r[f] for f in CHANGE_FIELDS) for r in got), key=str) == sorted(
        (tuple(r[f] for f in CHANGE_FIELDS) for r in expected), key=str
    )
    assert {r["kind"] for r in got} >= {"changed", "appeared", "disappeared"}


async def test_a_days_control_changes_add_up_to_its_score_change(filled: Filled) -> None:
    """The simulator's score is the sum of its controls, so the changes explain each day's move."""
    engine = filled.engine()
    tenant = filled.healthy[0].tenant_id
    history = {
        r["score_date"]: r["current_score"] for r in await reference.view(engine, score_history, tenant_id=tenant)
    }
    changes = await reference.view(engine, control_changes, tenant_id=tenant)
    await engine.dispose()

    summed: dict[object, float] = {}
    for r in changes:
        summed[r["score_date"]] = summed.get(r["score_date"], 0.0) + r["change"]
    days = sorted(history)
    for previous, day in itertools.pairwise(days):
        assert summed.get(day, 0.0) == pytest.approx(history[day] - history[previous], abs=0.011), day


# ------------------------------------------------------------------------------------------ scripted


async def test_changes_compare_with_the_newest_day_on_or_before_7_and_30_days_earlier(engine: AsyncEngine) -> None:
    await store(
        engine,
        score_day(A, days_ago(0), {"x": 50.0}, max_score=200.0),
        score_day(A, days_ago(3), {"x": 45.0}, max_score=200.0),
        score_day(A, days_ago(8), {"x": 40.0}, max_score=100.0),
        score_day(A, days_ago(31), {"x": 30.0}, max_score=100.0),
        score_day(A, days_ago(40), {"x": 10.0}, max_score=100.0),
    )

    [row] = await reference.view(engine, latest_scores)

    assert (row["score_date"], row["current_score"], row["percent"]) == (days_ago(0), 50.0, 25.0)
    assert (row["baseline_7d_date"], row["change_7d_points"], row["change_7d_percent"]) == (days_ago(8), 10.0, -15.0)
    assert (row["baseline_30d_date"], row["change_30d_points"], row["change_30d_percent"]) == (days_ago(31), 20.0, -5.0)


async def test_changes_are_null_without_a_day_old_enough(engine: AsyncEngine) -> None:
    await store(engine, score_day(A, days_ago(0), {"x": 5.0}), score_day(A, days_ago(6), {"x": 4.0}))

    [row] = await reference.view(engine, latest_scores)

    assert [
        row[k]
        for k in (
            "baseline_7d_date",
            "change_7d_points",
            "change_7d_percent",
            "baseline_30d_date",
            "change_30d_points",
            "change_30d_percent",
        )
    ] == [None] * 6


async def test_each_comparative_average_comes_from_the_newest_day_that_has_it(engine: AsyncEngine) -> None:
    await store(
        engine,
        score_day(A, days_ago(0), {"x": 5.0}, comparatives=[("TotalSeats", 42.0)]),
        score_day(A, days_ago(2), {"x": 5.0}, comparatives=[("AllTenants", 50.0), ("TotalSeats", 40.0)]),
        score_day(A, days_ago(5), {"x": 5.0}, comparatives=[("AllTenants", 45.0)]),
    )

    [row] = await reference.view(engine, latest_scores)

    assert (row["all_tenants_average"], row["all_tenants_date"]) == (50.0, days_ago(2))
    assert (row["total_seats_average"], row["total_seats_date"]) == (42.0, days_ago(0))


async def test_days_since_newest_counts_whole_days_to_today_in_utc(engine: AsyncEngine) -> None:
    await store(engine, score_day(A, days_ago(3), {"x": 5.0}), score_day(B, days_ago(0), {"x": 5.0}))

    got = {r["tenant_id"]: r["days_since_newest"] for r in await reference.view(engine, latest_scores)}

    assert got == {A: 3, B: 0}


async def test_a_tenant_without_days_has_a_row_of_nulls_under_its_name(engine: AsyncEngine) -> None:
    await store(engine, names={A: "No Days Ltd"})

    [row] = await reference.view(engine, latest_scores)

    assert (row["tenant_id"], row["tenant_name"]) == (A, "No Days Ltd")
    assert {k: v for k, v in row.items() if v is not None} == {"tenant_id": A, "tenant_name": "No Days Ltd"}


async def test_a_zero_max_score_is_a_day_without_a_score(engine: AsyncEngine) -> None:
    """A maxScore of 0 is a placeholder (no control applies yet): no score, rather than a 0-point day."""
    await store(engine, score_day(A, days_ago(0), {}, max_score=0.0, current=0.0))

    [row] = await reference.view(engine, score_history)

    assert (row["current_score"], row["max_score"], row["percent"]) == (None, None, None)


async def test_control_changes_list_changed_appeared_and_disappeared_controls_only(engine: AsyncEngine) -> None:
    await store(
        engine,
        score_day(A, days_ago(2), {"same": 1.0, "up": 2.0, "gone": 3.0}),
        score_day(A, days_ago(1), {"same": 1.0, "up": 5.0, "new": 4.0}),
    )

    got = sorted(tuple(r[f] for f in CHANGE_FIELDS) for r in await reference.view(engine, control_changes))

    yesterday, before = days_ago(1), days_ago(2)
    assert got == [
        (A, yesterday, before, "gone", 3.0, None, -3.0, "disappeared"),
        (A, yesterday, before, "new", None, 4.0, 4.0, "appeared"),
        (A, yesterday, before, "up", 2.0, 5.0, 3.0, "changed"),
    ]


async def test_control_changes_compare_with_the_previous_stored_day_across_a_gap(engine: AsyncEngine) -> None:
    await store(
        engine,
        score_day(A, days_ago(10), {"c": 1.0}),
        score_day(A, days_ago(3), {"c": 2.0}),
        score_day(B, days_ago(4), {"c": 9.0}),
    )

    got = [
        (r["tenant_id"], r["score_date"], r["previous_date"], r["change"])
        for r in await reference.view(engine, control_changes)
    ]

    assert got == [(A, days_ago(3), days_ago(10), 1.0)]


async def test_a_day_stored_without_control_scores_is_skipped(engine: AsyncEngine) -> None:
    """An empty control list says nothing about controls: not every control disappearing and coming back."""
    await store(
        engine,
        score_day(A, days_ago(3), {"c": 1.0}),
        score_day(A, days_ago(2), {}, current=1.0),
        score_day(A, days_ago(1), {"c": 2.0}),
    )

    got = [
        (r["score_date"], r["previous_date"], r["kind"], r["change"])
        for r in await reference.view(engine, control_changes)
    ]

    assert got == [(days_ago(1), days_ago(3), "changed", 1.0)]


async def test_the_first_stored_day_has_no_control_changes(engine: AsyncEngine) -> None:
    await store(engine, score_day(A, days_ago(1), {"c": 1.0, "d": 2.0}))

    assert await reference.view(engine, control_changes) == []


# 0003, 0007, 0012
LATER_TABLES = {"alerts", "alert_notifications", "partner_customers", "partner_discoveries", "archive_dictionaries"}
COMPACT_TABLES = {"tenant_keys", "control_keys", "status_texts", "control_score_rows", "day_keys"}  # 0011, 0014


async def test_downgrade_drops_the_views_and_upgrade_brings_them_back(tmp_path: Path) -> None:
    engine = create_engine(DatabaseConfig(url=f"sqlite+aiosqlite:///{tmp_path / 'views.db'}"))
    await migrate(engine)

    await downgrade(engine, "0001")
    async with engine.connect() as conn:
        after_down = await conn.run_sync(
            lambda c: (set(sa.inspect(c).get_view_names()), set(sa.inspect(c).get_table_names()))
        )
    await migrate(engine)
    async with engine.connect() as conn:
        after_up = await conn.run_sync(lambda c: set(sa.inspect(c).get_view_names()))
    await engine.dispose()

    assert after_down[0] == set()
    assert after_down[1] >= {t.name for t in metadata.sorted_tables} - LATER_TABLES - PROFILE_TABLES - COMPACT_TABLES
    assert "control_scores" in after_down[1]
    assert not after_down[1] & (PROFILE_TABLES | COMPACT_TABLES)
    assert after_up == set(views.tables)


async def test_history_carries_each_days_partial_flag_and_stored_averages(engine: AsyncEngine) -> None:
    """The charts' series come from what was stored each day, not from the newest day's averages."""
    tenant = "0b7c1e2a-1111-4222-8333-444455556666"
    days = [
        score_day(tenant, days_ago(2), {"a": 40.0}, comparatives=[("AllTenants", 45.2), ("TotalSeats", 61.0)]),
        score_day(tenant, days_ago(1), {"a": 41.0}),
        score_day(tenant, days_ago(0), {"a": 42.0}, comparatives=[("AllTenants", 59.3)]),
    ]
    await store(engine, *days[:2], names={tenant: "Contoso"})
    async with transaction(engine) as conn:
        warning = ProviderWarning("Microsoft", "SecureScore", 500, 1234, '199 - "Microsoft/SecureScore/500/1234"')
        context = FetchContext("scripted", FETCHED, (warning,))
        await save_score_days(conn, [normalize_score(days[2], context)], FETCHED)
        history = await reports.history(conn, tenant_id=tenant)

    assert history == {
        tenant: [
            ScorePoint(days_ago(2), 40.0, 100.0, 40.0, False, 45.2, 61.0),
            ScorePoint(days_ago(1), 41.0, 100.0, 41.0, False, None, None),
            ScorePoint(days_ago(0), 42.0, 100.0, 42.0, True, 59.3, None),
        ]
    }

"""Alerting's reads: baselines by the views' rule for any number of days, each tenant's latest runs,
and control moves; each on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from fetcher.alerts.model import Baseline, ControlMove, RunRecord
from fetcher.store import alerts, ledger, reports
from fetcher.store.engine import transaction
from tests.report.conftest import days_ago, score_day, store

A = "aaaaaaaa-0000-4000-8000-000000000001"
B = "bbbbbbbb-0000-4000-8000-000000000002"


async def gappy(engine: AsyncEngine) -> None:
    """A has days 40, 31, 29, 8, 6 and 0 days ago, each a point lower; B has only today."""
    days = [40, 31, 29, 8, 6, 0]
    await store(
        engine,
        *(score_day(A, days_ago(d), {"x": 50.0 + i * -1.0}) for i, d in enumerate(days)),
        score_day(B, days_ago(0), {"x": 10.0}),
        names={A: "A", B: "B"},
    )


async def test_baselines_follow_the_latest_scores_view_for_7_and_30_days(engine: AsyncEngine) -> None:
    await gappy(engine)
    async with transaction(engine, write=False) as conn:
        view = {row.tenant_id: row for row in await reports.latest(conn)}
        seven, thirty = await alerts.baselines(conn, 7), await alerts.baselines(conn, 30)
    assert (seven[A].score_date, thirty[A].score_date) == (view[A].baseline_7d_date, view[A].baseline_30d_date)
    assert (view[A].percent - seven[A].percent, view[A].percent - thirty[A].percent) == (  # type: ignore[operator]
        view[A].change_7d_percent,
        view[A].change_30d_percent,
    )
    assert B not in seven


async def test_baselines_for_any_number_of_days(engine: AsyncEngine) -> None:
    await gappy(engine)
    async with transaction(engine, write=False) as conn:
        assert await alerts.baselines(conn, 3) == {A: Baseline(days_ago(6), 46.0, 100.0, 46.0)}
        assert await alerts.baselines(conn, 35) == {A: Baseline(days_ago(40), 50.0, 100.0, 50.0)}
        assert await alerts.baselines(conn, 41) == {}


async def test_latest_runs_newest_first_up_to_the_limit(engine: AsyncEngine) -> None:
    t0 = datetime(2026, 11, 20, 6, tzinfo=UTC)
    async with transaction(engine) as conn:
        for day in range(4):
            run_id, at = f"r{day}", t0 + timedelta(days=day)
            await ledger.start_run(conn, run_id=run_id, command="run", started_at=at, tenants_total=1, host="h", pid=1)
            status, kind = ("failed", "timeout") if day % 2 else ("succeeded", None)
            await ledger.record_tenant_run(
                conn, ledger.TenantRun(run_id, A, status, at, at + timedelta(minutes=1), error_kind=kind)
            )
        found = await alerts.latest_runs(conn, 3)
    end = t0 + timedelta(minutes=1)
    assert found == {
        A: [
            RunRecord("failed", end + timedelta(days=3), "timeout", None),
            RunRecord("succeeded", end + timedelta(days=2), None, None),
            RunRecord("failed", end + timedelta(days=1), "timeout", None),
        ]
    }


async def test_latest_runs_leave_out_rebuilds(engine: AsyncEngine) -> None:
    """The `tenant_failing` streak counts fetches from Graph: a rebuild does not break nor extend it."""
    t0 = datetime(2026, 11, 20, 6, tzinfo=UTC)
    async with transaction(engine) as conn:
        for day, command in enumerate(("run", "rebuild")):
            run_id, at = f"r{day}", t0 + timedelta(days=day)
            await ledger.start_run(
                conn, run_id=run_id, command=command, started_at=at, tenants_total=1, host="h", pid=1
            )
            status, kind = ("failed", "timeout") if command == "run" else ("succeeded", None)
            await ledger.record_tenant_run(
                conn, ledger.TenantRun(run_id, A, status, at, at + timedelta(minutes=1), error_kind=kind)
            )
        found = await alerts.latest_runs(conn, 3)
    assert found == {A: [RunRecord("failed", t0 + timedelta(minutes=1), "timeout", None)]}


async def test_control_moves_are_the_losses_largest_first(engine: AsyncEngine) -> None:
    await store(
        engine,
        score_day(A, days_ago(8), {"MFA": 30.0, "Legacy": 20.0, "Gainer": 0.0, "Gone": 4.0}),
        score_day(A, days_ago(4), {"MFA": 27.0, "Legacy": 20.0, "Gainer": 1.0, "Gone": 4.0}),
        score_day(A, days_ago(0), {"MFA": 24.0, "Legacy": 17.0, "Gainer": 5.0}),
        names={A: "A"},
    )
    async with transaction(engine, write=False) as conn:
        moves = await alerts.control_moves(conn, A, since=days_ago(8), until=days_ago(0), limit=2)
    assert moves == [ControlMove("MFA", None, -6.0), ControlMove("Gone", None, -4.0)]

"""Reading what a report needs from the database, in one read-only transaction, and building it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from fetcher.config import Config
from fetcher.errors import ConfigError
from fetcher.report.model import (
    TOP_ACTIONS,
    ActionsReport,
    Portfolio,
    Sort,
    TenantReport,
    build_portfolio,
    build_tenant_report,
    chart_window,
    default_since,
    tenant_rows,
    why_no_data,
)
from fetcher.store import ledger, reports
from fetcher.store.engine import transaction
from fetcher.store.reports import ScorePoint


async def portfolio(
    engine: AsyncEngine, config: Config, *, now: datetime, max_age: timedelta, sort: Sort = Sort.PERCENT
) -> Portfolio:
    async with transaction(engine, write=False) as conn:
        latest, errors = await reports.latest(conn), await ledger.last_errors(conn)
        result = build_portfolio(latest, config.tenants, now=now, max_age=max_age, sort=sort, errors=errors)
        return with_whys(result, await _whys(conn, result))


async def _whys(conn: AsyncConnection, portfolio: Portfolio) -> dict[str, str]:
    """For each tenant without data, why (`why_no_data`, from the ledger)."""
    missing = [r.tenant_id for r in portfolio.rows if not r.has_data]
    states = {s.tenant_id: s for s in await ledger.tenant_states(conn, missing)} if missing else {}
    return {tenant_id: why_no_data(states.get(tenant_id)) for tenant_id in missing}


def with_whys(portfolio: Portfolio, whys: Mapping[str, str]) -> Portfolio:
    """The portfolio with each row without data told why (what every format shows)."""
    rows = tuple(dataclasses.replace(r, why=whys.get(r.tenant_id)) for r in portfolio.rows)
    return dataclasses.replace(portfolio, rows=rows)


async def portfolio_with_histories(
    engine: AsyncEngine, config: Config, *, now: datetime, max_age: timedelta, sort: Sort, since: date | None
) -> tuple[Portfolio, dict[str, list[ScorePoint]], dict[str, str]]:
    """The portfolio; for its charts, every tenant's days in its `chart_window`; and for each tenant without
    data, why (`why_no_data`, from the ledger); in one transaction."""
    async with transaction(engine, write=False) as conn:
        latest, errors = await reports.latest(conn), await ledger.last_errors(conn)
        result = build_portfolio(latest, config.tenants, now=now, max_age=max_age, sort=sort, errors=errors)
        span = chart_window(result, since)
        points = await reports.history(conn, since=span[0], until=span[1]) if span else {}
        whys = await _whys(conn, result)
    return with_whys(result, whys), points, whys


async def tenant_report(
    engine: AsyncEngine, config: Config, tenant_id: str, *, since: date | None, now: datetime, max_age: timedelta
) -> TenantReport:
    """One tenant over [since, its newest day]; without `since`, the 90 days ending on its newest day."""
    wanted = tenant_id.strip().lower()
    async with transaction(engine, write=False) as conn:
        rows = tenant_rows(await reports.latest(conn), config.tenants, now, max_age, await ledger.last_errors(conn))
        row = next((r for r in rows if r.tenant_id.lower() == wanted), None)
        if row is None:
            raise ConfigError(f"tenant {tenant_id} is neither in the configuration nor in the database")
        newest = row.score.score_date
        start = since or default_since(newest)
        trend: list[ScorePoint] = []
        extras: dict[str, Any] = {}
        if newest is not None and start is not None:
            trend = (await reports.history(conn, since=start, until=newest, tenant_id=row.tenant_id)).get(
                row.tenant_id, []
            )
        if trend and newest is not None:
            extras = await _window_parts(conn, row.tenant_id, trend[0].score_date, newest)
        if newest is not None:  # of the newest day, whatever the window (one after the newest day holds none)
            extras["next_actions"] = await reports.next_actions(conn, row.tenant_id, limit=TOP_ACTIONS)
        why = None if row.has_data else why_no_data(next(iter(await ledger.tenant_states(conn, [row.tenant_id])), None))
    report = build_tenant_report(row, all_rows=rows, since=start, trend=trend, now=now, max_age=max_age, **extras)
    return dataclasses.replace(report, why_no_data=why)


async def _window_parts(conn: AsyncConnection, tenant_id: str, first: date, last: date) -> dict[str, Any]:
    """What the window's controls say: their deltas, state updates, categories."""
    return {
        "deltas": await reports.control_deltas(conn, tenant_id, after=first, until=last),
        "state_updates": await reports.state_updates(conn, tenant_id, since=first, until=last),
        "categories": await reports.categories(conn, tenant_id, since=first, until=last),
    }


async def actions(engine: AsyncEngine, config: Config, *, now: datetime, tenant_id: str | None) -> ActionsReport:
    """The improvement actions across the portfolio, or over one tenant (which must be known)."""
    async with transaction(engine, write=False) as conn:
        if tenant_id is None:
            return ActionsReport(now, None, None, tuple(await reports.actions(conn)))
        wanted = tenant_id.strip().lower()
        rows = tenant_rows(await reports.latest(conn), config.tenants, now, timedelta(hours=48))
        row = next((r for r in rows if r.tenant_id.lower() == wanted), None)
        if row is None:
            raise ConfigError(f"tenant {tenant_id} is neither in the configuration nor in the database")
        return ActionsReport(now, row.tenant_id, row.name, tuple(await reports.actions(conn, row.tenant_id)))

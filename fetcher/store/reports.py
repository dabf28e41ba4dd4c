"""The questions reports ask, answered from the reporting views (migration 0002) as typed rows.

Every figure comes from a view, so `fetcher report` shows what Power BI or Grafana reading the
same views would; nothing here recomputes a score, a percentage or a change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from fetcher.store.schema import as_date, control_changes, latest_scores, score_history, secure_scores


@dataclass(frozen=True, slots=True)
class LatestScore:
    """A row of `latest_scores`: a tenant's newest day and how it moved (all None without data)."""

    tenant_id: str
    tenant_name: str
    score_date: date | None
    current_score: float | None
    max_score: float | None
    percent: float | None
    baseline_7d_date: date | None
    change_7d_points: float | None
    change_7d_percent: float | None
    baseline_30d_date: date | None
    change_30d_points: float | None
    change_30d_percent: float | None
    all_tenants_average: float | None
    all_tenants_date: date | None
    total_seats_average: float | None
    total_seats_date: date | None
    total_seats_lower: int | None
    total_seats_upper: int | None
    days_since_newest: int | None


@dataclass(frozen=True, slots=True)
class ScorePoint:
    """A row of `score_history`, without the tenant."""

    score_date: date
    current_score: float | None
    max_score: float | None
    percent: float | None


@dataclass(frozen=True, slots=True)
class ControlDelta:
    """A control's net change over a window: the sum of its `control_changes` there."""

    control_name: str
    control_category: str | None
    change: float
    days_changed: int


# Float sums of changes that cancel out can miss zero by rounding noise.
NET_ZERO = 1e-9

_DATE_FIELDS = {"score_date", "baseline_7d_date", "baseline_30d_date", "all_tenants_date", "total_seats_date"}


def _latest(row: sa.Row[Any]) -> LatestScore:
    values = dict(row._mapping)
    for name in _DATE_FIELDS:
        values[name] = as_date(values[name])
    return LatestScore(**values)


async def latest(conn: AsyncConnection, tenant_ids: Sequence[str] | None = None) -> list[LatestScore]:
    """`latest_scores` for every known tenant (or the given ones), in tenant_id order."""
    query = sa.select(latest_scores).order_by(latest_scores.c.tenant_id)
    if tenant_ids is not None:
        query = query.where(latest_scores.c.tenant_id.in_(list(tenant_ids)))
    return [_latest(row) for row in (await conn.execute(query)).all()]


async def history(
    conn: AsyncConnection, *, since: date | None = None, until: date | None = None, tenant_id: str | None = None
) -> dict[str, list[ScorePoint]]:
    """`score_history` per tenant, oldest day first, within [since, until] when given."""
    v = score_history.c
    query = sa.select(v.tenant_id, v.score_date, v.current_score, v.max_score, v.percent).order_by(
        v.tenant_id, v.score_date
    )
    if since is not None:
        query = query.where(v.score_date >= since)
    if until is not None:
        query = query.where(v.score_date <= until)
    if tenant_id is not None:
        query = query.where(v.tenant_id == tenant_id)
    points: dict[str, list[ScorePoint]] = {}
    for tenant, *values in (await conn.execute(query)).all():
        points.setdefault(tenant, []).append(ScorePoint(*values))
    return points


async def first_day(conn: AsyncConnection, tenant_id: str, since: date) -> date | None:
    """The tenant's first stored day on or after `since`."""
    query = sa.select(sa.func.min(secure_scores.c.score_date)).where(
        secure_scores.c.tenant_id == tenant_id, secure_scores.c.score_date >= since
    )
    return as_date((await conn.execute(query)).scalar_one())


async def control_deltas(conn: AsyncConnection, tenant_id: str, *, after: date, until: date) -> list[ControlDelta]:
    """Each control's summed `change` over the days in (after, until], largest gain first; zero sums left out.

    Because every change is against the previous day with controls, the sum telescopes: it is the
    control's score on the last such day minus its score on the first (a missing control counting 0).
    """
    v = control_changes.c
    total = sa.func.sum(v.change).label("change")
    query = (
        sa.select(v.control_name, sa.func.max(v.control_category), total, sa.func.count())
        .where(v.tenant_id == tenant_id, v.score_date > after, v.score_date <= until)
        .group_by(v.control_name)
        .having(sa.func.abs(sa.func.sum(v.change)) > NET_ZERO)
        .order_by(total.desc(), v.control_name)
    )
    return [
        ControlDelta(name, category, float(change), int(days))
        for name, category, change, days in (await conn.execute(query)).all()
    ]

"""The questions reports ask, answered from the reporting views (migrations 0002 and 0005) as typed rows.

Every figure comes from a view, so `fetcher report` shows what Power BI or Grafana reading the
same views would; nothing here recomputes a score, a percentage or a change. The charts' history adds,
per day, the stored `partial` flag and comparative averages as they were stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from fetcher.figures import figure_key
from fetcher.store.schema import (
    as_date,
    category_scores,
    comparative_scores,
    control_changes,
    control_profiles,
    control_state_updates,
    control_status,
    improvement_actions,
    latest_scores,
    score_history,
    secure_scores,
)


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
    """A row of `score_history`, without the tenant; for charts, also whether the day came in a 206 Partial
    Content answer (`secure_scores.partial`) and that day's stored averages (`comparative_scores`:
    `AllTenants` and `TotalSeats`, percentages, None where the day has none)."""

    score_date: date
    current_score: float | None
    max_score: float | None
    percent: float | None
    partial: bool = False
    all_tenants_average: float | None = None
    total_seats_average: float | None = None


@dataclass(frozen=True, slots=True)
class ControlDelta:
    """A control's net change over a window: the sum of its `control_changes` there."""

    control_name: str
    control_category: str | None
    change: float
    days_changed: int
    title: str = ""  # the profile's title, else the control name
    microsoft_change: float = 0.0  # the part of `change` on days its cause was `microsoft`

    @property
    def tenant_change(self) -> float:
        return self.change - self.microsoft_change


@dataclass(frozen=True, slots=True)
class NextAction:
    """A row of `control_status` with points available, and the profile's remediation (untrusted HTML)."""

    control_name: str
    title: str
    control_category: str | None
    score: float | None
    max_score: float | None
    points_available: float
    user_impact: str | None
    implementation_cost: str | None
    tier: str | None
    state: str | None
    action_url: str | None
    remediation: str | None


@dataclass(frozen=True, slots=True)
class StateUpdate:
    """A row of `control_state_updates`, with the control's title."""

    updated_at: datetime
    control_name: str
    title: str
    state: str
    updated_by: str | None
    assigned_to: str | None
    comment: str | None


@dataclass(frozen=True, slots=True)
class CategoryPoint:
    """A row of `category_scores`, without the tenant."""

    score_date: date
    control_category: str | None
    score: float | None
    max_score: float | None
    percent: float | None


@dataclass(frozen=True, slots=True)
class ImprovementAction:
    """A row of `improvement_actions` (or the same figures over one tenant)."""

    control_name: str
    title: str | None
    control_category: str | None
    action_type: str | None
    user_impact: str | None
    implementation_cost: str | None
    action_url: str | None
    tenants: int
    tenants_with_points: int
    points_available_total: float
    points_available_average: float | None
    percent_gain_average: float | None
    tenants_ignored: int
    tenants_third_party: int


# States that say the tenant decided about a control: not a next action for it.
DECIDED_STATES = ("Ignored", "ThirdParty")

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
    """`score_history` per tenant, oldest day first, within [since, until] when given, with each day's
    partial flag and stored averages (see `ScorePoint`)."""
    v = score_history.c
    s = secure_scores.c
    every, similar = comparative_scores.alias("every"), comparative_scores.alias("similar")
    query = (
        sa.select(
            v.tenant_id, v.score_date, v.current_score, v.max_score, v.percent, s.partial,
            every.c.average_score, similar.c.average_score,
        )
        .join(secure_scores, sa.and_(s.tenant_id == v.tenant_id, s.score_date == v.score_date))
        .outerjoin(every, _comparative(every, v, "AllTenants"))
        .outerjoin(similar, _comparative(similar, v, "TotalSeats"))
        .order_by(v.tenant_id, v.score_date)
    )  # fmt: skip
    if since is not None:
        query = query.where(v.score_date >= since)
    if until is not None:
        query = query.where(v.score_date <= until)
    if tenant_id is not None:
        query = query.where(v.tenant_id == tenant_id)
    points: dict[str, list[ScorePoint]] = {}
    for tenant, day, current, maximum, percent, partial, every_average, similar_average in await conn.execute(query):
        point = ScorePoint(day, current, maximum, percent, bool(partial), every_average, similar_average)
        points.setdefault(tenant, []).append(point)
    return points


def _comparative(table: sa.FromClause, v: Any, basis: str) -> sa.ColumnElement[bool]:
    c = table.c
    return sa.and_(c.tenant_id == v.tenant_id, c.score_date == v.score_date, c.basis == basis)


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
    microsoft = sa.func.sum(sa.case((v.cause == "microsoft", v.change), else_=0.0))
    query = (
        sa.select(
            v.control_name, sa.func.max(v.control_category), total, sa.func.count(), sa.func.max(v.title), microsoft
        )
        .where(v.tenant_id == tenant_id, v.score_date > after, v.score_date <= until)
        .group_by(v.control_name)
        .having(sa.func.abs(sa.func.sum(v.change)) > NET_ZERO)
    )
    deltas = [
        ControlDelta(name, category, float(change), int(days), title or name, float(ms))
        for name, category, change, days, title, ms in (await conn.execute(query)).all()
    ]
    return sorted(deltas, key=lambda d: (-figure_key(d.change), d.control_name))


async def next_actions(conn: AsyncConnection, tenant_id: str, *, limit: int) -> list[NextAction]:
    """The tenant's controls with the most points available on its newest day, from `control_status`.

    Deprecated controls, and those the tenant marked Ignored or ThirdParty, are left out.
    """
    v, p = control_status.c, control_profiles.c
    query = (
        sa.select(
            v.control_name,
            v.title,
            v.control_category,
            v.score,
            v.max_score,
            v.points_available,
            v.user_impact,
            v.implementation_cost,
            v.tier,
            v.state,
            v.action_url,
            p.remediation,
        )
        .select_from(
            control_status.outerjoin(
                control_profiles, sa.and_(p.tenant_id == v.tenant_id, p.control_name == v.control_name)
            )
        )
        .where(
            v.tenant_id == tenant_id,
            v.points_available > 0,
            sa.or_(v.deprecated.is_(None), v.deprecated.is_(False)),
            sa.or_(v.state.is_(None), v.state.not_in(DECIDED_STATES)),
        )
        .order_by(v.points_available.desc(), v.rank, by_code_point(conn, v.control_name))
        .limit(limit)
    )
    return [NextAction(**row._mapping) for row in (await conn.execute(query)).all()]


async def state_updates(conn: AsyncConnection, tenant_id: str, *, since: date, until: date) -> list[StateUpdate]:
    """The tenant's state updates made on the UTC days [since, until], oldest first."""
    u, p = control_state_updates.c, control_profiles.c
    start = datetime.combine(since, datetime.min.time(), UTC)
    end = datetime.combine(until + timedelta(days=1), datetime.min.time(), UTC)
    query = (
        sa.select(
            u.updated_at,
            u.control_name,
            sa.func.coalesce(p.title, u.control_name),
            u.state,
            u.updated_by,
            u.assigned_to,
            u.comment,
        )
        .select_from(
            control_state_updates.outerjoin(
                control_profiles, sa.and_(p.tenant_id == u.tenant_id, p.control_name == u.control_name)
            )
        )
        .where(u.tenant_id == tenant_id, u.updated_at >= start, u.updated_at < end)
        .order_by(u.updated_at, u.control_name, u.state)
    )
    return [StateUpdate(*row) for row in (await conn.execute(query)).all()]


async def categories(conn: AsyncConnection, tenant_id: str, *, since: date, until: date) -> list[CategoryPoint]:
    """`category_scores` of the tenant's days in [since, until], by day then category."""
    v = category_scores.c
    query = (
        sa.select(v.score_date, v.control_category, v.score, v.max_score, v.percent)
        .where(v.tenant_id == tenant_id, v.score_date >= since, v.score_date <= until)
        .order_by(v.score_date, v.control_category)
    )
    return [CategoryPoint(as_date(d) or since, c, s, m, p) for d, c, s, m, p in (await conn.execute(query)).all()]


def _action_columns(v: Any, tenant_max: Any) -> list[Any]:
    """improvement_actions' figures over `control_status` rows `v`, as the view defines them."""
    has_points = v.points_available > 0
    return [
        v.control_name,
        sa.func.max(v.title),
        sa.func.max(v.control_category),
        sa.func.max(v.action_type),
        sa.func.max(v.user_impact),
        sa.func.max(v.implementation_cost),
        sa.func.max(v.action_url),
        sa.func.count(),
        sa.func.sum(sa.case((has_points, 1), else_=0)),
        sa.func.sum(sa.case((has_points, v.points_available), else_=0.0)),
        sa.func.avg(sa.case((has_points, v.points_available))),
        sa.func.avg(sa.case((sa.and_(has_points, tenant_max > 0), 100.0 * v.points_available / tenant_max))),
        sa.func.sum(sa.case((v.state == "Ignored", 1), else_=0)),
        sa.func.sum(sa.case((v.state == "ThirdParty", 1), else_=0)),
    ]


async def actions(conn: AsyncConnection, tenant_id: str | None = None) -> list[ImprovementAction]:
    """`improvement_actions`, biggest total gain first; with `tenant_id`, the same figures over that tenant.

    The view aggregates across tenants, so one tenant's figures are the view's definition applied to its
    `control_status` rows (`actions_from_status`; a test holds the two equal over the whole portfolio).
    """
    if tenant_id is not None:
        return await actions_from_status(conn, tenant_id)
    return biggest_gain_first(_action(row) for row in (await conn.execute(sa.select(improvement_actions))).all())


async def actions_from_status(conn: AsyncConnection, tenant_id: str | None) -> list[ImprovementAction]:
    """improvement_actions' definition over `control_status`, for one tenant or (None) all of them."""
    v, s = control_status.c, secure_scores.c
    has_points = v.points_available > 0
    query = (
        sa.select(*_action_columns(v, s.max_score))
        .select_from(
            control_status.join(secure_scores, sa.and_(s.tenant_id == v.tenant_id, s.score_date == v.score_date))
        )
        .where(sa.or_(v.deprecated.is_(None), v.deprecated.is_(False)))
        .group_by(v.control_name)
        .having(sa.func.sum(sa.case((has_points, 1), else_=0)) > 0)
    )
    if tenant_id is not None:
        query = query.where(v.tenant_id == tenant_id)
    return biggest_gain_first(_action(row) for row in (await conn.execute(query)).all())


def biggest_gain_first(rows: Iterable[ImprovementAction]) -> list[ImprovementAction]:
    """By total points available as shown (`fetcher.figures`), then control name: the same order on both
    databases, whose float sums may differ in the last bit and whose text collations may differ."""
    return sorted(rows, key=lambda a: (-figure_key(a.points_available_total), a.control_name))


def by_code_point(conn: AsyncConnection, column: Any) -> Any:
    """`column` ordered by code point, as SQLite orders text, also on a PostgreSQL database whose collation
    orders otherwise (en_US puts `a_b` after `ab`)."""
    return column.collate("C") if conn.dialect.name == "postgresql" else column


def _action(row: sa.Row[Any]) -> ImprovementAction:
    values = list(row)
    for index in (7, 8, 12, 13):
        values[index] = int(values[index])
    values[9] = float(values[9])
    return ImprovementAction(*values)

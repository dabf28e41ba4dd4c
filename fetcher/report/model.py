"""What a report says, as typed records, and the pure rules that build them from view rows.

A portfolio is one row per tenant (configured, in the database, or both) with its marks, sorted,
and the totals at its foot. A tenant report is one tenant's trend over a window, the controls that
moved its score there, and its standing against Graph's comparative averages and the other tenants.
No I/O here: `collect` reads the rows, `formats` and `html` show the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from statistics import fmean

from fetcher.config import TenantConfig
from fetcher.figures import figure_key
from fetcher.health import LastError, Mark, tenant_marks
from fetcher.store.ledger import TenantState
from fetcher.store.partner import DiscoveryState
from fetcher.store.reports import (
    CategoryPoint,
    ControlDelta,
    ImprovementAction,
    LatestScore,
    NextAction,
    ScorePoint,
    StateUpdate,
)
from fetcher.text import one_line

DEFAULT_WINDOW_DAYS = 90
TOP_CONTROLS = 10
TOP_ACTIONS = 10
NOTE_LIMIT = 500  # characters of a failed discovery's cause in a report's header (as the ledger keeps it)
WHY_LIMIT = 2000  # characters of a last error shown for a tenant without data: whole (the fix, a link, is last)


class Sort(StrEnum):
    PERCENT = "percent"  # weakest first
    CHANGE = "change"  # largest 7-day slip first
    NAME = "name"


def empty_latest(tenant_id: str, name: str = "") -> LatestScore:
    """The `latest_scores` row of a tenant the database has never stored a day for."""
    return LatestScore(tenant_id, name, *([None] * 17))


def why_no_data(state: TenantState | None) -> str:
    """Why a tenant has no stored day, from its ledger (`fetcher status`'s row): its last error when the last
    attempt failed, else that Graph answered without a day, else that no run has fetched it yet."""
    if state is None or (state.last_success_at is None and state.last_error_at is None):
        return "never fetched: no run has reached this tenant yet"
    failed_last = state.last_error_at is not None and (
        state.last_success_at is None or state.last_error_at >= state.last_success_at
    )
    if failed_last and state.last_error_at is not None:
        kind = f" ({state.last_error_kind})" if state.last_error_kind else ""
        message = one_line(state.last_error_message or "", limit=WHY_LIMIT)  # the whole of it: `fetcher status`
        return f"last attempt failed {state.last_error_at:%Y-%m-%d %H:%M} UTC{kind}: {message}"
    assert state.last_success_at is not None
    return (
        f"fetched {state.last_success_at:%Y-%m-%d %H:%M} UTC without error, but Graph had no secureScore for it "
        "(a new tenant's first score comes within a day or two)"
    )


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


@dataclass(frozen=True)
class TenantRow:
    """One tenant in a report: its newest figures, its name, and what is wrong with it."""

    score: LatestScore
    name: str
    configured: bool
    enabled: bool
    marks: tuple[Mark, ...]
    last_error: LastError | None = None  # its latest run's, where that run did not end well
    why: str | None = None  # without data: why (`why_no_data`), where the report read the ledger for it

    @property
    def tenant_id(self) -> str:
        return self.score.tenant_id

    @property
    def has_data(self) -> bool:
        return self.score.score_date is not None

    @property
    def vs_all_tenants(self) -> float | None:
        """Percentage points above (+) or below (-) Graph's AllTenants average."""
        return _difference(self.score.percent, self.score.all_tenants_average)

    @property
    def vs_total_seats(self) -> float | None:
        """Percentage points above or below the average of tenants of similar size (TotalSeats)."""
        return _difference(self.score.percent, self.score.total_seats_average)


@dataclass(frozen=True)
class Totals:
    """The foot of the portfolio. Improved/slipped compare `change_7d_points` with zero."""

    tenants: int
    with_data: int
    average_percent: float | None
    improved: int
    slipped: int
    unchanged: int
    stale: int
    no_data: int
    not_configured: int
    failing: int = 0


@dataclass(frozen=True)
class DiscoveryNote:
    """With `tenants_source = "partner"`, a failed latest discovery, said in a report's header: when it failed,
    its cause (one line), and the customer list the report covers: the last known one, discovered at
    `list_discovered_at` (None: no discovery ever succeeded, so there is none)."""

    partner_tenant_id: str
    failed_at: datetime
    cause: str
    list_discovered_at: datetime | None
    customers: int

    def sentence(self) -> str:
        failed = (
            f"tenant discovery at partner tenant {self.partner_tenant_id} failed at {_minute(self.failed_at)}: "
            f"{self.cause}"
        )
        if self.list_discovered_at is None:
            return f"{failed}; no discovery ever succeeded, so this report covers no customer list (configured tenants)"
        return (
            f"{failed}; this report covers the last known customer list: {self.customers} customer(s) discovered "
            f"at {_minute(self.list_discovered_at)}"
        )


def discovery_note(state: DiscoveryState | None) -> DiscoveryNote | None:
    """The note for a report when the partner's latest discovery (`state`, as `fetcher status` reads it) failed."""
    if state is None or not state.failed:
        return None
    cause = f"{state.error_kind}: {state.error_message}" if state.error_message else str(state.error_kind)
    return DiscoveryNote(
        state.partner_tenant_id, state.attempted_at, one_line(cause, limit=NOTE_LIMIT), state.discovered_at,
        state.customers,
    )  # fmt: skip


def _minute(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class Portfolio:
    generated_at: datetime
    max_age: timedelta
    sort: Sort
    rows: tuple[TenantRow, ...]
    totals: Totals
    discovery: DiscoveryNote | None = None  # a failed partner discovery: the report covers the last known list


@dataclass(frozen=True)
class TenantReport:
    """One tenant over a window [first_day, last_day] of its stored days."""

    generated_at: datetime
    max_age: timedelta
    tenant: TenantRow
    since: date | None  # the window asked for (None: no data to anchor it)
    trend: tuple[ScorePoint, ...]
    gains: tuple[ControlDelta, ...]  # largest first
    losses: tuple[ControlDelta, ...]  # largest loss first
    controls_change: float  # every control's delta summed, gains and losses beyond the top ones too
    rank: int | None  # 1 = weakest percent among tenants with data
    ranked_of: int
    microsoft_change: float = 0.0  # the part of controls_change Microsoft caused (controls added, removed, re-scaled)
    next_actions: tuple[NextAction, ...] = ()  # most points available first
    state_updates: tuple[StateUpdate, ...] = ()  # made in the window, oldest first
    categories: tuple[CategoryPoint, ...] = ()  # the window's days by category
    why_no_data: str | None = None  # for a tenant without any stored day: `why_no_data` of its ledger
    discovery: DiscoveryNote | None = None  # a failed partner discovery: the report covers the last known list

    @property
    def tenant_change(self) -> float:
        """The part of controls_change the tenant's own changes made."""
        return self.controls_change - self.microsoft_change

    def category_trends(self) -> dict[str, list[ScorePoint]]:
        """Each category's percent over the window, as trend points (categories in name order)."""
        trends: dict[str, list[ScorePoint]] = {}
        for c in sorted(self.categories, key=lambda c: (c.control_category or "", c.score_date)):
            trends.setdefault(c.control_category or "Uncategorized", []).append(
                ScorePoint(c.score_date, c.score, c.max_score, c.percent)
            )
        return trends

    @property
    def first_day(self) -> date | None:
        return self.trend[0].score_date if self.trend else None

    @property
    def last_day(self) -> date | None:
        return self.trend[-1].score_date if self.trend else None

    @property
    def window_change_points(self) -> float | None:
        """current_score on the window's last day minus on its first."""
        return _difference(self.trend[-1].current_score, self.trend[0].current_score) if self.trend else None

    @property
    def window_change_percent(self) -> float | None:
        return _difference(self.trend[-1].percent, self.trend[0].percent) if self.trend else None


# ------------------------------------------------------------------------------------------ building


def tenant_rows(
    latest: Iterable[LatestScore],
    configured: Sequence[TenantConfig],
    now: datetime,
    max_age: timedelta,
    errors: Mapping[str, LastError] | None = None,
) -> list[TenantRow]:
    """Every tenant of the database and of the configuration, once, marked; `errors`: each tenant's latest run
    where it did not end well (`fetcher.store.ledger.last_errors`)."""
    stored = {s.tenant_id: s for s in latest}
    by_id = {t.tenant_id: t for t in configured}
    errors = errors or {}
    rows = []
    for tenant_id in sorted(stored.keys() | by_id.keys()):
        config = by_id.get(tenant_id)
        score = stored.get(tenant_id) or empty_latest(tenant_id, config.name if config else "")
        name = (config.name if config else "") or score.tenant_name
        error = errors.get(tenant_id)
        marks = _marks(score, config, error, now, max_age)
        rows.append(TenantRow(score, name, config is not None, config.enabled if config else False, marks, error))
    return rows


def _marks(
    score: LatestScore, config: TenantConfig | None, error: LastError | None, now: datetime, max_age: timedelta
) -> tuple[Mark, ...]:
    enabled = config is not None and config.enabled
    return tenant_marks(score.score_date, error, now, max_age, configured=config is not None, enabled=enabled)


def sort_rows(rows: Iterable[TenantRow], sort: Sort) -> list[TenantRow]:
    """percent: weakest first; change: largest 7-day slip (points) first; name: A to Z. No figure: last."""

    def name_key(row: TenantRow) -> tuple[str, str]:
        return row.name.casefold(), row.tenant_id

    def figure_key(value: float | None) -> tuple[bool, float]:
        return value is None, value if value is not None else 0.0

    if sort is Sort.NAME:
        return sorted(rows, key=name_key)
    if sort is Sort.CHANGE:
        return sorted(
            rows, key=lambda r: (figure_key(r.score.change_7d_points), figure_key(r.score.percent), name_key(r))
        )
    return sorted(rows, key=lambda r: (figure_key(r.score.percent), name_key(r)))


def totals(rows: Sequence[TenantRow]) -> Totals:
    percents = [r.score.percent for r in rows if r.score.percent is not None]
    changes = [r.score.change_7d_points for r in rows if r.score.change_7d_points is not None]
    return Totals(
        tenants=len(rows),
        with_data=sum(r.has_data for r in rows),
        average_percent=fmean(percents) if percents else None,
        improved=sum(c > 0 for c in changes),
        slipped=sum(c < 0 for c in changes),
        unchanged=sum(c == 0 for c in changes),
        stale=sum(Mark.STALE in r.marks for r in rows),
        failing=sum(Mark.FAILING in r.marks for r in rows),
        no_data=sum(Mark.NO_DATA in r.marks for r in rows),
        not_configured=sum(Mark.NOT_CONFIGURED in r.marks for r in rows),
    )


def build_portfolio(
    latest: Iterable[LatestScore],
    configured: Sequence[TenantConfig],
    *,
    now: datetime,
    max_age: timedelta,
    sort: Sort = Sort.PERCENT,
    errors: Mapping[str, LastError] | None = None,
) -> Portfolio:
    rows = sort_rows(tenant_rows(latest, configured, now, max_age, errors), sort)
    return Portfolio(now, max_age, sort, tuple(rows), totals(rows))


def default_since(newest: date | None, days: int = DEFAULT_WINDOW_DAYS) -> date | None:
    """The first day of the default window: the `days` days ending on the tenant's newest day."""
    return newest - timedelta(days=days - 1) if newest else None


def chart_window(portfolio: Portfolio, since: date | None, days: int = DEFAULT_WINDOW_DAYS) -> tuple[date, date] | None:
    """The days the charts may cover: from `since` (or `days` back) to the newest day of any tenant."""
    newest = [r.score.score_date for r in portfolio.rows if r.score.score_date is not None]
    if not newest:
        return None
    last = max(newest)
    return since or last - timedelta(days=days - 1), last


def rank(rows: Sequence[TenantRow], tenant_id: str) -> tuple[int | None, int]:
    """The tenant's place by percent, weakest = 1, among the tenants with a percent; and how many those are."""
    ranked = [r for r in sort_rows(rows, Sort.PERCENT) if r.score.percent is not None]
    place = next((i for i, r in enumerate(ranked, 1) if r.tenant_id == tenant_id), None)
    return place, len(ranked)


def build_tenant_report(
    row: TenantRow,
    *,
    all_rows: Sequence[TenantRow],
    since: date | None,
    trend: Sequence[ScorePoint],
    deltas: Sequence[ControlDelta] = (),
    now: datetime,
    max_age: timedelta,
    top: int = TOP_CONTROLS,
    next_actions: Sequence[NextAction] = (),
    state_updates: Sequence[StateUpdate] = (),
    categories: Sequence[CategoryPoint] = (),
) -> TenantReport:
    gains = [d for d in deltas if d.change > 0]
    losses = sorted((d for d in deltas if d.change < 0), key=lambda d: (figure_key(d.change), d.control_name))
    place, of = rank(all_rows, row.tenant_id)
    return TenantReport(
        generated_at=now,
        max_age=max_age,
        tenant=row,
        since=since,
        trend=tuple(trend),
        gains=tuple(gains[:top]),
        losses=tuple(losses[:top]),
        controls_change=sum(d.change for d in deltas),
        rank=place,
        ranked_of=of,
        microsoft_change=sum(d.microsoft_change for d in deltas),
        next_actions=tuple(next_actions),
        state_updates=tuple(state_updates),
        categories=tuple(categories),
    )


@dataclass(frozen=True)
class ActionsReport:
    """`fetcher report --actions`: improvement actions across the portfolio (or one tenant), biggest gain first."""

    generated_at: datetime
    tenant_id: str | None
    tenant_name: str | None
    actions: tuple[ImprovementAction, ...]
    discovery: DiscoveryNote | None = None  # a failed partner discovery: the report covers the last known list

    @property
    def points_available_total(self) -> float:
        return sum(a.points_available_total for a in self.actions)

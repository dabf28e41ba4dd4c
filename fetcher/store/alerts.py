"""Alerting's SQL: the facts rules read (from the reporting views and the run ledger) and the alert state.

Facts: `baselines` applies the `latest_scores` view's baseline rule for any number of days (the newest
stored day on or before the newest day minus N days); `latest_runs` gives each tenant's last runs;
`control_moves` sums `control_changes` like `fetcher report --tenant`. State: `alerts` and
`alert_notifications` (migration 0003); `apply` writes a `Transition`, `claim` hands unsent
notifications to one evaluation at a time, `record` notes how each delivery went.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from fetcher.alerts.model import Baseline, ControlMove, Event, Finding, Notice, RuleKind, RunRecord
from fetcher.alerts.state import ChannelState, StoredAlert, Transition
from fetcher.store import reports
from fetcher.store.engine import is_sqlite
from fetcher.store.ledger import from_graph
from fetcher.store.schema import (
    alert_notifications,
    alerts,
    as_date,
    as_utc,
    control_profiles,
    score_history,
    secure_scores,
    tenant_runs,
)

OPEN = "open"
RESOLVED = "resolved"
# Serializes evaluations on PostgreSQL (SQLite's writing transactions already are).
ADVISORY_KEY = 0x5EC5A1E


async def serialize(conn: AsyncConnection) -> None:
    """Call first in an evaluation's writing transaction: one evaluation at a time per database."""
    if not is_sqlite(conn):
        await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_KEY})


# ---------------------------------------------------------------------------------------------- facts


def _days_before(conn: AsyncConnection, column: Any, days: int) -> Any:
    if is_sqlite(conn):
        return sa.func.date(column, sa.literal(f"-{days} days"))
    return column - sa.literal(days, sa.Integer)


async def baselines(conn: AsyncConnection, days: int) -> dict[str, Baseline]:
    """Per tenant, `score_history` on its newest stored day on or before its newest day minus `days` days."""
    s = secure_scores.c
    newest = sa.select(s.tenant_id, sa.func.max(s.score_date).label("newest")).group_by(s.tenant_id).subquery()
    base_day = (
        sa.select(sa.func.max(s.score_date))
        .where(s.tenant_id == newest.c.tenant_id, s.score_date <= _days_before(conn, newest.c.newest, days))
        .scalar_subquery()
    )
    h = score_history.c
    query = sa.select(h.tenant_id, h.score_date, h.current_score, h.max_score, h.percent).join(
        newest, sa.and_(newest.c.tenant_id == h.tenant_id, h.score_date == base_day)
    )
    rows = (await conn.execute(query)).all()
    return {tenant: Baseline(as_date(day) or date.min, cur, top, pct) for tenant, day, cur, top, pct in rows}


async def latest_runs(conn: AsyncConnection, limit: int) -> dict[str, list[RunRecord]]:
    """Each tenant's last `limit` finished runs from Graph (`from_graph`: a `rebuild` is left out), newest first."""
    if limit <= 0:
        return {}
    t = tenant_runs.c
    order = sa.func.row_number().over(partition_by=t.tenant_id, order_by=t.finished_at.desc()).label("n")
    ranked = (
        sa.select(t.tenant_id, t.status, t.finished_at, t.error_kind, t.error_message, order)
        .where(t.finished_at.is_not(None), from_graph())
        .subquery()
    )
    query = sa.select(ranked).where(ranked.c.n <= limit).order_by(ranked.c.tenant_id, ranked.c.n)
    found: dict[str, list[RunRecord]] = {}
    for tenant, status, finished, kind, message, _ in (await conn.execute(query)).all():
        found.setdefault(tenant, []).append(RunRecord(status, as_utc(finished), kind, message))
    return found


async def control_moves(
    conn: AsyncConnection, tenant_id: str, *, since: date, until: date, limit: int
) -> list[ControlMove]:
    """The controls that lost most points over (since, until], largest loss first (gains left out)."""
    deltas = await reports.control_deltas(conn, tenant_id, after=since, until=until)
    losses = sorted((d for d in deltas if d.change < 0), key=lambda d: (d.change, d.control_name))[:limit]
    titles = await control_titles(conn, tenant_id, [d.control_name for d in losses])
    return [ControlMove(d.control_name, titles.get(d.control_name), d.change) for d in losses]


async def control_titles(conn: AsyncConnection, tenant_id: str, names: Sequence[str]) -> dict[str, str]:
    """The tenant's control titles by control name, from its stored control profiles.

    A control without a stored profile (profiles off, not fetched yet, or a title Graph left empty)
    is absent from the result, so callers fall back to the control name.
    """
    if not names:
        return {}
    p = control_profiles.c
    query = sa.select(p.control_name, p.title).where(
        p.tenant_id == tenant_id, p.control_name.in_(list(names)), p.title.is_not(None), p.title != ""
    )
    return {name: title for name, title in (await conn.execute(query)).all()}


# ---------------------------------------------------------------------------------------------- state


def _stored(row: Any) -> StoredAlert:
    return StoredAlert(
        alert_id=row.alert_id,
        rule=row.rule_name,
        kind=RuleKind(row.kind),
        tenant_id=row.tenant_id,
        tenant_name=row.tenant_name,
        opened_at=row.opened_at,
        details=row.details,
    )


async def open_alerts(conn: AsyncConnection) -> list[StoredAlert]:
    query = sa.select(alerts).where(alerts.c.status == OPEN).order_by(alerts.c.alert_id)
    return [_stored(row) for row in (await conn.execute(query)).all()]


async def channel_states(conn: AsyncConnection, alert_ids: Collection[int]) -> dict[tuple[int, str], ChannelState]:
    """For each (alert, channel): its newest notification's time, and whether any of its notifications is unsent."""
    if not alert_ids:
        return {}
    n = alert_notifications.c
    unsent = sa.func.sum(sa.case((n.sent_at.is_(None), 1), else_=0))
    query = (
        sa.select(n.alert_id, n.channel, sa.func.max(n.created_at), unsent)
        .where(n.alert_id.in_(list(alert_ids)))
        .group_by(n.alert_id, n.channel)
    )
    return {
        (alert_id, channel): ChannelState(as_utc(last) or datetime.min, bool(waiting))
        for alert_id, channel, last, waiting in (await conn.execute(query)).all()
    }


def finding_details(finding: Finding) -> dict[str, Any]:
    """What is stored and sent about a finding: its figures and its control moves."""
    moves = [{"control_name": c.control_name, "title": c.title, "change": c.change} for c in finding.controls]
    return {**finding.details, "controls": moves}


async def _notify(
    conn: AsyncConnection, alert_id: int, channels: Sequence[str], event: Event, details: Any, now: datetime
) -> None:
    if channels:
        rows = [
            {"alert_id": alert_id, "channel": c, "event": event.value, "created_at": now, "details": details}
            for c in channels
        ]
        await conn.execute(sa.insert(alert_notifications), rows)


async def apply(conn: AsyncConnection, change: Transition, now: datetime) -> int:
    """Write a transition: new alerts and their notifications, updated figures, reminders, resolutions;
    how many owed messages a resolution superseded (`_supersede`)."""
    for finding in change.opened:
        details = finding_details(finding)
        inserted = await conn.execute(
            sa.insert(alerts)
            .values(
                rule_name=finding.rule,
                kind=finding.kind.value,
                tenant_id=finding.tenant_id,
                tenant_name=finding.tenant_name,
                status=OPEN,
                opened_at=now,
                updated_at=now,
                details=details,
            )
            .returning(alerts.c.alert_id)
        )
        await _notify(conn, inserted.scalar_one(), change.channels_for(finding.rule), Event.OPENED, details, now)
    for alert, finding in change.continuing:
        await conn.execute(
            sa.update(alerts)
            .where(alerts.c.alert_id == alert.alert_id)
            .values(updated_at=now, tenant_name=finding.tenant_name, details=finding_details(finding))
        )
    for reminder in change.reminders:
        details = finding_details(reminder.finding)
        await _notify(conn, reminder.alert.alert_id, [reminder.channel], reminder.event, details, now)
    for alert, channels in change.resolved:
        await conn.execute(
            sa.update(alerts)
            .where(alerts.c.alert_id == alert.alert_id)
            .values(status=RESOLVED, resolved_at=now, updated_at=now)
        )
        told = await _told(conn, alert.alert_id)
        await _notify(conn, alert.alert_id, [c for c in channels if c in told], Event.RESOLVED, alert.details, now)
    return await _supersede(conn)


async def _supersede(conn: AsyncConnection) -> int:
    """Delete the unsent `opened` and `reminder` messages of alerts that have resolved (now, or before this
    rule was kept: a database may hold some): the latest state replaces them, as Alertmanager sends an
    alert's current state, never a stale one; how many."""
    n = alert_notifications.c
    resolved = sa.select(alerts.c.alert_id).where(alerts.c.status == RESOLVED)
    stale = sa.delete(alert_notifications).where(
        n.sent_at.is_(None), n.event.in_([Event.OPENED.value, Event.REMINDER.value]), n.alert_id.in_(resolved)
    )
    return int((await conn.execute(stale)).rowcount or 0)


async def _told(conn: AsyncConnection, alert_id: int) -> set[str]:
    """The channels that were sent something about an alert: only they are told it resolved (a channel
    never told it opened is not told it ended, as Alertmanager does)."""
    n = alert_notifications.c
    query = sa.select(n.channel).where(n.alert_id == alert_id, n.sent_at.is_not(None)).distinct()
    return set((await conn.execute(query)).scalars())


# ------------------------------------------------------------------------------------------ delivery


@dataclass(frozen=True)
class Pending:
    """An unsent notification, ready to render, with its delivery history."""

    notice: Notice
    channel: str
    attempts: int
    last_error: str | None
    claimed_until: datetime | None


def _pending_query() -> sa.Select[Any]:
    n, a = alert_notifications.c, alerts.c
    return (
        sa.select(
            n.notification_id,
            n.event,
            n.alert_id,
            a.rule_name,
            a.kind,
            a.tenant_id,
            a.tenant_name,
            a.opened_at,
            a.resolved_at,
            n.created_at,
            n.details,
            n.channel,
            n.attempts,
            n.last_error,
            n.claimed_until,
        )
        .join(alerts, a.alert_id == n.alert_id)
        .where(n.sent_at.is_(None))
        .order_by(n.notification_id)
    )


def _pending(row: Any) -> Pending:
    (
        nid,
        event,
        alert_id,
        rule,
        kind,
        tenant,
        name,
        opened,
        resolved,
        created,
        details,
        channel,
        attempts,
        error,
        claimed,
    ) = row
    resolved_at = resolved if event == Event.RESOLVED.value else None
    notice = Notice(
        nid, Event(event), alert_id, rule, RuleKind(kind), tenant, name, opened, resolved_at, created, details
    )
    return Pending(notice, channel, attempts, error, claimed)


async def pending(conn: AsyncConnection) -> list[Pending]:
    """Every unsent notification, oldest first."""
    return [_pending(row) for row in (await conn.execute(_pending_query())).all()]


async def orphaned(conn: AsyncConnection, channels: Collection[str]) -> list[Pending]:
    """The unsent notifications of channels not among `channels` (removed from the configuration), oldest first:
    nothing will send them until the channel is configured again or `drop_unsent` drops them."""
    query = _pending_query().where(alert_notifications.c.channel.not_in(list(channels)))
    return [_pending(row) for row in (await conn.execute(query)).all()]


async def drop_unsent(conn: AsyncConnection, channel: str) -> int:
    """Delete the unsent notifications of `channel` (`fetcher alerts --drop-channel`); how many there were.
    Its sent ones stay, as the record of what was delivered."""
    n = alert_notifications.c
    done = await conn.execute(sa.delete(alert_notifications).where(n.channel == channel, n.sent_at.is_(None)))
    return int(done.rowcount or 0)


async def claim(conn: AsyncConnection, channels: Collection[str], now: datetime, lease: timedelta) -> list[Pending]:
    """The unsent notifications of the given channels no other evaluation is sending, claimed for `lease`."""
    n = alert_notifications.c
    free = sa.or_(n.claimed_until.is_(None), n.claimed_until < now)
    rows = (await conn.execute(_pending_query().where(free, n.channel.in_(list(channels))))).all()
    claimed = [_pending(row) for row in rows]
    if claimed:
        ids = [p.notice.notification_id for p in claimed]
        await conn.execute(
            sa.update(alert_notifications).where(n.notification_id.in_(ids)).values(claimed_until=now + lease)
        )
    return claimed


@dataclass(frozen=True)
class Delivery:
    """How one notification's delivery went; `error` is a one-line reason without any secret."""

    notification_id: int
    attempted_at: datetime
    attempts: int
    error: str | None = None

    @property
    def sent(self) -> bool:
        return self.error is None


async def record(conn: AsyncConnection, deliveries: Sequence[Delivery]) -> None:
    """Mark sent notifications sent; note the error of the others, which stay owed."""
    n = alert_notifications.c
    for d in deliveries:
        values: dict[str, Any] = {
            "attempts": n.attempts + d.attempts,
            "last_attempt_at": d.attempted_at,
            "last_error": d.error,
            "claimed_until": None,
        }
        if d.sent:
            values["sent_at"] = d.attempted_at
        await conn.execute(
            sa.update(alert_notifications).where(n.notification_id == d.notification_id).values(**values)
        )


async def release(conn: AsyncConnection, notification_ids: Collection[int]) -> None:
    """Give claimed notifications back untried (the channel was skipped after an earlier failure)."""
    if notification_ids:
        n = alert_notifications.c
        await conn.execute(
            sa.update(alert_notifications)
            .where(n.notification_id.in_(list(notification_ids)))
            .values(claimed_until=None)
        )


async def counts(conn: AsyncConnection) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
    """Open alerts per (rule, kind), and unsent notifications per channel (for metrics)."""
    a, n = alerts.c, alert_notifications.c
    open_rows = await conn.execute(
        sa.select(a.rule_name, a.kind, sa.func.count()).where(a.status == OPEN).group_by(a.rule_name, a.kind)
    )
    unsent_rows = await conn.execute(
        sa.select(n.channel, sa.func.count()).where(n.sent_at.is_(None)).group_by(n.channel)
    )
    return (
        {(rule, kind): int(c) for rule, kind, c in open_rows.all()},
        {channel: int(c) for channel, c in unsent_rows.all()},
    )

"""One evaluation: read the facts, run the rules, update the alert state, deliver what is owed, record it.

The first transaction (serialized per database) reads the facts, writes the transition and claims
the unsent notifications; delivery happens outside any transaction (a slow webhook must not hold
SQLite's one writer); a second transaction records the outcome. A process that dies in between
leaves its claims to expire (`CLAIM_LEASE`), and the next evaluation sends them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from fetcher.alerts.deliver import DeliveryPolicy, Sender
from fetcher.alerts.model import AlertChannel, AlertsConfig, Event, Finding, Notice, TenantFacts
from fetcher.alerts.rules import baseline_days, evaluate, runs_needed
from fetcher.alerts.state import StoredAlert, Transition, transition
from fetcher.config import Config
from fetcher.errors import ConfigError, DatabaseUnavailable
from fetcher.graph import consent_url
from fetcher.store import alerts as store
from fetcher.store.engine import create_engine, ensure_schema, permission_problem, transaction
from fetcher.store.reports import latest

log = logging.getLogger("fetcher.alerts")

# Longer than any one evaluation's deliveries can take with the configured limits.
CLAIM_LEASE = timedelta(minutes=30)


@dataclass
class Evaluation:
    """What an evaluation found, changed and sent (or, dry, would have)."""

    now: datetime
    dry_run: bool
    findings: list[Finding]
    change: Transition
    open_alerts: list[StoredAlert]
    owed: list[store.Pending] = field(default_factory=list)  # dry run: every message it would send
    deliveries: list[tuple[store.Pending, store.Delivery | None]] = field(default_factory=list)
    # Owed to channels no longer in the configuration: never sent, until the channel is back or they are dropped.
    orphaned: list[store.Pending] = field(default_factory=list)

    @property
    def failed(self) -> list[store.Delivery]:
        return [d for _, d in self.deliveries if d is not None and not d.sent]

    @property
    def sent(self) -> list[store.Delivery]:
        return [d for _, d in self.deliveries if d is not None and d.sent]


async def read_facts(conn: AsyncConnection, config: Config, settings: AlertsConfig) -> list[TenantFacts]:
    """The facts of every enabled configured tenant, from the views and the run ledger."""
    rows = {row.tenant_id: row for row in await latest(conn)}
    bases = {days: await store.baselines(conn, days) for days in sorted(baseline_days(settings.rules))}
    runs = await store.latest_runs(conn, runs_needed(settings.rules))
    facts = []
    for tenant in config.enabled_tenants:
        row = rows.get(tenant.tenant_id)
        facts.append(
            TenantFacts(
                tenant_id=tenant.tenant_id,
                tenant_name=tenant.name or (row.tenant_name if row else ""),
                score_date=row.score_date if row else None,
                current_score=row.current_score if row else None,
                max_score=row.max_score if row else None,
                percent=row.percent if row else None,
                baselines={d: b[tenant.tenant_id] for d, b in bases.items() if tenant.tenant_id in b},
                runs=tuple(runs.get(tenant.tenant_id, ())),
                consent_url=consent_url(config.graph.authority_host, tenant.tenant_id, tenant.auth.client_id),
            )
        )
    return facts


async def with_controls(conn: AsyncConnection, findings: Sequence[Finding], limit: int) -> list[Finding]:
    """Findings of score rules with the controls that lost most points over their window."""
    done = []
    for finding in findings:
        if finding.since is None or finding.until is None or limit <= 0:
            done.append(finding)
            continue
        moves = await store.control_moves(
            conn, finding.tenant_id, since=finding.since, until=finding.until, limit=limit
        )
        done.append(replace(finding, controls=tuple(moves)))
    return done


async def _plan(conn: AsyncConnection, config: Config, settings: AlertsConfig, now: datetime) -> Evaluation:
    facts = await read_facts(conn, config, settings)
    findings = await with_controls(conn, evaluate(settings.rules, facts, now), settings.top_controls)
    opened = await store.open_alerts(conn)
    states = await store.channel_states(conn, [a.alert_id for a in opened])
    change = transition(settings, findings, opened, states, {f.tenant_id for f in facts}, now)
    return Evaluation(now, False, findings, change, opened)


def _owed(alert: StoredAlert, channel: str, event: Event, details: Mapping[str, Any], now: datetime) -> store.Pending:
    resolved_at = now if event is Event.RESOLVED else None
    notice = Notice(
        0,
        event,
        alert.alert_id,
        alert.rule,
        alert.kind,
        alert.tenant_id,
        alert.tenant_name,
        alert.opened_at,
        resolved_at,
        now,
        details,
    )
    return store.Pending(notice, channel, 0, None, None)


def would_send(change: Transition, now: datetime) -> list[store.Pending]:
    """The notifications a transition would add; a new alert is numbered 0 (a dry run stores nothing)."""
    owed = []
    for finding in change.opened:
        alert = StoredAlert(0, finding.rule, finding.kind, finding.tenant_id, finding.tenant_name, now, {})
        details = store.finding_details(finding)
        owed += [_owed(alert, c, Event.OPENED, details, now) for c in change.channels_for(finding.rule)]
    for reminder in change.reminders:
        owed.append(
            _owed(reminder.alert, reminder.channel, reminder.event, store.finding_details(reminder.finding), now)
        )
    for alert, channels in change.resolved:
        owed += [_owed(alert, c, Event.RESOLVED, alert.details, now) for c in channels]
    return owed


async def run_evaluation(
    engine: AsyncEngine,
    config: Config,
    settings: AlertsConfig,
    *,
    now: datetime,
    dry_run: bool = False,
    policy: DeliveryPolicy | None = None,
) -> Evaluation:
    """Evaluate every rule and deliver what is owed; with `dry_run`, change and send nothing."""
    if dry_run:
        async with transaction(engine, write=False) as conn:
            evaluation = await _plan(conn, config, settings, now)
            evaluation.dry_run = True
            evaluation.owed = await store.pending(conn) + would_send(evaluation.change, now)
            evaluation.orphaned = await store.orphaned(conn, [c.name for c in settings.channels])
        warn_orphaned(evaluation.orphaned)
        return evaluation
    async with transaction(engine) as conn:
        await store.serialize(conn)
        evaluation = await _plan(conn, config, settings, now)
        superseded = await store.apply(conn, evaluation.change, now)
        claimed = await store.claim(conn, [c.name for c in settings.channels], now, CLAIM_LEASE)
        evaluation.orphaned = await store.orphaned(conn, [c.name for c in settings.channels])
    if superseded:
        log.info("%d owed opened or reminder message(s) of alerts since resolved dropped, not sent", superseded)
    warn_orphaned(evaluation.orphaned)
    evaluation.deliveries = await deliver(settings, claimed, policy or DeliveryPolicy.from_settings(settings), now)
    async with transaction(engine) as conn:
        await store.record(conn, [d for _, d in evaluation.deliveries if d is not None])
        await store.release(conn, [p.notice.notification_id for p, d in evaluation.deliveries if d is None])
    return evaluation


def orphaned_counts(orphaned: Sequence[store.Pending]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in orphaned:
        counts[item.channel] = counts.get(item.channel, 0) + 1
    return counts


def warn_orphaned(orphaned: Sequence[store.Pending]) -> None:
    """A line per removed channel that is still owed messages, saying how to clear them."""
    for channel, count in sorted(orphaned_counts(orphaned).items()):
        log.warning(
            "%d message(s) owed to channel %r, which is no longer in [[alerts.channels]], will not be sent: "
            "`fetcher alerts --drop-channel %s` drops them (or configure the channel again to send them)",
            count,
            channel,
            channel,
        )


@dataclass(frozen=True)
class Dropped:
    """What `--drop-channel` did: messages dropped by channel named, and what removed channels were owed
    before (a name with nothing dropped is answered with these, as a typo would be)."""

    dropped: dict[str, int]
    owed: dict[str, int]

    def hint(self, name: str) -> str:
        """Why nothing was dropped for `name`: nothing is owed to it; which channels are owed messages."""
        owed = ", ".join(f"{channel!r} ({count})" for channel, count in sorted(self.owed.items()))
        others = f"channels owed messages: {owed}" if owed else "no removed channel is owed any message"
        return f"nothing is owed to a channel named {name!r} ({others})"


async def drop_channel(config: Config, channels: Sequence[str]) -> Dropped:
    """`fetcher alerts --drop-channel`: delete the unsent notifications of channels no longer configured.
    A configured channel is refused (its messages are delivered, not dropped), and so is an empty name."""
    configured = {c.name for c in config.alerts.channels}
    for name in channels:
        if not name.strip():
            raise ConfigError(f"--drop-channel {name!r}: a channel name is needed (as `fetcher alerts` lists them)")
        if name in configured:
            raise ConfigError(
                f"{config.path}: --drop-channel {name}: the channel is in [[alerts.channels]], so its messages are "
                "delivered, not dropped; remove it from the configuration first"
            )
    engine = create_engine(config.database)
    try:
        problem = permission_problem(engine, writing=True)
        if problem is not None:
            raise DatabaseUnavailable(f"cannot write database {problem} (`fetcher alerts --drop-channel` writes)")
        await ensure_schema(engine, create=False)
        async with transaction(engine) as conn:
            await store.serialize(conn)
            owed = orphaned_counts(await store.orphaned(conn, configured))
            return Dropped({name: await store.drop_unsent(conn, name) for name in dict.fromkeys(channels)}, owed)
    finally:
        await engine.dispose()


async def deliver(
    settings: AlertsConfig, claimed: Sequence[store.Pending], policy: DeliveryPolicy, now: datetime
) -> list[tuple[store.Pending, store.Delivery | None]]:
    """Each channel's messages in order, channels side by side; after a failure a channel's later ones wait.

    A message not tried is paired with None.
    """
    by_channel: dict[str, list[store.Pending]] = {}
    for item in claimed:
        by_channel.setdefault(item.channel, []).append(item)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        sender = Sender(session, policy)
        results = await asyncio.gather(
            *(_channel(sender, settings.channel(name), items, now) for name, items in by_channel.items())
        )
    return [pair for batch in results for pair in batch]


async def _channel(
    sender: Sender, channel: AlertChannel, items: Sequence[store.Pending], now: datetime
) -> list[tuple[store.Pending, store.Delivery | None]]:
    done: list[tuple[store.Pending, store.Delivery | None]] = []
    failed = False
    for item in items:
        if failed:
            done.append((item, None))
            continue
        result = await sender.send(channel, item.notice)
        done.append((item, store.Delivery(item.notice.notification_id, now, result.attempts, result.error)))
        if result.error:
            failed = True
            log.warning("%s; %d message(s) for it stay owed", result.error, len(items) - len(done) + 1)
    return done


async def evaluate_alerts(
    config: Config, settings: AlertsConfig, *, now: datetime, dry_run: bool = False
) -> Evaluation:
    """`fetcher alerts` and the evaluation after run and backfill: one engine, made and disposed here.

    A dry run opens SQLite read-only, as `status` does (a copy in a folder this user cannot write works);
    otherwise a file or folder this user cannot write is refused before anything is evaluated: the
    evaluation records the alerts' state.
    """
    engine = create_engine(config.database, read_only=dry_run)
    try:
        problem = None if dry_run else permission_problem(engine, writing=True)
        if problem is not None:
            raise DatabaseUnavailable(
                f"cannot write database {problem} (`fetcher alerts` records the alerts' state; "
                "`fetcher alerts --dry-run` only reads)"
            )
        await ensure_schema(engine, create=False)  # alerts read: a missing database is an error, not a new one
        return await run_evaluation(engine, config, settings, now=now, dry_run=dry_run)
    finally:
        await engine.dispose()

"""What `fetcher alerts` prints: the alerts after an evaluation, and the messages sent, owed or (dry) due.

A row per alert (new, open, resolved) and a row per message with its channel, to whom it goes and
how it went. Tenant names are untrusted: the table shows them as text, never as markup. No URL or
password is shown: a webhook channel is named by its name and type only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from rich.console import Group
from rich.table import Table
from rich.text import Text

from fetcher.alerts.engine import Evaluation
from fetcher.alerts.model import AlertsConfig, ChannelType, Event, Notice, RuleKind
from fetcher.alerts.render import condition
from fetcher.store.alerts import Pending


@dataclass(frozen=True)
class AlertRow:
    rule: str
    kind: str
    tenant_id: str
    tenant_name: str
    status: str  # new, open, resolved (dry run: would open, would resolve)
    opened_at: datetime | None
    summary: str


@dataclass(frozen=True)
class MessageRow:
    rule: str
    tenant_id: str
    tenant_name: str
    event: str
    channel: str
    channel_type: str | None
    to: str
    status: str  # sent, failed, waiting (after a failure on its channel), would send, orphaned (channel removed)
    attempts: int
    error: str | None


WEBHOOK_TARGETS = {
    ChannelType.TEAMS: "Teams webhook",
    ChannelType.SLACK: "Slack webhook",
    ChannelType.WEBHOOK: "HTTP endpoint",
}


def recipient(settings: AlertsConfig, name: str) -> tuple[str | None, str]:
    """A channel's type and whom it reaches, without its URL."""
    channel = next((c for c in settings.channels if c.name == name), None)
    if channel is None:
        return None, "(channel no longer configured)"
    if channel.type is ChannelType.EMAIL:
        return channel.type.value, ", ".join(channel.to)
    return channel.type.value, WEBHOOK_TARGETS[channel.type]


def _summary(kind: str, tenant_id: str, name: str, details: Any) -> str:
    notice = Notice(0, Event.OPENED, 0, "", RuleKind(kind), tenant_id, name, datetime.min, None, datetime.min, details)
    try:
        return condition(notice)
    except (KeyError, TypeError, ValueError):
        return "-"


def alert_rows(evaluation: Evaluation) -> list[AlertRow]:
    dry = evaluation.dry_run
    rows = []
    for f in evaluation.change.opened:
        rows.append(
            AlertRow(
                f.rule,
                f.kind.value,
                f.tenant_id,
                f.tenant_name,
                "would open" if dry else "new",
                None if dry else evaluation.now,
                _summary(f.kind.value, f.tenant_id, f.tenant_name, f.details),
            )
        )
    for alert, f in evaluation.change.continuing:
        rows.append(
            AlertRow(
                f.rule,
                f.kind.value,
                f.tenant_id,
                f.tenant_name,
                "open",
                alert.opened_at,
                _summary(f.kind.value, f.tenant_id, f.tenant_name, f.details),
            )
        )
    for alert, _ in evaluation.change.resolved:
        rows.append(
            AlertRow(
                alert.rule,
                alert.kind.value,
                alert.tenant_id,
                alert.tenant_name,
                "would resolve" if dry else "resolved",
                alert.opened_at,
                _summary(alert.kind.value, alert.tenant_id, alert.tenant_name, alert.details),
            )
        )
    return rows


def _message(settings: AlertsConfig, item: Pending, status: str, attempts: int, error: str | None) -> MessageRow:
    kind, to = recipient(settings, item.channel)
    n = item.notice
    if kind is None:
        status = "orphaned"
    return MessageRow(
        n.rule, n.tenant_id, n.tenant_name, n.event.value, item.channel, kind, to, status, attempts, error
    )


def message_rows(evaluation: Evaluation, settings: AlertsConfig) -> list[MessageRow]:
    if evaluation.dry_run:
        return [_message(settings, p, "would send", p.attempts, p.last_error) for p in evaluation.owed]
    rows = []
    for item, delivery in evaluation.deliveries:
        if delivery is None:
            rows.append(_message(settings, item, "waiting", item.attempts, item.last_error))
        else:
            status = "sent" if delivery.sent else "failed"
            rows.append(_message(settings, item, status, item.attempts + delivery.attempts, delivery.error))
    rows += [_message(settings, p, "orphaned", p.attempts, p.last_error) for p in evaluation.orphaned]
    return rows


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


def as_table(evaluation: Evaluation, settings: AlertsConfig) -> Group:
    alerts = Table(title="Alerts", title_justify="left")
    for column in ("rule", "tenant", "status", "since (UTC)", "condition"):
        alerts.add_column(column)
    for a in alert_rows(evaluation):
        alerts.add_row(Text(a.rule), Text(a.tenant_name or a.tenant_id), a.status, _when(a.opened_at), Text(a.summary))
    title = "Messages that would be sent" if evaluation.dry_run else "Messages"
    messages = Table(title=title, title_justify="left")
    for column in ("channel", "to", "event", "rule", "tenant", "status", "attempts", "last error"):
        messages.add_column(column)
    for m in message_rows(evaluation, settings):
        messages.add_row(
            Text(m.channel),
            Text(m.to),
            m.event,
            Text(m.rule),
            Text(m.tenant_name or m.tenant_id),
            m.status,
            str(m.attempts),
            Text(m.error or ""),
        )
    return Group(alerts, messages)


def as_json(evaluation: Evaluation, settings: AlertsConfig) -> bytes:
    document = {
        "evaluated_at": evaluation.now.isoformat(),
        "dry_run": evaluation.dry_run,
        "alerts": [dataclasses.asdict(a) for a in alert_rows(evaluation)],
        "messages": [dataclasses.asdict(m) for m in message_rows(evaluation, settings)],
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"

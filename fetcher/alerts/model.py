"""What alerting is made of, as typed values: rules, channels, the facts rules read, and what they find.

    Rule        one `[[alerts.rules]]`: a condition (`RuleKind`) over each chosen tenant, and its channels
    Channel     one `[[alerts.channels]]`: a Teams or Slack incoming webhook, a generic webhook, or email
    Settings    the `[alerts]` table: rules, channels, repeat interval, delivery timeouts and attempts
    TenantFacts what the views and the run ledger say about one tenant now (read by `fetcher.store.alerts`)
    Finding     a rule whose condition holds for a tenant, with the figures a message shows
    Event       what a notification announces: an alert opened, still open (a reminder), or resolved

Nothing here does I/O. Webhook URLs and SMTP passwords are `Secret`s: their text form is a reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from fetcher.config import Secret


class RuleKind(StrEnum):
    SCORE_DROP = "score_drop"  # percent fell by `points` percentage points or more over `days` days
    BELOW_PERCENT = "below_percent"  # percent below `percent`
    TENANT_FAILING = "tenant_failing"  # the last `runs` runs of the tenant failed
    STALE = "stale"  # newest stored day older than `hours` hours


class ChannelType(StrEnum):
    TEAMS = "teams"  # Teams Workflows "post to a channel when a webhook request is received": an Adaptive Card
    SLACK = "slack"  # Slack incoming webhook: a message with blocks
    WEBHOOK = "webhook"  # any HTTP endpoint: the versioned JSON document of `fetcher.alerts.render.webhook_document`
    EMAIL = "email"  # SMTP, STARTTLS and login


class Event(StrEnum):
    OPENED = "opened"
    REMINDER = "reminder"  # still open after `repeat_hours`
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Rule:
    """One alert rule. Only the parameters of its kind are read; `tenants` empty means every enabled tenant."""

    name: str
    kind: RuleKind
    channels: tuple[str, ...]
    points: float = 5.0
    days: int = 7
    percent: float = 50.0
    runs: int = 3
    hours: float = 48.0
    tenants: tuple[str, ...] = ()
    send_resolved: bool = True

    def applies_to(self, tenant_id: str) -> bool:
        return not self.tenants or tenant_id in self.tenants


@dataclass(frozen=True)
class Channel:
    """Where notifications go. Webhook kinds use `url`; email uses the SMTP fields.

    `smtp_port` 587 with `starttls` is the submission port; `ca_bundle` adds trusted CAs (PEM) for a
    private SMTP server or webhook endpoint.
    """

    name: str
    type: ChannelType
    url: Secret | None = field(default=None, repr=False)
    smtp_host: str = ""
    smtp_port: int = 587
    starttls: bool = True
    username: str | None = None
    password: Secret | None = field(default=None, repr=False)
    sender: str = ""  # the `from` key
    to: tuple[str, ...] = ()
    ca_bundle: Path | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        """The secret values this channel holds, for the log redactor."""
        return tuple(s.reveal() for s in (self.url, self.password) if s is not None and s.reveal())


@dataclass(frozen=True)
class Settings:
    """`[alerts]`: rules, channels and how delivery behaves."""

    rules: tuple[Rule, ...] = ()
    channels: tuple[Channel, ...] = ()
    repeat_hours: float = 24.0
    timeout_seconds: float = 10.0
    max_attempts: int = 3
    max_retry_wait_seconds: float = 60.0
    top_controls: int = 5

    def channel(self, name: str) -> Channel:
        return next(c for c in self.channels if c.name == name)


@dataclass(frozen=True, slots=True)
class Baseline:
    """A tenant's newest stored day on or before its newest day minus N days (the views' baseline rule)."""

    score_date: date
    current_score: float | None
    max_score: float | None
    percent: float | None


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One of a tenant's latest `tenant_runs` rows, newest first."""

    status: str
    finished_at: datetime | None
    error_kind: str | None
    error_message: str | None


@dataclass(frozen=True)
class TenantFacts:
    """What rules read about one configured tenant. `baselines` is keyed by the rules' `days`."""

    tenant_id: str
    tenant_name: str
    score_date: date | None = None
    current_score: float | None = None
    max_score: float | None = None
    percent: float | None = None
    baselines: Mapping[int, Baseline] = field(default_factory=dict)
    runs: tuple[RunRecord, ...] = ()
    consent_url: str | None = None  # the admin-consent link for this tenant's app


@dataclass(frozen=True, slots=True)
class ControlMove:
    """A control's net change in points over a finding's window; `title` from its profile when stored."""

    control_name: str
    title: str | None
    change: float

    @property
    def label(self) -> str:
        return self.title or self.control_name


@dataclass(frozen=True)
class Finding:
    """A rule's condition holding for a tenant now, with what a message shows.

    `since`/`until` is the window whose control moves explain it (score rules); `details` holds the
    kind's figures as plain JSON values (stored with the alert and sent in the webhook document).
    """

    rule: str
    kind: RuleKind
    tenant_id: str
    tenant_name: str
    details: Mapping[str, Any]
    since: date | None = None
    until: date | None = None
    controls: tuple[ControlMove, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.rule, self.tenant_id)


@dataclass(frozen=True)
class Notice:
    """One notification's content, as stored: what happened to which alert, and the figures then.

    `details` is the finding's (see `Finding.details`) with `controls` added as a list of
    `{"control_name", "title", "change"}`; renderers turn a notice into each channel's format.
    """

    notification_id: int
    event: Event
    alert_id: int
    rule: str
    kind: RuleKind
    tenant_id: str
    tenant_name: str
    opened_at: datetime
    resolved_at: datetime | None
    created_at: datetime
    details: Mapping[str, Any]

    @property
    def controls(self) -> list[ControlMove]:
        listed = self.details.get("controls") or []
        return [ControlMove(c["control_name"], c.get("title"), float(c["change"])) for c in listed]

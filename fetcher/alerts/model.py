"""What alerting is made of, as typed values: rules, channels, the facts rules read, and what they find.

    AlertRule, AlertChannel, AlertsConfig, RuleKind, ChannelType
                the `[alerts]` configuration (defined in `fetcher.config` with the rest of it)
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
from typing import Any

from fetcher.config import AlertChannel, AlertRule, AlertsConfig, ChannelType, RuleKind

__all__ = [
    "AlertChannel",
    "AlertRule",
    "AlertsConfig",
    "Baseline",
    "ChannelType",
    "ControlMove",
    "Event",
    "Finding",
    "Notice",
    "RuleKind",
    "RunRecord",
    "TenantFacts",
]


class Event(StrEnum):
    OPENED = "opened"
    REMINDER = "reminder"  # still open after `repeat_hours`
    RESOLVED = "resolved"


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

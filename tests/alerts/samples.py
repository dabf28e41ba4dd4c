"""Notices and channels shared by the alert tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fetcher.alerts.model import AlertChannel, ChannelType, Event, Notice, RuleKind
from fetcher.config import Secret

TENANT = "4b8c18bd-0a5e-4d0b-9a62-5f7d9d0c1e11"
OPENED = datetime(2026, 11, 29, 6, 15, tzinfo=UTC)

DROP_DETAILS = {
    "score_date": "2026-11-29",
    "current_score": 45.0,
    "max_score": 90.0,
    "percent": 50.0,
    "baseline_date": "2026-11-22",
    "baseline_score": 54.0,
    "baseline_max_score": 90.0,
    "baseline_percent": 60.0,
    "change_percent": -10.0,
    "change_points": -9.0,
    "days": 7,
    "threshold_points": 5.0,
    "controls": [
        {"control_name": "AdminMFAV2", "title": None, "change": -6.0},
        {"control_name": "BlockLegacyAuthentication", "title": "Block legacy authentication", "change": -3.0},
    ],
}

FAILING_DETAILS = {
    "failed_runs": 3,
    "threshold_runs": 3,
    "failing_since": "2026-11-27T06:15:00+00:00",
    "last_failed_at": "2026-11-29T06:15:00+00:00",
    "error_kind": "permission",
    "error_message": "tenant x: Graph denied access (403)",
    "consent_url": f"https://login.microsoftonline.com/{TENANT}/adminconsent?client_id=00000000-0000-0000-0000-0000000000aa",
}


def notice(
    kind: RuleKind = RuleKind.SCORE_DROP,
    event: Event = Event.OPENED,
    *,
    name: str = "Contoso Ltd",
    details: dict[str, object] | None = None,
    notification_id: int = 7,
) -> Notice:
    chosen = details if details is not None else (DROP_DETAILS if kind is RuleKind.SCORE_DROP else FAILING_DETAILS)
    return Notice(
        notification_id=notification_id,
        event=event,
        alert_id=3,
        rule="weekly-slip" if kind is RuleKind.SCORE_DROP else "failing",
        kind=kind,
        tenant_id=TENANT,
        tenant_name=name,
        opened_at=OPENED,
        resolved_at=OPENED.replace(day=30) if event is Event.RESOLVED else None,
        created_at=OPENED,
        details=chosen,
    )


def webhook_channel(name: str, kind: ChannelType, url: str) -> AlertChannel:
    return AlertChannel(name=name, type=kind, url=Secret(f"env:{name.upper()}_URL", url))


def email_channel(host: str, port: int, ca_file: Path | None, *, user: str, password: str) -> AlertChannel:
    return AlertChannel(
        name="mail",
        type=ChannelType.EMAIL,
        smtp_host=host,
        smtp_port=port,
        starttls=True,
        username=user,
        password=Secret("env:SMTP_PASSWORD", password),
        sender="Secure Score <alerts@example.test>",
        to=("soc@example.test", "msp-oncall@example.test"),
        ca_bundle=ca_file,
    )

"""Evaluations end to end on each database, delivering to real peers: what arrives, once; resolutions;
reminders; a dead channel that loses nothing; and a dry run that changes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from fetcher.alerts import render
from fetcher.alerts.engine import Evaluation, run_evaluation
from fetcher.alerts.model import AlertChannel, AlertRule, AlertsConfig, ChannelType, RuleKind
from fetcher.config import Config, Purpose, parse_config
from fetcher.normalize import normalize_profile
from fetcher.store import ledger
from fetcher.store.engine import transaction
from fetcher.store.profiles import save_control_profiles
from fetcher.store.schema import alert_notifications, alerts
from tests.alerts.conftest import SMTP_PASSWORD, SMTP_USER, SmtpPeer, VirtualSleep, WebhookPeer, policy
from tests.alerts.samples import email_channel, webhook_channel
from tests.dbutil import rows
from tests.report.conftest import TODAY, days_ago, score_day, store

A = "aaaaaaaa-0000-4000-8000-000000000001"
B = "bbbbbbbb-0000-4000-8000-000000000002"
CLIENT_ID = "00000000-0000-0000-0000-0000000000aa"
NOW = datetime.combine(TODAY, datetime.min.time(), UTC) + timedelta(hours=7)
BEFORE = {"AdminMFAV2": 30.0, "BlockLegacyAuthentication": 20.0, "SelfServicePasswordReset": 10.0}
AFTER = {"AdminMFAV2": 24.0, "BlockLegacyAuthentication": 17.0, "SelfServicePasswordReset": 10.0}


def config(url: str, names: dict[str, str] | None = None) -> Config:
    chosen = names if names is not None else {A: "Contoso Ltd", B: "Fabrikam Inc."}
    raw = {
        "database": {"url": url},
        "auth": {"client_id": CLIENT_ID, "client_secret": "env:UNUSED"},
        "tenants": [{"tenant_id": t, "name": n} for t, n in chosen.items()],
    }
    return parse_config(raw, purpose=Purpose.DATABASE)


def settings(
    channels: Sequence[AlertChannel], rule_channels: Sequence[str] | None = None, **kw: object
) -> AlertsConfig:
    names = tuple(rule_channels) if rule_channels is not None else tuple(c.name for c in channels)
    rule = AlertRule("weekly-slip", RuleKind.SCORE_DROP, names, points=5.0, days=7)
    return AlertsConfig(rules=(rule,), channels=tuple(channels), **kw)  # type: ignore[arg-type]


async def slip(engine: AsyncEngine) -> None:
    """A falls from 60% to 51% over 8 days (two controls lose 6 and 3 points); B holds at 60%."""
    await store(
        engine,
        score_day(A, days_ago(8), BEFORE),
        score_day(A, days_ago(0), AFTER),
        score_day(B, days_ago(8), BEFORE),
        score_day(B, days_ago(0), BEFORE),
        names={A: "Contoso Ltd", B: "Fabrikam Inc."},
    )


async def recover(engine: AsyncEngine) -> None:
    await store(engine, score_day(A, days_ago(0), BEFORE))


async def evaluate(
    engine: AsyncEngine, chosen: AlertsConfig, sleep: VirtualSleep, *, now: datetime = NOW, dry_run: bool = False
) -> Evaluation:
    return await run_evaluation(
        engine,
        config(str(engine.url.render_as_string(hide_password=False))),
        chosen,
        now=now,
        dry_run=dry_run,
        policy=policy(sleep, timeout=2.0),
    )


OPENED_DOCUMENT = {
    "version": "1",
    "source": "securescore-fetcher",
    "event": "opened",
    "summary": "Contoso Ltd: Secure Score fell 9.0 percentage points in 7 days (60.0% to 51.0%)",
    "tenant": {"tenant_id": A, "tenant_name": "Contoso Ltd"},
    "details": {
        "score_date": TODAY.isoformat(),
        "current_score": 51.0,
        "max_score": 100.0,
        "percent": 51.0,
        "baseline_date": days_ago(8).isoformat(),
        "baseline_score": 60.0,
        "baseline_max_score": 100.0,
        "baseline_percent": 60.0,
        "change_percent": -9.0,
        "change_points": -9.0,
        "days": 7,
        "threshold_points": 5.0,
    },
    "controls": [
        {"control_name": "AdminMFAV2", "title": None, "change": -6.0},
        {"control_name": "BlockLegacyAuthentication", "title": None, "change": -3.0},
    ],
}


async def test_a_slip_names_controls_by_their_profile_title_when_profiles_are_stored(
    engine: AsyncEngine, webhook_peer: WebhookPeer, virtual_sleep: VirtualSleep
) -> None:
    """A control with a stored profile is named by its title; one without keeps only its name."""
    await slip(engine)
    profile = normalize_profile(
        {"id": "AdminMFAV2", "azureTenantId": A, "title": "Require MFA for administrative roles"}, NOW
    )
    async with transaction(engine) as conn:
        await save_control_profiles(conn, A, [profile])
    chosen = settings([webhook_channel("hook", ChannelType.WEBHOOK, webhook_peer.url("hook"))])
    await evaluate(engine, chosen, virtual_sleep)
    [document] = webhook_peer.bodies("hook")
    assert document["controls"] == [
        {"control_name": "AdminMFAV2", "title": "Require MFA for administrative roles", "change": -6.0},
        {"control_name": "BlockLegacyAuthentication", "title": None, "change": -3.0},
    ]


def without_ids(document: dict[str, object]) -> dict[str, object]:
    """The document less what the database numbers and the clock stamps."""
    return {k: v for k, v in document.items() if k not in ("notification_id", "created_at", "alert")}


async def test_a_slip_is_sent_once_however_often_it_is_evaluated(
    engine: AsyncEngine, webhook_peer: WebhookPeer, virtual_sleep: VirtualSleep
) -> None:
    await slip(engine)
    chosen = settings([webhook_channel("hook", ChannelType.WEBHOOK, webhook_peer.url("hook"))])
    first = await evaluate(engine, chosen, virtual_sleep)
    second = await evaluate(engine, chosen, virtual_sleep, now=NOW + timedelta(hours=1))
    [document] = webhook_peer.bodies("hook")
    assert without_ids(document) == OPENED_DOCUMENT
    assert document["alert"] == {
        "id": 1,
        "rule": "weekly-slip",
        "kind": "score_drop",
        "status": "open",
        "opened_at": NOW.isoformat(),
        "resolved_at": None,
    }
    assert (len(first.sent), len(second.sent), second.change.messages) == (1, 0, 0)
    [alert] = await rows(engine, alerts)
    assert (alert["status"], alert["opened_at"], alert["updated_at"]) == ("open", NOW, NOW + timedelta(hours=1))


async def test_the_end_of_the_condition_resolves_the_alert_and_says_so(
    engine: AsyncEngine, webhook_peer: WebhookPeer, virtual_sleep: VirtualSleep
) -> None:
    await slip(engine)
    chosen = settings([webhook_channel("hook", ChannelType.WEBHOOK, webhook_peer.url("hook"))])
    await evaluate(engine, chosen, virtual_sleep)
    await recover(engine)
    later = NOW + timedelta(hours=2)
    await evaluate(engine, chosen, virtual_sleep, now=later)
    await evaluate(engine, chosen, virtual_sleep, now=later + timedelta(hours=1))
    opened, resolved = webhook_peer.bodies("hook")
    assert (resolved["event"], resolved["summary"], resolved["alert"]["resolved_at"]) == (
        "resolved",
        "Resolved: Contoso Ltd: score drop (weekly-slip)",
        later.isoformat(),
    )
    assert resolved["details"] == opened["details"]  # what it was about
    [alert] = await rows(engine, alerts)
    assert (alert["status"], alert["resolved_at"]) == ("resolved", later)


async def test_an_open_alert_is_repeated_after_repeat_hours(
    engine: AsyncEngine, webhook_peer: WebhookPeer, virtual_sleep: VirtualSleep
) -> None:
    await slip(engine)
    chosen = settings([webhook_channel("hook", ChannelType.WEBHOOK, webhook_peer.url("hook"))], repeat_hours=24)
    for hours in (0, 23, 24, 30):
        await evaluate(engine, chosen, virtual_sleep, now=NOW + timedelta(hours=hours))
    assert [(d["event"], d["created_at"]) for d in webhook_peer.bodies("hook")] == [
        ("opened", NOW.isoformat()),
        ("reminder", (NOW + timedelta(hours=24)).isoformat()),
    ]


async def test_a_dead_channel_loses_nothing_and_holds_up_no_other(
    engine: AsyncEngine, webhook_peer: WebhookPeer, virtual_sleep: VirtualSleep
) -> None:
    await slip(engine)
    dead = webhook_channel("dead", ChannelType.WEBHOOK, webhook_peer.url("dead"))
    good = webhook_channel("good", ChannelType.WEBHOOK, webhook_peer.url("good"))
    chosen = settings([dead, good])
    webhook_peer.answer("dead", *[("status", 500)] * 3)
    first = await evaluate(engine, chosen, virtual_sleep)
    assert [(d.error, d.attempts) for d in first.failed] == [("channel dead: HTTP 500", 3)]
    owed = await rows(engine, alert_notifications, channel="dead")
    assert [(n["sent_at"], n["attempts"], n["last_error"], n["claimed_until"]) for n in owed] == [
        (None, 3, "channel dead: HTTP 500", None)
    ]
    webhook_peer.answer("dead", *[("status", 500)] * 3)  # the alert still open, the channel still down
    second = await evaluate(engine, chosen, virtual_sleep, now=NOW + timedelta(hours=1))
    assert [(p.channel, p.notice.event.value, d is None) for p, d in second.deliveries] == [("dead", "opened", False)]
    webhook_peer.answer("dead", ("status", 503, {"Retry-After": "2"}))  # then it comes back, slowly
    third = await evaluate(engine, chosen, virtual_sleep, now=NOW + timedelta(hours=2))
    await recover(engine)
    fourth = await evaluate(engine, chosen, virtual_sleep, now=NOW + timedelta(hours=3))
    dead_got = webhook_peer.bodies("dead")
    assert [d["event"] for d in dead_got] == ["opened"] * 8 + ["resolved"]
    assert virtual_sleep.waits == [1.0, 2.0, 1.0, 2.0, 2.0]  # the last honours Retry-After: 2
    assert len({d["notification_id"] for d in dead_got}) == 2
    assert [d["event"] for d in webhook_peer.bodies("good")] == ["opened", "resolved"]
    assert dead_got[-2] == webhook_peer.bodies("good")[0] | {"notification_id": dead_got[-2]["notification_id"]}
    assert [(len(r.sent), r.failed) for r in (third, fourth)] == [(1, []), (2, [])]
    assert all(n["sent_at"] is not None for n in await rows(engine, alert_notifications))


async def test_an_alert_resolved_while_its_opened_message_is_owed_sends_neither(
    engine: AsyncEngine, webhook_peer: WebhookPeer, virtual_sleep: VirtualSleep
) -> None:
    """The owed `opened` of an alert since resolved was retried and would have been delivered, stale; the
    resolution now supersedes it, and a channel never told the alert opened is not told it ended (as
    Alertmanager does); a channel that was told gets `resolved`."""
    await slip(engine)
    dead = webhook_channel("dead", ChannelType.WEBHOOK, webhook_peer.url("dead"))
    good = webhook_channel("good", ChannelType.WEBHOOK, webhook_peer.url("good"))
    chosen = settings([dead, good])
    webhook_peer.answer("dead", *[("status", 500)] * 3)
    await evaluate(engine, chosen, virtual_sleep)
    await recover(engine)

    second = await evaluate(engine, chosen, virtual_sleep, now=NOW + timedelta(hours=1))

    assert [(p.channel, p.notice.event.value, d is None) for p, d in second.deliveries] == [("good", "resolved", False)]
    assert [d["event"] for d in webhook_peer.bodies("dead")] == ["opened"] * 3
    assert [(n["channel"], n["event"], n["sent_at"] is not None) for n in await rows(engine, alert_notifications)] == [
        ("good", "opened", True),
        ("good", "resolved", True),
    ]


async def test_an_opened_message_a_database_still_owes_for_a_resolved_alert_is_dropped_unsent(
    engine: AsyncEngine, webhook_peer: WebhookPeer, virtual_sleep: VirtualSleep
) -> None:
    """A database resolved alerts before a resolution superseded their owed messages: those are dropped at
    the next evaluation, not delivered."""
    await slip(engine)
    chosen = settings([webhook_channel("dead", ChannelType.WEBHOOK, webhook_peer.url("dead"))])
    webhook_peer.answer("dead", *[("status", 500)] * 3)
    await evaluate(engine, chosen, virtual_sleep)
    async with transaction(engine) as conn:  # as an earlier release left it
        await conn.execute(sa.update(alerts).values(status="resolved", resolved_at=NOW))
    await recover(engine)

    later = await evaluate(engine, chosen, virtual_sleep, now=NOW + timedelta(hours=1))

    assert (later.deliveries, len(webhook_peer.bodies("dead"))) == ([], 3)
    assert await rows(engine, alert_notifications) == []


async def test_a_dry_run_changes_and_sends_nothing(
    engine: AsyncEngine, webhook_peer: WebhookPeer, virtual_sleep: VirtualSleep
) -> None:
    await slip(engine)
    chosen = settings([webhook_channel("hook", ChannelType.WEBHOOK, webhook_peer.url("hook"))])
    dry = await evaluate(engine, chosen, virtual_sleep, dry_run=True)
    assert [(p.channel, p.notice.event.value, p.notice.tenant_id) for p in dry.owed] == [("hook", "opened", A)]
    assert render.headline(dry.owed[0].notice) == OPENED_DOCUMENT["summary"]
    assert (webhook_peer.received, await rows(engine, alerts), await rows(engine, alert_notifications)) == ([], [], [])


async def test_a_failing_tenant_reaches_teams_slack_and_email_with_its_consent_link(
    engine: AsyncEngine, webhook_peer: WebhookPeer, smtp_peer: SmtpPeer, virtual_sleep: VirtualSleep
) -> None:
    await slip(engine)
    for day in (3, 2, 1):
        async with transaction(engine) as conn:
            run_id = f"run-{day}"
            started = NOW - timedelta(days=day)
            await ledger.start_run(
                conn, run_id=run_id, command="run", started_at=started, tenants_total=2, host="h", pid=1
            )
            await ledger.record_tenant_run(
                conn,
                ledger.TenantRun(
                    run_id,
                    B,
                    "failed",
                    started,
                    started + timedelta(minutes=1),
                    error_kind="permission",
                    error_message="tenant B: Graph denied access (403)",
                ),
            )
    channels = [
        webhook_channel("teams", ChannelType.TEAMS, webhook_peer.url("teams")),
        webhook_channel("slack", ChannelType.SLACK, webhook_peer.url("slack")),
        email_channel(smtp_peer.host, smtp_peer.port, smtp_peer.ca_file, user=SMTP_USER, password=SMTP_PASSWORD),
    ]
    rule = AlertRule("failing", RuleKind.TENANT_FAILING, ("teams", "slack", "mail"), runs=3)
    evaluation = await evaluate(engine, AlertsConfig(rules=(rule,), channels=tuple(channels)), virtual_sleep)
    assert (len(evaluation.sent), evaluation.failed) == (3, [])
    consent = f"https://login.microsoftonline.com/{B}/adminconsent?client_id={CLIENT_ID}"
    [card] = webhook_peer.bodies("teams")
    [slack] = webhook_peer.bodies("slack")
    [mail] = smtp_peer.messages
    assert card["attachments"][0]["content"]["actions"][0]["url"] == consent
    assert slack["text"] == f"Fabrikam Inc.: the last 3 runs failed (permission)\nAdmin consent: {consent}"
    plain = mail.get_body(("plain",))
    assert plain is not None
    assert f"Admin consent: {consent}" in plain.get_content()
    assert mail["Subject"] == "[Secure Score] Fabrikam Inc.: the last 3 runs failed (permission)"


@pytest.mark.parametrize("secret", ["SECRET-SIGNATURE", SMTP_PASSWORD])
async def test_no_secret_is_stored(engine: AsyncEngine, virtual_sleep: VirtualSleep, secret: str) -> None:
    await slip(engine)
    hook = webhook_channel("hook", ChannelType.TEAMS, f"http://127.0.0.1:9/x?sig={secret}")
    mail = email_channel("127.0.0.1", 9, None, user=SMTP_USER, password=SMTP_PASSWORD)
    await evaluate(engine, settings([hook, mail]), virtual_sleep)
    stored = repr(await rows(engine, alerts)) + repr(await rows(engine, alert_notifications))
    assert "channel hook: connection failed" in stored
    assert secret not in stored

"""Rendering: whole documents for each channel, and untrusted names kept out of each format's markup."""

from __future__ import annotations

import json

from fetcher.alerts import render
from fetcher.alerts.model import ChannelType, Event, Notice, RuleKind
from fetcher.report.formats import FIGURE_DIGITS, number, percent, signed
from tests.alerts.samples import DROP_DETAILS, FAILING_DETAILS, TENANT, email_channel, notice

CONSENT = f"https://login.microsoftonline.com/{TENANT}/adminconsent?client_id=00000000-0000-0000-0000-0000000000aa"
HOSTILE = "Evil <b>*Corp*</b> [click](https://evil.example) {{DATE(2017-02-14T06:00:00Z)}} & Sons"


def test_teams_card_for_a_score_drop() -> None:
    assert render.teams_payload(notice()) == {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "fallbackText": "Contoso Ltd: Secure Score fell 10.0 percentage points in 7 days (60.0% to 50.0%)\n"
                    "Top moves: AdminMFAV2 -6.00; Block legacy authentication -3.00",
                    "msteams": {"width": "Full"},
                    "body": [
                        {
                            "type": "TextBlock",
                            "text": "Contoso Ltd: Secure Score fell 10.0 percentage points in 7 days (60.0% to 50.0%)",
                            "weight": "Bolder",
                            "size": "Medium",
                            "wrap": True,
                            "color": "Attention",
                        },
                        {
                            "type": "FactSet",
                            "facts": [
                                {"title": "Tenant", "value": f"Contoso Ltd ({TENANT})"},
                                {"title": "Rule", "value": "weekly-slip (score\\_drop)"},
                                {"title": "Score", "value": "50.0% (45.00 of 90.00) on 2026-11-29"},
                                {"title": "Baseline", "value": "60.0% (54.00 of 90.00) on 2026-11-22"},
                                {"title": "Change", "value": "-10.0 percentage points (-9.00 points)"},
                                {"title": "Opened", "value": "2026-11-29 06:15 UTC"},
                            ],
                        },
                        {
                            "type": "TextBlock",
                            "text": "Controls that moved it most since 2026-11-22",
                            "weight": "Bolder",
                            "wrap": True,
                        },
                        {
                            "type": "FactSet",
                            "facts": [
                                {"title": "-6.00", "value": "AdminMFAV2"},
                                {"title": "-3.00", "value": "Block legacy authentication"},
                            ],
                        },
                    ],
                },
            }
        ],
    }


def test_teams_card_offers_the_consent_link_for_a_tenant_without_consent() -> None:
    card = render.teams_payload(notice(RuleKind.TENANT_FAILING))["attachments"][0]["content"]
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Grant admin consent", "url": CONSENT}]


def test_slack_message_for_a_failing_tenant() -> None:
    assert render.slack_payload(notice(RuleKind.TENANT_FAILING)) == {
        "text": f"Contoso Ltd: the last 3 runs failed (permission)\nAdmin consent: {CONSENT}",
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": "Contoso Ltd: the last 3 runs failed (permission)"},
            },
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*Tenant*\nContoso Ltd ({TENANT})"},
                    {"type": "mrkdwn", "text": "*Rule*\nfailing (tenant_failing)"},
                    {"type": "mrkdwn", "text": "*Failed runs*\n3 in a row since 2026-11-27 06:15 UTC"},
                    {"type": "mrkdwn", "text": "*Error*\npermission"},
                    {"type": "mrkdwn", "text": "*Message*\ntenant x: Graph denied access (403)"},
                    {"type": "mrkdwn", "text": f"*Admin consent*\n{CONSENT}"},
                    {"type": "mrkdwn", "text": "*Opened*\n2026-11-29 06:15 UTC"},
                ],
            },
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": "securescore-fetcher · rule failing · alert #3 · opened"}],
            },
        ],
    }


def test_webhook_document_version_1() -> None:
    assert render.webhook_document(notice()) == {
        "version": "1",
        "source": "securescore-fetcher",
        "notification_id": 7,
        "event": "opened",
        "created_at": "2026-11-29T06:15:00+00:00",
        "summary": "Contoso Ltd: Secure Score fell 10.0 percentage points in 7 days (60.0% to 50.0%)",
        "alert": {
            "id": 3,
            "rule": "weekly-slip",
            "kind": "score_drop",
            "status": "open",
            "opened_at": "2026-11-29T06:15:00+00:00",
            "resolved_at": None,
        },
        "tenant": {"tenant_id": TENANT, "tenant_name": "Contoso Ltd"},
        "details": {
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
        },
        "controls": [
            {"control_name": "AdminMFAV2", "title": None, "change": -6.0},
            {"control_name": "BlockLegacyAuthentication", "title": "Block legacy authentication", "change": -3.0},
        ],
    }


def test_webhook_document_rounds_computed_figures_as_the_report_does() -> None:
    """Percentages, differences and control changes to 2 decimals, not float noise; stored values as stored."""
    noisy = {
        **DROP_DETAILS,
        "current_score": 351.7833,
        "percent": 50.8659420289855,
        "baseline_percent": 52.12771739130435,
        "change_percent": -1.2617753623188506,
        "change_points": -13.930000000000064,
        "controls": [{"control_name": "AdminMFAV2", "title": None, "change": -6.000000000000001}],
    }
    stale = {"score_date": "2026-11-25", "hours_since_newest": 110.23333333333333, "threshold_hours": 48.0}

    document = render.webhook_document(notice(details=noisy))

    assert {k: document["details"][k] for k in ("current_score", "percent", "baseline_percent")} == {
        "current_score": 351.7833,
        "percent": 50.87,
        "baseline_percent": 52.13,
    }
    assert (document["details"]["change_percent"], document["details"]["change_points"]) == (-1.26, -13.93)
    assert document["controls"] == [{"control_name": "AdminMFAV2", "title": None, "change": -6.0}]
    assert render.webhook_document(notice(RuleKind.STALE, details=stale))["details"]["hours_since_newest"] == 110.23
    assert render.FIGURE_DIGITS == FIGURE_DIGITS


def test_webhook_document_rounds_a_half_as_the_report_does() -> None:
    """One rule with the report (`fetcher.figures`): 31.375 with float noise below is 31.38, -0.125 is -0.13."""
    halves = {**DROP_DETAILS, "percent": 31.374999999999996, "change_points": -0.125}

    details = render.webhook_document(notice(details=halves))["details"]

    assert (details["percent"], details["change_points"]) == (31.38, -0.13)


def test_one_failed_run_is_said_in_the_singular() -> None:
    one = notice(RuleKind.TENANT_FAILING, details={**FAILING_DETAILS, "failed_runs": 1, "threshold_runs": 1})

    assert [render.condition(one), render.condition(notice(RuleKind.TENANT_FAILING))] == [
        "the last run failed (permission)",
        "the last 3 runs failed (permission)",
    ]


def test_webhook_document_for_a_resolution() -> None:
    document = render.webhook_document(notice(event=Event.RESOLVED))
    assert (document["event"], document["summary"], document["alert"]["status"], document["alert"]["resolved_at"]) == (
        "resolved",
        "Resolved: Contoso Ltd: score drop (weekly-slip)",
        "resolved",
        "2026-11-30T06:15:00+00:00",
    )


def test_email_text_names_the_controls_with_points() -> None:
    assert render.email_text(notice()) == (
        "Contoso Ltd: Secure Score fell 10.0 percentage points in 7 days (60.0% to 50.0%)\n"
        "\n"
        f"Tenant:   Contoso Ltd ({TENANT})\n"
        "Rule:     weekly-slip (score_drop)\n"
        "Score:    50.0% (45.00 of 90.00) on 2026-11-29\n"
        "Baseline: 60.0% (54.00 of 90.00) on 2026-11-22\n"
        "Change:   -10.0 percentage points (-9.00 points)\n"
        "Opened:   2026-11-29 06:15 UTC\n"
        "\n"
        "Controls that moved it most since 2026-11-22 (points):\n"
        "  -6.00  AdminMFAV2\n"
        "  -3.00  Block legacy authentication\n"
        "\n"
        "-- securescore-fetcher, alert #3, notification #7\n"
    )


def test_reminder_and_resolution_headlines() -> None:
    assert [render.headline(notice(event=e)) for e in Event] == [
        "Contoso Ltd: Secure Score fell 10.0 percentage points in 7 days (60.0% to 50.0%)",
        "Still open: Contoso Ltd: Secure Score fell 10.0 percentage points in 7 days (60.0% to 50.0%)",
        "Resolved: Contoso Ltd: score drop (weekly-slip)",
    ]


def test_other_kinds_say_what_holds() -> None:
    below = notice(
        RuleKind.BELOW_PERCENT,
        details={
            "score_date": "2026-11-29",
            "current_score": 40.0,
            "max_score": 100.0,
            "percent": 40.0,
            "threshold_percent": 50.0,
        },
    )
    stale = notice(
        RuleKind.STALE, details={"score_date": "2026-11-25", "hours_since_newest": 110.2, "threshold_hours": 48.0}
    )
    assert [render.condition(below), render.condition(stale)] == [
        "Secure Score 40.0% is below 50%",
        "no Secure Score newer than 2026-11-25 (110 hours)",
    ]


def test_hostile_tenant_name_is_escaped_in_the_teams_card() -> None:
    card = render.teams_payload(notice(name=HOSTILE))["attachments"][0]["content"]
    assert card["body"][0]["text"] == (
        "Evil \\<b\\>\\*Corp\\*\\</b\\> \\[click\\](https://evil.example) \\{\\{DATE(2017-02-14T06:00:00Z)\\}\\} "
        "& Sons: Secure Score fell 10.0 percentage points in 7 days (60.0% to 50.0%)"
    )


def test_hostile_tenant_name_is_escaped_in_slack_mrkdwn() -> None:
    fields = render.slack_payload(notice(name=HOSTILE))["blocks"][1]["fields"]
    assert fields[0]["text"] == (
        "*Tenant*\nEvil &lt;b&gt;*Corp*&lt;/b&gt; [click](https://evil.example) "
        f"{{{{DATE(2017-02-14T06:00:00Z)}}}} &amp; Sons ({TENANT})"
    )


def test_hostile_tenant_name_is_escaped_in_the_email_html() -> None:
    message = render.email_message(notice(name=HOSTILE), email_channel("localhost", 25, None, user="u", password="p"))
    html_part = message.get_body(("html",))
    assert html_part is not None
    assert "<b>*Corp*</b>" not in html_part.get_content()
    assert "Evil &lt;b&gt;*Corp*&lt;/b&gt; [click](https://evil.example)" in html_part.get_content()


def test_email_subject_cannot_carry_a_header() -> None:
    message = render.email_message(
        notice(name="Contoso\r\nBcc: victim@example.test"),
        email_channel("localhost", 25, None, user="u", password="p"),
    )
    assert (message["Subject"], message["Bcc"]) == (
        "[Secure Score] Contoso Bcc: victim@example.test: Secure Score fell 10.0 percentage points in 7 days "
        "(60.0% to 50.0%)",
        None,
    )


def test_render_picks_the_channel_format() -> None:
    from tests.alerts.samples import webhook_channel

    n = notice()
    assert [
        render.render(n, webhook_channel(k.value, k, "http://x"))
        for k in (ChannelType.TEAMS, ChannelType.SLACK, ChannelType.WEBHOOK)
    ] == [
        render.teams_payload(n),
        render.slack_payload(n),
        render.webhook_document(n),
    ]


def channel_texts(alert: Notice) -> dict[str, str]:
    """Every text a person reads, per channel (the payloads as JSON, so every string in them is searched)."""
    return {
        "teams": json.dumps(render.teams_payload(alert), ensure_ascii=False),
        "slack": json.dumps(render.slack_payload(alert), ensure_ascii=False),
        "webhook summary": render.webhook_document(alert)["summary"],
        "headline (email subject, webhook summary)": render.headline(alert),
        "email text": render.email_text(alert),
        "email html": render.email_html(alert),
    }


def test_every_channel_shows_a_figure_as_the_report_does() -> None:
    """One rule (`fetcher.figures`) for a score in an email and in `fetcher report`: halves up after the float
    noise, as many decimals as the report's table. Python's format said 50.0%, 31.4, -1.2, -0.1, -0.12, 36."""
    halves = {
        **DROP_DETAILS,
        "current_score": 31.374999999999996,  # 31.375 summed in another order
        "max_score": 62.5,
        "percent": 50.05,  # 50.04999999999999715...
        "change_percent": -1.25,
        "change_points": -0.125,
        "controls": [{"control_name": "AdminMFAV2", "title": None, "change": -0.125}],
    }
    drop = notice(details=halves)
    stale = notice(RuleKind.STALE, details={"score_date": "2026-11-25", "hours_since_newest": 36.5})

    shown_by_report = [percent(50.05), number(31.374999999999996), number(62.5), signed(-1.25, 1), signed(-0.125)]
    assert shown_by_report == ["50.1%", "31.38", "62.50", "-1.3", "-0.13"]
    expected = {
        "teams": ["fell 1.3 percentage", "to 50.1%", "50.1% (31.38 of 62.50)", "-1.3 percentage points (-0.13 points)"],
        "slack": ["fell 1.3 percentage", "to 50.1%", "50.1% (31.38 of 62.50)", "-1.3 percentage points (-0.13 points)"],
        "webhook summary": ["fell 1.3 percentage points in 7 days (60.0% to 50.1%)"],
        "headline (email subject, webhook summary)": ["fell 1.3 percentage points in 7 days (60.0% to 50.1%)"],
        "email text": ["50.1% (31.38 of 62.50)", "-1.3 percentage points (-0.13 points)", "  -0.13  AdminMFAV2"],
        "email html": ["50.1% (31.38 of 62.50)", "-1.3 percentage points (-0.13 points)", ">-0.13</td>"],
    }
    texts = channel_texts(drop)
    assert {k: [e for e in v if e not in texts[k]] for k, v in expected.items()} == {k: [] for k in expected}
    assert "AdminMFAV2 -0.13" in render.chat_text(drop)  # Slack's text, the Teams card's fallback
    assert '"title": "-0.13"' in texts["teams"]
    assert "`-0.13` AdminMFAV2" in texts["slack"]
    assert {k: "(37 hours" in v for k, v in channel_texts(stale).items()} == {k: True for k in expected}

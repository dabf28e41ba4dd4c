"""Messages, as pure functions of a `Notice`: a headline and facts, then each channel's format.

    headline / facts      plain text, shared by every format
    chat_text             a short text for chat (Slack's notification text, the Teams card's fallback)
    teams_payload         a Teams Workflows message: an Adaptive Card 1.4 attachment
    slack_payload         a Slack incoming-webhook message with blocks (and `text` for notifications)
    webhook_document      the generic webhook's JSON document, schema version "1" (README: Alerts)
    email_message         a fuller plain-text email with an HTML alternative

Tenant and control names come from Graph and are untrusted: each format escapes them for its own
markup (Adaptive Card markdown, Slack mrkdwn, HTML); the header block of Slack is plain text.
"""

from __future__ import annotations

import html
import re
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from fetcher.alerts.model import AlertChannel, ChannelType, ControlMove, Event, Notice, RuleKind
from fetcher.figures import FIGURE_DIGITS, PERCENT_DIGITS, format_figure, format_percent, round_figure

WEBHOOK_SCHEMA_VERSION = "1"
SOURCE = "securescore-fetcher"
CHAT_CONTROLS = 3
SLACK_HEADER_LIMIT = 150
SLACK_TEXT_LIMIT = 2900
# Figures computed from stored ones (percentages, differences, hours): rounded in the webhook's JSON by the
# report's one rule (`fetcher.figures`: FIGURE_DIGITS, half up after the float noise), so a receiver shows
# -13.93, not -13.930000000000064, and the report's figure. Stored values (scores, thresholds) are sent as stored.
# Every message's text shows each figure as `fetcher report` does, by the same functions: a percentage or a
# change of one to 1 decimal, a score, a change in points, a control's change to 2, hours to whole hours.
COMPUTED_DETAILS = frozenset({"percent", "baseline_percent", "change_percent", "change_points", "hours_since_newest"})
KIND_TITLES = {
    RuleKind.SCORE_DROP: "score drop",
    RuleKind.BELOW_PERCENT: "score below threshold",
    RuleKind.TENANT_FAILING: "tenant failing",
    RuleKind.STALE: "no recent data",
}


# ------------------------------------------------------------------------------------------- wording


def _time(value: datetime | str | None) -> str:
    if value is None:
        return "-"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _pct(value: Any) -> str:
    return "-" if value is None else format_percent(float(value))


def _num(value: Any) -> str:
    return "-" if value is None else format_figure(float(value))


def _signed(value: Any, digits: int = FIGURE_DIGITS) -> str:
    """A change, with its sign: in points to 2 decimals, in percentage points to 1 (`PERCENT_DIGITS`)."""
    return format_figure(float(value), digits, sign=True)


def _hours(value: Any) -> str:
    return format_figure(float(value), 0)


def tenant_label(notice: Notice) -> str:
    return notice.tenant_name or notice.tenant_id


def condition(notice: Notice) -> str:
    """What holds (or held), in one phrase after the tenant's name."""
    d = notice.details
    if notice.kind is RuleKind.SCORE_DROP:
        return (
            f"Secure Score fell {format_figure(abs(float(d['change_percent'])), PERCENT_DIGITS)} percentage points "
            f"in {d['days']} days "
            f"({_pct(d['baseline_percent'])} to {_pct(d['percent'])})"
        )
    if notice.kind is RuleKind.BELOW_PERCENT:
        return f"Secure Score {_pct(d['percent'])} is below {float(d['threshold_percent']):g}%"
    if notice.kind is RuleKind.TENANT_FAILING:
        runs = "run" if d["failed_runs"] == 1 else f"{d['failed_runs']} runs"
        return f"the last {runs} failed ({d.get('error_kind') or 'error'})"
    return f"no Secure Score newer than {d['score_date']} ({_hours(d['hours_since_newest'])} hours)"


def headline(notice: Notice) -> str:
    """One line: `Tenant: what holds`, prefixed for reminders and resolutions."""
    line = f"{tenant_label(notice)}: {condition(notice)}"
    if notice.event is Event.REMINDER:
        return f"Still open: {line}"
    if notice.event is Event.RESOLVED:
        return f"Resolved: {tenant_label(notice)}: {KIND_TITLES[notice.kind]} ({notice.rule})"
    return line


def facts(notice: Notice) -> list[tuple[str, str]]:
    """Label and value pairs for the fuller formats (values are untrusted text)."""
    d = notice.details
    rows = [("Tenant", f"{notice.tenant_name} ({notice.tenant_id})" if notice.tenant_name else notice.tenant_id)]
    rows.append(("Rule", f"{notice.rule} ({notice.kind.value})"))
    if notice.kind in (RuleKind.SCORE_DROP, RuleKind.BELOW_PERCENT):
        rows.append(
            (
                "Score",
                f"{_pct(d['percent'])} ({_num(d['current_score'])} of {_num(d['max_score'])}) on {d['score_date']}",
            )
        )
    if notice.kind is RuleKind.SCORE_DROP:
        rows.append(
            (
                "Baseline",
                f"{_pct(d['baseline_percent'])} ({_num(d['baseline_score'])} of {_num(d['baseline_max_score'])}) "
                f"on {d['baseline_date']}",
            )
        )
        points = "" if d.get("change_points") is None else f" ({_signed(d['change_points'])} points)"
        rows.append(("Change", f"{_signed(d['change_percent'], PERCENT_DIGITS)} percentage points{points}"))
    if notice.kind is RuleKind.TENANT_FAILING:
        rows += [
            ("Failed runs", f"{d['failed_runs']} in a row since {_time(d.get('failing_since'))}"),
            ("Error", str(d.get("error_kind") or "-")),
            ("Message", str(d.get("error_message") or "-")),
        ]
        if d.get("consent_url"):
            rows.append(("Admin consent", str(d["consent_url"])))
    if notice.kind is RuleKind.STALE:
        rows.append(("Newest day", f"{d['score_date']} ({_hours(d['hours_since_newest'])} hours ago)"))
    rows.append(("Opened", _time(notice.opened_at)))
    if notice.resolved_at is not None:
        rows.append(("Resolved", _time(notice.resolved_at)))
    return rows


def control_lines(controls: list[ControlMove]) -> list[str]:
    return [f"{_signed(c.change)}  {c.label}" for c in controls]


def controls_heading(notice: Notice) -> str:
    since = notice.details.get("baseline_date")
    return f"Controls that moved it most since {since}" if since else "Controls that moved it most"


# ---------------------------------------------------------------------------------------------- chat


def chat_text(notice: Notice) -> str:
    """The short form: the headline and, for a score, the three controls that moved it most."""
    lines = [headline(notice)]
    if notice.event is not Event.RESOLVED:
        moves = notice.controls[:CHAT_CONTROLS]
        if moves:
            lines.append("Top moves: " + "; ".join(f"{c.label} {_signed(c.change)}" for c in moves))
        if notice.details.get("consent_url"):
            lines.append(f"Admin consent: {notice.details['consent_url']}")
    return "\n".join(lines)


# Adaptive Cards render a CommonMark subset (bold, italic, lists, links) in TextBlock and FactSet text:
# escape what could start one of those, and the braces of {{DATE()}} templates.
_CARD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>~])")
_CARD_BULLET = re.compile(r"^(\s*)([-+#])(?=\s)")
_CARD_NUMBER = re.compile(r"^(\s*\d+)\.(?=\s)")


def card_text(text: str) -> str:
    text = _CARD_SPECIAL.sub(r"\\\1", text)
    return _CARD_NUMBER.sub(r"\1\\.", _CARD_BULLET.sub(r"\1\\\2", text))


def teams_payload(notice: Notice) -> dict[str, Any]:
    """A message for a Teams Workflows webhook ("When a Teams webhook request is received"): one Adaptive Card."""
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": card_text(headline(notice)),
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
            "color": "Good" if notice.event is Event.RESOLVED else "Attention",
        },
        {"type": "FactSet", "facts": [{"title": k, "value": card_text(v)} for k, v in facts(notice)]},
    ]
    moves = notice.controls if notice.event is not Event.RESOLVED else []
    if moves:
        body.append(
            {"type": "TextBlock", "text": card_text(controls_heading(notice)), "weight": "Bolder", "wrap": True}
        )
        body.append(
            {"type": "FactSet", "facts": [{"title": _signed(c.change), "value": card_text(c.label)} for c in moves]}
        )
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "fallbackText": chat_text(notice),
        "msteams": {"width": "Full"},
        "body": body,
    }
    if notice.details.get("consent_url") and notice.event is not Event.RESOLVED:
        card["actions"] = [
            {"type": "Action.OpenUrl", "title": "Grant admin consent", "url": notice.details["consent_url"]}
        ]
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


# ---------------------------------------------------------------------------------------------- Slack


def slack_text(text: str) -> str:
    """Slack's escaping for mrkdwn: only &, < and > are control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_payload(notice: Notice) -> dict[str, Any]:
    """An incoming-webhook message: a header, the facts as fields, the controls, and a context line."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(headline(notice), SLACK_HEADER_LIMIT)}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": _clip(f"*{k}*\n{slack_text(v)}", 2000)} for k, v in facts(notice)[:10]
            ],
        },
    ]
    moves = notice.controls if notice.event is not Event.RESOLVED else []
    if moves:
        lines = "\n".join(f"`{_signed(c.change)}` {slack_text(c.label)}" for c in moves)
        text = _clip(f"*{slack_text(controls_heading(notice))}*\n{lines}", SLACK_TEXT_LIMIT)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    context = f"{SOURCE} · rule {slack_text(notice.rule)} · alert #{notice.alert_id} · {notice.event.value}"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    return {"text": slack_text(chat_text(notice)), "blocks": blocks}


# -------------------------------------------------------------------------------------------- webhook


def webhook_document(notice: Notice) -> dict[str, Any]:
    """The generic webhook's document, schema version "1" (documented field by field in the README).

    `notification_id` is the same on every retry of one notification: receivers can drop repeats.
    """
    details = {k: _figure(v) if k in COMPUTED_DETAILS else v for k, v in notice.details.items() if k != "controls"}
    return {
        "version": WEBHOOK_SCHEMA_VERSION,
        "source": SOURCE,
        "notification_id": notice.notification_id,
        "event": notice.event.value,
        "created_at": notice.created_at.isoformat(),
        "summary": headline(notice),
        "alert": {
            "id": notice.alert_id,
            "rule": notice.rule,
            "kind": notice.kind.value,
            "status": "resolved" if notice.event is Event.RESOLVED else "open",
            "opened_at": notice.opened_at.isoformat(),
            "resolved_at": notice.resolved_at.isoformat() if notice.resolved_at else None,
        },
        "tenant": {"tenant_id": notice.tenant_id, "tenant_name": notice.tenant_name},
        "details": details,
        "controls": [
            {"control_name": c.control_name, "title": c.title, "change": _figure(c.change)} for c in notice.controls
        ],
    }


def _figure(value: Any) -> Any:
    return round_figure(value, FIGURE_DIGITS) if isinstance(value, float) else value


# ---------------------------------------------------------------------------------------------- email


def email_text(notice: Notice) -> str:
    """The fuller plain-text body."""
    rows = facts(notice)
    width = max(len(k) for k, _ in rows)
    lines = [headline(notice), "", *(f"{k + ':':<{width + 1}} {v}" for k, v in rows)]
    moves = notice.controls if notice.event is not Event.RESOLVED else []
    if moves:
        lines += ["", controls_heading(notice) + " (points):", *(f"  {line}" for line in control_lines(moves))]
    lines += ["", f"-- {SOURCE}, alert #{notice.alert_id}, notification #{notice.notification_id}"]
    return "\n".join(lines) + "\n"


def email_html(notice: Notice) -> str:
    e = html.escape
    rows = "".join(f"<tr><th align='left'>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in facts(notice))
    parts = [f"<p><strong>{e(headline(notice))}</strong></p>", f"<table>{rows}</table>"]
    moves = notice.controls if notice.event is not Event.RESOLVED else []
    if moves:
        items = "".join(f"<tr><td align='right'>{_signed(c.change)}</td><td>{e(c.label)}</td></tr>" for c in moves)
        parts += [f"<p><strong>{e(controls_heading(notice))}</strong></p>", f"<table>{items}</table>"]
    parts.append(f"<p><small>{SOURCE}, alert #{notice.alert_id}</small></p>")
    return "<html><body>" + "".join(parts) + "</body></html>\n"


def email_message(notice: Notice, channel: AlertChannel) -> EmailMessage:
    """The email for one notice: text and HTML alternatives, from and to as the channel says."""
    message = EmailMessage()
    message["Subject"] = " ".join(f"[Secure Score] {headline(notice)}".split())
    message["From"] = channel.sender
    message["To"] = ", ".join(channel.to)
    message["Date"] = format_datetime(notice.created_at)
    message["Message-ID"] = make_msgid(idstring=f"alert{notice.alert_id}.n{notice.notification_id}")
    message["X-Securescore-Alert"] = f"{notice.alert_id}; rule={notice.rule}; event={notice.event.value}"
    message.set_content(email_text(notice))
    message.add_alternative(email_html(notice), subtype="html")
    return message


def render(notice: Notice, channel: AlertChannel) -> dict[str, Any] | EmailMessage:
    """The channel's format for a notice."""
    if channel.type is ChannelType.TEAMS:
        return teams_payload(notice)
    if channel.type is ChannelType.SLACK:
        return slack_payload(notice)
    if channel.type is ChannelType.WEBHOOK:
        return webhook_document(notice)
    return email_message(notice, channel)

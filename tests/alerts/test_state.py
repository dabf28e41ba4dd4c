"""The lifecycle as a pure function: findings against stored open alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fetcher.alerts.model import AlertRule, AlertsConfig, Event, Finding, RuleKind
from fetcher.alerts.state import ChannelState, Reminder, StoredAlert, transition

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
A, B = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
RULE = AlertRule("weekly-slip", RuleKind.SCORE_DROP, ("teams", "mail"))
SETTINGS = AlertsConfig(rules=(RULE,), repeat_hours=24)


def finding(tenant: str = A) -> Finding:
    return Finding("weekly-slip", RuleKind.SCORE_DROP, tenant, "Contoso", {"percent": 50.0})


def stored(tenant: str = A, alert_id: int = 1, rule: str = "weekly-slip") -> StoredAlert:
    return StoredAlert(
        alert_id, rule, RuleKind.SCORE_DROP, tenant, "Contoso", NOW - timedelta(days=2), {"percent": 49.0}
    )


def sent(hours_ago: float, *, unsent: bool = False) -> ChannelState:
    return ChannelState(NOW - timedelta(hours=hours_ago), unsent)


def test_a_new_finding_opens_an_alert_for_every_channel_of_its_rule() -> None:
    change = transition(SETTINGS, [finding()], [], {}, {A}, NOW)
    assert (change.opened, change.continuing, change.reminders, change.resolved, change.messages) == (
        [finding()],
        [],
        [],
        [],
        2,
    )


def test_a_finding_of_an_open_alert_sends_nothing_before_repeat_hours() -> None:
    states = {(1, "teams"): sent(23), (1, "mail"): sent(1)}
    change = transition(SETTINGS, [finding()], [stored()], states, {A}, NOW)
    assert (change.opened, change.continuing, change.reminders, change.messages) == ([], [(stored(), finding())], [], 0)


def test_a_reminder_goes_to_each_channel_whose_last_message_is_repeat_hours_old() -> None:
    states = {(1, "teams"): sent(24), (1, "mail"): sent(2)}
    change = transition(SETTINGS, [finding()], [stored()], states, {A}, NOW)
    assert change.reminders == [Reminder(stored(), finding(), "teams", Event.REMINDER)]


def test_no_reminder_while_a_message_to_that_channel_is_still_unsent() -> None:
    states = {(1, "teams"): sent(48, unsent=True), (1, "mail"): sent(1)}
    assert transition(SETTINGS, [finding()], [stored()], states, {A}, NOW).reminders == []


def test_a_channel_added_to_the_rule_later_gets_the_opening_message() -> None:
    states = {(1, "teams"): sent(1)}
    change = transition(SETTINGS, [finding()], [stored()], states, {A}, NOW)
    assert change.reminders == [Reminder(stored(), finding(), "mail", Event.OPENED)]


def test_an_alert_without_its_finding_is_resolved_and_each_channel_told() -> None:
    change = transition(SETTINGS, [finding(B)], [stored(A)], {}, {A, B}, NOW)
    assert (change.opened, change.resolved) == ([finding(B)], [(stored(A), ("teams", "mail"))])


def test_send_resolved_false_resolves_without_a_message() -> None:
    quiet = AlertsConfig(rules=(AlertRule("weekly-slip", RuleKind.SCORE_DROP, ("teams",), send_resolved=False),))
    assert transition(quiet, [], [stored()], {}, {A}, NOW).resolved == [(stored(), ())]


def test_alerts_of_a_removed_rule_or_tenant_are_resolved_without_a_message() -> None:
    change = transition(SETTINGS, [], [stored(A, 1, rule="gone"), stored(B, 2)], {}, {A}, NOW)
    assert change.resolved == [(stored(A, 1, rule="gone"), ()), (stored(B, 2), ())]

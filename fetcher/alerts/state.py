"""The alert lifecycle, as a pure function: this evaluation's findings against the stored open alerts.

- A finding without an open alert of its rule and tenant **opens** one: a notification per channel.
- An open alert whose finding is still there stays open; its figures are updated, and each channel
  gets a **reminder** once its latest notification is `repeat_hours` old and nothing is still unsent
  to it (a channel added to the rule later gets the opening message).
- An open alert without a finding is **resolved**: a notification per channel when the rule has
  `send_resolved`. One whose rule is gone from the configuration, or whose tenant the rule no longer
  covers, is resolved without a message (nobody asked about it any more).

Nothing is ever dropped here: unsent notifications stay owed whatever happens to their alert.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from fetcher.alerts.model import AlertRule, AlertsConfig, Event, Finding, RuleKind


@dataclass(frozen=True)
class StoredAlert:
    """An open row of `alerts`."""

    alert_id: int
    rule: str
    kind: RuleKind
    tenant_id: str
    tenant_name: str
    opened_at: datetime
    details: Mapping[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        return (self.rule, self.tenant_id)


@dataclass(frozen=True)
class ChannelState:
    """What one channel has been given for one alert: its newest notification's time, and whether any is unsent."""

    last_created_at: datetime
    unsent: bool


@dataclass(frozen=True)
class Reminder:
    alert: StoredAlert
    finding: Finding
    channel: str
    event: Event  # REMINDER, or OPENED for a channel that never had one


@dataclass
class Transition:
    """What an evaluation changes; `fetcher.store.alerts.apply` writes it in one transaction.

    `opened` findings notify every channel of their rule (`rules`); `resolved` lists the channels to tell.
    """

    rules: Mapping[str, AlertRule]
    opened: list[Finding] = field(default_factory=list)
    continuing: list[tuple[StoredAlert, Finding]] = field(default_factory=list)
    reminders: list[Reminder] = field(default_factory=list)
    resolved: list[tuple[StoredAlert, tuple[str, ...]]] = field(default_factory=list)

    def channels_for(self, rule: str) -> tuple[str, ...]:
        found = self.rules.get(rule)
        return found.channels if found else ()

    @property
    def messages(self) -> int:
        """How many notifications this transition adds."""
        opened = sum(len(self.channels_for(f.rule)) for f in self.opened)
        return opened + len(self.reminders) + sum(len(channels) for _, channels in self.resolved)


def transition(
    settings: AlertsConfig,
    findings: Sequence[Finding],
    open_alerts: Sequence[StoredAlert],
    channels: Mapping[tuple[int, str], ChannelState],
    evaluated: Collection[str],
    now: datetime,
) -> Transition:
    """Compare this evaluation with the stored state. `evaluated` holds the tenants the rules were run on."""
    rules = {r.name: r for r in settings.rules}
    result = Transition(rules=rules)
    by_key = {a.key: a for a in open_alerts}
    repeat = timedelta(hours=settings.repeat_hours)
    for finding in findings:
        alert = by_key.pop(finding.key, None)
        if alert is None:
            result.opened.append(finding)
            continue
        result.continuing.append((alert, finding))
        for channel in rules[finding.rule].channels:
            state = channels.get((alert.alert_id, channel))
            if state is None:
                result.reminders.append(Reminder(alert, finding, channel, Event.OPENED))
            elif not state.unsent and now - state.last_created_at >= repeat:
                result.reminders.append(Reminder(alert, finding, channel, Event.REMINDER))
    for alert in by_key.values():
        rule = rules.get(alert.rule)
        still_asked = rule is not None and rule.applies_to(alert.tenant_id) and alert.tenant_id in evaluated
        notify = rule.channels if still_asked and rule is not None and rule.send_resolved else ()
        result.resolved.append((alert, notify))
    return result

"""The rules, as pure functions: a tenant's facts in, a `Finding` out when the rule's condition holds.

- `score_drop`: `percent` now minus `percent` on the baseline day is `-points` or lower. The baseline
  is the newest stored day on or before the newest day minus `days` days, as in the `latest_scores`
  view (gaps allowed); no such day, no finding. Its window for control moves is (baseline, newest].
- `below_percent`: `percent` (100 × current_score / max_score) is below `percent`. Its control moves
  are those of the last 7 days, when a 7-day baseline exists.
- `tenant_failing`: the tenant's last `runs` runs all ended `failed` (an interrupted run is not the
  tenant's failure, and breaks the streak).
- `stale`: the newest stored day, counted from its midnight UTC as `fetcher status` does, is more
  than `hours` hours old. A tenant with no day stored at all is not stale (`tenant_failing` covers a
  tenant that cannot be fetched).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime

from fetcher.alerts.model import AlertRule, Finding, RuleKind, TenantFacts
from fetcher.models import Status

BELOW_PERCENT_WINDOW_DAYS = 7


def baseline_days(rules: Iterable[AlertRule]) -> set[int]:
    """The baseline windows (days) the rules need read from the database."""
    days = {r.days for r in rules if r.kind is RuleKind.SCORE_DROP}
    if any(r.kind is RuleKind.BELOW_PERCENT for r in rules):
        days.add(BELOW_PERCENT_WINDOW_DAYS)
    return days


def runs_needed(rules: Iterable[AlertRule]) -> int:
    """How many of each tenant's latest runs the rules read."""
    return max((r.runs for r in rules if r.kind is RuleKind.TENANT_FAILING), default=0)


def evaluate(rules: Sequence[AlertRule], facts: Sequence[TenantFacts], now: datetime) -> list[Finding]:
    """Every (rule, tenant) whose condition holds, in rule order then the facts' order."""
    findings = []
    for rule in rules:
        check = CHECKS[rule.kind]
        for tenant in facts:
            if rule.applies_to(tenant.tenant_id):
                finding = check(rule, tenant, now)
                if finding is not None:
                    findings.append(finding)
    return findings


def _finding(
    rule: AlertRule,
    tenant: TenantFacts,
    details: dict[str, object],
    since: date | None = None,
    until: date | None = None,
) -> Finding:
    return Finding(rule.name, rule.kind, tenant.tenant_id, tenant.tenant_name, details, since, until)


def score_drop(rule: AlertRule, tenant: TenantFacts, _now: datetime) -> Finding | None:
    base = tenant.baselines.get(rule.days)
    if base is None or tenant.percent is None or base.percent is None:
        return None
    change = tenant.percent - base.percent
    if change > -rule.points:
        return None
    details: dict[str, object] = {
        "score_date": tenant.score_date.isoformat() if tenant.score_date else None,
        "current_score": tenant.current_score,
        "max_score": tenant.max_score,
        "percent": tenant.percent,
        "baseline_date": base.score_date.isoformat(),
        "baseline_score": base.current_score,
        "baseline_max_score": base.max_score,
        "baseline_percent": base.percent,
        "change_percent": change,
        "change_points": _difference(tenant.current_score, base.current_score),
        "days": rule.days,
        "threshold_points": rule.points,
    }
    return _finding(rule, tenant, details, since=base.score_date, until=tenant.score_date)


def below_percent(rule: AlertRule, tenant: TenantFacts, _now: datetime) -> Finding | None:
    if tenant.percent is None or tenant.percent >= rule.percent:
        return None
    details: dict[str, object] = {
        "score_date": tenant.score_date.isoformat() if tenant.score_date else None,
        "current_score": tenant.current_score,
        "max_score": tenant.max_score,
        "percent": tenant.percent,
        "threshold_percent": rule.percent,
    }
    base = tenant.baselines.get(BELOW_PERCENT_WINDOW_DAYS)
    if base is None:
        return _finding(rule, tenant, details)
    details["baseline_date"] = base.score_date.isoformat()
    details["baseline_percent"] = base.percent
    return _finding(rule, tenant, details, since=base.score_date, until=tenant.score_date)


def tenant_failing(rule: AlertRule, tenant: TenantFacts, _now: datetime) -> Finding | None:
    streak = 0
    for record in tenant.runs:
        if record.status != Status.FAILED:
            break
        streak += 1
    if streak < rule.runs:
        return None
    latest, first = tenant.runs[0], tenant.runs[streak - 1]
    details: dict[str, object] = {
        "failed_runs": streak,
        "threshold_runs": rule.runs,
        "failing_since": first.finished_at.isoformat() if first.finished_at else None,
        "last_failed_at": latest.finished_at.isoformat() if latest.finished_at else None,
        "error_kind": latest.error_kind,
        "error_message": latest.error_message,
        "consent_url": tenant.consent_url if is_consent_problem(latest.error_kind, latest.error_message) else None,
    }
    return _finding(rule, tenant, details)


def stale(rule: AlertRule, tenant: TenantFacts, now: datetime) -> Finding | None:
    if tenant.score_date is None:
        return None
    age = now - datetime.combine(tenant.score_date, datetime.min.time(), UTC)
    hours = age.total_seconds() / 3600
    if hours <= rule.hours:
        return None
    details: dict[str, object] = {
        "score_date": tenant.score_date.isoformat(),
        "hours_since_newest": hours,
        "threshold_hours": rule.hours,
    }
    return _finding(rule, tenant, details)


# Entra ID's codes for an app without consent or not present in the tenant (fetcher.auth.refusal_advice).
CONSENT_CODES = ("AADSTS65001", "AADSTS700016")


def is_consent_problem(kind: str | None, message: str | None) -> bool:
    """A 403 (no SecurityEvents.Read.All with admin consent) or an Entra ID refusal about consent."""
    if kind == "permission":
        return True
    return kind == "authentication" and any(code in (message or "") for code in CONSENT_CODES)


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


CHECKS: dict[RuleKind, Callable[[AlertRule, TenantFacts, datetime], Finding | None]] = {
    RuleKind.SCORE_DROP: score_drop,
    RuleKind.BELOW_PERCENT: below_percent,
    RuleKind.TENANT_FAILING: tenant_failing,
    RuleKind.STALE: stale,
}

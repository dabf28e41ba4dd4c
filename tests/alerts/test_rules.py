"""The rules as pure functions: facts in, findings out."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from fetcher.alerts.model import AlertRule, Baseline, Finding, RuleKind, RunRecord, TenantFacts
from fetcher.alerts.rules import baseline_days, evaluate, is_consent_problem, runs_needed

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
A, B = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
CONSENT = f"https://login.microsoftonline.com/{A}/adminconsent?client_id=x"


def facts(tenant: str = A, percent: float | None = 50.0, *, base: float | None = 60.0, **kw: object) -> TenantFacts:
    baselines = {7: Baseline(date(2026, 11, 22), base * 0.9, 90.0, base)} if base is not None else {}
    values: dict[str, object] = {
        "tenant_name": "Contoso",
        "score_date": date(2026, 11, 29),
        "current_score": None if percent is None else percent * 0.9,
        "max_score": 90.0,
        "percent": percent,
        "baselines": baselines,
        "consent_url": CONSENT,
        **kw,
    }
    return TenantFacts(tenant, **values)  # type: ignore[arg-type]


def drop(points: float = 5.0, **kw: object) -> AlertRule:
    return AlertRule("weekly-slip", RuleKind.SCORE_DROP, ("ops",), points=points, **kw)  # type: ignore[arg-type]


def test_score_drop_finds_a_fall_of_at_least_the_points_with_its_window() -> None:
    assert evaluate([drop(10.0)], [facts()], NOW) == [
        Finding(
            rule="weekly-slip",
            kind=RuleKind.SCORE_DROP,
            tenant_id=A,
            tenant_name="Contoso",
            details={
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
                "threshold_points": 10.0,
            },
            since=date(2026, 11, 22),
            until=date(2026, 11, 29),
        )
    ]


@pytest.mark.parametrize(
    ("percent", "base", "found"),
    [(50.0, 54.9, False), (50.0, 55.0, True), (50.0, None, False), (None, 60.0, False), (70.0, 60.0, False)],
)
def test_score_drop_threshold_and_missing_figures(percent: float | None, base: float | None, found: bool) -> None:
    assert bool(evaluate([drop(5.0)], [facts(percent=percent, base=base)], NOW)) is found


def test_score_drop_reads_the_baseline_of_its_own_days() -> None:
    thirty = {30: Baseline(date(2026, 10, 30), 72.0, 90.0, 80.0)}
    found = evaluate([drop(5.0, days=30)], [facts(baselines=thirty)], NOW)
    assert [(f.details["baseline_date"], f.details["change_percent"]) for f in found] == [("2026-10-30", -30.0)]


def test_below_percent_finds_tenants_under_the_threshold_only() -> None:
    rule = AlertRule("weak", RuleKind.BELOW_PERCENT, ("ops",), percent=55.0)
    found = evaluate([rule], [facts(A, 50.0), facts(B, 55.0)], NOW)
    assert [(f.tenant_id, f.details["percent"], f.details["threshold_percent"], f.since) for f in found] == [
        (A, 50.0, 55.0, date(2026, 11, 22))
    ]


def failed(day: int, kind: str = "permission", message: str = "403") -> RunRecord:
    return RunRecord("failed", datetime(2026, 11, day, 6, tzinfo=UTC), kind, message)


def ok(day: int) -> RunRecord:
    return RunRecord("succeeded", datetime(2026, 11, day, 6, tzinfo=UTC), None, None)


def test_tenant_failing_needs_the_last_runs_all_failed() -> None:
    rule = AlertRule("failing", RuleKind.TENANT_FAILING, ("ops",), runs=3)
    streaks = [
        facts(A, runs=(failed(29), failed(28), failed(27), ok(26))),
        facts(B, runs=(failed(29), failed(28), ok(27))),
    ]
    assert [(f.tenant_id, f.details) for f in evaluate([rule], streaks, NOW)] == [
        (
            A,
            {
                "failed_runs": 3,
                "threshold_runs": 3,
                "failing_since": "2026-11-27T06:00:00+00:00",
                "last_failed_at": "2026-11-29T06:00:00+00:00",
                "error_kind": "permission",
                "error_message": "403",
                "consent_url": CONSENT,
            },
        )
    ]


def test_an_interrupted_run_breaks_a_failing_streak() -> None:
    rule = AlertRule("failing", RuleKind.TENANT_FAILING, ("ops",), runs=2)
    stopped = RunRecord("interrupted", datetime(2026, 11, 28, tzinfo=UTC), "interrupted", None)
    assert evaluate([rule], [facts(runs=(failed(29), stopped, failed(27)))], NOW) == []


@pytest.mark.parametrize(
    ("kind", "message", "consent"),
    [
        ("permission", "Graph denied access", True),
        ("authentication", "AADSTS65001: the app has no admin consent", True),
        ("authentication", "AADSTS7000222: the client secret has expired", False),
        ("server_error", "503", False),
    ],
)
def test_consent_link_only_for_consent_problems(kind: str, message: str, consent: bool) -> None:
    assert is_consent_problem(kind, message) is consent


def test_stale_counts_hours_from_the_newest_days_midnight() -> None:
    rule = AlertRule("stale", RuleKind.STALE, ("ops",), hours=48.0)
    tenants = [
        facts(A, score_date=date(2026, 11, 27)),
        facts(B, score_date=date(2026, 11, 28)),
        facts("c", score_date=None),
    ]
    assert [(f.tenant_id, f.details) for f in evaluate([rule], tenants, NOW)] == [
        (A, {"score_date": "2026-11-27", "hours_since_newest": 60.0, "threshold_hours": 48.0})
    ]


def test_a_rule_with_tenants_covers_only_those() -> None:
    rule = drop(5.0, tenants=(B,))
    assert [f.tenant_id for f in evaluate([rule], [facts(A), facts(B)], NOW)] == [B]


def test_what_the_rules_need_read() -> None:
    rules = [
        drop(5.0, days=30),
        drop(5.0),
        AlertRule("weak", RuleKind.BELOW_PERCENT, ("ops",)),
        AlertRule("f", RuleKind.TENANT_FAILING, ("ops",), runs=4),
    ]
    assert (baseline_days(rules), runs_needed(rules), runs_needed(rules[:2])) == ({7, 30}, 4, 0)

"""Planning, pure: which tenants, which windows, from what the database said (no I/O)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

import pytest

from fetcher.config import (
    AuthConfig,
    Config,
    DatabaseConfig,
    FetchConfig,
    GraphConfig,
    PartnerConfig,
    Secret,
    TenantConfig,
)
from fetcher.errors import ConfigError
from fetcher.models import Shard, TenantRef, shard_number
from fetcher.plan import (
    Fact,
    Facts,
    Plan,
    Profiles,
    incremental_days,
    parse_shard,
    plan_backfill,
    plan_get,
    plan_incremental,
    plan_rebuild,
    profiles_due,
    profiles_policy,
    select_tenants,
    shard_from,
    window_days,
)

TODAY = datetime.now(UTC).date()
A, B, C = (f"{n}b8c18bd-2f9f-4227-af55-0a0b0c0d0e0f" for n in "123")
CONFIG = Config(
    DatabaseConfig(),
    GraphConfig(),
    FetchConfig(),
    AuthConfig(),
    (TenantConfig(A, "Contoso", AuthConfig()), TenantConfig(B, "Fabrikam", AuthConfig(), enabled=False)),
)


@pytest.mark.parametrize(
    ("newest", "expected"),
    [
        (None, 90),
        (TODAY, 1),
        (TODAY - timedelta(days=1), 2),
        (TODAY - timedelta(days=400), 90),
        (TODAY + timedelta(days=1), 1),
    ],
)
def test_incremental_days_asks_for_the_days_since_the_newest_plus_that_day(newest: date | None, expected: int) -> None:
    assert incremental_days(newest, TODAY, 90) == expected


@pytest.mark.parametrize(
    ("days", "since", "expected"),
    [(None, None, 90), (7, None, 7), (None, TODAY - timedelta(days=9), 10), (None, TODAY, 1)],
)
def test_window_days_from_days_or_since(days: int | None, since: date | None, expected: int) -> None:
    assert window_days(days=days, since=since, today=TODAY, default=90) == expected


@pytest.mark.parametrize(
    ("days", "since", "message"),
    [
        (91, None, "Graph keeps 90"),
        (0, None, "the window is 0 days: give 1 to 90 days"),
        (None, TODAY + timedelta(days=1), "future"),
        (None, TODAY - timedelta(days=90), "91 days"),
        (5, TODAY, "not both"),
    ],
)
def test_window_days_refuses_what_graph_cannot_give(days: int | None, since: date | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        window_days(days=days, since=since, today=TODAY, default=90)


def test_select_tenants_takes_the_enabled_ones_or_the_named_ones() -> None:
    assert [t.tenant_id for t in select_tenants(CONFIG, [])] == [A]
    assert [t.tenant_id for t in select_tenants(CONFIG, [f" {B.upper()} ", B])] == [B]


def test_select_tenants_refuses_an_unknown_tenant() -> None:
    with pytest.raises(ConfigError, match=f"--tenant {C}: no such tenant"):
        select_tenants(CONFIG, [C])
    with pytest.raises(ConfigError, match=r"--tenant 1234: not a tenant id \(a GUID"):
        select_tenants(CONFIG, ["1234"])
    partner = dataclasses.replace(CONFIG, tenants_source="partner", partner=PartnerConfig(A, AuthConfig()))
    with pytest.raises(ConfigError, match=f"--tenant {C}: no such tenant in the customers discovered at partner"):
        select_tenants(partner, [C])


def test_an_incremental_plan_asks_each_tenant_for_the_days_since_its_newest() -> None:
    request = plan_incremental(CONFIG.tenants, 30, TODAY)
    plans = request.plans(Facts(newest={A: TODAY - timedelta(days=2)}))
    assert request.needs == {Fact.NEWEST_DAYS}
    assert plans == [Plan(TenantRef(A, "Contoso"), 3), Plan(TenantRef(B, "Fabrikam"), 30)]


def test_a_resumed_backfill_skips_the_tenants_already_done() -> None:
    request = plan_backfill(CONFIG.tenants, 10, resume=True, today=TODAY)
    facts = Facts(done=frozenset({A}), oldest={A: TODAY - timedelta(days=9), B: TODAY - timedelta(days=9)})
    assert request.needs == {Fact.RESUMABLE, Fact.OLDEST_DAYS}
    assert request.plans(facts) == [Plan(TenantRef(B, "Fabrikam"), 10)]


def test_a_resumed_backfill_fetches_again_a_tenant_done_with_a_shorter_window() -> None:
    """Done by `backfill --days 5`, resumed with 90 days: its 85 older days were never fetched."""
    request = plan_backfill(CONFIG.tenants, 90, resume=True, today=TODAY)
    facts = Facts(done=frozenset({A, B}), oldest={A: TODAY - timedelta(days=4), B: TODAY - timedelta(days=89)})
    assert request.plans(facts) == [Plan(TenantRef(A, "Contoso"), 90)]


def test_a_backfill_without_resume_needs_nothing_and_plans_every_tenant() -> None:
    request = plan_backfill(CONFIG.tenants, 10, resume=False)
    assert request.needs == frozenset()
    assert [p.tenant.tenant_id for p in request.plans(Facts(done=frozenset({A})))] == [A, B]


def test_get_plans_one_score_of_one_tenant() -> None:
    assert plan_get(CONFIG.tenants[0], f"{A}_2026-11-01").plans(Facts()) == [
        Plan(TenantRef(A, "Contoso"), 1, f"{A}_2026-11-01")
    ]


def test_rebuild_plans_every_archived_tenant_named_when_configured() -> None:
    request = plan_rebuild(CONFIG, [])
    assert (request.needs, request.replay) == ({Fact.ARCHIVED}, True)
    assert request.plans(Facts(archived=(A, C))) == [
        Plan(TenantRef(A, "Contoso"), profiles=Profiles()),
        Plan(TenantRef(C), profiles=Profiles()),
    ]


def test_rebuild_refuses_a_named_tenant_without_an_archive() -> None:
    with pytest.raises(ConfigError, match=f"--tenant {B}: nothing archived"):
        plan_rebuild(CONFIG, [A, B]).plans(Facts(archived=(A,)))


NOW = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
DAILY = Profiles(max_age=timedelta(hours=24))


@pytest.mark.parametrize(
    ("fetched", "policy", "due"),
    [
        (None, DAILY, True),
        (NOW - timedelta(hours=23, minutes=59), DAILY, False),
        (NOW - timedelta(hours=24), DAILY, True),
        (None, Profiles(enabled=False), False),
    ],
)
def test_profiles_are_due_when_none_are_stored_or_they_are_max_age_old(
    fetched: datetime | None, policy: Profiles, due: bool
) -> None:
    assert profiles_due(fetched, NOW, policy) is due


def test_an_incremental_plan_fetches_the_profiles_that_are_due() -> None:
    request = plan_incremental(CONFIG.tenants, 30, NOW.date(), profiles=DAILY, now=NOW)

    plans = request.plans(Facts(newest={A: NOW.date()}, profiles_fetched={A: NOW - timedelta(hours=1)}))

    assert request.needs == {Fact.NEWEST_DAYS, Fact.PROFILES_FETCHED}
    assert plans == [Plan(TenantRef(A, "Contoso"), 1), Plan(TenantRef(B, "Fabrikam"), 30, profiles=DAILY)]


def test_a_backfill_fetches_every_tenants_profiles_whatever_their_age() -> None:
    request = plan_backfill(CONFIG.tenants, 10, resume=False, profiles=DAILY)

    assert [p.profiles for p in request.plans(Facts(profiles_fetched={A: NOW}))] == [DAILY, DAILY]


def test_the_policy_comes_from_the_configuration_with_the_salt_only_when_people_are_not_stored() -> None:
    salted = Config(
        DatabaseConfig(store_people=False, people_salt=Secret("env:SALT", "pepper")),
        GraphConfig(),
        FetchConfig(control_profiles=True, profiles_max_age_hours=6),
        AuthConfig(),
        (),
    )

    assert profiles_policy(salted) == Profiles(True, timedelta(hours=6), b"pepper")
    assert profiles_policy(CONFIG) == Profiles(True, timedelta(hours=24), None)
    assert "pepper" not in repr(profiles_policy(salted))


# ---------------------------------------------------------------------------------------------- shards

MANY = [f"{n:08x}-0000-4000-8000-{n:012x}" for n in range(400)]
PINNED_SEVEN = [1, 2, 5, 1, 4, 1, 3, 3]  # shard_number(MANY[i], 7), i < 8, as released: never to change


def test_every_tenant_falls_in_exactly_one_shard() -> None:
    shards = [Shard(k, 4) for k in (1, 2, 3, 4)]

    holders = [[s for s in shards if s.holds(t)] for t in MANY]

    assert all(len(h) == 1 for h in holders)


def test_shards_are_about_even() -> None:
    sizes = [sum(Shard(k, 4).holds(t) for t in MANY) for k in (1, 2, 3, 4)]

    assert min(sizes) >= 70, sizes  # 100 expected each; a hash that clumps fails this


def test_a_tenants_shard_is_the_same_for_any_case_and_in_any_process() -> None:
    """Pinned values: a change of the hash would move tenants between shards on upgrade."""
    assert shard_number(A, 4) == shard_number(A.upper(), 4) == shard_number(f" {A} ", 4)
    assert [shard_number(t, 7) for t in MANY[:8]] == PINNED_SEVEN


def test_a_shard_is_the_same_whatever_the_other_tenants() -> None:
    alone = {t: shard_number(t, 5) for t in MANY[:50]}

    assert {t: shard_number(t, 5) for t in reversed(MANY)} | alone == {t: shard_number(t, 5) for t in MANY}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2/4", Shard(2, 4)), (" 4 / 4 ", Shard(4, 4)), ("1/1", None)],
)
def test_a_shard_is_k_of_n(text: str, expected: Shard | None) -> None:
    assert parse_shard(text, "--shard") == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2", "--shard x: '2' is not K/N (shard K of N, e.g. 2/4)"),
        ("0/4", "--shard x: '0/4': K must be between 1 and N (4)"),
        ("5/4", "--shard x: '5/4': K must be between 1 and N (4)"),
        ("1/0", "--shard x: '1/0': N must be between 1 and 1000"),
        ("1/1001", "--shard x: '1/1001': N must be between 1 and 1000"),
        ("-1/4", "--shard x: '-1/4' is not K/N (shard K of N, e.g. 2/4)"),
    ],
)
def test_a_bad_shard_is_one_line_naming_its_source(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_shard(text, "--shard x")

    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("option", "environ", "shards", "expected"),
    [
        ("1/3", {"FETCHER_SHARD": "2/3", "JOB_COMPLETION_INDEX": "2"}, 3, Shard(1, 3)),
        (None, {"FETCHER_SHARD": "2/3", "JOB_COMPLETION_INDEX": "2"}, 3, Shard(2, 3)),
        (None, {"JOB_COMPLETION_INDEX": "0"}, 3, Shard(1, 3)),
        (None, {"JOB_COMPLETION_INDEX": "2"}, 3, Shard(3, 3)),
        (None, {"JOB_COMPLETION_INDEX": "0"}, 1, None),
        (None, {"FETCHER_SHARD": ""}, 3, None),
        (None, {}, 3, None),
    ],
)
def test_the_shard_comes_from_the_option_then_fetcher_shard_then_the_completion_index(
    option: str | None, environ: dict[str, str], shards: int, expected: Shard | None
) -> None:
    assert shard_from(option, environ, shards) == expected


@pytest.mark.parametrize(
    ("environ", "shards", "message"),
    [
        ({"FETCHER_SHARD": "3"}, 1, "$FETCHER_SHARD: '3' is not K/N (shard K of N, e.g. 2/4)"),
        (
            {"JOB_COMPLETION_INDEX": "4"},
            4,
            "$JOB_COMPLETION_INDEX=4: must be below [fetch] shards = 4 (set it to the Job's completions)",
        ),
        ({"JOB_COMPLETION_INDEX": "x"}, 4, "$JOB_COMPLETION_INDEX='x': not a completion index (0, 1, 2, ...)"),
    ],
)
def test_a_bad_shard_from_the_environment_names_the_variable(
    environ: dict[str, str], shards: int, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        shard_from(None, environ, shards)

    assert str(caught.value) == message


def test_a_shard_selects_its_enabled_tenants_only() -> None:
    tenants = tuple(TenantConfig(t, "", AuthConfig(), enabled=i % 10 != 0) for i, t in enumerate(MANY))
    config = Config(DatabaseConfig(), GraphConfig(), FetchConfig(), AuthConfig(), tenants)

    chosen = [t.tenant_id for k in (1, 2, 3) for t in select_tenants(config, [], Shard(k, 3))]

    assert sorted(chosen) == sorted(t.tenant_id for t in tenants if t.enabled)


def test_named_tenants_and_a_shard_are_refused_together() -> None:
    with pytest.raises(ConfigError, match="give the tenants or the shard, not both"):
        select_tenants(CONFIG, [A], Shard(1, 2))

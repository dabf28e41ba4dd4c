"""The secureScoreControlProfiles resource in real runs against the simulator: fetched to the last page
when due, kept apart from the scores when it fails, pseudonymized on request, archived and rebuilt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from fetcher.admit import Admission
from fetcher.config import Config, parse_config
from fetcher.models import FetchContext
from fetcher.normalize import normalize_profile
from fetcher.plan import plan_backfill, plan_incremental, plan_rebuild, profiles_policy
from fetcher.resources.control_profiles import admit_control_profiles, save_profiles
from fetcher.runner import Run
from fetcher.simulator import Fault, Hostile, RunningSimulator, Simulator, generate_tenants, serving_simulator
from fetcher.store.archive import read_codec
from fetcher.store.engine import transaction
from fetcher.store.schema import (
    control_profiles,
    control_state_updates,
    raw_control_profiles,
    secure_scores,
    tenant_runs,
)
from tests.dbutil import count, rows

TODAY = datetime.now(UTC).date()
SALT = "a-salt-for-tests-0123456789"


def config_for(running: RunningSimulator, url: str, *, fetch: dict[str, Any] | None = None, **db: Any) -> Config:
    sim = running.simulator
    return parse_config(
        {
            "database": {"url": url, **db},
            "graph": {
                "base_url": running.graph_base_url,
                "authority_host": running.authority_host,
                "ca_bundle": str(running.ca_file),
            },
            "fetch": {"max_attempts": 2, **(fetch or {})},
            "auth": {"client_id": sim.client_id, "client_secret": "env:S"},
            "tenants": [{"tenant_id": t, "name": sim.tenants[t].name} for t in sim.tenants],
        },
        environ={"S": sim.client_secret, "SALT": SALT},
    )


def simulator(n: int = 2) -> Simulator:
    return Simulator(generate_tenants(n, seed=41), seed=41, newest_day=TODAY, controls_per_day=230)


async def backfill(config: Config, engine: AsyncEngine, days: int = 3) -> int:
    request = plan_backfill(config.enabled_tenants, days, resume=False, profiles=profiles_policy(config))
    return (await Run(config, "backfill", request, engine=engine).execute()).exit_code


async def run(config: Config, engine: AsyncEngine, now: datetime) -> int:
    request = plan_incremental(config.enabled_tenants, 3, now.date(), profiles=profiles_policy(config), now=now)
    return (await Run(config, "run", request, engine=engine).execute()).exit_code


def profile_requests(sim: Simulator) -> int:
    return sum(1 for r in sim.requests if r.endpoint == "profiles")


def without_fetch_time(stored: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "fetched_at"} for r in stored]


async def test_backfill_stores_every_profile_of_every_tenant_from_both_pages(engine: AsyncEngine) -> None:
    sim = simulator()
    async with serving_simulator(sim) as running:
        config = config_for(running, engine.url.render_as_string(hide_password=False))
        assert await backfill(config, engine) == 0

    for tenant in sim.tenants:
        expected = sorted(
            (normalize_profile(o, datetime.now(UTC)) for o in sim.expected_profiles(tenant)),
            key=lambda p: p.profile.control_name,
        )
        stored = await rows(engine, control_profiles, tenant_id=tenant)
        assert without_fetch_time(stored) == [
            {k: v for k, v in p.profile._asdict().items() if k != "fetched_at"} for p in expected
        ]
        updates = await rows(engine, control_state_updates, tenant_id=tenant)
        assert updates == [
            u._asdict() for p in expected for u in sorted(p.updates, key=lambda u: (u.updated_at, u.state))
        ]
        assert len(stored) > 250
        assert await count(engine, raw_control_profiles, tenant_id=tenant) == len(stored)
    assert profile_requests(sim) == 2 * len(sim.tenants)


async def test_run_fetches_profiles_only_once_they_are_older_than_the_maximum_age(engine: AsyncEngine) -> None:
    sim = simulator()
    now = datetime.now(UTC)
    async with serving_simulator(sim) as running:
        config = config_for(running, engine.url.render_as_string(hide_password=False))
        assert await run(config, engine, now) == 0
        first = profile_requests(sim)
        assert await run(config, engine, now + timedelta(hours=23)) == 0
        fresh = profile_requests(sim)
        assert await run(config, engine, now + timedelta(hours=25)) == 0

    assert (first, fresh, profile_requests(sim)) == (4, 4, 8)


async def test_control_profiles_false_fetches_none(engine: AsyncEngine) -> None:
    sim = simulator()
    async with serving_simulator(sim) as running:
        config = config_for(
            running, engine.url.render_as_string(hide_password=False), fetch={"control_profiles": False}
        )
        assert await backfill(config, engine) == 0

    assert (profile_requests(sim), await count(engine, control_profiles)) == (0, 0)
    assert await count(engine, secure_scores) == 3 * len(sim.tenants)


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (Fault.status(503, endpoint="profiles"), "server_error"),
        (Fault.hostile(Hostile.FOREIGN_NEXT_LINK, endpoint="profiles"), "unsafe_response"),
        (Fault.status(403, endpoint="profiles", skip=1), "permission"),
    ],
    ids=["503", "foreign next link", "403 on the second page"],
)
async def test_a_tenant_whose_profiles_fail_keeps_its_scores_and_the_ledger_names_the_resource(
    engine: AsyncEngine, fault: Fault, kind: str
) -> None:
    sim = simulator()
    broken, healthy = list(sim.tenants)
    sim.add_fault(broken, fault)
    async with serving_simulator(sim) as running:
        config = config_for(running, engine.url.render_as_string(hide_password=False))
        await backfill(config, engine)

    [ledger] = await rows(engine, tenant_runs, tenant_id=broken)
    assert (ledger["status"], ledger["error_kind"], ledger["scores_upserted"]) == ("failed", kind, 3)
    assert ledger["error_message"].startswith("secureScoreControlProfiles: ")
    assert await count(engine, secure_scores, tenant_id=broken) == 3
    assert await count(engine, control_profiles, tenant_id=broken) == 0
    assert await count(engine, control_profiles, tenant_id=healthy) > 250


async def test_with_store_people_false_no_name_is_stored_or_archived(engine: AsyncEngine) -> None:
    sim = simulator(1)
    async with serving_simulator(sim) as running:
        config = config_for(
            running, engine.url.render_as_string(hide_password=False), store_people=False, people_salt="env:SALT"
        )
        assert await backfill(config, engine) == 0

    updates = await rows(engine, control_state_updates)
    people = {u["updatedBy"] for p in sim.expected_profiles(next(iter(sim.tenants))) for u in p["controlStateUpdates"]}
    assert updates
    assert all(u["updated_by"].startswith("hmac-sha256:") for u in updates)
    assert all(u["assigned_to"] == "" or u["assigned_to"].startswith("hmac-sha256:") for u in updates)
    codec = await read_codec(engine)  # the backfill archived enough profiles to train a dictionary on them
    text = b"".join(codec.decompress(r["body"]) for r in await rows(engine, raw_control_profiles))
    assert text
    assert codec.dictionaries
    text += b"".join(d.data for d in codec.dictionaries)  # trained on archived profiles, so no name either
    assert not any(person.encode() in text for person in people)


async def test_rebuild_restores_the_profiles_from_their_archive(engine: AsyncEngine) -> None:
    sim = simulator()
    async with serving_simulator(sim) as running:
        config = config_for(running, engine.url.render_as_string(hide_password=False))
        assert await backfill(config, engine) == 0
    stored = (await rows(engine, control_profiles), await rows(engine, control_state_updates))
    async with transaction(engine) as conn:
        await conn.execute(control_profiles.update().values(title="damaged", max_score=None))

    report = await Run(config, "rebuild", plan_rebuild(config, ()), engine=engine).execute()

    assert report.exit_code == 0
    assert (await rows(engine, control_profiles), await rows(engine, control_state_updates)) == stored


async def test_a_profile_with_a_value_longer_than_its_column_is_quarantined_and_the_others_are_stored(
    engine: AsyncEngine,
) -> None:
    """Both databases refuse the same over-long profile (PostgreSQL's varchar would fail the tenant)."""
    tenant = "0b7c1e2a-1111-4222-8333-444455556666"
    good = {"id": "AdminMFAV2", "azureTenantId": tenant, "title": "Require MFA", "tier": "Core"}
    long_tier = {"id": "scid_1", "azureTenantId": tenant, "tier": "x" * 65}
    long_state = {
        "id": "scid_2",
        "azureTenantId": tenant,
        "controlStateUpdates": [{"state": "s" * 65, "updatedDateTime": "2026-11-01T00:00:00Z"}],
    }
    context = FetchContext("run-1", datetime(2026, 11, 29, tzinfo=UTC))
    admission = admit_control_profiles(
        [good, long_tier, long_state],
        context,
        tenant_id=tenant,
        keep_raw=False,
        keep_objects=False,
        into=Admission(),
    )
    async with transaction(engine) as conn:
        await save_profiles(conn, admission, saved_at=context.fetched_at, tenant_saved=False)

    assert [r.reason for r in admission.rejections] == [
        "tier is 65 characters long; the column holds at most 64",
        "controlStateUpdates[0].state is 65 characters long; the column holds at most 64",
    ]
    stored = await rows(engine, control_profiles, tenant_id=tenant)
    assert [(r["control_name"], r["tier"]) for r in stored] == [("AdminMFAV2", "Core")]


async def test_a_profile_holding_a_nul_is_quarantined_naming_its_path_and_the_others_are_stored(
    engine: AsyncEngine,
) -> None:
    """PostgreSQL's text and jsonb refuse U+0000: such a profile is refused on both databases, not the save."""
    tenant = "0b7c1e2a-1111-4222-8333-444455556666"
    good = {"id": "AdminMFAV2", "azureTenantId": tenant, "title": "Require MFA", "tier": "Core"}
    nul_title = {"id": "scid_1", "azureTenantId": tenant, "title": "Turn\x00on"}
    nul_state = {
        "id": "scid_2",
        "azureTenantId": tenant,
        "controlStateUpdates": [{"comment": "ok\x00", "updatedDateTime": "2026-11-01T00:00:00Z"}],
    }
    context = FetchContext("run-1", datetime(2026, 11, 29, tzinfo=UTC))
    admission = admit_control_profiles(
        [good, nul_title, nul_state], context, tenant_id=tenant, keep_raw=True, keep_objects=False, into=Admission()
    )
    async with transaction(engine) as conn:
        await save_profiles(conn, admission, saved_at=context.fetched_at, tenant_saved=False)

    said = "holds a NUL character (\\u0000), which PostgreSQL cannot store; refused on every database alike"
    assert [r.reason for r in admission.rejections] == [
        f"object scid_1: title {said}",
        f"object scid_2: controlStateUpdates[0].comment {said}",
    ]
    stored = await rows(engine, control_profiles, tenant_id=tenant)
    assert [r["control_name"] for r in stored] == ["AdminMFAV2"]

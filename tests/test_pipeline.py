"""A tenant's pipeline end to end: a fetch and a rebuild (the archive replayed) store the same rows and
admit objects by the same rules."""

from __future__ import annotations

import dataclasses
import json
import re
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from fetcher.admit import HOLDS_NUL, TOO_DEEP
from fetcher.config import Config, parse_config
from fetcher.models import RequestStats, ScorePage
from fetcher.plan import Plan, plan_backfill, plan_incremental, plan_rebuild, profiles_policy
from fetcher.resources.base import PageSource
from fetcher.resources.secure_scores import RESOURCE as SECURE_SCORES
from fetcher.runner import Run
from fetcher.simulator import Fault, RunningSimulator, Simulator, TokenRefusal, generate_tenants, serving_simulator
from fetcher.simulator.faults import parse_fault_option
from fetcher.simulator.pages import context_url, page_body
from fetcher.store.archive import codec_for, pack, save_raw_payloads
from fetcher.store.codec import is_zstd
from fetcher.store.engine import transaction
from fetcher.store.schema import (
    archive_dictionaries,
    comparative_scores,
    control_score_rows,
    control_scores,
    controls,
    raw_payloads,
    rejected_payloads,
    secure_scores,
    tenant_runs,
)
from tests.dbutil import count, rows

TODAY = datetime.now(UTC).date()
NORMALIZED = (secure_scores, comparative_scores, control_scores, controls)


def config_for(running: RunningSimulator, url: str, **database: Any) -> Config:
    sim = running.simulator
    return parse_config(
        {
            "database": {"url": url, **database},
            "graph": {
                "base_url": running.graph_base_url,
                "authority_host": running.authority_host,
                "ca_bundle": str(running.ca_file),
            },
            "fetch": {"max_attempts": 2},
            "auth": {"client_id": sim.client_id, "client_secret": "env:S"},
            "tenants": [{"tenant_id": t, "name": sim.tenants[t].name} for t in sim.tenants],
        },
        environ={"S": sim.client_secret},
    )


async def snapshot(engine: AsyncEngine) -> dict[str, list[dict[str, Any]]]:
    return {t.name: await rows(engine, t) for t in NORMALIZED}


async def rebuild(config: Config, engine: AsyncEngine, *tenants: str) -> int:
    report = await Run(config, "rebuild", plan_rebuild(config, tenants), engine=engine).execute()
    return report.exit_code


async def test_rebuild_reproduces_what_two_fetches_stored(engine: AsyncEngine) -> None:
    """A day stored full when newest, then thin when older, rebuilds to the same merged rows."""
    url = engine.url.render_as_string(hide_password=False)
    sim = Simulator(generate_tenants(2, seed=31), seed=31, newest_day=TODAY - timedelta(days=1))
    async with serving_simulator(sim) as running:
        config = config_for(running, url)
        tenants = config.enabled_tenants
        await Run(config, "backfill", plan_backfill(tenants, 10, resume=False), engine=engine).execute()
        sim.newest_day = TODAY
        await Run(config, "run", plan_incremental(tenants, 10, TODAY), engine=engine).execute()
    stored = await snapshot(engine)

    assert await rebuild(config, engine) == 0

    assert await snapshot(engine) == stored


async def test_rebuild_repairs_normalized_rows_from_the_archive(engine: AsyncEngine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    sim = Simulator(generate_tenants(1, seed=32), seed=32)
    async with serving_simulator(sim) as running:
        config = config_for(running, url)
        await Run(config, "backfill", plan_backfill(config.enabled_tenants, 5, resume=False), engine=engine).execute()
    stored = await snapshot(engine)
    async with transaction(engine) as conn:
        await conn.execute(sa.update(secure_scores).values(current_score=0.0, extra={"broken": True}))
        await conn.execute(sa.delete(control_score_rows).where(control_score_rows.c.score < 3))

    assert await rebuild(config, engine) == 0

    assert await snapshot(engine) == stored


async def test_days_stored_without_the_archive_are_left_alone(engine: AsyncEngine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    sim = Simulator(generate_tenants(1, seed=33), seed=33)
    tenant = next(iter(sim.tenants))
    async with serving_simulator(sim) as running:
        without = config_for(running, url, keep_raw=False)
        await Run(without, "backfill", plan_backfill(without.enabled_tenants, 8, resume=False), engine=engine).execute()
        with_archive = config_for(running, url)
        await Run(
            with_archive, "backfill", plan_backfill(with_archive.enabled_tenants, 3, resume=False), engine=engine
        ).execute()
    stored = await snapshot(engine)
    assert await count(engine, raw_payloads) == 3

    assert await rebuild(with_archive, engine, tenant) == 0

    assert await snapshot(engine) == stored
    assert await count(engine, secure_scores) == 8


def _nested(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth):
        value = [value]
    return value


async def test_a_fetch_and_a_rebuild_admit_the_same_hostile_objects_alike(engine: AsyncEngine) -> None:
    """An object nested deeper than can be stored and one holding a NUL: both paths quarantine them the same way."""
    url = engine.url.render_as_string(hide_password=False)
    sim = Simulator(generate_tenants(1, seed=34), seed=34, controls_per_day=20)
    tenant = next(iter(sim.tenants))
    days = sim.available_days(tenant)[:3]
    deep, nul, clean = (orjson.loads(sim.day_bytes(tenant, day)) for day in days)
    deep["nested"], nul["vendor"] = _nested(300), "Micro\x00soft"
    texts = [json.dumps(deep, separators=(",", ":")).encode(), orjson.dumps(nul), orjson.dumps(clean)]
    async with serving_simulator(sim) as running:
        config = config_for(running, url)
        page = page_body(context_url(running.origin), None, texts)
        sim.add_fault(tenant, Fault.status(200, body=page, endpoint="list", times=1))
        fetch = await Run(
            config, "backfill", plan_backfill(config.enabled_tenants, 3, resume=False), engine=engine
        ).execute()
    # The same objects in the archive, as an archive written before these checks existed could hold them.
    async with transaction(engine) as conn:
        at = datetime.now(UTC)
        archived = [
            pack(None, tenant_id=tenant, score_date=day, fetched_at=at, run_id="old", warning=None, text=text)
            for day, text in zip(days[:2], texts[:2], strict=True)
        ]
        await save_raw_payloads(conn, archived)

    rebuild = await Run(config, "rebuild", plan_rebuild(config, [tenant]), engine=engine).execute()

    def quarantined(run_id: str, rejected: list[dict[str, Any]]) -> list[tuple[str, bytes]]:
        return sorted((r["reason"], bytes(r["body"])) for r in rejected if r["run_id"] == run_id)

    rejected = await rows(engine, rejected_payloads)
    expected = sorted([(TOO_DEEP, texts[0]), (f"object {nul['id']}: vendor {HOLDS_NUL}", orjson.dumps(nul))])
    assert quarantined(fetch.run_id, rejected) == quarantined(rebuild.run_id, rejected) == expected
    statuses = {r["run_id"]: (r["status"], r["rejected"]) for r in await rows(engine, tenant_runs)}
    assert statuses == {fetch.run_id: ("partial", 2), rebuild.run_id: ("partial", 2)}
    assert [r["id"] for r in await rows(engine, secure_scores)] == [clean["id"]]


async def fetch_control_profiles(client: PageSource, plan: Plan, stats: RequestStats) -> AsyncIterator[ScorePage]:
    """A second resource (profiles admitted as secureScores would be), refused by a scripted 400 in the tests."""
    async for page in client.list_pages(plan.tenant, "/security/secureScoreControlProfiles", None, stats):
        yield page


CONTROL_PROFILES = dataclasses.replace(SECURE_SCORES, name="secureScoreControlProfiles", replay=None)
CONTROL_PROFILES = dataclasses.replace(CONTROL_PROFILES, fetch=fetch_control_profiles)


async def test_a_failing_resource_does_not_keep_another_from_being_saved(engine: AsyncEngine) -> None:
    """The tenant's scores are stored; its ledger row fails it and names the resource that failed."""
    url = engine.url.render_as_string(hide_password=False)
    sim = Simulator(generate_tenants(1, seed=35), seed=35, controls_per_day=10)
    tenant = next(iter(sim.tenants))
    sim.add_fault(tenant, Fault.status(400, endpoint="profiles"))
    async with serving_simulator(sim) as running:
        config = config_for(running, url)
        request = plan_backfill(config.enabled_tenants, 3, resume=False)
        both = (SECURE_SCORES, CONTROL_PROFILES)
        report = await Run(config, "backfill", request, engine=engine, resources=lambda _plan: both).execute()

    (row,) = await rows(engine, tenant_runs)
    assert report.exit_code == 4  # the run's only tenant is failed (its scores stored, its profiles not)
    assert (row["status"], row["error_kind"], row["scores_upserted"]) == ("failed", "bad_request", 3)
    assert row["error_message"].startswith(f"secureScoreControlProfiles: tenant {tenant} (")
    assert "secureScores:" not in row["error_message"]
    assert sorted(r["id"] for r in await rows(engine, secure_scores)) == sorted(
        o["id"] for o in sim.expected_objects(tenant, 3)
    )


async def test_a_save_the_database_refuses_keeps_each_tenants_own_cause_and_counts(sqlite_engine: AsyncEngine) -> None:
    """A full disk (here a trigger refusing control profiles) failed a tenant that Graph had refused as `database`,
    its cause lost, and said "storing its N day(s)" counting every resource's rows as days."""
    engine = sqlite_engine
    async with engine.begin() as conn:
        await conn.exec_driver_sql(
            "CREATE TRIGGER full BEFORE INSERT ON control_profiles BEGIN SELECT RAISE(ABORT, 'disk is full'); END"
        )
    sim = Simulator(generate_tenants(2, seed=37), seed=37, controls_per_day=10)
    refused, stored = sorted(sim.tenants)
    sim.add_fault(refused, Fault.status(403, endpoint="list"))
    async with serving_simulator(sim) as running:
        config = config_for(running, engine.url.render_as_string(hide_password=False))
        request = plan_backfill(config.enabled_tenants, 3, resume=False, profiles=profiles_policy(config))
        await Run(config, "backfill", request, engine=engine).execute()

    found = {row["tenant_id"]: row for row in await rows(engine, tenant_runs)}
    profiles = int(re.findall(r"storing its (\d+) secureScoreControlProfiles", found[refused]["error_message"])[0])
    database = f"database {engine.url.render_as_string()}: disk is full"
    assert (found[refused]["status"], found[refused]["error_kind"]) == ("failed", "permission")
    assert found[refused]["error_message"].startswith(f"secureScores: tenant {refused} (")
    assert found[refused]["error_message"].endswith(
        f"; tenant {refused} ({sim.tenants[refused].name}): storing its {profiles} secureScoreControlProfiles "
        f"failed and was rolled back: {database}"
    )
    assert (found[stored]["status"], found[stored]["error_kind"], found[stored]["error_message"]) == (
        "failed",
        "database",
        f"tenant {stored} ({sim.tenants[stored].name}): storing its 3 secureScores and {profiles} "
        f"secureScoreControlProfiles failed and was rolled back: {database}",
    )


async def _both_resources_refused(engine: AsyncEngine, list_status: int, profiles_status: int) -> str:
    """Backfill one tenant of both resources, Graph answering `list_status` to its secureScores and
    `profiles_status` to its control profiles; returns the tenant's id."""
    url = engine.url.render_as_string(hide_password=False)
    sim = Simulator(generate_tenants(1, seed=36), seed=36, controls_per_day=10)
    tenant = next(iter(sim.tenants))
    sim.add_fault(tenant, Fault.status(list_status, endpoint="list"))
    sim.add_fault(tenant, Fault.status(profiles_status, endpoint="profiles"))
    async with serving_simulator(sim) as running:
        config = config_for(running, url)
        request = plan_backfill(config.enabled_tenants, 3, resume=False)
        both = (SECURE_SCORES, CONTROL_PROFILES)
        await Run(config, "backfill", request, engine=engine, resources=lambda _plan: both).execute()
    return tenant


async def test_a_tenant_whose_every_resource_failed_names_each_of_them(engine: AsyncEngine) -> None:
    tenant = await _both_resources_refused(engine, 403, 400)

    (row,) = await rows(engine, tenant_runs)
    assert (row["status"], row["error_kind"], row["scores_upserted"]) == ("failed", "permission", 0)
    assert row["error_message"].startswith(f"secureScores: tenant {tenant} (")
    assert "; secureScoreControlProfiles: tenant " in row["error_message"]
    assert await count(engine, secure_scores) == 0


async def test_a_refused_token_is_asked_for_once_and_the_other_resources_are_not_fetched(engine: AsyncEngine) -> None:
    """A credential Entra ID refuses is refused again: the control profiles used to ask for a second token."""
    url = engine.url.render_as_string(hide_password=False)
    sim = Simulator(generate_tenants(1, seed=37), seed=37, controls_per_day=10)
    tenant = next(iter(sim.tenants))
    sim.add_fault(tenant, Fault.token_refusal(TokenRefusal.INVALID_SECRET))
    async with serving_simulator(sim) as running:
        config = config_for(running, url)
        request = plan_backfill(config.enabled_tenants, 3, resume=False, profiles=profiles_policy(config))
        await Run(config, "backfill", request, engine=engine).execute()

    assert [(r.endpoint, r.status) for r in sim.requests] == [("token", 401)]
    (row,) = await rows(engine, tenant_runs)
    assert (row["status"], row["error_kind"]) == ("failed", "authentication")
    assert row["error_message"].startswith(f"tenant {tenant} (")
    assert "AADSTS7000215" in row["error_message"]
    assert "secureScoreControlProfiles" not in row["error_message"]


async def backfill_compacted(engine: AsyncEngine, seed: int) -> Config:
    """Three tenants of 70 days: enough for the backfill to train the archive's dictionary after it."""
    url = engine.url.render_as_string(hide_password=False)
    sim = Simulator(generate_tenants(3, seed=seed), seed=seed)
    async with serving_simulator(sim) as running:
        config = config_for(running, url)
        plan = plan_backfill(config.enabled_tenants, 70, resume=False)
        assert (await Run(config, "backfill", plan, engine=engine).execute()).exit_code == 0
    assert await count(engine, archive_dictionaries) == 1
    assert all(is_zstd(r["body"]) for r in await rows(engine, raw_payloads))
    return config


async def test_rebuild_from_an_archive_of_zlib_and_zstd_bodies_stores_the_same_rows(engine: AsyncEngine) -> None:
    """Bodies written before the dictionary (zlib) and after (zstd) replay alike."""
    config = await backfill_compacted(engine, seed=35)
    stored = await snapshot(engine)
    async with transaction(engine) as conn:
        codec = await codec_for(conn)
        bases = sa.select(raw_payloads).where(raw_payloads.c.base_sha256.is_(None))
        archived = (await conn.execute(bases.order_by(raw_payloads.c.sha256))).all()
        # every other base back to zlib, as written before the dictionary: its deltas name its content
        for row in archived[::2]:
            await conn.execute(
                sa.update(raw_payloads)
                .where(raw_payloads.c.sha256 == row.sha256, raw_payloads.c.tenant_id == row.tenant_id)
                .values(body=zlib.compress(codec.decompress(row.body), 3))
            )

    assert await rebuild(config, engine) == 0

    assert await snapshot(engine) == stored


async def test_a_rebuild_of_bodies_whose_dictionary_is_gone_says_tenant_and_day(engine: AsyncEngine) -> None:
    config = await backfill_compacted(engine, seed=36)
    async with transaction(engine) as conn:
        await conn.execute(sa.delete(archive_dictionaries))

    report = await Run(config, "rebuild", plan_rebuild(config, ()), engine=engine).execute()

    assert report.exit_code != 0
    for outcome in report.outcomes:
        tenant = outcome.tenant.tenant_id
        assert outcome.error_kind == "archive_unreadable"
        assert outcome.error_message is not None
        assert "\n" not in outcome.error_message
        assert re.search(
            rf"tenant {tenant}: the archived secureScore of \d{{4}}-\d{{2}}-\d{{2}} \(sha256 \w+\) cannot be read: "
            r"(its base cannot be read: )?compressed with zstd dictionary \d+, which archive_dictionaries does not "
            r"hold( \(its base: \d{4}-\d{2}-\d{2}, sha256 \w+\))?",
            outcome.error_message,
        ), outcome.error_message


async def test_a_damaged_archive_body_fails_its_tenant_and_the_rebuild_exits_as_documented(engine: AsyncEngine) -> None:
    """`archive_unreadable` is a tenant's failure in a rebuild, like any other: the other tenants are rebuilt
    (exit 1); a rebuild whose every tenant failed exits 4 (README, Exit codes)."""
    config = await backfill_compacted(engine, seed=37)
    tenant = config.enabled_tenants[0].tenant_id
    async with transaction(engine) as conn:
        row = (await conn.execute(sa.select(raw_payloads).where(raw_payloads.c.tenant_id == tenant).limit(1))).one()
        await conn.execute(
            sa.update(raw_payloads)
            .where(raw_payloads.c.tenant_id == tenant, raw_payloads.c.sha256 == row.sha256)
            .values(body=bytes(row.body)[:20] + b"\xff\xfe\xfd\xfc" + bytes(row.body)[24:])
        )

    assert await rebuild(config, engine) == 1
    assert await rebuild(config, engine, tenant) == 4


async def test_resources_refused_for_one_cause_say_it_once(engine: AsyncEngine) -> None:
    """A 403 on every resource (consent missing) is one cause: the demo's cell said its long text twice."""
    tenant = await _both_resources_refused(engine, 403, 403)

    (row,) = await rows(engine, tenant_runs)
    assert row["error_message"].startswith(f"secureScores and secureScoreControlProfiles: tenant {tenant} (")
    assert row["error_message"].count("Graph denied access") == 1


async def test_the_simulators_type_change_fault_is_quarantined_not_stored(engine: AsyncEngine) -> None:
    """`simulate --fault type_change:TENANT`: secureScores with `createdDateTime` a number and `controlScores`
    an object fail validation and are quarantined, not retried and not stored."""
    url = engine.url.render_as_string(hide_password=False)
    sim = Simulator(generate_tenants(1, seed=38), seed=38, controls_per_day=10)
    tenant = next(iter(sim.tenants))
    option = parse_fault_option(f"type_change:{tenant}:1")
    sim.add_fault(tenant, dataclasses.replace(option.fault, times=1))
    async with serving_simulator(sim) as running:
        config = config_for(running, url)
        await Run(config, "backfill", plan_backfill(config.enabled_tenants, 3, resume=False), engine=engine).execute()

    rejected = await rows(engine, rejected_payloads)
    (row,) = await rows(engine, tenant_runs)
    assert (row["status"], row["rejected"], row["scores_upserted"]) == ("partial", 3, 0)
    assert {r["tenant_id"] for r in rejected} == {tenant}
    assert all("has no usable `createdDateTime`" in r["reason"] for r in rejected)
    assert all(isinstance(orjson.loads(r["body"])["controlScores"], dict) for r in rejected)
    assert await count(engine, secure_scores) == 0

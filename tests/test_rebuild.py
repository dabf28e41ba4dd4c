"""`fetcher rebuild`: the normalized tables derived again from the raw archive equal what the fetches stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from fetcher.config import Config, parse_config
from fetcher.rebuild import RebuildRun, plan_rebuild
from fetcher.runner import Run, plan_backfill, plan_incremental
from fetcher.simulator import RunningSimulator, Simulator, generate_tenants, serving_simulator
from fetcher.store.engine import transaction
from fetcher.store.schema import comparative_scores, control_scores, controls, raw_payloads, secure_scores
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
    report = await RebuildRun(config, plan_rebuild(config, tenants), engine=engine).execute()
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
        await conn.execute(sa.delete(control_scores).where(control_scores.c.score < 3))

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


def test_replay_context_restores_the_partial_flag() -> None:
    from fetcher.rebuild import replay_context
    from fetcher.store.archive import pack

    raw = pack(
        {"a": 1},
        tenant_id="t",
        score_date=TODAY,
        fetched_at=datetime(2026, 1, 1, tzinfo=UTC),
        run_id="r",
        warning='199 - "Microsoft/SecureScore/500/12"',
    )

    context = replay_context(raw)

    warning = '199 - "Microsoft/SecureScore/500/12"'
    assert (context.partial, context.warning_text, context.run_id) == (True, warning, "r")
    assert not replay_context(raw._replace(warning=None)).partial

"""The save stage's group commit: several tenants in one transaction, and one tenant a transaction when that fails."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from fetcher.admit import Admission
from fetcher.models import FetchContext, Status
from fetcher.normalize import normalize_score
from fetcher.pipeline import GroupCommit
from fetcher.resources.secure_scores import RESOURCE as SECURE_SCORES
from fetcher.store import ledger
from fetcher.store.engine import transaction
from fetcher.store.save import TenantWrite, save_group
from fetcher.store.schema import control_scores, controls, raw_payloads, secure_scores, tenant_runs
from fetcher.store.scores import resolve_keys, save_score_days, save_tenants
from tests.dbutil import rows
from tests.payloads import DAY, full_day
from tests.store.test_keys import statements
from tests.store.test_scores import driver_reads

A = "aaaaaaaa-0000-4000-8000-000000000001"
B = "bbbbbbbb-0000-4000-8000-000000000002"
C = "cccccccc-0000-4000-8000-000000000003"
RUN = "run-1"
T0 = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)


def write(tenant_id: str, *, minute: int = 1, controls: int = 7) -> TenantWrite:
    """A tenant that fetched one day (of `controls` controls): its row, its archive row and its ledger row."""
    admission = SECURE_SCORES.admit(
        [full_day(tenant_id, DAY, controls=controls)],
        FetchContext(RUN, T0),
        tenant_id=tenant_id,
        keep_raw=True,
        keep_objects=False,
        into=Admission(),
    )
    row = ledger.TenantRun(RUN, tenant_id, Status.SUCCEEDED, T0, T0 + timedelta(minutes=minute), scores_upserted=1)
    return TenantWrite([(SECURE_SCORES, admission)], [], row)


@pytest.fixture
async def run(engine: AsyncEngine) -> AsyncEngine:
    """A started run that knows the tenants A, B and C, and the keys of the texts of their days."""
    async with transaction(engine) as conn:
        await save_tenants(conn, [(A, "a"), (B, "b"), (C, "c")], T0)
        await ledger.start_run(conn, run_id=RUN, command="run", started_at=T0, tenants_total=3, host="h", pid=1)
    async with transaction(engine) as conn:  # their texts' keys known: PostgreSQL commits new ones on their own
        await resolve_keys(conn, [day for t in (A, B, C) for day in write(t).admitted[0][1].rows])
    return engine


def commits(engine: AsyncEngine) -> list[int]:
    """A list that grows by one at every commit on `engine`."""
    seen: list[int] = []
    sa.event.listen(engine.sync_engine, "commit", lambda _conn: seen.append(1))
    return seen


async def stored(engine: AsyncEngine) -> dict[str, list[str]]:
    return {
        "days": sorted(r["tenant_id"] for r in await rows(engine, secure_scores)),
        "archive": sorted(r["tenant_id"] for r in await rows(engine, raw_payloads)),
        "ledger": sorted(r["tenant_id"] for r in await rows(engine, tenant_runs)),
    }


async def test_a_group_of_tenants_is_saved_in_one_transaction(run: AsyncEngine) -> None:
    committed = commits(run)

    errors = await save_group(run, [write(A), write(B), write(C)])

    assert errors == [None, None, None]
    assert len(committed) == 1
    assert await stored(run) == {"days": [A, B, C], "archive": [A, B, C], "ledger": [A, B, C]}
    # The controls dimension, saved once for the group, holds every control its tenants' days name.
    named = {r["control_name"] for r in await rows(run, control_scores)}
    assert {r["control_name"] for r in await rows(run, controls)} == named
    assert len(named) > 1


@pytest.mark.parametrize("tenants", [[A], [A, B, C]], ids=["alone", "group"])
async def test_the_controls_dimension_is_upserted_after_the_tenants_rows_just_before_the_ledger(
    run: AsyncEngine, tenants: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL keeps the rows an upsert met locked until the commit: saved first, the dimension rows every
    tenant shares held the other writers for the whole transaction; saved last, for the commit only. A group's
    control rows go in one statement (`fetcher.store.scores.save_group_rows`), as a tenant's alone do."""
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine.Engine")  # `--log-sql`: every statement, in order

    assert await save_group(run, [write(t) for t in tenants]) == [None] * len(tenants)

    sent = [r.getMessage() for r in caplog.records if r.name == "sqlalchemy.engine.Engine"]
    order = [kind for m in sent for kind in ("control_score_rows", "controls", "tenant_runs") if f"INTO {kind} " in m]
    assert order[-2:] == ["controls", "tenant_runs"]
    assert order.count("controls") == 1
    assert order.count("control_score_rows") == 1


async def test_one_tenant_that_cannot_be_saved_costs_nobody_else_in_its_group(run: AsyncEngine) -> None:
    """B's ledger row is already recorded (its primary key is taken): the group fails, and then B alone."""
    async with transaction(run) as conn:
        await ledger.record_tenant_run(conn, write(B, minute=0).row)
    committed = commits(run)

    errors = await save_group(run, [write(A), write(B), write(C)])

    assert [error is None for error in errors] == [True, False, True]
    assert isinstance(errors[1], sa.exc.IntegrityError)
    assert len(committed) == 2  # A alone, C alone: the group and B rolled back
    # B's day and archive row went with its ledger row; A's and C's are stored with theirs.
    assert await stored(run) == {"days": [A, C], "archive": [A, C], "ledger": [A, B, C]}
    assert {r["tenant_id"]: r["finished_at"] for r in await rows(run, tenant_runs)}[B] == T0


@pytest.mark.parametrize("group_fails", [False, True], ids=["in the group", "each alone"])
async def test_a_day_saved_again_loses_the_controls_it_no_longer_lists(run: AsyncEngine, group_fails: bool) -> None:
    """The group reads its stored members in one statement; saved alone after the group failed, each tenant
    reads its own: either way A and C keep only the 3 controls they now list, B (saved alone) its 7."""
    async with transaction(run) as conn:
        for tenant_id in (A, B, C):
            await save_score_days(conn, [normalize_score(full_day(tenant_id, DAY), FetchContext(RUN, T0))], T0)
        if group_fails:
            await ledger.record_tenant_run(conn, write(B, minute=0).row)

    errors = await save_group(run, [write(A, controls=3), write(B), write(C, controls=3)])

    assert [error is None for error in errors] == [True, not group_fails, True]
    kept = sorted((r["tenant_id"], r["control_name"]) for r in await rows(run, control_scores))
    listed = [control["controlName"] for control in full_day(A, DAY)["controlScores"]]
    assert kept == sorted([(t, name) for t in (A, C) for name in listed[:3]] + [(B, name) for name in listed])


async def test_on_sqlite_a_tenant_alone_is_saved_as_a_group_of_one(run: AsyncEngine) -> None:
    """Its stored members read by the driver in one round trip (`bulk.fetch_sqlite`), not by SQLAlchemy's
    statement (four); what it no longer lists is deleted as before, and its failure is its own, tried once."""
    if run.dialect.name != "sqlite":
        pytest.skip("PostgreSQL saves a tenant alone with save_tenant")
    async with transaction(run) as conn:
        await save_score_days(conn, [normalize_score(full_day(A, DAY), FetchContext(RUN, T0))], T0)
        await ledger.record_tenant_run(conn, write(B, minute=0).row)
    committed = commits(run)

    with statements(run) as sent, driver_reads() as direct:
        assert await save_group(run, [write(A, controls=3)]) == [None]
    failed = await save_group(run, [write(B)])

    assert not any("FROM comparative_scores" in sql for sql in sent)
    assert sum("FROM comparative_scores" in sql for sql in direct) == 1
    assert len(committed) == 1
    assert isinstance(failed[0], sa.exc.IntegrityError)
    assert len([r for r in await rows(run, control_scores) if r["tenant_id"] == A]) == 3


async def test_tenants_that_finish_while_a_transaction_writes_are_saved_together(run: AsyncEngine) -> None:
    group = GroupCommit(run, writers=1)
    committed = commits(run)

    results = await asyncio.gather(*(group.save(write(t)) for t in (A, B, C)), return_exceptions=True)

    assert results == [None, None, None]
    assert len(committed) == 2  # A first, alone; B and C queued behind it, then together
    assert await stored(run) == {"days": [A, B, C], "archive": [A, B, C], "ledger": [A, B, C]}


async def test_each_waiting_tenant_gets_its_own_error(run: AsyncEngine) -> None:
    async with transaction(run) as conn:
        await ledger.record_tenant_run(conn, write(C, minute=0).row)
    group = GroupCommit(run, writers=1)

    results = await asyncio.gather(*(group.save(write(t)) for t in (A, B, C)), return_exceptions=True)

    assert results[:2] == [None, None]
    assert isinstance(results[2], sa.exc.IntegrityError)
    assert await stored(run) == {"days": [A, B], "archive": [A, B], "ledger": [A, B, C]}

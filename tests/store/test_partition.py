"""Monthly partitions of control_score_rows (read through the control_scores view) on PostgreSQL: conversion
keeps every value, saves make the months they need (also from several processes at once), and a tenant's
last 90 days reads at most 4 partitions."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from fetcher.admit import Admission
from fetcher.config import DatabaseConfig
from fetcher.models import ScoreDay, Status
from fetcher.resources.secure_scores import RESOURCE as SECURE_SCORES
from fetcher.store import ledger, reports
from fetcher.store.engine import create_engine, downgrade, migrate, transaction
from fetcher.store.partition import (
    Conversion,
    convert,
    covered,
    ensure_archive_partitions,
    ensure_partitions,
    is_partitioned,
    month_of,
    months_between,
    next_month,
    partition_name,
    ranges,
)
from fetcher.store.save import save_tenant
from fetcher.store.schema import control_score_rows, control_scores, raw_payloads
from fetcher.store.scores import save_score_days
from tests.conftest import POSTGRES_ENV, SKIP_POSTGRES, create_postgres_database, drop_postgres_database
from tests.dbutil import count, rows
from tests.store.test_scores import NOW, OTHER, TENANT, control, days, payload

TODAY = date(2026, 11, 28)
FIRST = date(2025, 9, 20)  # 14 months of history: more partitions than a 90-day window may read
VIEWS = ("score_history", "latest_scores", "control_changes", "control_status", "category_scores")
CONTROLS = ("MFARegistrationV2", "OneAdmin", "BlockLegacyAuthentication", "PWAgePolicyNew")


def test_months_cover_every_month_between_two_days_across_a_year_end() -> None:
    assert months_between(date(2025, 11, 30), date(2026, 2, 1)) == [
        date(2025, 11, 1),
        date(2025, 12, 1),
        date(2026, 1, 1),
        date(2026, 2, 1),
    ]
    assert next_month(date(2026, 12, 1)) == date(2027, 1, 1)


def test_a_month_is_covered_only_by_a_range_holding_all_of_it() -> None:
    assert covered([(date(2026, 1, 1), date(2026, 4, 1))], date(2026, 3, 1))
    assert not covered([(date(2026, 1, 1), date(2026, 3, 15))], date(2026, 3, 1))


async def test_converting_is_refused_on_sqlite(sqlite_engine: AsyncEngine) -> None:
    async with transaction(sqlite_engine) as conn:
        with pytest.raises(ValueError, match="partitioning needs PostgreSQL"):
            await convert(conn, TODAY)


async def test_saving_on_sqlite_needs_no_partitions(sqlite_engine: AsyncEngine) -> None:
    assert await ensure_partitions(sqlite_engine, [TODAY]) == []


# ------------------------------------------------------------------------------------------ PostgreSQL


def needs_postgres() -> None:
    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(SKIP_POSTGRES)


@pytest.fixture
def empty_postgres() -> Iterator[str]:
    """A database of its own (conversion changes the schema), empty."""
    needs_postgres()
    url = create_postgres_database("fetcher_partition")
    yield url
    drop_postgres_database(url)


@pytest.fixture
def own_postgres(empty_postgres: str) -> str:
    """That database, migrated by the current code, unpartitioned."""

    async def _migrate() -> None:
        engine = create_engine(DatabaseConfig(url=empty_postgres))
        await migrate(engine)
        await engine.dispose()

    asyncio.run(_migrate())
    return empty_postgres


@pytest.fixture
async def plain(own_postgres: str) -> AsyncIterator[AsyncEngine]:
    """An engine on that database, filled with 14 months of two tenants' days by the current code."""
    engine = create_engine(DatabaseConfig(url=own_postgres))
    await fill(engine)
    yield engine
    await engine.dispose()


def history(tenant: str, first: date, last: date, *, shift: float = 0.0) -> list[ScoreDay]:
    """A tenant's days, a control moving every few days so that control_changes has rows."""
    out = []
    day = first
    while day <= last:
        n = (day - first).days
        listed = [control(name, float((n // (3 + i)) % 5) + shift) for i, name in enumerate(CONTROLS)]
        out.append(payload(day.isoformat(), tenant=tenant, controls=listed[: 3 + n % 2]))
        day += timedelta(days=1)
    return days(*out)


async def fill(engine: AsyncEngine, *, shift: float = 0.0) -> None:
    for tenant in (TENANT, OTHER):
        async with transaction(engine) as conn:
            await save_score_days(conn, history(tenant, FIRST, TODAY, shift=shift), NOW)


async def snapshot(engine: AsyncEngine) -> dict[str, list[Any]]:
    """Every row of control_scores and of each view, in a fixed order."""
    out: dict[str, list[Any]] = {"control_scores": await rows(engine, control_scores)}
    async with engine.connect() as conn:
        for view in VIEWS:
            result = await conn.execute(sa.text(f"SELECT * FROM {view}"))
            out[view] = sorted((tuple(r) for r in result.all()), key=repr)
    return out


async def partition(engine: AsyncEngine) -> None:
    async def then(conn: AsyncConnection) -> None:
        converted.extend(await convert(conn, TODAY))

    converted: list[Conversion] = []
    await migrate(engine, then=then)
    assert [c.table for c in converted] == ["control_score_rows"]


@pytest.mark.postgres
async def test_converting_keeps_every_row_and_every_view_row(plain: AsyncEngine) -> None:
    reader = f"fetcher_reader_{uuid.uuid4().hex[:8]}"
    async with transaction(plain) as conn:
        await conn.exec_driver_sql(f"CREATE ROLE {reader}")
        await conn.exec_driver_sql(f"GRANT SELECT ON control_scores, control_status TO {reader}")
    before = await snapshot(plain)
    converted: list[Conversion] = []

    async def then(conn: AsyncConnection) -> None:
        converted.extend(await convert(conn, TODAY))

    await migrate(plain, then=then)

    months = len(months_between(FIRST, date(2026, 12, 1)))
    assert converted == [Conversion("control_score_rows", len(before["control_scores"]), months)]
    async with plain.connect() as conn:
        assert await is_partitioned(conn, "control_score_rows")
        assert len(await ranges(conn, "control_score_rows")) == months
    assert await snapshot(plain) == before
    assert len(before["control_changes"]) > 100  # the views were compared on real rows
    async with transaction(plain) as conn:
        granted = f"SELECT has_table_privilege('{reader}', 'control_scores', 'SELECT'), "
        granted += f"has_table_privilege('{reader}', 'control_status', 'SELECT')"
        assert tuple((await conn.exec_driver_sql(granted)).one()) == (True, True)
        await conn.exec_driver_sql(f"DROP OWNED BY {reader}")
        await conn.exec_driver_sql(f"DROP ROLE {reader}")


@pytest.mark.postgres
async def test_converting_twice_finds_it_done(plain: AsyncEngine) -> None:
    await partition(plain)
    async with transaction(plain) as conn:
        assert await convert(conn, TODAY) == [Conversion("control_score_rows", 0, 0)]


@pytest.mark.postgres
async def test_a_failed_conversion_leaves_the_database_as_it_was(plain: AsyncEngine) -> None:
    async def then(conn: AsyncConnection) -> None:
        await convert(conn, TODAY)
        raise RuntimeError("stopped after converting")

    before = await snapshot(plain)
    with pytest.raises(RuntimeError):
        await migrate(plain, then=then)
    async with plain.connect() as conn:
        assert not await is_partitioned(conn, "control_score_rows")
    assert await snapshot(plain) == before


@pytest.mark.postgres
async def test_upserts_update_rows_in_their_partitions(plain: AsyncEngine) -> None:
    await partition(plain)
    await fill(plain, shift=10.0)
    stored = await rows(plain, control_scores, tenant_id=TENANT, score_date=FIRST)
    assert [r["score"] for r in stored] == [10.0, 10.0, 10.0]
    assert await count(plain, control_scores) == len(await rows(plain, control_scores))


@pytest.mark.postgres
async def test_a_save_into_a_month_without_a_partition_makes_it_first(plain: AsyncEngine) -> None:
    await partition(plain)
    old, new = date(2020, 1, 15), date(2027, 3, 2)
    fetched = history(TENANT, old, old) + history(TENANT, new, new)
    admission: Admission[ScoreDay] = Admission(rows=fetched)
    row = ledger.TenantRun("run-1", TENANT, Status.SUCCEEDED, NOW, NOW, scores_upserted=2)
    async with transaction(plain) as conn:
        await ledger.start_run(conn, run_id="run-1", command="run", started_at=NOW, tenants_total=1, host="h", pid=1)

    await save_tenant(plain, [(SECURE_SCORES, admission)], [], row)

    async with plain.connect() as conn:
        present = await ranges(conn, "control_score_rows")
    assert (date(2020, 1, 1), date(2020, 2, 1)) in present
    assert (date(2027, 3, 1), date(2027, 4, 1)) in present
    assert len(await rows(plain, control_scores, score_date=old)) == 3
    assert await ensure_partitions(plain, [old, new]) == []


@pytest.mark.postgres
async def test_a_write_past_ensure_partitions_fails_whole(plain: AsyncEngine) -> None:
    await partition(plain)
    with pytest.raises(sa.exc.DBAPIError, match="no partition"):
        async with transaction(plain) as conn:
            await save_score_days(conn, history(TENANT, date(2019, 5, 1), date(2019, 5, 1)), NOW)
    assert await rows(plain, control_scores, score_date=date(2019, 5, 1)) == []


@pytest.mark.postgres
async def test_a_rebuild_makes_the_months_of_every_archived_day(plain: AsyncEngine) -> None:
    await partition(plain)
    archived = {"size": 2, "body": b"{}", "fetched_at": NOW, "last_fetched_at": NOW, "tenant_id": TENANT}
    async with transaction(plain) as conn:
        await conn.execute(
            sa.insert(raw_payloads),
            [
                archived | {"score_date": date(2025, 6, 30), "sha256": "a" * 64},
                archived | {"score_date": TODAY, "sha256": "b" * 64},
            ],
        )

    made = await ensure_archive_partitions(plain)

    assert made == ["control_score_rows_p2025_06", "control_score_rows_p2025_07", "control_score_rows_p2025_08"]


@pytest.mark.postgres
async def test_a_new_month_is_made_while_another_process_is_saving(plain: AsyncEngine) -> None:
    """Attaching a month does not wait for open saves (CREATE ... PARTITION OF would wait for this one forever)."""
    await partition(plain)
    other = create_engine(DatabaseConfig(url=plain.url.render_as_string(hide_password=False)))
    try:
        async with transaction(plain) as conn:  # a save of another shard, still open
            await save_score_days(conn, history(OTHER, TODAY, TODAY, shift=1.0), NOW)
            made = await asyncio.wait_for(ensure_partitions(other, [date(2027, 8, 1)]), timeout=60)
    finally:
        await other.dispose()
    assert made == ["control_score_rows_p2027_08"]


@pytest.mark.postgres
async def test_processes_asking_for_one_month_at_once_make_it_once(plain: AsyncEngine) -> None:
    await partition(plain)
    engines = [create_engine(DatabaseConfig(url=plain.url.render_as_string(hide_password=False))) for _ in range(4)]
    try:
        made = await asyncio.gather(*(ensure_partitions(e, [date(2027, 6, 1)]) for e in engines))
    finally:
        for e in engines:
            await e.dispose()
    assert sorted(name for names in made for name in names) == ["control_score_rows_p2027_06"]


@pytest.mark.postgres
async def test_revision_0010s_views_give_0005s_rows(empty_postgres: str) -> None:
    """The pruning-friendly control_status and control_changes (0010) equal the ones they replace."""
    engine = create_engine(DatabaseConfig(url=empty_postgres))
    try:
        await migrate(engine)
        await fill(engine)  # by the current code, then taken down to 0009 (0011's downgrade restores the table)
        async with transaction(engine) as conn:  # a day whose controls are all gone: not a control day
            await conn.execute(
                sa.delete(control_score_rows).where(control_score_rows.c.score_date == date(2026, 10, 7))
            )
        await downgrade(engine, "0009")
        before = await snapshot(engine)
        await migrate(engine, "0010")
        assert await snapshot(engine) == before
        assert len(before["control_status"]) == 2 * 3
    finally:
        await engine.dispose()


# ------------------------------------------------------------------------------------------ pruning


def scanned(plan: Any) -> set[str]:
    """The control_score_rows partitions a plan (EXPLAIN ANALYZE, JSON) read at least once."""
    found: set[str] = set()
    if isinstance(plan, dict):
        name = plan.get("Relation Name", "")
        if name.startswith("control_score_rows_") and plan.get("Actual Loops", 0) > 0:
            found.add(name)
        for value in plan.values():
            found |= scanned(value)
    elif isinstance(plan, list):
        for item in plan:
            found |= scanned(item)
    return found


async def explained(engine: AsyncEngine, read: Callable[[AsyncConnection], Awaitable[Any]]) -> list[set[str]]:
    """Each statement `read` sends, run again under EXPLAIN ANALYZE: the partitions each one read."""
    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        sent.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        async with engine.connect() as conn:
            await read(conn)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    plans = []
    async with engine.connect() as conn:
        for statement, parameters in sent:
            result = await conn.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", parameters)
            plans.append(scanned(result.scalar_one()))
    return plans


@pytest.fixture
async def partitioned(plain: AsyncEngine) -> AsyncEngine:
    await partition(plain)
    async with plain.begin() as conn:
        await conn.exec_driver_sql("ANALYZE")
    return plain


SINCE = TODAY - timedelta(days=90)
READS: dict[str, Callable[[AsyncConnection], Awaitable[Any]]] = {
    "last 90 days of control_scores": lambda conn: conn.execute(
        sa.select(control_scores).where(
            control_scores.c.tenant_id == TENANT, control_scores.c.score_date.between(SINCE, TODAY)
        )
    ),
    "report categories": lambda conn: reports.categories(conn, TENANT, since=SINCE, until=TODAY),
    "report control moves": lambda conn: reports.control_deltas(conn, TENANT, after=SINCE, until=TODAY),
    "report next actions": lambda conn: reports.next_actions(conn, TENANT, limit=5),
    "portfolio actions (every tenant's newest day)": reports.actions,
}


@pytest.mark.postgres
@pytest.mark.parametrize("what", READS)
async def test_a_tenants_last_90_days_read_at_most_4_partitions(partitioned: AsyncEngine, what: str) -> None:
    plans = await explained(partitioned, READS[what])
    touching = [plan for plan in plans if plan]
    assert touching, f"{what}: no statement read control_scores"
    assert all(len(plan) <= 4 for plan in touching), f"{what}: read {[sorted(p) for p in touching]}"


@pytest.mark.postgres
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_a_conversion_interrupted_midway_leaves_the_database_as_it_was(
    plain: AsyncEngine, own_postgres: str, tmp_path: Path, stop: signal.Signals
) -> None:
    """`fetcher migrate` stopped by a signal (or killed) midway, the views dropped, the plain table renamed and the
    partitioned one made: one transaction, so nothing changed, and the next `fetcher migrate` converts."""
    from tests.test_cli import write_config

    config = write_config(tmp_path, database=f'url = "{own_postgres}"\npartition = "monthly"')
    argv = [sys.executable, "-m", "fetcher", "--config", str(config), "migrate"]
    env = {**os.environ, "SECRET": "unused"}
    before = await snapshot(plain)
    last = partition_name("control_score_rows", max(month_of(TODAY), next_month(month_of(datetime.now(UTC).date()))))
    async with plain.connect() as blocker, plain.connect() as watcher:
        # A table of the name of the last month's partition, not yet committed: the conversion waits to make its
        # own until this transaction ends, with the views dropped, the table renamed and the other months made.
        await blocker.exec_driver_sql(f"CREATE TABLE {last} (n integer)")
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        waiting = await _blocked_statement(watcher, process)
        process.send_signal(stop)
        _, stderr = await asyncio.to_thread(process.communicate, timeout=60)
        await blocker.rollback()

    assert waiting.startswith(f"CREATE TABLE {last} (LIKE control_score_rows"), waiting
    assert process.returncode == (143 if stop == signal.SIGTERM else -9), stderr
    if stop == signal.SIGTERM:
        assert "interrupted: the migration step in progress was rolled back" in stderr
    async with plain.connect() as conn:
        assert not await is_partitioned(conn, "control_score_rows")
    assert await snapshot(plain) == before
    again = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "control_score_rows partitioned by month" in again.stderr


async def _blocked_statement(watcher: AsyncConnection, process: subprocess.Popen[str]) -> str:
    """The statement of `process`'s session once it waits for a lock (polled; fails if the process ends)."""
    query = (
        "SELECT query FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
        "AND pid <> pg_backend_pid()"
    )
    while process.poll() is None:
        found = (await watcher.exec_driver_sql(query)).scalar()
        await watcher.rollback()
        if found is not None:
            return str(found)
        await asyncio.sleep(0.05)
    raise AssertionError(f"fetcher migrate ended before waiting: {process.communicate()}")

"""The keys of control_score_rows' texts: inserted once, cached per engine only once committed, never reused."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from fetcher.config import DatabaseConfig
from fetcher.store import keys
from fetcher.store.engine import create_engine, transaction
from fetcher.store.schema import control_keys, day_keys, status_texts, tenant_keys
from fetcher.store.scores import save_tenants
from tests.dbutil import rows

NOW = datetime(2026, 11, 28, 6, 1, tzinfo=UTC)


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements the engine sends meanwhile (BEGIN and COMMIT are not statements)."""
    sent: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if not statement.startswith("BEGIN"):  # SQLite's BEGIN IMMEDIATE
            sent.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_missing_texts_are_inserted_and_each_gets_its_own_key(engine: AsyncEngine) -> None:
    async with transaction(engine) as conn:
        found = await keys.resolve(conn, keys.CONTROLS, ["OneAdmin", "MFARegistrationV2", None, "OneAdmin"])

    assert set(found) == {"OneAdmin", "MFARegistrationV2"}  # the first texts of this engine: exactly these
    assert len(set(found.values())) == 2
    assert {r["control_name"]: r["control_key"] for r in await rows(engine, control_keys)} == dict(found)


async def test_known_keys_cost_no_statement_once_committed(engine: AsyncEngine) -> None:
    async with transaction(engine) as conn:
        first = await keys.resolve(conn, keys.STATUSES, ["On", "Off"])
        with statements(engine) as sent:  # the same transaction: its own keys, pending, also cost nothing
            assert (await keys.resolve(conn, keys.STATUSES, ["Off"]))["Off"] == first["Off"]
        assert sent == []

    with statements(engine) as sent:
        async with transaction(engine) as conn:
            again = await keys.resolve(conn, keys.STATUSES, ["On", "Off"])
            assert {text: again[text] for text in first} == first
    assert sent == []


async def test_a_new_process_reads_the_stored_keys_in_one_statement(engine: AsyncEngine) -> None:
    async with transaction(engine) as conn:
        first = await keys.resolve(conn, keys.CONTROLS, ["A", "B", "C"])
    other = create_engine(DatabaseConfig(url=engine.url.render_as_string(hide_password=False)))
    try:
        with statements(other) as sent:
            async with transaction(other) as conn:
                again = await keys.resolve(conn, keys.CONTROLS, ["C", "B", "A"])
                assert {text: again[text] for text in first} == first
        assert len(sent) == 1
    finally:
        await other.dispose()


async def test_keys_are_read_with_in_lists_of_a_few_lengths(postgres_engine: AsyncEngine) -> None:
    """5, 6 and 7 new texts are read by one statement (padded to 8), so the driver keeps one prepared."""
    found, reads = {}, set()
    for count in (5, 6, 7):
        with statements(postgres_engine) as sent:
            async with transaction(postgres_engine) as conn:
                found |= await keys.resolve(conn, keys.STATUSES, [f"{count} of {n} users" for n in range(count)])
        reads |= {statement for statement in sent if statement.startswith("SELECT") and " IN " in statement}

    assert len(reads) == 1
    assert len(found) == 18
    assert {r["implementation_status"]: r["status_key"] for r in await rows(postgres_engine, status_texts)} == found


async def test_sqlite_inserts_and_reads_any_number_of_texts_in_two_statements(sqlite_engine: AsyncEngine) -> None:
    """On SQLite the texts go as one JSON array: 1 or 2,500 new texts (some stored already, one with quotes and
    non-ASCII), an insert and a read each, in sorted order, so their keys follow the texts' order."""
    async with transaction(sqlite_engine) as conn:
        stored = await keys.resolve(conn, keys.STATUSES, ["1 of 2 users"])
    texts = ["1 of 2 users", 'say "ünïcödé" \\ twice', *(f"{n} of 2500 users" for n in range(2499))]
    traced: list[str] = []
    async with transaction(sqlite_engine) as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        await driver.set_trace_callback(traced.append)
        found = await keys.resolve(conn, keys.STATUSES, texts)
        await driver.set_trace_callback(None)

    assert [statement.split()[0] for statement in traced] == ["INSERT", "SELECT"]
    table = {r["implementation_status"]: r["status_key"] for r in await rows(sqlite_engine, status_texts)}
    assert {text: found[text] for text in texts} == table
    assert table["1 of 2 users"] == stored["1 of 2 users"]
    new = sorted(set(texts) - {"1 of 2 users"})
    assert [table[text] for text in new] == sorted(table[text] for text in new)


async def test_a_key_inserted_by_a_rolled_back_transaction_is_never_used(engine: AsyncEngine) -> None:
    """SQLite gives a rolled-back key's number to the next text: a cached one would name the wrong text."""
    with pytest.raises(RuntimeError):
        async with transaction(engine) as conn:
            await keys.resolve(conn, keys.CONTROLS, ["Lost"])
            raise RuntimeError("the group's transaction failed")
    async with transaction(engine) as conn:
        other = await keys.resolve(conn, keys.CONTROLS, ["Other"])
    async with transaction(engine) as conn:
        lost = await keys.resolve(conn, keys.CONTROLS, ["Lost"])

    stored = {r["control_name"]: r["control_key"] for r in await rows(engine, control_keys)}
    assert stored == {"Other": other["Other"], "Lost": lost["Lost"]}


async def test_a_connection_lost_mid_transaction_fails_as_a_database_error_and_forgets_the_cache(
    postgres_engine: AsyncEngine,
) -> None:
    """A lost connection's rollback cannot read what its transaction inserted: the save fails with the
    driver's error, marked as a lost connection (a run tries once more), not with a PendingRollbackError
    raised from the rollback event, and no key of it stays cached."""
    engine = postgres_engine
    async with transaction(engine) as conn:
        known = await keys.resolve(conn, keys.CONTROLS, ["Kept"])
    with pytest.raises(sa.exc.DBAPIError) as lost:
        async with transaction(engine) as conn:
            await keys.resolve(conn, keys.CONTROLS, ["Lost"])
            pid = (await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
            async with engine.connect() as other:
                await other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            await conn.execute(sa.text("SELECT 1"))
    assert lost.value.connection_invalidated
    assert keys._known(engine.sync_engine).of(keys.CONTROLS) == {}
    async with transaction(engine) as conn:
        again = await keys.resolve(conn, keys.CONTROLS, ["Kept", "Lost"])
    stored = {r["control_name"]: r["control_key"] for r in await rows(engine, control_keys)}
    assert again["Kept"] == known["Kept"]
    assert stored == dict(again)


async def test_new_texts_are_committed_before_the_transaction_that_needs_them_ends(
    postgres_engine: AsyncEngine,
) -> None:
    """PostgreSQL: a text inserted inside a writer's long transaction made every other writer needing it wait
    on the unique index until that transaction ended; its key is committed at once instead, and it stays
    when the transaction that needed it rolls back."""
    with pytest.raises(RuntimeError):
        async with transaction(postgres_engine) as first:
            mine = await keys.resolve(first, keys.CONTROLS, ["Shared"])
            async with postgres_engine.connect() as second:  # another writer sees it committed: no wait
                stored = sa.select(control_keys.c.control_key).where(control_keys.c.control_name == "Shared")
                assert (await second.execute(stored)).scalar_one() == mine["Shared"]
            raise RuntimeError("the group's transaction failed")

    with statements(postgres_engine) as sent:
        async with transaction(postgres_engine) as conn:
            again = await keys.resolve(conn, keys.CONTROLS, ["Shared"])
    assert sent == []  # cached when committed
    assert {r["control_name"]: r["control_key"] for r in await rows(postgres_engine, control_keys)} == {
        "Shared": mine["Shared"]
    }
    assert again["Shared"] == mine["Shared"]


async def test_the_status_cache_is_bounded(engine: AsyncEngine) -> None:
    bounded = keys.KeyTable(status_texts, "implementation_status", "status_key", limit=3)
    for start in range(0, 10, 2):
        async with transaction(engine) as conn:
            await keys.resolve(conn, bounded, [f"status {start}", f"status {start + 1}"])
        async with transaction(engine) as conn:  # read back committed: now cached
            await keys.resolve(conn, bounded, [f"status {start}", f"status {start + 1}"])

    assert len(keys._known(engine.sync_engine).of(bounded)) <= 3
    async with engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(status_texts))).scalar_one() == 10


async def test_a_runs_tenants_get_their_keys_with_their_tenants_rows(engine: AsyncEngine) -> None:
    """`save_tenants` at a run's start: the saves of those tenants then read no tenant key."""
    async with transaction(engine) as conn:
        await save_tenants(conn, [("t-1", "One"), ("t-2", "Two")], NOW)

    with statements(engine) as sent:
        async with transaction(engine) as conn:
            found = await keys.resolve(conn, keys.TENANTS, ["t-2", "t-1"])
    assert sent == []
    assert {r["tenant_id"]: r["tenant_key"] for r in await rows(engine, tenant_keys)} == {
        "t-1": found["t-1"],
        "t-2": found["t-2"],
    }


async def test_keys_given_out_stay_readable_when_the_bounded_cache_overflows(engine: AsyncEngine) -> None:
    """A save holds the mapping it was given across its statements while other writers fill the cache."""
    bounded = keys.KeyTable(status_texts, "implementation_status", "status_key", limit=3)
    async with transaction(engine) as conn:
        await keys.resolve(conn, bounded, ["status 0", "status 1"])
    async with transaction(engine) as conn:
        given = await keys.resolve(conn, bounded, ["status 0", "status 1"])
    before = dict(given)
    async with transaction(engine) as conn:
        await keys.resolve(conn, bounded, ["status 2", "status 3"])
    async with transaction(engine) as conn:  # read back committed: overflows the cache of 3
        await keys.resolve(conn, bounded, ["status 2", "status 3"])

    assert len(before) == 2
    assert dict(given) == before


async def test_days_are_keyed_by_their_number_once_and_again_after_a_rollback(sqlite_engine: AsyncEngine) -> None:
    """SQLite's day_keys: each day's row added once (a cached day costs no statement), and a day added by a
    transaction that rolled back is added again, not taken for stored."""
    lost, kept = date(2026, 11, 27), date(1970, 1, 2)
    with pytest.raises(RuntimeError):
        async with transaction(sqlite_engine) as conn:
            await keys.ensure_days(conn, [lost])
            raise RuntimeError("the group's transaction failed")
    async with transaction(sqlite_engine) as conn:
        await keys.ensure_days(conn, [lost, kept, lost])
    with statements(sqlite_engine) as sent:
        async with transaction(sqlite_engine) as conn:
            await keys.ensure_days(conn, [kept, lost])

    assert sent == []
    assert await rows(sqlite_engine, day_keys) == [
        {"day_key": 1, "score_date": kept},
        {"day_key": (lost - date(1970, 1, 1)).days, "score_date": lost},
    ]


async def test_postgresql_has_no_day_keys_to_add(postgres_engine: AsyncEngine) -> None:
    """PostgreSQL keeps control_score_rows' DATE: no statement."""
    with statements(postgres_engine) as sent:
        async with transaction(postgres_engine) as conn:
            await keys.ensure_days(conn, [date(2026, 11, 27)])
    assert sent == []

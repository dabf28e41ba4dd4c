"""One writing run per database: the second is refused, and a dead run's lock does not block the next."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from fetcher.errors import LockHeld
from fetcher.models import Shard
from fetcher.store import ledger
from fetcher.store.engine import is_sqlite, transaction
from fetcher.store.lock import LOCK_NAME, VACUUM_LEASE_SECONDS, Holder, RunLock, this_process
from fetcher.store.schema import run_lock
from tests.dbutil import count


async def test_a_second_run_is_refused_while_the_first_holds_the_lock(engine: AsyncEngine) -> None:
    async with RunLock(engine, this_process("first")):
        with pytest.raises(LockHeld, match="another fetcher run") as caught:
            async with RunLock(engine, Holder("second", "otherhost", 4242)):
                pass
    assert caught.value.exit_code == 3


async def _refusal(engine: AsyncEngine) -> str:
    with pytest.raises(LockHeld) as caught:
        async with RunLock(engine, Holder("second", "otherhost", 4242)):
            pass
    return str(caught.value)


async def test_the_refusal_stays_the_same_while_the_holder_renews_its_lock(engine: AsyncEngine) -> None:
    """It named the lease's expiry on SQLite, a time each renewal moved (40 s between two refusals)."""
    async with RunLock(engine, this_process("first")):
        before = await _refusal(engine)
        async with transaction(engine) as conn:  # what the holder's renewal does
            renewed = datetime.now(UTC) + timedelta(seconds=160)
            await conn.execute(sa.update(run_lock).values(expires_at=renewed))
        after = await _refusal(engine)
    assert before == after
    assert "wait for it to finish" in before
    assert "expire" not in before


async def test_sqlite_refusal_names_the_holder_since_when_and_that_it_renews_its_lock(
    sqlite_engine: AsyncEngine,
) -> None:
    me = this_process("first")
    async with RunLock(sqlite_engine, me):
        async with transaction(sqlite_engine, write=False) as conn:
            since = (await conn.execute(sa.select(run_lock.c.acquired_at))).scalar_one()
        refused = await _refusal(sqlite_engine)
    assert f"(pid {me.pid} on {me.host}, run first, since {since:%Y-%m-%d %H:%M:%S} UTC) holds database " in refused
    assert refused.endswith(
        f"; wait for it to finish: it renews its lock every 40 s while it runs (a run killed on {me.host} frees it "
        "at once for the next run started there; from another host, 120 s after its last renewal)"
    )


@pytest.mark.parametrize(
    ("held_by", "refused", "said"),
    [
        ("first", "vacuum-2", "another fetcher run (pid {pid}"),
        ("vacuum-1", "second", "another fetcher vacuum (pid {pid}"),
    ],
)
async def test_sqlite_refusal_gives_the_renewal_figures_of_the_lease_held_not_its_own(
    sqlite_engine: AsyncEngine, held_by: str, refused: str, said: str
) -> None:
    """`vacuum` refused by a run said the holder renews every 7200 s (21600 s from another host): its own
    lease's figures; a run refused by a vacuum said 40 s (120 s)."""

    def lease_of(run_id: str) -> float | None:  # as `fetcher vacuum` takes the lock
        return VACUUM_LEASE_SECONDS if run_id.startswith("vacuum-") else None

    every, lease = (7200, 21600) if held_by.startswith("vacuum-") else (40, 120)
    async with RunLock(sqlite_engine, this_process(held_by), lease_seconds=lease_of(held_by)):
        with pytest.raises(LockHeld) as caught:
            async with RunLock(sqlite_engine, Holder(refused, "otherhost", 4242), lease_seconds=lease_of(refused)):
                pass
    message = str(caught.value)
    assert message.startswith(said.format(pid=os.getpid()))
    assert f"it renews its lock every {every} s while it runs" in message
    assert f"from another host, {lease} s after its last renewal)" in message


@pytest.mark.postgres
async def test_postgres_refusal_names_a_holder_that_wrote_no_ledger_row(postgres_engine: AsyncEngine) -> None:
    """`archive compact` writes no `fetch_runs` row: its holder was left out (`another fetcher run holds the
    lock of database ...`); the lock's session now says it."""
    me = this_process("archive-compact-1")
    async with RunLock(postgres_engine, me):
        with pytest.raises(LockHeld) as caught:
            async with RunLock(postgres_engine, Holder("second", "otherhost", 4242)):
                pass
    message = str(caught.value)
    assert message.startswith(
        f"another fetcher archive compact (pid {me.pid} on {me.host}, run archive-compact-1, since "
    )
    assert message.endswith("; wait for it to finish: a killed run frees the lock at once")


async def test_the_lock_is_free_again_after_the_run(engine: AsyncEngine) -> None:
    async with RunLock(engine, this_process("first")):
        pass

    async with RunLock(engine, Holder("second", "otherhost", 4242)):
        pass

    if is_sqlite(engine):
        assert await count(engine, run_lock) == 0


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


async def _plant_lease(engine: AsyncEngine, host: str, pid: int, expires_in: timedelta) -> None:
    now = datetime.now(UTC)
    async with transaction(engine) as conn:
        await conn.execute(
            sa.insert(run_lock).values(
                name=LOCK_NAME, run_id="killed", host=host, pid=pid, acquired_at=now, expires_at=now + expires_in
            )
        )


async def _lease_holder(engine: AsyncEngine) -> tuple[str, str, int]:
    async with transaction(engine, write=False) as conn:
        row = (await conn.execute(sa.select(run_lock).where(run_lock.c.name == LOCK_NAME))).one()
    return row.run_id, row.host, row.pid


async def test_a_lease_left_by_a_killed_process_on_this_host_is_taken_over(sqlite_engine: AsyncEngine) -> None:
    me = this_process("next")
    await _plant_lease(sqlite_engine, me.host, _dead_pid(), timedelta(minutes=2))

    async with RunLock(sqlite_engine, me):
        assert await _lease_holder(sqlite_engine) == ("next", me.host, me.pid)


async def test_an_expired_lease_from_another_host_is_taken_over(sqlite_engine: AsyncEngine) -> None:
    await _plant_lease(sqlite_engine, "elsewhere", 1, timedelta(seconds=-1))
    me = this_process("next")

    async with RunLock(sqlite_engine, me):
        assert await _lease_holder(sqlite_engine) == ("next", me.host, me.pid)


async def test_a_live_lease_from_another_host_is_respected(sqlite_engine: AsyncEngine) -> None:
    await _plant_lease(sqlite_engine, "elsewhere", 1, timedelta(minutes=2))

    with pytest.raises(LockHeld, match="pid 1 on elsewhere"):
        async with RunLock(sqlite_engine, this_process("next")):
            pass


@pytest.mark.postgres
async def test_a_killed_process_frees_the_postgres_lock_at_once(postgres_engine: AsyncEngine) -> None:
    engine = postgres_engine
    url = engine.url.render_as_string(hide_password=False)
    code = (
        "import asyncio, sys, time\n"
        "from fetcher.config import DatabaseConfig\n"
        "from fetcher.store.engine import create_engine\n"
        "from fetcher.store.lock import RunLock, this_process\n"
        "async def main():\n"
        "    async with RunLock(create_engine(DatabaseConfig(url=sys.argv[1])), this_process('victim')):\n"
        "        print('locked', flush=True)\n"
        "        time.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    victim = subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE)
    assert victim.stdout is not None
    assert victim.stdout.readline().strip() == b"locked"
    with pytest.raises(LockHeld):
        async with RunLock(engine, this_process("next")):
            pass

    victim.kill()
    victim.wait()
    await _backends_gone(engine)  # the server ends a killed client's backend when it reads the closed socket

    async with RunLock(engine, this_process("next")):
        pass


async def _backends_gone(engine: AsyncEngine) -> None:
    """Return once no backend of this database holds an advisory lock: a loaded server can take a moment to
    notice a killed client, and until then its backend (and the lock) lives on. No lease runs out here."""
    held = sa.text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    while True:
        async with engine.connect() as conn:
            if (await conn.execute(held)).scalar_one() == 0:
                return
        await asyncio.sleep(0.01)


@pytest.mark.postgres
async def test_a_lost_postgres_lock_is_reported_and_the_run_goes_on(
    postgres_engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    terminated, lost = asyncio.Event(), asyncio.Event()

    async def until_terminated(_seconds: float) -> None:  # the watch's pause ends when the test says so
        await terminated.wait()

    class Lost(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "lost the run lock" in record.getMessage():
                lost.set()

    handler = Lost()
    logging.getLogger("fetcher.store.lock").addHandler(handler)
    try:
        async with RunLock(postgres_engine, this_process("run"), sleep=until_terminated):
            async with postgres_engine.connect() as admin:
                await admin.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
            terminated.set()
            await asyncio.wait_for(lost.wait(), timeout=60)  # a hang guard, not a timing assumption
    finally:
        logging.getLogger("fetcher.store.lock").removeHandler(handler)

    assert "lost the run lock: its database connection was closed" in caplog.text


# ---------------------------------------------------------------------------------------------- shards


async def _started(engine: AsyncEngine, run_id: str, shard: Shard | None) -> None:
    """The ledger row a run writes once it holds its lock (the refused run names it)."""
    async with transaction(engine) as conn:
        await ledger.start_run(
            conn,
            run_id=run_id,
            command="run",
            started_at=datetime.now(UTC),
            tenants_total=1,
            host="holderhost",
            pid=777,
            shard=shard,
        )


@pytest.mark.postgres
async def test_postgres_runs_the_shards_of_a_database_side_by_side(postgres_engine: AsyncEngine) -> None:
    async with contextlib.AsyncExitStack() as held:
        for index in (1, 2, 3, 4):
            await held.enter_async_context(RunLock(postgres_engine, this_process(f"s{index}"), shard=Shard(index, 4)))


@pytest.mark.postgres
async def test_a_second_copy_of_a_shard_is_refused_naming_the_holder(postgres_engine: AsyncEngine) -> None:
    async with RunLock(postgres_engine, this_process("first"), shard=Shard(2, 4)):
        await _started(postgres_engine, "first", Shard(2, 4))
        with pytest.raises(LockHeld) as caught:
            async with RunLock(postgres_engine, Holder("copy", "otherhost", 4242), shard=Shard(2, 4)):
                pass

    assert caught.value.exit_code == 3
    assert "another fetcher run of shard 2/4 (pid 777 on holderhost, run first, since" in str(caught.value)
    async with RunLock(postgres_engine, this_process("after"), shard=Shard(2, 4)):  # and it is free once left
        pass


@pytest.mark.postgres
@pytest.mark.parametrize(("first", "second"), [(None, Shard(1, 2)), (Shard(1, 2), None)])
async def test_an_unsharded_run_and_a_shard_exclude_each_other(
    postgres_engine: AsyncEngine, first: Shard | None, second: Shard | None
) -> None:
    """An unsharded run does every tenant: it cannot run beside any shard."""
    async with RunLock(postgres_engine, this_process("first"), shard=first):
        await _started(postgres_engine, "first", first)
        with pytest.raises(LockHeld, match=r"another fetcher run.* \(pid 777 on holderhost, run first"):
            async with RunLock(postgres_engine, Holder("second", "otherhost", 4242), shard=second):
                pass


async def test_sqlite_refuses_a_second_shard_at_the_same_time(sqlite_engine: AsyncEngine) -> None:
    async with RunLock(sqlite_engine, this_process("first"), shard=Shard(1, 2)):
        with pytest.raises(LockHeld) as caught:
            async with RunLock(sqlite_engine, Holder("second", "otherhost", 4242), shard=Shard(2, 2)):
                pass

    assert caught.value.exit_code == 3
    message = str(caught.value)
    assert message.startswith(f"shard 2/2: shard 1/2 (pid {os.getpid()} on ")
    assert "which takes one writer: run the shards one after another, or side by side on PostgreSQL" in message


async def test_sqlite_names_the_shard_of_a_copy_that_holds_the_lease(sqlite_engine: AsyncEngine) -> None:
    async with RunLock(sqlite_engine, this_process("first"), shard=Shard(1, 2)):
        with pytest.raises(LockHeld, match="another fetcher run of shard 1/2 "):
            async with RunLock(sqlite_engine, Holder("copy", "otherhost", 4242), shard=Shard(1, 2)):
                pass

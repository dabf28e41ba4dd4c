"""`fetcher.store.vacuum`: SQLite's free pages measured, and given back to the disk under the run lock, after a
disk check, on a database migration 0011 has just moved (a copy of the fixture made by main at 72c5d27)."""

from __future__ import annotations

import contextlib
import gzip
import shutil
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from fetcher.config import DatabaseConfig
from fetcher.errors import LockHeld, NotEnoughDisk
from fetcher.store.convert import DiskSpace
from fetcher.store.engine import connect, create_engine, migrate
from fetcher.store.lock import Holder, RunLock
from fetcher.store.vacuum import (
    POSTGRESQL_ADVICE,
    POSTGRESQL_WITHOUT_AUTOVACUUM,
    FreePages,
    Server,
    check_vacuum_space,
    free_pages,
    free_pages_hint,
    postgresql_line,
    postgresql_server,
    sqlite_temp_folder,
    vacuum,
    vacuumed_line,
    worth_vacuuming,
)
from fetcher.text import human_size
from tests.store.test_migration_0011 import FIXTURES, assert_same, snapshot


@pytest.fixture
async def migrated(tmp_path: Path) -> AsyncIterator[tuple[AsyncEngine, str]]:
    """(engine, URL) of the old fixture migrated to head: 0011 left the old control_scores' pages free."""
    path = tmp_path / "old.db"
    with gzip.open(FIXTURES / "fixture.sqlite.gz") as src, path.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    url = f"sqlite+aiosqlite:///{path}"
    engine = create_engine(DatabaseConfig(url=url))
    await migrate(engine)
    yield engine, url
    await engine.dispose()


async def _pages(engine: AsyncEngine) -> FreePages:
    async with connect(engine) as conn:
        return await conn.run_sync(free_pages)


async def test_vacuum_gives_the_free_pages_back_and_keeps_every_value(migrated: tuple[AsyncEngine, str]) -> None:
    engine, url = migrated
    before = await _pages(engine)
    values = await snapshot(url)

    done = await vacuum(engine)

    after = await _pages(engine)
    assert before.free_bytes > 500_000  # the old table's pages
    assert done.before >= before.file_bytes  # on disk: the file, and the log beside it
    path = Path(url.removeprefix("sqlite+aiosqlite:///"))
    assert done.database == after.file_bytes
    assert done.after == path.stat().st_size + _wal_size(path) < done.before  # the log: the lease's release
    assert after.free_bytes == 0
    assert after.file_bytes <= before.file_bytes - before.free_bytes
    assert Path(url.removeprefix("sqlite+aiosqlite:///")).stat().st_size == after.file_bytes  # WAL checkpointed
    assert_same(values, await snapshot(url))


async def test_a_reader_holding_the_log_is_said_and_the_next_checkpoint_gives_the_space_back(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    wal = tmp_path / "old.db-wal"
    with gzip.open(FIXTURES / "fixture.sqlite.gz") as src, path.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    engine = create_engine(DatabaseConfig(url=f"sqlite+aiosqlite:///{path}", busy_timeout_seconds=0.2))
    try:
        await migrate(engine)
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as reader:
            reader.execute("BEGIN")
            reader.execute("SELECT COUNT(*) FROM control_score_rows").fetchone()  # a read snapshot, kept open
            held = await vacuum(engine)
            on_disk_held = path.stat().st_size + wal.stat().st_size
            reader.execute("COMMIT")
            size_held = path.stat().st_size
        reader_gone = await vacuum(engine)  # no free pages left: nothing to do
    finally:
        await engine.dispose()

    assert not held.checkpointed
    assert held.after == on_disk_held > held.before  # the old file stayed, the rebuilt pages are in the log
    assert held.database < held.after
    line = vacuumed_line(engine, held)
    assert f"-> {human_size(held.after)} on disk ({human_size(held.after - held.database)} to give back" in line
    assert f"down to {human_size(held.database)}, at the next checkpoint: a reader holds the write-ahead" in line
    assert "given back" not in line
    assert not reader_gone.ran
    assert path.stat().st_size == held.database < size_held  # the last connection closed checkpointed the log
    assert not wal.exists()


async def test_with_no_free_pages_nothing_is_done_not_even_the_run_lock(migrated: tuple[AsyncEngine, str]) -> None:
    """No VACUUM (nor its disk check) when there is nothing to give back, even while a run holds the lock."""
    engine, url = migrated
    await vacuum(engine)
    path = Path(url.removeprefix("sqlite+aiosqlite:///"))
    version = _schema_version(path)  # VACUUM adds one to it

    def no_check(folder: Path) -> DiskSpace:
        raise AssertionError(f"disk checked in {folder}")

    async with RunLock(engine, Holder("nightly", "otherhost", 4242)):
        done = await vacuum(engine, free_space=no_check)
        size = path.stat().st_size + _wal_size(path)

    assert not done.ran
    assert done.before == done.after == size
    assert vacuumed_line(engine, done).endswith(
        f": nothing to give back (0 free pages), {human_size(done.after)} on disk"
    )
    assert _schema_version(path) == version


def _schema_version(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("PRAGMA schema_version").fetchone()[0])


def _wal_size(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


async def test_vacuum_refuses_in_one_line_without_the_disk_it_needs(migrated: tuple[AsyncEngine, str]) -> None:
    engine, _ = migrated
    before = await _pages(engine)

    with pytest.raises(NotEnoughDisk) as refused:
        await vacuum(engine, free_space=lambda folder: DiskSpace(100_000, str(folder)))

    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("vacuum needs about ")
    assert "which has 100 kB" in message
    assert "--skip-disk-check" in message
    assert await _pages(engine) == before


async def test_vacuum_never_runs_while_a_run_holds_the_lock(migrated: tuple[AsyncEngine, str]) -> None:
    engine, _ = migrated
    before = await _pages(engine)

    async with RunLock(engine, Holder("nightly", "otherhost", 4242)):
        with pytest.raises(LockHeld, match="another fetcher run"):
            await vacuum(engine)

    assert await _pages(engine) == before


async def test_vacuum_holds_the_run_lock_while_it_runs(migrated: tuple[AsyncEngine, str]) -> None:
    """Its lease is in run_lock when the disk check runs, just before VACUUM, and gone after."""
    engine, url = migrated
    path = url.removeprefix("sqlite+aiosqlite:///")
    seen: list[tuple[str, int]] = []

    def holders() -> list[tuple[str, int]]:
        with contextlib.closing(sqlite3.connect(path)) as other:
            return other.execute("SELECT run_id, pid FROM run_lock").fetchall()

    def free(folder: Path) -> DiskSpace:
        seen.extend(holders())
        return DiskSpace(shutil.disk_usage(folder).free, str(folder))

    await vacuum(engine, free_space=free, holder=Holder("vacuum-1", "thishost", 1))

    assert seen == [("vacuum-1", 1)] * 2  # once for each place checked
    assert holders() == []


async def test_the_disk_check_counts_one_disk_once_for_each_copy(migrated: tuple[AsyncEngine, str]) -> None:
    """The temporary database and the write-ahead log both hold the live data: on one disk, twice its size."""
    engine, url = migrated
    pages = await _pages(engine)
    folder = Path(url.removeprefix("sqlite+aiosqlite:///")).parent
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SQLITE_TMPDIR", str(folder))
        async with connect(engine) as conn:
            await conn.run_sync(check_vacuum_space, pages, lambda where: DiskSpace(2 * pages.live_bytes, str(where)))
            with pytest.raises(NotEnoughDisk, match=r"SQLite's temporary folder|the database's folder"):
                await conn.run_sync(
                    check_vacuum_space, pages, lambda where: DiskSpace(2 * pages.live_bytes - 1, str(where))
                )


async def test_sqlite_writes_its_temporary_database_where_sqlite_tmpdir_says(
    sqlite_engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SQLITE_TMPDIR", str(tmp_path))
    async with connect(sqlite_engine) as conn:
        assert await conn.run_sync(sqlite_temp_folder) == tmp_path
        await conn.commit()
        await conn.run_sync(lambda sync: sync.connection.dbapi_connection.cursor().execute("PRAGMA temp_store = 2"))
        assert await conn.run_sync(sqlite_temp_folder) is None


async def test_migrate_tells_of_the_free_pages_until_they_are_vacuumed(migrated: tuple[AsyncEngine, str]) -> None:
    engine, _ = migrated
    async with connect(engine) as conn:  # 0011 freed under a megabyte here: free 12 MB more
        await conn.exec_driver_sql("CREATE TABLE scratch (body BLOB)")
        await conn.exec_driver_sql("INSERT INTO scratch SELECT randomblob(100000) FROM control_score_rows LIMIT 120")
        await conn.commit()
        await conn.exec_driver_sql("DROP TABLE scratch")
        await conn.commit()

    hint = await free_pages_hint(engine)
    await vacuum(engine)

    assert hint is not None
    assert "MB of the file's" in hint
    assert "`fetcher vacuum` gives them back" in hint
    assert await free_pages_hint(engine) is None


@pytest.mark.parametrize(
    ("file_bytes", "free_bytes", "worth"),
    [
        (80_000_000, 60_000_000, True),  # the demo database after 0011
        (80_000_000, 9_999_999, False),  # under 10 MB: not worth a line
        (1_000_000_000, 100_000_000, False),  # a tenth of a large file: SQLite reuses it soon enough
        (1_000_000_000, 200_000_000, True),
    ],
)
def test_free_pages_are_worth_telling_of_when_they_are_many_and_a_good_share(
    file_bytes: int, free_bytes: int, worth: bool
) -> None:
    assert worth_vacuuming(FreePages(file_bytes, free_bytes)) is worth


@pytest.mark.parametrize("autovacuum", [True, False], ids=["autovacuum", "autovacuum off"])
def test_on_postgresql_the_line_says_the_size_and_what_autovacuum_does_or_that_it_is_off(autovacuum: bool) -> None:
    engine = create_engine(DatabaseConfig(url="postgresql+asyncpg://app:hunter22@db.example/scores"))

    line = postgresql_line(engine, Server(94_000_000, autovacuum=autovacuum))

    said = POSTGRESQL_ADVICE if autovacuum else POSTGRESQL_WITHOUT_AUTOVACUUM
    assert line == f"postgresql+asyncpg://app:***@db.example/scores: {human_size(94_000_000)} on disk; {said}"
    assert ("autovacuum is off on this server" in line) is not autovacuum


@pytest.mark.postgres
async def test_a_postgresql_servers_database_size_and_autovacuum_are_read(postgres_engine: AsyncEngine) -> None:
    server = await postgresql_server(postgres_engine)

    async with connect(postgres_engine) as conn:
        files = await conn.scalar(sa.text("SELECT sum(pg_relation_size(oid)) FROM pg_class"))
        setting = await conn.scalar(sa.text("SHOW autovacuum"))
    assert server.size >= files > 0  # the database's relations' files, and more
    assert server.autovacuum is (setting == "on")


async def _database_with_a_large_log(path: Path) -> AsyncEngine:
    """A migrated database of 12 MB of live rows and 6 MB of free pages, so that a VACUUM under a reader leaves
    more in the -wal than SQLite's own checkpoints would (wal_autocheckpoint: 1000 pages, 4 MB). Migrated
    first: `migrate` refuses a file of tables that are not the fetcher's."""
    migrating = create_engine(DatabaseConfig(url=f"sqlite+aiosqlite:///{path}"))
    await migrate(migrating)
    await migrating.dispose()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE kept (body BLOB)")
        conn.executemany("INSERT INTO kept VALUES (randomblob(100000))", [()] * 120)
        conn.execute("CREATE TABLE scratch (body BLOB)")
        conn.executemany("INSERT INTO scratch VALUES (randomblob(100000))", [()] * 60)
        conn.commit()
        conn.execute("DROP TABLE scratch")
        conn.commit()
    return create_engine(DatabaseConfig(url=f"sqlite+aiosqlite:///{path}", busy_timeout_seconds=0.2))


async def test_with_no_free_pages_a_large_log_a_reader_left_is_still_checkpointed(tmp_path: Path) -> None:
    """A vacuum under a reader leaves the rebuilt pages in the -wal; the next one, with no free pages left and the
    reader still connected (so no last connection's checkpoint on close), truncates it and says the sizes."""
    path = tmp_path / "scores.db"
    engine = await _database_with_a_large_log(path)
    try:
        await migrate(engine)
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as reader:
            reader.execute("BEGIN")
            reader.execute("SELECT COUNT(*) FROM kept").fetchone()
            held = await vacuum(engine)
            reader.execute("COMMIT")  # done reading, still connected
            log = _wal_size(path)
            done = await vacuum(engine)
            after = path.stat().st_size + _wal_size(path)
    finally:
        await engine.dispose()

    assert not held.checkpointed
    assert log > 4_200_000
    assert not done.ran  # no VACUUM: nothing to give back
    assert done.checkpointed
    assert done.before >= log
    assert done.after == after < done.before - 4_000_000  # the log truncated: what is left is the lease's release
    assert _wal_size(path) < 100_000
    assert vacuumed_line(engine, done) == (
        f"sqlite+aiosqlite:///{path}: nothing to give back (0 free pages); the write-ahead log checkpointed and "
        f"truncated, {human_size(done.before)} -> {human_size(done.after)} on disk "
        f"({human_size(done.before - done.after)} given back to the disk)"
    )


async def test_with_no_free_pages_a_large_log_a_reader_still_holds_is_said(tmp_path: Path) -> None:
    path = tmp_path / "scores.db"
    engine = await _database_with_a_large_log(path)
    try:
        await migrate(engine)
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as reader:
            reader.execute("BEGIN")
            reader.execute("SELECT COUNT(*) FROM kept").fetchone()
            await vacuum(engine)
            done = await vacuum(engine)  # the reader still reads: the log cannot be truncated
            log = _wal_size(path)
            reader.execute("COMMIT")
    finally:
        await engine.dispose()

    assert not done.ran
    assert not done.checkpointed
    assert log > 4_200_000
    assert vacuumed_line(engine, done) == (
        f"sqlite+aiosqlite:///{path}: nothing to give back (0 free pages), {human_size(done.after)} on disk; "
        f"{human_size(done.after - done.database)} to give back at the next checkpoint, down to "
        f"{human_size(done.database)}: a reader holds the write-ahead log"
    )


async def test_vacuum_says_it_waits_for_a_reader_only_when_one_holds_the_log(tmp_path: Path) -> None:
    """It waited busy_timeout silently; now the checkpoint is tried without waiting first, and only a reader
    still reading makes it say, before the wait, how long it will wait."""
    path = tmp_path / "scores.db"
    engine = await _database_with_a_large_log(path)
    told: list[float] = []
    try:
        await migrate(engine)
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as reader:
            reader.execute("BEGIN")
            reader.execute("SELECT COUNT(*) FROM kept").fetchone()
            held = await vacuum(engine, waiting=told.append)
            reader.execute("COMMIT")
        told_while_reading = list(told)
        alone = await vacuum(engine, waiting=told.append)  # the reader gone: no wait, nothing said
    finally:
        await engine.dispose()

    assert told_while_reading == [0.2]
    assert not held.checkpointed
    assert told == [0.2]
    assert not alone.ran or alone.checkpointed

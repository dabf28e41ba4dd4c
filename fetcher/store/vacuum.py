"""Giving a SQLite database's free pages back to the disk (`fetcher vacuum`), and telling when it would pay.

SQLite keeps the pages a DELETE frees inside its file, for its next writes, until VACUUM rebuilds the file:
after migration 0011 moved the control scores into the compact layout, the demo database's 76 MB table took
19 MB, and the file kept its size (recompressing the archive frees pages too). `free_pages` measures that
space; `fetcher migrate` and `fetcher archive compact` name it when it is large (`worth_vacuuming`), and
`vacuum` gives it back.

VACUUM copies the live pages into a temporary database in SQLite's temporary folder, then writes them back
through the write-ahead log beside the database (WAL mode): it needs about the live data's size free in
each place, twice that where both are on one disk. `check_vacuum_space` refuses (`NotEnoughDisk`) before it
starts otherwise. With no free pages there is nothing to give back, and `vacuum` says so without any of this;
but when the write-ahead log is larger than SQLite's own checkpoints leave it (`wal_autocheckpoint` pages, 4 MB
by default: they restart the log, never shrink its file, and only the last connection to close truncates it),
as a vacuum under a reader leaves it while that reader stays connected, it still checkpoints and truncates the
log, under the run lock, and says the sizes.

VACUUM holds the write lock for its whole length, so `vacuum` runs under the run lock (`RunLock`): never during
a fetch. A run started meanwhile never runs beside it: taking the run lock is a write, which waits for the
write lock up to busy_timeout_seconds, then finds the lease free (the run goes on after the vacuum), or finds
the vacuum's lease not yet dropped (`LockHeld`), or gives up (`DatabaseLocked`) when the vacuum outlasts it.

The sizes told are what the files take on disk, the database and its write-ahead log: a reader that keeps
the log from being truncated leaves the old file at its size and the rebuilt pages in the log beside it,
more on disk than before until the next checkpoint.

PostgreSQL is not vacuumed here: migration 0011 drops the old table there, which gives its space back at
once, and autovacuum already makes deleted rows' space reusable. Shrinking a table further (VACUUM FULL,
pg_repack) locks or rewrites it, which is the DBA's call (`POSTGRESQL_ADVICE`). `postgresql_line` says so
with the database's size, once the database has been reached (and its schema found current); when the
server runs with autovacuum off, it says that instead.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from fetcher.errors import DatabaseError, NotEnoughDisk
from fetcher.store.convert import DiskSpace, database_free_space
from fetcher.store.engine import connect, display_url, sqlite_file
from fetcher.store.lock import VACUUM_LEASE_SECONDS, VACUUM_RUN_PREFIX, Holder, RunLock, this_process
from fetcher.text import human_size

# Told after `fetcher migrate` when the free pages are at least this many bytes and this share of the file.
WORTH_BYTES = 10_000_000
WORTH_SHARE = 0.2
CHECKPOINT = "PRAGMA wal_checkpoint(TRUNCATE)"  # the log copied into the file, then truncated to nothing
POSTGRESQL_ADVICE = (
    "PostgreSQL gives a dropped table's space back at once and autovacuum reuses deleted rows' space, so there "
    "is nothing to vacuum here; shrinking a table further (VACUUM FULL, pg_repack) locks or rewrites it: your "
    "DBA's call"
)
POSTGRESQL_WITHOUT_AUTOVACUUM = (
    "autovacuum is off on this server, so deleted rows' space is reused only after a VACUUM (a plain one takes "
    "no exclusive lock); that, like shrinking a table (VACUUM FULL, pg_repack), is your DBA's call"
)

# SQLite's temporary folder on Unix, in the order it looks (os_unix.c, unixTempFileDir): the first that is a
# folder it may write and enter.
_TEMP_ENVIRONMENT = ("SQLITE_TMPDIR", "TMPDIR")
_TEMP_FOLDERS = ("/var/tmp", "/usr/tmp", "/tmp", ".")

FreeSpace = Callable[[Path], DiskSpace]
Waiting = Callable[[float], None]  # told the seconds it will wait for readers, before the wait


@dataclass(frozen=True)
class FreePages:
    """A SQLite file's size and how much of it is free pages, in bytes."""

    file_bytes: int
    free_bytes: int

    @property
    def live_bytes(self) -> int:
        return self.file_bytes - self.free_bytes


@dataclass(frozen=True)
class Vacuumed:
    """What `vacuum` did: the bytes on disk (the database file and its write-ahead log) before and after;
    `database`: the database's own bytes after (what the file comes down to once checkpointed);
    `checkpointed`: whether the write-ahead log was copied into the file and truncated, so the disk has the
    space back now (False: a reader held it, and the next checkpoint, after a run or once the readers finish,
    gives it back); `ran`: False when there were no free pages, so no VACUUM ran; `log_only`: no VACUUM, but a
    checkpoint of a large write-ahead log (`checkpointed` says whether it finished)."""

    before: int
    after: int
    database: int
    checkpointed: bool = True
    ran: bool = True
    log_only: bool = False


def free_pages(conn: Connection) -> FreePages:
    """The database's pages and free pages, in bytes (`PRAGMA page_count`, `freelist_count`)."""
    page_size = int(conn.exec_driver_sql("PRAGMA page_size").scalar_one())
    pages = int(conn.exec_driver_sql("PRAGMA page_count").scalar_one())
    free = int(conn.exec_driver_sql("PRAGMA freelist_count").scalar_one())
    return FreePages(pages * page_size, free * page_size)


def worth_vacuuming(pages: FreePages) -> bool:
    """Whether the free pages are enough to tell the user about: WORTH_BYTES and WORTH_SHARE of the file."""
    return pages.free_bytes >= WORTH_BYTES and pages.free_bytes >= WORTH_SHARE * pages.file_bytes


def vacuum_hint(where: str, pages: FreePages) -> str:
    """The line `fetcher migrate` and `fetcher archive compact` end with when `worth_vacuuming`."""
    return (
        f"{where}: {human_size(pages.free_bytes)} of the file's {human_size(pages.file_bytes)} are free pages "
        "SQLite keeps for reuse; `fetcher vacuum` gives them back to the disk"
    )


async def free_pages_hint(engine: AsyncEngine) -> str | None:
    """`vacuum_hint` when a SQLite database is `worth_vacuuming` (after `fetcher migrate` and `fetcher archive
    compact`); None otherwise (PostgreSQL: always)."""
    if sqlite_file(engine) is None:
        return None
    async with connect(engine) as conn:
        pages = await conn.run_sync(free_pages)
    return vacuum_hint(display_url(engine), pages) if worth_vacuuming(pages) else None


def sqlite_temp_folder(conn: Connection) -> Path | None:
    """Where SQLite writes VACUUM's temporary database; None when it keeps it in memory (temp_store)."""
    if int(conn.exec_driver_sql("PRAGMA temp_store").scalar_one()) == 2:
        return None
    candidates = [os.environ.get(name, "") for name in _TEMP_ENVIRONMENT] + list(_TEMP_FOLDERS)
    for candidate in filter(None, candidates):
        if os.path.isdir(candidate) and os.access(candidate, os.W_OK | os.X_OK):
            return Path(candidate)
    return Path(".")


def _disk(folder: Path) -> DiskSpace:
    return DiskSpace(_free(folder), str(folder))


def _free(folder: Path) -> int:
    import shutil

    return shutil.disk_usage(folder).free


def check_vacuum_space(conn: Connection, pages: FreePages, free_space: FreeSpace = _disk) -> None:
    """Refuse (`NotEnoughDisk`, one line) a VACUUM the disks cannot hold: the live data's size in the temporary
    folder and again beside the database (its write-ahead log), counted once per disk."""
    database = database_free_space(conn)
    if database is None:
        return  # in memory
    places = [(Path(database.where), "the database's folder")]
    temp = sqlite_temp_folder(conn)
    if temp is not None:
        places.append((temp, "SQLite's temporary folder"))
    needs: dict[int, int] = {}
    for folder, _ in places:
        device = os.stat(folder).st_dev
        needs[device] = needs.get(device, 0) + pages.live_bytes
    for folder, what in places:
        needed = needs[os.stat(folder).st_dev]
        space = free_space(folder)
        if space.free < needed:
            raise NotEnoughDisk(
                f"vacuum needs about {human_size(needed)} free in {what} {space.where}, which has "
                f"{human_size(space.free)}: free some space (or set $SQLITE_TMPDIR to a folder on a roomier "
                f"disk), or start anyway with --skip-disk-check"
            )


async def vacuum(
    engine: AsyncEngine,
    *,
    check_disk: bool = True,
    free_space: FreeSpace = _disk,
    holder: Holder | None = None,
    waiting: Waiting | None = None,
) -> Vacuumed:
    """VACUUM a SQLite database under the run lock (`LockHeld` if a run holds it), after the disk check, then
    checkpoint the write-ahead log so the file shrinks on disk. Returns the bytes on disk before and after;
    with no free pages, no VACUUM (`ran` False): nothing is done, no lock taken, unless the write-ahead log is
    larger than SQLite's own checkpoints keep it, which is then checkpointed and truncated (`log_only`).
    The checkpoint is tried first without waiting; only when a reader holds the log is `waiting` told the
    seconds it will then wait for it (busy_timeout), before the wait."""
    async with connect(engine) as conn:
        pages = await conn.run_sync(free_pages)
        usual_log = await conn.run_sync(_usual_log_bytes)
    holder = holder or this_process(f"{VACUUM_RUN_PREFIX}{uuid.uuid4()}")
    if pages.free_bytes == 0:
        if _log_size(engine) > usual_log:
            return await _checkpoint_only(engine, holder, waiting)
        size = on_disk(engine, pages)
        return Vacuumed(size, size, pages.file_bytes, ran=False)
    async with RunLock(engine, holder, lease_seconds=VACUUM_LEASE_SECONDS), connect(engine) as conn:
        pages = await conn.run_sync(free_pages)
        before = on_disk(engine, pages)
        if check_disk:
            await conn.run_sync(check_vacuum_space, pages, free_space)
        await conn.commit()
        checkpointed = await conn.run_sync(_on_driver, display_url(engine), ("VACUUM", CHECKPOINT), waiting)
        pages = await conn.run_sync(free_pages)
    watched = sqlite_file(engine)
    if watched is not None:
        watched.check()
    # Measured once the lease is dropped: that write goes to the log too, which a reader may keep from shrinking.
    return Vacuumed(before, on_disk(engine, pages), pages.file_bytes, checkpointed)


async def _checkpoint_only(engine: AsyncEngine, holder: Holder, waiting: Waiting | None) -> Vacuumed:
    """No free pages, a large write-ahead log: checkpoint and truncate it, under the run lock (its wait for
    readers holds back writers, so never during a run's writes)."""
    async with RunLock(engine, holder, lease_seconds=VACUUM_LEASE_SECONDS), connect(engine) as conn:
        pages = await conn.run_sync(free_pages)
        before = on_disk(engine, pages)
        await conn.commit()
        checkpointed = await conn.run_sync(_on_driver, display_url(engine), (CHECKPOINT,), waiting)
    watched = sqlite_file(engine)
    if watched is not None:
        watched.check()
    return Vacuumed(before, on_disk(engine, pages), pages.file_bytes, checkpointed, ran=False, log_only=True)


def _usual_log_bytes(conn: Connection) -> int:
    """The write-ahead log's size SQLite's own checkpoints keep it to: `wal_autocheckpoint` pages (a log that
    grew past it during one long transaction, or while a reader held it, keeps its size on disk)."""
    page_size = int(conn.exec_driver_sql("PRAGMA page_size").scalar_one())
    return int(conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one()) * page_size


def _log_size(engine: AsyncEngine) -> int:
    watched = sqlite_file(engine)
    return 0 if watched is None else _size(watched.path.with_name(watched.path.name + "-wal"))


def on_disk(engine: AsyncEngine, pages: FreePages) -> int:
    """What the database takes on disk, in bytes: its file and its write-ahead log (`-wal`) if there is one;
    the pages' size for an in-memory database."""
    watched = sqlite_file(engine)
    if watched is None:
        return pages.file_bytes
    return sum(_size(path) for path in (watched.path, watched.path.with_name(watched.path.name + "-wal")))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _on_driver(conn: Connection, where: str, statements: tuple[str, ...], waiting: Waiting | None = None) -> bool:
    """`statements` (VACUUM, then a checkpoint that copies the write-ahead log into the file and truncates it;
    or the checkpoint alone); False when a reader kept the checkpoint from finishing (after busy_timeout). On
    the driver's own cursor: VACUUM cannot run in a transaction, and the engine's "begin" hook opens one for
    every statement it sends."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        for statement in statements:
            if statement == CHECKPOINT:
                return _checkpoint(cursor, waiting)
            cursor.execute(statement)
        return True
    except sqlite3.Error as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        what = statements[0].split("(")[0]
        raise DatabaseError(f"database {where}: {what} failed, the file is unchanged: {reason}") from None
    finally:
        cursor.close()


def _checkpoint(cursor: Any, waiting: Waiting | None) -> bool:
    """The truncating checkpoint, tried first without SQLite's busy wait; when a reader holds the log,
    `waiting` is told the busy timeout (seconds) and it is tried again with the wait. False: still held."""
    cursor.execute("PRAGMA busy_timeout")
    busy_ms = int(cursor.fetchone()[0])
    cursor.execute("PRAGMA busy_timeout = 0")
    try:
        held = _held(cursor)
    finally:
        cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
    if not held or busy_ms == 0:
        return not held
    if waiting is not None:
        waiting(busy_ms / 1000)
    return not _held(cursor)


def _held(cursor: Any) -> bool:
    cursor.execute(CHECKPOINT)
    row = cursor.fetchone()  # (busy, log frames, frames checkpointed)
    return bool(row and row[0])


@dataclass(frozen=True)
class Server:
    """What `fetcher vacuum` tells of a PostgreSQL database: its size in bytes (`pg_database_size`), and
    whether the server runs autovacuum."""

    size: int
    autovacuum: bool


async def postgresql_server(engine: AsyncEngine) -> Server:
    """The database's size and the server's autovacuum setting; `DatabaseUnavailable` (one line naming the
    database, no password) when it cannot be reached."""
    async with connect(engine) as conn:
        size = await conn.scalar(sa.text("SELECT pg_database_size(current_database())"))
        autovacuum = await conn.scalar(sa.text("SELECT current_setting('autovacuum')"))
    return Server(int(size or 0), autovacuum == "on")


def postgresql_line(engine: AsyncEngine, server: Server) -> str:
    """The line `fetcher vacuum` says on PostgreSQL: the database's size, and why there is nothing to do."""
    advice = POSTGRESQL_ADVICE if server.autovacuum else POSTGRESQL_WITHOUT_AUTOVACUUM
    return f"{display_url(engine)}: {human_size(server.size)} on disk; {advice}"


def vacuumed_line(engine: AsyncEngine, done: Vacuumed) -> str:
    """The line `fetcher vacuum` ends with: the bytes on disk before and after, never a shrink the disk has not
    seen; with a reader holding the write-ahead log, what the next checkpoint gives back."""
    where = display_url(engine)
    if done.log_only:
        return _log_line(where, done)
    if not done.ran:
        return f"{where}: nothing to give back (0 free pages), {human_size(done.after)} on disk"
    if done.checkpointed:
        given = f"{human_size(max(done.before - done.after, 0))} given back to the disk"
    else:
        pending = human_size(max(done.after - done.database, 0))
        given = (
            f"{pending} to give back to the disk, down to {human_size(done.database)}, at the next checkpoint: "
            "a reader holds the write-ahead log"
        )
    return f"{where}: vacuumed, {human_size(done.before)} -> {human_size(done.after)} on disk ({given})"


def _log_line(where: str, done: Vacuumed) -> str:
    """No free pages, a large write-ahead log checkpointed (or a reader kept it from being so)."""
    nothing = f"{where}: nothing to give back (0 free pages)"
    if done.checkpointed:
        given = human_size(max(done.before - done.after, 0))
        return (
            f"{nothing}; the write-ahead log checkpointed and truncated, {human_size(done.before)} -> "
            f"{human_size(done.after)} on disk ({given} given back to the disk)"
        )
    pending = human_size(max(done.after - done.database, 0))
    return (
        f"{nothing}, {human_size(done.after)} on disk; {pending} to give back at the next checkpoint, down to "
        f"{human_size(done.database)}: a reader holds the write-ahead log"
    )

"""Opening the database: the async engine, SQLite's settings, and the schema-revision gate.

A fresh SQLite database is created and migrated on first use, so the embedded default needs no
ceremony; any other database must be at the code's migration head (`fetcher migrate`).

Alembic is imported only to migrate, or when a database is not at the head: the check every command makes
on a current database reads `alembic_version` with plain SQL and the head from the scripts' file names
(`schema_head`), as Alembic's import costs each command about 0.2 s of CPU.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from fetcher.config import DatabaseConfig
from fetcher.config.database import ASYNCPG_PARAMETERS
from fetcher.errors import (
    DatabaseError,
    DatabaseGone,
    DatabaseLocked,
    DatabaseUnavailable,
    ForeignDatabase,
    SchemaDamaged,
    SchemaOutOfDate,
    SchemaTooNew,
)
from fetcher.store.convert import OPTIONS_ATTRIBUTE, MoveOptions
from fetcher.text import hide_password

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

log = logging.getLogger(__name__)

WRITE_OPTION = "fetcher_write"
BUSY_TIMEOUT_OPTION = "fetcher_busy_timeout"
MIGRATION_LOCK_KEY = 0x5EC5C0F
INVALID_CATALOG_NAME = "3D000"  # PostgreSQL: the database named in the URL does not exist
INVALID_AUTHORIZATION = "28000"  # PostgreSQL: e.g. the role (user) named in the URL does not exist
# No such database (3D), no such role or a wrong password (28). Not 08 (connection exception): a pooled
# connection that a failover or `pg_terminate_backend` killed is for `in_transaction` to retry.
REFUSED_SQLSTATE_CLASSES = frozenset({"3D", "28"})
VERSION_TABLE = "alembic_version"
REVISION = re.compile(r"\d{4}")  # this project's revisions: 0001, 0002, ... (file names and revision ids)
# Tables a fetcher made under names its schema no longer has (0011 replaced control_scores).
FORMER_TABLES = frozenset({"control_scores", "control_scores_table"})
REPAIR = 'see the README\'s "Repairing the schema revision"'


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def json_merge(old: str | None, new: str | None) -> str | None:
    """Shallow merge of two JSON objects, `new` winning: SQLite's twin of PostgreSQL's `jsonb ||`."""
    if old is None or new is None:
        return new if old is None else old
    merged = orjson.loads(old)
    merged.update(orjson.loads(new))
    return orjson.dumps(merged).decode()


def _as_is(value: Any) -> Any:
    return value


def bind_without_lookups() -> None:
    """Register sqlite3 adapters that bind None and bools as they are (NULL, 0 or 1, as without them).

    sqlite3 binds an exact int, float or str directly; any other value (None, a bool) it first looks up in
    its adapters and, finding none, asks the protocol class for `__adapt__`: that failed attribute lookup
    formats an AttributeError message and throws it away, for every such value of every row. A nightly run
    binds about 1,800 of them a tenant (control rows' NULLs and flags): registered, they cost 6 % fewer
    instructions a tenant (`python -m benchmarks.instructions`). Process-wide (sqlite3's registry is);
    idempotent."""
    sqlite3.register_adapter(type(None), _as_is)
    sqlite3.register_adapter(bool, int)


def _configure_sqlite(
    dbapi_connection: Any, busy_timeout_ms: int, *, read_only: bool = False, temp_in_memory: bool = False
) -> None:
    """Per-connection SQLite settings: WAL for a reader beside the writer, FKs on, a busy wait. A read-only
    connection changes nothing in the file (the journal mode is the writer's to set). `temp_in_memory`: see
    `create_engine`."""
    # pysqlite's implicit transactions off: the "begin" hook below starts them explicitly.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
    if not read_only:
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    if temp_in_memory:
        cursor.execute("PRAGMA temp_store = MEMORY")
    cursor.close()
    dbapi_connection.create_function("json_merge", 2, json_merge, deterministic=True)


class SqliteFile:
    """The SQLite file an engine opened, and its identity (device, inode) when it was first opened.

    A file deleted or replaced under a running fetcher is not an error SQLite reports: the open
    connections write on into the unlinked file, and a new connection creates a new, empty file at the
    path. So the identity is checked when each further connection opens and after each commit.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.identity: tuple[int, int] | None = None

    def _current(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return None
        return stat.st_dev, stat.st_ino

    def opened(self) -> None:
        """A connection was opened: remember the file the first time, refuse another file afterwards."""
        if self.identity is None:
            self.identity = self._current()
        else:
            self.check()

    def check(self) -> None:
        """Raise `DatabaseGone` if the file at the path is not the one first opened."""
        if self.identity is None:
            return
        current = self._current()
        if current != self.identity:
            what = "deleted" if current is None else "replaced by another file"
            raise DatabaseGone(
                f"database {self.path} was {what} while this fetcher had it open: what it wrote since is "
                "not in any file; restore the file from a backup, or run `fetcher migrate` to start a new one"
            )


_SQLITE_FILES: weakref.WeakKeyDictionary[Engine, SqliteFile] = weakref.WeakKeyDictionary()


def sqlite_file(engine: AsyncEngine | AsyncConnection) -> SqliteFile | None:
    """The file behind a SQLite engine (None for PostgreSQL or an in-memory database)."""
    sync = engine.sync_engine if isinstance(engine, AsyncEngine) else engine.engine.sync_engine
    return _SQLITE_FILES.get(sync)


def read_only_url(url: URL) -> URL:
    """A SQLite file opened read-only: `mode=ro`, or `immutable=1` when its folder cannot be written and the
    WAL index is absent (a copy on a reporting host: no writer can be there, and SQLite could not create it)."""
    path = Path(url.database or "")
    folder = path.absolute().parent
    shm = path.with_name(path.name + "-shm")
    immutable = not os.access(folder, os.W_OK) and not shm.exists()
    query = {"uri": "true", "mode": "ro", **({"immutable": "1"} if immutable else {})}
    return url.set(database=f"file:{quote(str(path.absolute()))}", query={**url.query, **query})


def server_settings(url: URL) -> tuple[URL, dict[str, str]]:
    """A PostgreSQL URL's query parameters that are not asyncpg.connect()'s own (`application_name`, `options`...)
    taken out as its `server_settings`, as asyncpg's own DSN parsing takes them (SQLAlchemy would pass each as a
    keyword connect() refuses); the configuration has already refused a repeated one."""
    settings = {name: str(value) for name, value in url.query.items() if name not in ASYNCPG_PARAMETERS}
    return url.difference_update_query(settings), settings


def _postgres_options(url: URL, kwargs: dict[str, Any]) -> URL:
    """The pool, and the URL's server settings as asyncpg's `server_settings` (`server_settings`)."""
    kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=10)
    url, settings = server_settings(url)
    if settings:
        kwargs["connect_args"] = {"server_settings": settings}
    return url


def create_engine(config: DatabaseConfig, *, read_only: bool = False, temp_in_memory: bool = False) -> AsyncEngine:
    """The run's one engine; nothing connects until first use. `read_only` (commands that only read): a SQLite
    file is opened read-only, so a read-only copy can be reported on; nothing is created.

    `temp_in_memory` (a fetch's saves): SQLite's temporary storage in memory (`temp_store = MEMORY`). A
    statement that may stop halfway inside a group commit's transaction keeps the pages it changes in a
    statement journal, which past 64 kB SQLite spills to a new temporary file (`$SQLITE_TMPDIR`, `/var/tmp`):
    a nightly run wrote 18 pages a tenant there, a sixth of its `pwrite`s (docs/benchmarks.md, "where the CPU
    goes beyond instructions"). In memory the journal is freed at the statement's end and holds at most the
    pages one statement changes (peak RSS unchanged). Not for `VACUUM` or migrations, whose temporary data can
    be the size of a table or of the database."""
    url = make_url(config.url)
    file_url = url.get_backend_name() == "sqlite" and bool(url.database) and url.database != ":memory:"
    read_only = read_only and file_url and not (url.database or "").startswith("file:")
    original = url
    # hide_parameters: neither `--log-sql` nor a driver error's text ever shows the values sent.
    kwargs: dict[str, Any] = {
        "json_serializer": _json_dumps,
        "json_deserializer": orjson.loads,
        "hide_parameters": True,
    }
    if url.get_backend_name() == "sqlite":
        bind_without_lookups()
        # SQLAlchemy's own busy handling is off: SQLite's busy_timeout does the waiting.
        kwargs["connect_args"] = {"timeout": config.busy_timeout_seconds}
        # Kept where `database_error` finds it, to say how long was waited.
        kwargs["execution_options"] = {BUSY_TIMEOUT_OPTION: config.busy_timeout_seconds}
        if read_only:
            url = read_only_url(url)
        elif url.database and url.database != ":memory:":
            _check_folder(Path(url.database))
    else:
        url = _postgres_options(url, kwargs)
    engine = create_async_engine(url, **kwargs)
    if url.get_backend_name() == "sqlite":
        busy_ms = int(config.busy_timeout_seconds * 1000)
        watched = _watch_file(engine, original.database)

        @event.listens_for(engine.sync_engine, "do_connect")
        def _before_connect(*_args: Any) -> None:
            # Before SQLite opens the path: at a deleted file's path it would create an empty one, which then
            # reads as "replaced" and, left behind, as a database that only needs `fetcher migrate`.
            if watched is not None:
                watched.check()

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            if watched is not None:
                watched.opened()
            _configure_sqlite(dbapi_connection, busy_ms, read_only=read_only, temp_in_memory=temp_in_memory)

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # A writing transaction takes the write lock at once, so a second writer waits out
            # busy_timeout instead of failing with SQLITE_BUSY when its read turns into a write.
            immediate = conn.get_execution_options().get(WRITE_OPTION, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _check_folder(database: Path) -> None:
    """The SQLite file's folder must exist: a mistyped path is refused, never made (with every folder above it)."""
    folder = database.parent
    if not folder.is_dir():
        said = "is not a folder" if folder.exists() else "does not exist"
        raise DatabaseUnavailable(
            f"cannot create database {database}: its folder {folder} {said}: check [database] url, or create the folder"
        )


def _watch_file(engine: AsyncEngine, database: str | None) -> SqliteFile | None:
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    watched = SqliteFile(Path(database).absolute())
    _SQLITE_FILES[engine.sync_engine] = watched
    return watched


def is_sqlite(engine: AsyncEngine | AsyncConnection) -> bool:
    return engine.dialect.name == "sqlite"


# ----------------------------------------------------------------------------------------- migrations


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    """Alembic's configuration, pointing at the migrations shipped in the package."""
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(resources.files("fetcher.migrations")))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def schema_head() -> str:
    """The newest revision shipped, from the migration files' names alone (`<revision>_<slug>.py`, revisions
    numbered in order, which tests/store/test_engine.py holds every script to): no Alembic import."""
    versions = resources.files("fetcher.migrations.versions").iterdir()
    return max(entry.name.partition("_")[0] for entry in versions if entry.name[:4].isdigit())


def _scripts() -> ScriptDirectory:
    """The migration scripts shipped in the package, read from disk (each call reads them again)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def head_revision(scripts: ScriptDirectory | None = None) -> str:
    """The newest revision shipped (of `scripts`, read now if not given)."""
    head = (scripts or _scripts()).get_current_head()
    assert head is not None, "no migrations shipped"
    return head


def shipped_revisions(scripts: ScriptDirectory | None = None) -> frozenset[str]:
    """Every revision this fetcher ships (of `scripts`, read now if not given), head to base."""
    return frozenset(script.revision for script in (scripts or _scripts()).walk_revisions())


def _current_revision(connection: Connection, where: str) -> str | None:
    """The database's revision, read as Alembic reads it but without importing Alembic; None for a database
    with no tables (beside an empty `alembic_version`). `where` names the database in errors.

    Raises `SchemaDamaged` for several rows (this fetcher never makes branches) or for the fetcher's tables
    without a row, and `ForeignDatabase` for other tables without a row: neither is for migrating.
    """
    tables = set(sa.inspect(connection).get_table_names())  # one catalog query, as has_table's was
    found: list[str] = []
    if VERSION_TABLE in tables:
        found = list(connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())
    if len(found) > 1:
        shown = ", ".join(sorted(_shown(revision) for revision in found))
        raise SchemaDamaged(
            f"database {where}: alembic_version holds {len(found)} revisions ({shown}) where a fetcher keeps "
            f"one: delete the rows that are not the database's revision ({REPAIR}), or restore it from a backup"
        )
    if found:
        if found[0] == schema_head():
            _refuse_missing(connection, where, found[0], tables)
        return found[0]
    tables -= {VERSION_TABLE}
    if not tables:
        return None
    raise _without_revision(where, tables)


def _refuse_missing(connection: Connection, where: str, revision: str, tables: set[str]) -> None:
    """Raise `SchemaDamaged` when a table or a view the head revision makes is not in the database (`tables`
    read already; the views read here, one more catalog query)."""
    from fetcher.store.schema import tables_of, views_of

    dialect = connection.dialect.name
    missing_tables = sorted(table.name for table in tables_of(dialect) if table.name not in tables)
    present_views = set(sa.inspect(connection).get_view_names())
    missing_views = sorted(view.name for view in views_of(dialect) if view.name not in present_views)
    if missing_tables or missing_views:
        raise _missing(where, revision, missing_tables, missing_views)


def _missing(where: str, revision: str, tables: list[str], views: list[str]) -> SchemaDamaged:
    """The refusal of a database at `revision` (the head) that lacks some of its tables or views: dropped by
    hand or by a partial restore; no migration makes them again (each ran already), and a table's rows are gone."""
    parts = [_named(kind, names) for kind, names in (("table", tables), ("view", views)) if names]
    verb = "are" if len(tables) + len(views) > 1 else "is"
    return SchemaDamaged(
        f"database {where} is at schema revision {revision} but its {' and '.join(parts)} {verb} missing (dropped "
        f"since it was migrated): restore the database from a backup ({REPAIR})"
    )


def _named(kind: str, names: list[str]) -> str:
    """`table a` or `tables a, b, c, d, e and 2 more`."""
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return f"{kind}{'s' if len(names) > 1 else ''} {shown}"


def _without_revision(where: str, tables: set[str]) -> SchemaDamaged | ForeignDatabase:
    """The refusal of a database with `tables` (names) but no schema revision."""
    from fetcher.store.schema import metadata

    if tables & (set(metadata.tables) | FORMER_TABLES):
        return SchemaDamaged(
            f"database {where} holds the fetcher's tables but no schema revision (alembic_version empty or "
            f"missing): restore it from a backup, or put its revision back ({REPAIR})"
        )
    foreign = sorted(tables)
    named = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
    return ForeignDatabase(
        f"database {where} holds tables that are not the fetcher's ({named}): point [database] url at an empty "
        "or fetcher database"
    )


def _shown(revision: str) -> str:
    """A revision for a one-line message: as it is if it is one of ours in form, else quoted (at most 40
    characters, control characters escaped)."""
    return revision if REVISION.fullmatch(revision) else repr(revision[:40])


def not_shipped(where: str, current: str | None) -> SchemaTooNew | SchemaDamaged | None:
    """Why a database at revision `current` cannot be used or migrated, if this fetcher does not ship that
    revision: `SchemaTooNew` for one numbered after its head (a newer fetcher migrated it: going on, or
    downgrading, would need migrations only that fetcher has), `SchemaDamaged` for any other (no fetcher made
    it); None for a shipped revision or none. Reads the migration scripts once."""
    if current is None:
        return None
    scripts = _scripts()
    if current in shipped_revisions(scripts):
        return None
    head = head_revision(scripts)
    if REVISION.fullmatch(current) and current > head:
        return SchemaTooNew(
            f"database {where} is at schema revision {current}, newer than this fetcher knows (its latest is "
            f"{head}): upgrade the fetcher"
        )
    return SchemaDamaged(
        f"database {where} is at an unknown schema revision {_shown(current)} (not one any fetcher made): "
        f"restore it from a backup, or put its revision right ({REPAIR})"
    )


def _upgrade(connection: Connection, revision: str, moving: MoveOptions | None = None) -> None:
    from alembic import command

    config = alembic_config(connection)
    if moving is not None:
        config.attributes[OPTIONS_ATTRIBUTE] = moving
    command.upgrade(config, revision)


def _downgrade(connection: Connection, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(connection), revision)


async def migrate(
    engine: AsyncEngine,
    revision: str = "head",
    *,
    then: Callable[[AsyncConnection], Awaitable[None]] | None = None,
    moving: MoveOptions | None = None,
) -> tuple[str | None, str | None]:
    """Upgrade to `revision`; returns the revisions before and after.

    The upgrade is one transaction holding the database's write lock (SQLite), except that a revision that
    moves a table in batches (0011, `fetcher.store.convert`; `moving` are its options) commits each batch
    and goes on in a new transaction. PostgreSQL: a session advisory lock, held to the end across those
    commits, so two processes migrating one database at once end with one of them doing the work and the
    other finding it done. `then` runs in the last transaction after the upgrade (`fetcher migrate`
    partitions the day tables there, when configured).
    """
    async with connect(engine) as conn:
        await conn.execution_options(**{WRITE_OPTION: True})
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            await conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            await conn.commit()
        try:
            return await _migrate_on(conn, engine, revision, then, moving)
        finally:
            if postgres:
                await _unlock(conn)


async def _migrate_on(
    conn: AsyncConnection,
    engine: AsyncEngine,
    revision: str,
    then: Callable[[AsyncConnection], Awaitable[None]] | None,
    moving: MoveOptions | None,
) -> tuple[str | None, str | None]:
    """The upgrade on a connection that commits as it goes (no `begin()` block: a batch commits inside)."""
    watched = sqlite_file(engine)
    try:
        where = display_url(engine)
        before = await conn.run_sync(_current_revision, where)
        refused = await asyncio.to_thread(not_shipped, where, before)
        if refused is not None:
            raise refused
        await conn.run_sync(_upgrade, revision, moving)
        after = await conn.run_sync(_current_revision, where)
        if then is not None:
            await then(conn)
        if watched is not None:
            watched.check()  # before committing: into the file still at the path, or rolled back
        await conn.commit()
        if moving is not None and moving.stop is not None:
            moving.stop.committed = True
    except BaseException as exc:
        await conn.rollback()
        if isinstance(exc, sa.exc.OperationalError) and is_sqlite(engine) and _is_busy(exc):
            raise database_error(exc, engine) from None
        if _cancelled(exc):
            raise asyncio.CancelledError from None
        raise
    return before, after


def _cancelled(exc: BaseException) -> bool:
    """Whether `exc` is what a cancellation of this task became: a migration's clean-up after the cancellation
    reached its statement (Alembic's batch mode dropping its half-filled copy, as SQLite's 0013 does) fails on the
    connection SQLAlchemy invalidated, and that error (PendingRollbackError) replaced the CancelledError."""
    task = asyncio.current_task()
    return not isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling() > 0


async def _unlock(conn: AsyncConnection) -> None:
    """Release the migration's session lock; a connection that cannot is discarded (the server drops it)."""
    try:
        await conn.rollback()
        await conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
        await conn.commit()
    except sa.exc.DBAPIError:
        await conn.invalidate()


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    async with transaction(engine) as conn:
        await conn.run_sync(_downgrade, revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with connect(engine) as conn:
        return await conn.run_sync(_current_revision, display_url(engine))


async def ensure_schema(engine: AsyncEngine, *, create: bool = True) -> None:
    """Refuse a database behind (or ahead of) the code; migrate a fresh SQLite file on the spot.

    With `create=False` (commands that only read), a SQLite file that does not exist is refused
    (`DatabaseUnavailable`) rather than created empty: the database that was expected is gone, and
    `fetcher migrate` is how a new one is asked for. With `create=True` a new file is created and
    migrated, with a warning, as on a first run.

    Raises `SchemaOutOfDate` (behind: `fetcher migrate`), `SchemaTooNew` (upgrade the fetcher),
    `SchemaDamaged` (several revisions, the tables without one, or one no fetcher made) or `ForeignDatabase`
    (another program's tables), each one line naming the database.
    """
    watched = sqlite_file(engine)
    if watched is not None and not watched.path.exists():
        if not create:
            raise DatabaseUnavailable(
                f"no database at {watched.path}: check [database] url, restore the file from a backup if it was "
                "deleted, or run `fetcher migrate` to create a new one"
            )
        log.warning("database %s does not exist: creating a new, empty one", watched.path)
    async with connect(engine) as conn:
        current = await conn.run_sync(_current_revision, display_url(engine))
    log.debug("database %s: schema revision %s", display_url(engine), current or "none")
    if current == schema_head():
        return
    head = await asyncio.to_thread(head_revision)
    if current == head:
        return
    if current is None and is_sqlite(engine) and create:  # no tables: `_current_revision` refuses others
        await migrate(engine)
        return
    if current is None:
        raise SchemaOutOfDate(f"database {display_url(engine)} has no fetcher schema: run `fetcher migrate`")
    refused = await asyncio.to_thread(not_shipped, display_url(engine), current)
    if refused is not None:
        raise refused
    raise SchemaOutOfDate(
        f"database {display_url(engine)} is at schema revision {current}, this fetcher needs {head}: "
        "run `fetcher migrate`"
    )


def display_url(engine: AsyncEngine) -> str:
    """The database URL with its password hidden, for messages (a SQLite file opened read-only by its path,
    as configured, not as the `file:` URI `read_only_url` made of it)."""
    url = engine.url
    if url.query.get("mode") == "ro" and (url.database or "").startswith("file:"):
        url = url.set(database=unquote(url.database.removeprefix("file:")), query={})  # type: ignore[union-attr]
    return hide_password(url.render_as_string(hide_password=False))


async def open_connection(engine: AsyncEngine) -> AsyncConnection:
    """A connection the caller closes, with failure to connect turned into `DatabaseUnavailable`."""
    threads = _driver_threads()
    try:
        return await engine.connect()
    except (sa.exc.OperationalError, sa.exc.InterfaceError, OSError, sqlite3.Error) as exc:
        await _let_finish(_driver_threads() - threads)
        raise _unavailable(engine, exc) from None
    except sa.exc.DBAPIError as exc:
        # PostgreSQL refusing the database itself (REFUSED_SQLSTATE_CLASSES). Anything else, such as a
        # pooled connection found dead, goes to callers that retry on a fresh connection (`in_transaction`).
        if str(getattr(exc.orig, "sqlstate", "") or "")[:2] not in REFUSED_SQLSTATE_CLASSES:
            raise
        raise _unavailable(engine, exc) from None


def _driver_threads() -> set[threading.Thread]:
    """aiosqlite's worker threads (one per SQLite connection)."""
    return {t for t in threading.enumerate() if "_connection_worker_thread" in t.name}


async def _let_finish(threads: set[threading.Thread], *, most: float = 2.0) -> None:
    """Wait (a little) for the worker threads of connections that failed to open to end.

    aiosqlite stops a connection that failed to open without waiting for its thread, which then hands its
    last result to the event loop; if the loop has closed by then (the command ended on the error), the
    thread dies with a `RuntimeError: Event loop is closed` traceback. So the error is raised only after.
    """
    if threads:
        await asyncio.to_thread(_join, threads, most)
    await asyncio.sleep(0)  # the thread's last callback, scheduled on this loop, runs before the loop closes


def _join(threads: set[threading.Thread], most: float) -> None:
    deadline = time.monotonic() + most
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


def _unavailable(engine: AsyncEngine, exc: BaseException) -> DatabaseUnavailable:
    # Any refusal while connecting (no server, no such database, wrong password, no such role) is one
    # line and exit 3: a traceback's exit 1 means "some tenant is stale" to whoever watches `status`.
    problem = permission_problem(engine, writing=engine.url.query.get("mode") != "ro")
    if problem is not None:
        return DatabaseUnavailable(f"cannot open database {problem}")
    return DatabaseUnavailable(f"cannot connect to database {display_url(engine)}: {_reason(exc)}{_connect_hint(exc)}")


def permission_problem(engine: AsyncEngine | AsyncConnection, *, writing: bool = False) -> str | None:
    """For a SQLite file: what the operating system does not permit (reading the file; when `writing`, also
    writing it or its folder, where SQLite keeps its journal), naming the path; None if nothing is refused."""
    watched = sqlite_file(engine)
    return None if watched is None else path_problem(watched.path, writing=writing)


def path_problem(path: Path, *, writing: bool = False) -> str | None:
    """`permission_problem` of the SQLite file at `path`: a file system mounted read-only is named as the cause
    (no permission of this user's would help), not "read-only for this user"."""
    folder = path.parent
    if path.is_dir():
        return f"{path}: it is a folder, not a SQLite file"
    if not path.exists():
        if not os.access(folder, os.X_OK) or (writing and not os.access(folder, os.W_OK)):
            denied = f"permission denied: cannot create files in the folder {folder}"
            return f"{path}: {_read_only_mount(folder) or denied}"
        return None
    if not os.access(path, os.R_OK):
        return f"{path}: permission denied: this user cannot read the file"
    if writing and not os.access(path, os.W_OK):
        return f"{path}: {_read_only_mount(path) or 'permission denied: the file is read-only for this user'}"
    if writing and not os.access(folder, os.W_OK):
        denied = f"permission denied: SQLite cannot write its journal in the folder {folder}"
        return f"{path}: {_read_only_mount(folder) or denied}"
    return None


def _read_only_mount(path: Path) -> str:
    """Why `path` cannot be written when its file system is mounted read-only (a `:ro` volume, a read-only bind
    mount), else ''."""
    try:
        read_only = bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return ""
    return "the file system it is on is mounted read-only (remount it read-write)" if read_only else ""


def _connect_hint(exc: BaseException) -> str:
    """What to do when the server is up but the database or the role named in the URL is not there."""
    orig = getattr(exc, "orig", None) or exc
    reason = _reason(exc)
    if getattr(orig, "sqlstate", None) == INVALID_AUTHORIZATION or reason.startswith("role "):
        return " (create the role, e.g. `createuser NAME`, or correct the user in [database] url)"
    if getattr(orig, "sqlstate", None) == INVALID_CATALOG_NAME or "does not exist" in reason:
        return " (create it, e.g. `createdb`, then run `fetcher migrate`)"
    return ""


@asynccontextmanager
async def connect(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for the length of a block."""
    conn = await open_connection(engine)
    try:
        yield conn
    finally:
        await conn.close()


@asynccontextmanager
async def transaction(engine: AsyncEngine, *, write: bool = True) -> AsyncIterator[AsyncConnection]:
    """One transaction: committed when the block ends, rolled back if it raises.

    SQLite's "database is locked" (another writer outlasted busy_timeout) becomes `DatabaseLocked`; a
    SQLite file deleted or replaced since it was opened rolls the transaction back with `DatabaseGone`.
    """
    watched = sqlite_file(engine)
    try:
        async with connect(engine) as conn:
            if write:
                await conn.execution_options(**{WRITE_OPTION: True})
            async with conn.begin():
                yield conn
                if watched is not None:
                    watched.check()  # before committing: into the file still at the path, or rolled back
    except sa.exc.OperationalError as exc:
        if is_sqlite(engine) and _is_busy(exc):
            raise database_error(exc, engine) from None
        raise


@asynccontextmanager
async def existing_database(config: DatabaseConfig) -> AsyncIterator[AsyncEngine]:
    """A read-only look at an existing database, for the commands that only read: its engine (a SQLite file
    opened read-only and never created: a missing one is `DatabaseUnavailable`), its schema checked as every
    command checks it (`ensure_schema`), disposed when the block ends."""
    engine = create_engine(config, read_only=True)
    try:
        await ensure_schema(engine, create=False)
        yield engine
    finally:
        await engine.dispose()


@asynccontextmanager
async def reading(config: DatabaseConfig) -> AsyncIterator[AsyncConnection]:
    """One read-only transaction on an existing database (`existing_database`), for a read or two."""
    async with existing_database(config) as engine, transaction(engine, write=False) as conn:
        yield conn


def sqlite_missing(config: DatabaseConfig) -> bool:
    """True when `[database] url` names a SQLite file that does not exist yet (nothing is opened or created)."""
    url = make_url(config.url)
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return False
    return not Path(database).exists()


def _is_busy(exc: sa.exc.DBAPIError) -> bool:
    """SQLITE_BUSY and its extended codes: another connection held the lock past the busy timeout."""
    orig = exc.orig
    if not isinstance(orig, sqlite3.OperationalError):
        return False
    return str(getattr(orig, "sqlite_errorname", "")).startswith("SQLITE_BUSY") or "database is locked" in str(orig)


def database_error(exc: sa.exc.DBAPIError, engine: AsyncEngine) -> DatabaseError:
    """A driver's error as one line: which database, and why; SQLite's busy wait as `DatabaseLocked`."""
    if is_sqlite(engine) and _is_busy(exc):
        waited = engine.get_execution_options().get(BUSY_TIMEOUT_OPTION)
        setting = f" = {waited:g} s" if isinstance(waited, int | float) else ""
        return DatabaseLocked(
            f"database {display_url(engine)} is locked by another writer; waited [database] "
            f"busy_timeout_seconds{setting} for it to let go"
        )
    if is_sqlite(engine) and ("readonly" in _reason(exc) or "unable to open" in _reason(exc)):
        problem = permission_problem(engine, writing=True)
        if problem is not None:
            return DatabaseUnavailable(f"cannot write database {problem}")
    return unexpected_database_error(exc, display_url(engine))


def unexpected_database_error(exc: sa.exc.DBAPIError, url: str | None = None) -> DatabaseError:
    """A driver's error that reached the command line: the database `url` (password hidden) if known, and the
    driver's first line (at most 300 characters, whitespace folded), never the statement. The one place
    `database_error`'s generic line is built too."""
    dropped = _dropped_while_running(exc, url)
    if dropped is not None:
        return dropped
    reason = " ".join(_reason(exc).split())[:300]
    problem = _sqlite_write_problem(url, reason)
    if problem is not None:
        return DatabaseUnavailable(f"cannot write database {problem}")
    if url is None:
        return DatabaseError(f"database error: {reason}")
    return DatabaseError(f"database {hide_password(url)}: {reason}")


UNDEFINED_TABLE = "42P01"  # PostgreSQL: `relation "X" does not exist`, a table or a view
NO_SUCH_TABLE = re.compile(r'no such table: (?:\w+\.)?(\w+)|relation "(?:\w+\.)?(\w+)" does not exist')


def _dropped_while_running(exc: sa.exc.DBAPIError, url: str | None) -> SchemaDamaged | None:
    """A statement that met one of the fetcher's tables or views missing (SQLite's `no such table: X`,
    PostgreSQL's undefined_table): every command checks them all when it opens the database (`_refuse_missing`),
    so it was dropped since, while the command ran. Told as that check tells it, rather than as the driver's
    line; None for any other error, or a name that is not the fetcher's."""
    from fetcher.store.schema import metadata, views

    orig = getattr(exc, "orig", None)
    missing = isinstance(orig, sqlite3.Error) or getattr(orig, "sqlstate", None) == UNDEFINED_TABLE
    found = NO_SUCH_TABLE.search(_reason(exc)) if missing else None
    name = next((group for group in found.groups() if group), None) if found else None
    if name is None or (name not in metadata.tables and name not in views.tables):
        return None
    where = f"database {hide_password(url)}" if url is not None else "database"
    kind = "view" if name in views.tables else "table"
    return SchemaDamaged(
        f"{where}: its {kind} {name} is missing (dropped while this command ran): restore the database from a "
        f"backup ({REPAIR})"
    )


def _sqlite_write_problem(url: str | None, reason: str) -> str | None:
    """SQLite's "attempt to write a readonly database" where no command mapped it (`database_error` does): the
    file's permission problem (`path_problem`), if the operating system's is the cause."""
    if url is None or not ("readonly" in reason or "unable to open" in reason):
        return None
    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return None
    return path_problem(Path(database).absolute(), writing=True)


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).splitlines()[0] if str(orig) else type(orig).__name__

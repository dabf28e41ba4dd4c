"""Bulk upserts: tens of thousands of rows per tenant without per-row work in SQLAlchemy.

The caller builds its upsert with SQLAlchemy (`INSERT ... ON CONFLICT DO UPDATE`, per dialect); this
module runs it over plain tuples, inside the transaction SQLAlchemy began:
- SQLite: the statement compiled with positional parameters, fed to the driver's executemany;
- PostgreSQL: one COPY into a per-session staging table (`copy_and_upsert`), then the same upsert with
  its VALUES replaced by a SELECT from that table (SQLAlchemy's `Insert.from_select`): set-based,
  several times faster than a statement per row, for a fraction of the CPU. Rows given as columns
  (`execute_columns`) go to COPY as they are zipped, never held in a list.

Rows are encoded column by column, in C loops (dates and times as SQLite text, day keys or microseconds, JSON
as text, SQLite's NULLs and flags as the driver binds them without a lookup), doing what SQLAlchemy's bind
processors would, so rows read back through SQLAlchemy exactly as if it
had written them. A compiled upsert is kept in the pooled connection's `info`, so it is made once per connection
and goes with the engine's pool; nothing is generated as code.
"""

from __future__ import annotations

import functools
import logging
import math
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from itertools import tee
from operator import itemgetter
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert

from fetcher.store.schema import EMPTY_IS_NULL, DayKey, SyncTime, UTCDateTime, day_key, to_microseconds

# The logger SQLAlchemy logs its statements to: `--log-sql` turns it on (fetcher.output).
_SQL_LOG = logging.getLogger("sqlalchemy.engine.Engine")

StatementFactory = Callable[[AsyncConnection], Insert]
Converter = Callable[[Any], Any]
ColumnEncoder = Callable[[Iterable[Any]], Iterable[Any]]  # a column's values in, what the driver takes out
INFO_KEY = "fetcher.store.bulk"


@dataclass(frozen=True)
class Staging:
    """PostgreSQL's per-session staging table for one target table, and its written-out statements."""

    table: sa.Table
    create: str  # CREATE TEMPORARY TABLE IF NOT EXISTS ..., created inside the transaction
    truncate: str


@dataclass(frozen=True)
class Bulk:
    """One compiled upsert and how to turn a batch of rows into its parameters.

    `columns` are the target's columns in the order the statement takes them; each is filled from the
    row field at the same place in `fields` (an index into the caller's row), through its encoder (None: as is).
    """

    sql: str
    table: str
    columns: tuple[str, ...]
    fields: tuple[int, ...]
    encoders: tuple[ColumnEncoder | None, ...]
    staging: Staging | None = None  # PostgreSQL: rows are COPYed into this table, then upserted from it


# SQLite's NULL as the converters below give it: a NaN. sqlite3 binds an exact int, float or str as it is, but
# runs None (and any other value) through its adapter registry first, about 1,400 instructions a value (callgrind;
# a nightly tenant binds about 1,800 NULLs); SQLite stores a NaN bound as a double as NULL (`sqlite3_bind_double`),
# and no value read from JSON is a NaN (orjson refuses them). SQLite only: PostgreSQL keeps a NaN.
SQLITE_NULL = math.nan


# SQLite's NULLs and flags in an integer or boolean column, without a Python call a value: sqlite3 looks None and
# bools up in its adapter registry and calls the adapter `fetcher.store.engine.bind_without_lookups` registered
# (about 1,400 instructions a value, `pysqlite_microprotocols_adapt`: 1.6 M a nightly tenant, whose control
# rows hold about 1,000 NULL counts, totals and flags), where a dict's `get` over the column, in C, gives the
# NaN (NULL) or the 0 or 1 that the adapters would have bound. Other values are their own default: `get(v, v)`.
# Integers only: a float equal to True or False (1.0, 0.0, -0.0) would come back as an int. Floats from Graph
# are nearly never null, so they keep the registry's adapter.
_SQLITE_INTEGER = {None: SQLITE_NULL, False: 0, True: 1}.get


def _sqlite_integers(values: Iterable[Any]) -> Iterator[Any]:
    """An integer or boolean column's values as sqlite3 binds them directly: NULL as a NaN, a flag as 0 or 1."""
    keys, defaults = tee(values)
    return map(_SQLITE_INTEGER, keys, defaults)


def _sqlite_time(value: datetime | None) -> str | float:
    return SQLITE_NULL if value is None else value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _sqlite_microseconds(value: datetime | None) -> int | float:
    return SQLITE_NULL if value is None else to_microseconds(value)


@functools.lru_cache(maxsize=1024)
def _sqlite_date(value: date | None) -> str | None:
    return None if value is None else value.isoformat()  # a batch holds a few dozen days, 100,000 rows


@functools.lru_cache(maxsize=1024)
def _sqlite_day_key(value: date | None) -> int | None:
    return None if value is None else day_key(value)


def _json_text(value: Any) -> str | None:
    if value is None:
        return None  # JSON columns are none_as_null: SQL NULL, never JSON null
    if not value:
        return "{}" if isinstance(value, dict) else "[]"
    return orjson.dumps(value).decode()


def _json_or_null(value: Any) -> str | None:
    return orjson.dumps(value).decode() if value else None


def _sqlite_json_text(value: Any) -> str | float:
    return SQLITE_NULL if value is None else _json_text(value)  # type: ignore[return-value]


def _sqlite_json_or_null(value: Any) -> str | float:
    return orjson.dumps(value).decode() if value else SQLITE_NULL


def _encoder(column: sa.Column[Any], dialect: str) -> ColumnEncoder | None:
    """What the values of `column` need before the driver takes them (None: nothing): a converter a value, mapped
    over the column, or on SQLite an integer or boolean column's NULLs and flags (`_sqlite_integers`)."""
    convert = _converter(column, dialect)
    if convert is not None:
        return functools.partial(map, convert)
    flags_or_nulls = isinstance(column.type, sa.Boolean) or (column.nullable and isinstance(column.type, sa.Integer))
    return _sqlite_integers if dialect == "sqlite" and flags_or_nulls else None


def _converter(column: sa.Column[Any], dialect: str) -> Converter | None:
    """What a value of `column` needs before the driver takes it (None: nothing)."""
    if _is_json(column) and dialect == "sqlite":
        return _sqlite_json_or_null if column.info.get(EMPTY_IS_NULL) else _sqlite_json_text
    if _is_json(column):
        return _json_or_null if column.info.get(EMPTY_IS_NULL) else _json_text
    if dialect == "sqlite" and isinstance(column.type, UTCDateTime):
        return _sqlite_time
    if dialect == "sqlite" and isinstance(column.type, SyncTime):
        return _sqlite_microseconds
    if dialect == "sqlite" and isinstance(column.type, DayKey):  # a TypeDecorator: not an sa.Date
        return _sqlite_day_key
    if dialect == "sqlite" and isinstance(column.type, sa.Date):
        return _sqlite_date
    return None


def encode(bulk: Bulk, rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """`rows` as the statement's parameter tuples.

    Each column is an iterator over the rows that picks its field (`itemgetter`, in C), through the column's
    encoder where its type needs one; `zip` assembles the tuples. No Python frame runs per
    row, only per value that needs converting.
    """
    columns = [
        map(itemgetter(field), rows) if encoder is None else encoder(map(itemgetter(field), rows))
        for field, encoder in zip(bulk.fields, bulk.encoders, strict=True)
    ]
    return list(zip(*columns, strict=True))


def encode_columns(bulk: Bulk, columns: Sequence[Iterable[Any]]) -> list[tuple[Any, ...]]:
    """As `encode`, from columns (one iterable per row field, each read once) instead of rows: a caller
    that makes its rows column by column hands the columns over, and no row is made twice."""
    return list(zip_columns(bulk, columns))


def zip_columns(bulk: Bulk, columns: Sequence[Iterable[Any]]) -> Iterator[tuple[Any, ...]]:
    """As `encode_columns`, but the rows as an iterator, made one at a time as they are read."""
    if len(set(bulk.fields)) != len(bulk.fields):
        raise ValueError(f"upsert into {bulk.table}: a field fills two columns; pass rows (`encode`)")
    picked = [
        columns[field] if encoder is None else encoder(columns[field])
        for field, encoder in zip(bulk.fields, bulk.encoders, strict=True)
    ]
    return zip(*picked, strict=True)


def _is_json(column: sa.Column[Any]) -> bool:
    return isinstance(column.type, sa.JSON)


def staging_table(table: sa.Table, columns: Sequence[str]) -> sa.Table:
    """The staging twin of `table`: the same columns, JSON ones as text so that COPY sends them with the
    driver's own text codec instead of a Python function per value; no keys or constraints. Temporary,
    emptied at every commit."""
    return sa.Table(
        f"fetcher_staging_{table.name}",
        sa.MetaData(),
        *(sa.Column(name, sa.Text if _is_json(table.c[name]) else table.c[name].type) for name in columns),
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DELETE ROWS",
    )


def from_staging(upsert: Insert, staging: sa.Table) -> Insert:
    """`upsert` (an INSERT ... ON CONFLICT with no values) taking its rows from `staging`, JSON cast back.

    Rows of one batch never share a key, which ON CONFLICT DO UPDATE requires."""
    table: sa.Table = upsert.table  # type: ignore[assignment]
    names = [column.name for column in staging.columns]
    picked = [
        sa.cast(staging.c[name], table.c[name].type) if _is_json(table.c[name]) else staging.c[name] for name in names
    ]
    return upsert.from_select(names, sa.select(*picked))


def compile_upsert(
    dialect: Dialect, statement: Insert, fields: Sequence[str], aliases: Mapping[str, str] | None = None
) -> Bulk:
    """`statement` (an upsert without values) compiled for `dialect`, fed from rows of `fields`.

    Raises ValueError if a column of the statement has no field to fill it."""
    aliases = aliases or {}
    table: sa.Table = statement.table  # type: ignore[assignment]
    position = {field: i for i, field in enumerate(fields)}
    if dialect.name == "postgresql":
        order = [column.name for column in table.columns]
        staging = staging_table(table, order)
        sql = from_staging(statement, staging).compile(dialect=dialect).string
        ddl = sa.schema.CreateTable(staging, if_not_exists=True).compile(dialect=dialect).string.strip()
        stage: Staging | None = Staging(staging, ddl, f"TRUNCATE {staging.name}")
    else:
        compiled = statement.compile(dialect=dialect)
        order, sql, stage = list(compiled.positiontup or ()), compiled.string, None
    missing = [column for column in order if aliases.get(column, column) not in position]
    if missing:
        raise ValueError(f"upsert into {table.name}: no row field fills column(s) {', '.join(missing)}")
    return Bulk(
        sql,
        table.name,
        tuple(order),
        tuple(position[aliases.get(column, column)] for column in order),
        tuple(_encoder(table.c[column], dialect.name) for column in order),
        stage,
    )


def compiled(
    conn: AsyncConnection,
    name: str,
    statement: StatementFactory,
    fields: Sequence[str],
    aliases: Mapping[str, str] | None = None,
) -> Bulk:
    """The compiled upsert `name` for this connection (made once per pooled connection). `fields` name
    a row's positions; `aliases` map a column to the field that fills it when their names differ."""
    kept: dict[str, Bulk] = conn.info.setdefault(INFO_KEY, {})
    bulk = kept.get(name)
    if bulk is None:
        bulk = kept[name] = compile_upsert(conn.dialect, statement(conn), fields, aliases)
    return bulk


async def execute_many(conn: AsyncConnection, bulk: Bulk, rows: Sequence[Sequence[Any]]) -> None:
    """Run the upsert over `rows` in the caller's transaction."""
    if rows:
        await execute_encoded(conn, bulk, encode(bulk, rows))


async def execute_encoded(conn: AsyncConnection, bulk: Bulk, encoded: list[tuple[Any, ...]]) -> None:
    """Run the upsert over parameter tuples already encoded (`encode`, `encode_columns`)."""
    if not encoded:
        return
    if bulk.staging is None:
        await _executemany_sqlite(conn, bulk, encoded)
    else:
        await copy_and_upsert(conn, bulk, bulk.staging, encoded, len(encoded))


async def execute_columns(conn: AsyncConnection, bulk: Bulk, columns: Sequence[Iterable[Any]], count: int) -> None:
    """Run the upsert over `count` rows given as columns (`encode_columns`).

    On PostgreSQL the rows go to COPY as `zip` makes them, never held in a list: the driver reads each
    before asking for the next, so zip reuses one tuple, and a tenant's 20,700 rows are not 20,700 tuples
    alive at once for the collector to scan (four saves are in flight at once)."""
    if not count:
        return
    if bulk.staging is None:
        await _executemany_sqlite(conn, bulk, encode_columns(bulk, columns))
    else:
        await copy_and_upsert(conn, bulk, bulk.staging, zip_columns(bulk, columns), count)


def log_statement(sql: str, rows: int) -> None:
    """Log a statement sent straight to the driver as SQLAlchemy logs its own under `--log-sql` (logger
    `sqlalchemy.engine.Engine`, INFO), its parameters hidden: only how many rows went with it."""
    if _SQL_LOG.isEnabledFor(logging.INFO):
        _SQL_LOG.info("%s", sql)
        _SQL_LOG.info("[sent to the driver directly, %d row(s); SQL parameters hidden]", rows)


async def _executemany_sqlite(conn: AsyncConnection, bulk: Bulk, rows: list[tuple[Any, ...]]) -> None:
    """SQLite: the driver's executemany, in the transaction SQLAlchemy began (BEGIN IMMEDIATE).

    Straight to aiosqlite: SQLAlchemy's adapter costs three times as much per statement (measured: 0.44
    against 0.14 ms), which adds up over the handful of statements of each of a thousand tenants.
    """
    driver: Any = (await conn.get_raw_connection()).driver_connection
    log_statement(bulk.sql, len(rows))
    try:
        await driver.executemany(bulk.sql, rows)
    except sqlite3.Error as error:
        raise DBAPIError.instance(bulk.sql, None, error, sqlite3.Error, dialect=conn.dialect) from error


async def fetch_sqlite(conn: AsyncConnection, sql: str, parameters: Sequence[Any]) -> list[Any]:
    """SQLite: the rows of a read of ours, its SQL written out, in the caller's transaction, in one round trip to
    aiosqlite's thread (its `execute_fetchall`) where SQLAlchemy's adapter takes four (cursor, execute,
    fetchall, close). Values come as the driver gives them (day keys, ISO dates, bytes): the caller reads them."""
    driver: Any = (await conn.get_raw_connection()).driver_connection
    if _SQL_LOG.isEnabledFor(logging.INFO):
        _SQL_LOG.info("%s", sql)
        _SQL_LOG.info("[read by the driver directly; SQL parameters hidden]")
    try:
        return list(await driver.execute_fetchall(sql, parameters))
    except sqlite3.Error as error:
        raise DBAPIError.instance(sql, None, error, sqlite3.Error, dialect=conn.dialect) from error


async def copy_and_upsert(
    conn: AsyncConnection, bulk: Bulk, staging: Staging, rows: Iterable[tuple[Any, ...]], count: int
) -> None:
    """PostgreSQL: create the session's staging table if needed, COPY the rows into it, upsert from
    it and empty it, all in the caller's transaction.

    asyncpg's COPY is not reachable through SQLAlchemy, so this talks to the driver's connection, inside
    the transaction SQLAlchemy began on it; driver errors are raised as SQLAlchemy's, a lost connection
    marked as such, so callers handle them as any other statement's.
    """
    import asyncpg

    driver: Any = (await conn.get_raw_connection()).driver_connection
    if not driver.is_in_transaction():
        await conn.exec_driver_sql("SELECT 1")  # SQLAlchemy's asyncpg adapter begins lazily
    log_statement(f"COPY {staging.table.name}; {bulk.sql}", count)
    try:
        await driver.execute(staging.create)
        await driver.copy_records_to_table(staging.table.name, records=rows, columns=bulk.columns)
        await driver.execute(f"{bulk.sql}; {staging.truncate}")
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as error:
        lost = not isinstance(error, asyncpg.PostgresError) or isinstance(error, asyncpg.ConnectionDoesNotExistError)
        if lost:
            await conn.invalidate()
        raise DBAPIError.instance(
            bulk.sql, None, error, Exception, connection_invalidated=lost, dialect=conn.dialect
        ) from error

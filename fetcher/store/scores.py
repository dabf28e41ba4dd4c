"""Saving score-days: idempotent upserts of scores, comparatives, controls and control scores.

All writes of one call share the caller's transaction. Semantics, identical on SQLite and
PostgreSQL:
- rows are keyed on their natural keys; storing the same input twice changes nothing;
- a null never erases a stored non-null value of the same row, and `extra` is merged key by key
  (new keys win), so a thin older day cannot wipe detail stored from a fuller fetch;
- a day's non-empty control (or comparative) list replaces the stored set for that day: a control
  missing from it is deleted. An empty or absent list is thin, and keeps what is stored;
- `partial`, `warning`, `fetched_at` and `run_id` describe the latest fetch and are overwritten.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert

from fetcher.models import ComparativeRow, ControlScoreRow, ScoreDay, ScoreRow
from fetcher.store.schema import (
    UTCDateTime,
    as_date,
    comparative_scores,
    control_scores,
    controls,
    secure_scores,
    tenants,
)

SCORE_OVERWRITE = ("id", "created_at", "partial", "warning", "fetched_at", "run_id")
CONTROL_DIMENSION = ("control_category", "description")
CONTROL_DIMENSION_FIELDS = ("control_name", "control_category", "description", "first_seen_date", "last_seen_date")

InsertFactory = Callable[[sa.Table], Any]


def _insert(conn: AsyncConnection) -> InsertFactory:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _merge_json(conn: AsyncConnection, stored: sa.ColumnElement[Any], new: sa.ColumnElement[Any]) -> Any:
    """Shallow merge of JSON objects, new keys winning (`jsonb ||`, or our SQLite function)."""
    if conn.dialect.name == "postgresql":
        return stored.op("||", return_type=postgresql.JSONB)(new)
    return sa.func.json_merge(stored, new, type_=sa.JSON)


def _upsert(conn: AsyncConnection, table: sa.Table, *, overwrite: Iterable[str] = ()) -> Insert:
    """INSERT ... ON CONFLICT (primary key) DO UPDATE with the null-keeping merge described above."""
    stmt = _insert(conn)(table)
    excluded = stmt.excluded
    keys = {c.name for c in table.primary_key.columns}
    updates: dict[str, Any] = {}
    for column in table.columns:
        name = column.name
        if name in keys:
            continue
        if name in overwrite:
            updates[name] = excluded[name]
        elif name == "extra":
            updates[name] = _merge_json(conn, column, excluded[name])
        else:
            updates[name] = sa.func.coalesce(excluded[name], column)
    # Rows a fetch leaves as they were are not rewritten: no dead tuples, no WAL, much faster re-runs.
    changed = sa.or_(*(table.c[name].is_distinct_from(value) for name, value in updates.items()))
    return stmt.on_conflict_do_update(  # type: ignore[no-any-return]
        index_elements=sorted(keys), set_=updates, where=changed
    )


def _upsert_controls(conn: AsyncConnection) -> Insert:
    """The controls dimension: widest seen-date range, latest non-null category and description."""
    stmt = _insert(conn)(controls)
    new, old = stmt.excluded, controls.c
    newer = new.last_seen_date >= old.last_seen_date
    updates: dict[str, Any] = {
        "first_seen_date": sa.case((new.first_seen_date < old.first_seen_date, new.first_seen_date),
                                   else_=old.first_seen_date),
        "last_seen_date": sa.case((newer, new.last_seen_date), else_=old.last_seen_date),
    }
    for name in CONTROL_DIMENSION:
        takes_new = sa.and_(new[name].is_not(None), sa.or_(old[name].is_(None), newer))
        updates[name] = sa.case((takes_new, new[name]), else_=old[name])
    return stmt.on_conflict_do_update(index_elements=["control_name"], set_=updates)  # type: ignore[no-any-return]


async def save_tenants(conn: AsyncConnection, rows: Sequence[tuple[str, str]], now: datetime) -> None:
    """Insert or rename tenants (id, name)."""
    if not rows:
        return
    stmt = _insert(conn)(tenants)
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id"], set_={"name": stmt.excluded.name, "updated_at": stmt.excluded.updated_at},
        where=tenants.c.name != stmt.excluded.name,
    )
    await conn.execute(stmt, [{"tenant_id": t, "name": n, "updated_at": now} for t, n in rows])


async def save_score_days(
    conn: AsyncConnection, days: Sequence[ScoreDay], now: datetime, *, tenant_saved: bool = False
) -> int:
    """Upsert the score-days of one tenant in the caller's transaction; returns how many were saved.

    `tenant_saved`: the caller already saved the tenant's `tenants` row (a run does, at its start).
    """
    if not days:
        return 0
    tenant_ids = {d.tenant_id for d in days}
    if len(tenant_ids) != 1:
        raise ValueError(f"save_score_days takes one tenant's days, got {sorted(tenant_ids)}")
    tenant_id = tenant_ids.pop()
    if not tenant_saved:
        await conn.execute(
            _insert(conn)(tenants).on_conflict_do_nothing(index_elements=["tenant_id"]),
            {"tenant_id": tenant_id, "name": "", "updated_at": now},
        )
    for batch in _unique_days(days):
        await _save_batch(conn, tenant_id, batch)
    return len({d.score_date for d in days})


def _unique_days(days: Sequence[ScoreDay]) -> Iterator[list[ScoreDay]]:
    """Split into batches without a repeated day, keeping order, so later fetches apply last."""
    batch: list[ScoreDay] = []
    seen: set[date] = set()
    for day in days:
        if day.score_date in seen:
            yield batch
            batch, seen = [], set()
        batch.append(day)
        seen.add(day.score_date)
    if batch:
        yield batch


async def _save_batch(conn: AsyncConnection, tenant_id: str, days: list[ScoreDay]) -> None:
    stored = await _stored_days(conn, tenant_id, [d.score_date for d in days])
    await _execute_many(conn, "scores", [d.score for d in days])
    dimension = _control_dimension(days)
    if dimension:
        await _execute_many(conn, "controls", dimension)
    await _delete_replaced(conn, tenant_id, [d for d in days if d.score_date in stored])
    await _execute_many(conn, "control_scores", [c for d in days for c in d.controls])
    await _execute_many(conn, "comparatives", [c for d in days for c in d.comparatives])


# ----------------------------------------------------------------------------------- the bulk path
#
# Tens of thousands of control rows go through here per tenant, so the statements are compiled once
# per dialect and fed plain tuples through the driver's executemany: no per-row work in SQLAlchemy.
# The encoders do what SQLAlchemy's bind processors would (dates and times as SQLite text, JSON as
# text), so rows read back through SQLAlchemy exactly as if it had written them.


@dataclass(frozen=True)
class _Bulk:
    sql: str
    encode: Callable[[Sequence[Any]], Sequence[Any]]
    columns: tuple[str, ...]
    staging: str | None  # PostgreSQL: rows are COPYed into this temporary table, then upserted from it


_BULK: dict[tuple[str, str], _Bulk] = {}


def _sqlite_time(value: datetime) -> str:
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


@functools.lru_cache(maxsize=1024)
def _sqlite_date(value: date) -> str:
    return value.isoformat()  # a batch holds a few dozen distinct days and a hundred thousand rows


def _json_text(value: Any) -> str:
    if not value:
        return "{}" if isinstance(value, dict) else "[]"
    return orjson.dumps(value).decode()


def _encoder(column: sa.Column[Any], dialect: str) -> Callable[[Any], Any] | None:
    if isinstance(column.type, sa.JSON):
        return _json_text
    if dialect == "sqlite" and isinstance(column.type, UTCDateTime):
        return _sqlite_time
    if dialect == "sqlite" and isinstance(column.type, sa.Date):
        return _sqlite_date
    return None


def _bulk(conn: AsyncConnection, kind: str) -> _Bulk:
    key = (conn.dialect.name, kind)
    bulk = _BULK.get(key)
    if bulk is None:
        stmt, fields = _bulk_statement(conn, kind)
        compiled = stmt.compile(dialect=conn.dialect)
        order = compiled.positiontup or []
        table = TABLES[kind]
        encode = _row_encoder([fields.index(name) for name in order],
                              [_encoder(table.c[name], conn.dialect.name) for name in order])
        staging = f"fetcher_staging_{table.name}" if conn.dialect.name == "postgresql" else None
        sql = compiled.string if staging is None else _from_staging(compiled.string, order, staging)
        bulk = _BULK[key] = _Bulk(sql, encode, tuple(order), staging)
    return bulk


def _row_encoder(
    indices: list[int], converters: list[Callable[[Any], Any] | None]
) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """A function taking a row's fields in the statement's order, each converted where its type needs it.

    It runs for every one of millions of rows, so it is generated as straight-line code, as
    `dataclasses` does for `__init__`: `(r[0], c1(r[1]), r[2], ...)`, with `None` passed through.
    """
    names: dict[str, Callable[[Any], Any]] = {}
    parts = []
    for index, converter in zip(indices, converters, strict=True):
        if converter is None:
            parts.append(f"r[{index}]")
        else:
            name = f"c{len(names)}"
            names[name] = converter
            parts.append(f"(None if r[{index}] is None else {name}(r[{index}]))")
    source = f"def encode(r):\n    return ({', '.join(parts)},)\n"
    namespace: dict[str, Any] = dict(names)
    exec(compile(source, "<fetcher.store.scores row encoder>", "exec"), namespace)  # our own text, no input
    encode: Callable[[Sequence[Any]], tuple[Any, ...]] = namespace["encode"]
    return encode


def _from_staging(sql: str, columns: Sequence[str], staging: str) -> str:
    """`INSERT ... VALUES ($1, ...) ON CONFLICT ...` as `INSERT ... SELECT ... FROM staging ON CONFLICT ...`.

    PostgreSQL then upserts a batch in one set-based statement, after one COPY, instead of planning and
    running a statement per row: several times faster, for a fraction of the client's CPU. Rows of one
    batch never share a key, which ON CONFLICT DO UPDATE requires.
    """
    head, conflict, tail = sql.partition(" ON CONFLICT ")
    values = head.index(" VALUES (")
    return f"{head[:values]} SELECT {', '.join(columns)} FROM {staging}{conflict}{tail}"


TABLES = {"scores": secure_scores, "control_scores": control_scores, "comparatives": comparative_scores,
          "controls": controls}


def _bulk_statement(conn: AsyncConnection, kind: str) -> tuple[Insert, tuple[str, ...]]:
    """The upsert behind each kind of row, and the row's field names (a row is a named tuple)."""
    if kind == "scores":
        return _upsert(conn, secure_scores, overwrite=SCORE_OVERWRITE), ScoreRow._fields
    if kind == "control_scores":
        return _upsert(conn, control_scores), ControlScoreRow._fields
    if kind == "comparatives":
        return _upsert(conn, comparative_scores), ComparativeRow._fields
    return _upsert_controls(conn), CONTROL_DIMENSION_FIELDS


async def _execute_many(conn: AsyncConnection, kind: str, rows: Sequence[Sequence[Any]]) -> None:
    if not rows:
        return
    bulk = _bulk(conn, kind)
    encoded = [bulk.encode(row) for row in rows]
    if bulk.staging is None:
        await conn.exec_driver_sql(bulk.sql, encoded)
    else:
        await _copy_and_upsert(conn, bulk, encoded, TABLES[kind].name)


async def _copy_and_upsert(conn: AsyncConnection, bulk: _Bulk, rows: list[Sequence[Any]], table: str) -> None:
    """PostgreSQL: COPY the rows into the session's staging table, upsert from it, empty it.

    asyncpg's COPY is not reachable through SQLAlchemy, so this talks to the driver's connection, inside
    the transaction SQLAlchemy began on it; driver errors are raised as SQLAlchemy's, a lost connection
    marked as such, so callers handle them as any other statement's.
    """
    import asyncpg

    driver: Any = (await conn.get_raw_connection()).driver_connection
    if not driver.is_in_transaction():
        await conn.exec_driver_sql("SELECT 1")  # SQLAlchemy's asyncpg adapter begins lazily
    try:
        # Created in the transaction (so undone with it) and kept for the session; emptied at commit.
        await driver.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {bulk.staging} "
                             f"(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
        await driver.copy_records_to_table(bulk.staging, records=rows, columns=bulk.columns)
        await driver.execute(f"{bulk.sql}; TRUNCATE {bulk.staging}")
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as error:
        lost = not isinstance(error, asyncpg.PostgresError) or isinstance(error, asyncpg.ConnectionDoesNotExistError)
        if lost:
            await conn.invalidate()
        raise DBAPIError.instance(bulk.sql, None, error, Exception, connection_invalidated=lost,
                                  dialect=conn.dialect) from error


async def _stored_days(conn: AsyncConnection, tenant_id: str, dates: list[date]) -> set[date]:
    query = sa.select(secure_scores.c.score_date).where(
        secure_scores.c.tenant_id == tenant_id, secure_scores.c.score_date.in_(dates)
    )
    return set((await conn.scalars(query)).all())


async def _delete_replaced(conn: AsyncConnection, tenant_id: str, days: list[ScoreDay]) -> None:
    """For stored days that arrive with a non-empty list, delete the members the list no longer has.

    One query reads the stored members of those days; only the (rare) leftovers are deleted.
    """
    for table, name_column, members in (
        (control_scores, "control_name", {d.score_date: {c.control_name for c in d.controls} for d in days}),
        (comparative_scores, "basis", {d.score_date: {c.basis for c in d.comparatives} for d in days}),
    ):
        replaced = [day for day, names in members.items() if names]
        if not replaced:
            continue
        name = table.c[name_column]
        stored = await conn.execute(
            sa.select(table.c.score_date, name).where(table.c.tenant_id == tenant_id, table.c.score_date.in_(replaced))
        )
        gone = [{"d": as_date(day), "n": member} for day, member in stored.all()
                if member not in members[as_date(day)]]  # type: ignore[index]
        if gone:
            await conn.execute(
                sa.delete(table).where(table.c.tenant_id == tenant_id, table.c.score_date == sa.bindparam("d"),
                                       name == sa.bindparam("n")),
                gone,
            )


def _control_dimension(days: Sequence[ScoreDay]) -> list[list[Any]]:
    """One `controls` row per control seen in the batch, sorted so concurrent writers lock in order.

    Fields as CONTROL_DIMENSION_FIELDS: the newest non-null category and description, the seen range.
    """
    rows: dict[str, list[Any]] = {}
    for day in sorted(days, key=lambda d: d.score_date):
        when = day.score_date
        for c in day.controls:
            row = rows.get(c.control_name)
            if row is None:
                rows[c.control_name] = [c.control_name, c.control_category, c.description, when, when]
                continue
            row[4] = when
            if c.control_category is not None:
                row[1] = c.control_category
            if c.description is not None:
                row[2] = c.description
    return [rows[name] for name in sorted(rows)]


async def newest_score_dates(conn: AsyncConnection, tenant_ids: Sequence[str] | None = None) -> dict[str, date]:
    """The newest stored `score_date` of each tenant that has any."""
    query = sa.select(secure_scores.c.tenant_id, sa.func.max(secure_scores.c.score_date)).group_by(
        secure_scores.c.tenant_id
    )
    if tenant_ids is not None:
        query = query.where(secure_scores.c.tenant_id.in_(list(tenant_ids)))
    rows = (await conn.execute(query)).all()
    return {tenant: newest for tenant, newest in ((t, as_date(n)) for t, n in rows) if newest is not None}


async def delete_days(conn: AsyncConnection, tenant_id: str, dates: Sequence[date]) -> None:
    """Remove a tenant's normalized rows for these days (children first), e.g. before a rebuild."""
    for start in range(0, len(dates), 500):
        chunk = list(dates[start:start + 500])
        for table in (control_scores, comparative_scores, secure_scores):
            await conn.execute(sa.delete(table).where(table.c.tenant_id == tenant_id, table.c.score_date.in_(chunk)))

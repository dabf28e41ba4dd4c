"""Bulk upserts: rows stored exactly as SQLAlchemy would store them, batch by batch, on SQLite and PostgreSQL;
the PostgreSQL staging statements pinned as written."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import Insert

from fetcher.config import DatabaseConfig
from fetcher.store import bulk
from fetcher.store.engine import create_engine, transaction
from fetcher.store.schema import comparative_scores, control_score_rows
from tests.dbutil import count, rows

TENANT = 7
DAY = date(2026, 11, 27)
# A row's fields in another order than the table's columns, one named differently, one not stored.
FIELDS = (
    "control_key",
    "tenant_key",
    "score_date",
    "points",
    "score_in_percentage",
    "status_key",
    "last_synced",
    "is_on",
    "count",
    "total",
    "extra",
    "description",
)
ALIASES = {"score": "points"}


def _upsert(conn: AsyncConnection) -> Insert:
    insert: Any = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(control_score_rows)
    return stmt.on_conflict_do_update(  # type: ignore[no-any-return]
        index_elements=["tenant_key", "score_date", "control_key"],
        set_={"score": stmt.excluded.score, "extra": stmt.excluded.extra},
    )


def row(name: int, points: float | None, **fields: Any) -> tuple[Any, ...]:
    values: dict[str, Any] = {
        "control_key": name,
        "tenant_key": TENANT,
        "score_date": DAY,
        "points": points,
        "score_in_percentage": None,
        "status_key": None,
        "last_synced": None,
        "is_on": None,
        "count": None,
        "total": None,
        "extra": {},
        "description": "not a column",
    }
    values.update(fields)
    return tuple(values[f] for f in FIELDS)


def stored(name: int, score: float | None, **columns: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "tenant_key": TENANT,
        "score_date": DAY,
        "control_key": name,
        "status_key": None,
        "score": score,
        "score_in_percentage": None,
        "last_synced": None,
        "count": None,
        "total": None,
        "is_on": None,
        "extra": None,  # control_score_rows.extra: an empty object is written as NULL
    }
    values.update(columns)
    return values


async def upsert(conn: AsyncConnection, batch: list[tuple[Any, ...]]) -> None:
    await bulk.execute_many(conn, bulk.compiled(conn, "test", _upsert, FIELDS, ALIASES), batch)


async def test_rows_read_back_as_sqlalchemy_would_have_written_them(engine: AsyncEngine) -> None:
    synced = datetime(2026, 11, 25, 15, 4, 6, 120, tzinfo=timezone(timedelta(hours=2)))
    async with transaction(engine) as conn:
        await upsert(
            conn,
            [
                row(
                    1,
                    9.5,
                    score_in_percentage=95.0,
                    status_key=3,
                    last_synced=synced,
                    is_on=True,
                    count=3,
                    total=2**40,
                    extra={"tier": ["Core"], "nested": {"a": None}},
                ),
                row(2, None, extra=None),
            ],
        )

    assert await rows(engine, control_score_rows) == [
        stored(
            1,
            9.5,
            score_in_percentage=95.0,
            status_key=3,
            last_synced=datetime(2026, 11, 25, 13, 4, 6, 120, tzinfo=UTC),
            is_on=True,
            count=3,
            total=2**40,
            extra={"tier": ["Core"], "nested": {"a": None}},
        ),
        stored(2, None),
    ]


async def test_batches_of_one_transaction_each_upsert_only_their_own_rows(engine: AsyncEngine) -> None:
    async with transaction(engine) as conn:
        await upsert(conn, [row(1, 1.0), row(2, 2.0)])
        await upsert(conn, [row(1, 3.0, extra={"k": 1})])

    assert await rows(engine, control_score_rows) == [stored(1, 3.0, extra={"k": 1}), stored(2, 2.0)]


async def test_a_failing_batch_raises_sqlalchemys_error_and_stores_nothing(engine: AsyncEngine) -> None:
    with pytest.raises(sa.exc.DBAPIError, match="control_key"):
        async with transaction(engine) as conn:
            await upsert(conn, [row(1, 1.0), row(None, 2.0)])  # type: ignore[arg-type]

    assert await count(engine, control_score_rows) == 0


async def test_the_connection_stores_again_after_a_failed_batch(engine: AsyncEngine) -> None:
    with pytest.raises(sa.exc.DBAPIError):
        async with transaction(engine) as conn:
            await upsert(conn, [row(None, 2.0)])  # type: ignore[arg-type]
    async with transaction(engine) as conn:
        await upsert(conn, [row(1, 1.0)])

    assert await rows(engine, control_score_rows) == [stored(1, 1.0)]


async def upsert_columns(conn: AsyncConnection, batch: list[tuple[Any, ...]]) -> None:
    plan = bulk.compiled(conn, "test", _upsert, FIELDS, ALIASES)
    await bulk.execute_columns(conn, plan, [iter(column) for column in zip(*batch, strict=True)], len(batch))


async def test_rows_given_as_columns_are_stored_as_the_same_rows_given_whole(engine: AsyncEngine) -> None:
    """`execute_columns` (PostgreSQL: the rows streamed to COPY as they are zipped) stores what `execute_many` does."""
    synced = datetime(2026, 11, 25, 15, 4, 6, 120, tzinfo=UTC)
    batch = [row(1, 9.5, last_synced=synced, extra={"a": [1]}, status_key=2), row(2, None, is_on=True, count=4)]
    async with transaction(engine) as conn:
        await upsert_columns(conn, batch)
        await upsert_columns(conn, [row(3, 1.0)])
        await upsert_columns(conn, [])

    assert await rows(engine, control_score_rows) == [
        stored(1, 9.5, last_synced=synced, extra={"a": [1]}, status_key=2),
        stored(2, None, is_on=True, count=4),
        stored(3, 1.0),
    ]


async def test_a_failing_batch_of_columns_raises_sqlalchemys_error_and_stores_nothing(engine: AsyncEngine) -> None:
    """A row refused half-way through the streamed rows rolls the whole transaction back."""
    with pytest.raises(sa.exc.DBAPIError, match="control_key"):
        async with transaction(engine) as conn:
            await upsert_columns(conn, [row(1, 1.0)])
            await upsert_columns(conn, [row(2, 1.0), row(None, 2.0), row(3, 1.0)])  # type: ignore[arg-type]

    assert await count(engine, control_score_rows) == 0


async def test_an_upsert_is_compiled_once_per_connection_and_not_shared_across_engines(database_url: str) -> None:
    made: list[str] = []

    def factory(conn: AsyncConnection) -> Insert:
        made.append(conn.dialect.name)
        return _upsert(conn)

    for _ in range(2):
        engine = create_engine(DatabaseConfig(url=database_url))
        try:
            async with engine.connect() as conn:
                first = bulk.compiled(conn, "test", factory, FIELDS, ALIASES)
                assert bulk.compiled(conn, "test", factory, FIELDS, ALIASES) is first
        finally:
            await engine.dispose()

    assert len(made) == 2


async def test_sqlite_stores_the_nulls_converters_give_as_nan_as_null(sqlite_engine: AsyncEngine) -> None:
    """A missing time or an empty `extra` goes to sqlite3 as a NaN (bound as it is, without sqlite3's adapter
    lookup) and SQLite stores it as NULL, not as a REAL: read raw, with `typeof`."""
    plan = bulk.compile_upsert(sqlite.dialect(), sqlite.insert(control_score_rows), FIELDS, ALIASES)
    sent = dict(zip(plan.columns, bulk.encode(plan, [row(1, 1.0)])[0], strict=True))
    nulls = [column for column, value in sent.items() if value is bulk.SQLITE_NULL]
    assert nulls == ["status_key", "last_synced", "count", "total", "is_on", "extra"]  # a float's None stays None
    async with transaction(sqlite_engine) as conn:
        await upsert(conn, [row(1, 1.0), row(2, 2.0, extra=None)])
        result = await conn.exec_driver_sql(
            "SELECT typeof(last_synced), typeof(extra) FROM control_score_rows ORDER BY control_key"
        )
        assert result.all() == [("null", "null"), ("null", "null")]


async def test_sqlite_binds_integer_nulls_and_flags_as_nan_and_ints_and_stores_them_as_before(
    sqlite_engine: AsyncEngine,
) -> None:
    """An integer or boolean column's None goes to sqlite3 as a NaN and a flag as 0 or 1 (no adapter lookup a value);
    SQLite stores NULL, 0 and 1 as the adapters made them, and an integer equal to a flag stays itself."""
    given = [
        row(1, 1.0, is_on=True, count=0, total=None, status_key=None),
        row(2, 2.0, is_on=False, count=1, total=2**40, status_key=3),
        row(3, None, is_on=None, count=None, total=1, status_key=0),
    ]
    plan = bulk.compile_upsert(sqlite.dialect(), sqlite.insert(control_score_rows), FIELDS, ALIASES)
    sent = [dict(zip(plan.columns, encoded, strict=True)) for encoded in bulk.encode(plan, given)]
    assert [(type(r["is_on"]), r["is_on"], r["count"]) for r in sent[:2]] == [(int, 1, 0), (int, 0, 1)]
    assert sent[0]["status_key"] is sent[0]["total"] is sent[2]["is_on"] is sent[2]["count"] is bulk.SQLITE_NULL
    async with transaction(sqlite_engine) as conn:
        await upsert(conn, given)
        result = await conn.exec_driver_sql(
            "SELECT is_on, typeof(is_on), count, typeof(count), total, typeof(total), status_key, typeof(status_key)"
            " FROM control_score_rows ORDER BY control_key"
        )
        assert result.all() == [
            (1, "integer", 0, "integer", None, "null", None, "null"),
            (0, "integer", 1, "integer", 2**40, "integer", 3, "integer"),
            (None, "null", None, "null", 1, "integer", 0, "integer"),
        ]


def test_a_column_without_a_field_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match=r"upsert into control_score_rows: no row field fills column\(s\) score$"):
        bulk.compile_upsert(sqlite.dialect(), sqlite.insert(control_score_rows), [f for f in FIELDS if f != "points"])


@pytest.mark.parametrize("dialect", [sqlite.dialect(), PGDialect_asyncpg()], ids=["sqlite", "postgresql"])
def test_columns_encode_to_the_same_parameters_as_their_rows(dialect: Any) -> None:
    """`encode_columns` (one iterable per field) and `encode` (rows) give the driver the same tuples."""
    insert: Any = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
    plan = bulk.compile_upsert(dialect, insert(control_score_rows), FIELDS, ALIASES)
    synced = datetime(2026, 11, 25, 15, 4, 6, 120, tzinfo=UTC)
    batch = [row(1, 9.5, last_synced=synced, extra={"a": [1]}), row(2, None, is_on=True), row(3, 1.0, count=4)]

    assert bulk.encode_columns(plan, [iter(column) for column in zip(*batch, strict=True)]) == bulk.encode(plan, batch)


def test_columns_are_refused_when_a_field_fills_two_columns() -> None:
    """A column is an iterator read once: a field behind two columns must come as rows."""
    plan = bulk.compile_upsert(sqlite.dialect(), sqlite.insert(control_score_rows), FIELDS, {"score": "total"})

    with pytest.raises(ValueError, match="a field fills two columns"):
        bulk.encode_columns(plan, [iter(column) for column in zip(row(1, 1.0), strict=True)])


def test_sqlite_takes_rows_in_the_compiled_statements_parameter_order() -> None:
    plan = bulk.compile_upsert(sqlite.dialect(), sqlite.insert(control_score_rows), FIELDS, ALIASES)

    assert plan.sql.startswith(
        "INSERT INTO control_score_rows (tenant_key, score_date, control_key, status_key, score, "
        "score_in_percentage, last_synced, count, total, is_on, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    assert [FIELDS[i] for i in plan.fields] == [ALIASES.get(c, c) for c in plan.columns]
    assert plan.columns == tuple(c.name for c in control_score_rows.columns)


def test_postgresql_staging_statements_are_pinned() -> None:
    """The COPY path's SQL as SQLAlchemy builds it: an upgrade that changes it fails here, not in production."""
    stmt = postgresql.insert(comparative_scores)
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "score_date", "basis"], set_={"average_score": stmt.excluded.average_score}
    )
    plan = bulk.compile_upsert(PGDialect_asyncpg(), stmt, [c.name for c in comparative_scores.columns])

    assert plan.staging is not None
    assert plan.staging.create == (
        "CREATE TEMPORARY TABLE IF NOT EXISTS fetcher_staging_comparative_scores (\n"
        "\ttenant_id VARCHAR(36), \n"
        "\tscore_date DATE, \n"
        "\tbasis VARCHAR(128), \n"
        "\taverage_score FLOAT, \n"
        "\tseat_size_lower BIGINT, \n"
        "\tseat_size_upper BIGINT, \n"
        "\textra TEXT\n"
        ")\n"
        " ON COMMIT DELETE ROWS"
    )
    assert plan.sql == (
        "INSERT INTO comparative_scores (tenant_id, score_date, basis, average_score, seat_size_lower, "
        "seat_size_upper, extra) SELECT fetcher_staging_comparative_scores.tenant_id, "
        "fetcher_staging_comparative_scores.score_date, fetcher_staging_comparative_scores.basis, "
        "fetcher_staging_comparative_scores.average_score, fetcher_staging_comparative_scores.seat_size_lower, "
        "fetcher_staging_comparative_scores.seat_size_upper, "
        "CAST(fetcher_staging_comparative_scores.extra AS JSONB) AS extra \n"
        "FROM fetcher_staging_comparative_scores "
        "ON CONFLICT (tenant_id, score_date, basis) DO UPDATE SET average_score = excluded.average_score"
    )
    assert plan.staging.truncate == "TRUNCATE fetcher_staging_comparative_scores"
    assert plan.columns == tuple(c.name for c in comparative_scores.columns)

"""Monthly range partitions of the day tables on PostgreSQL (`[database] partition = "monthly"`).

Which tables: `PARTITIONED`, from measurement (a 20-tenant, 90-day demo): the control scores hold 230
rows per tenant and day (372,616 rows, 72 % of the database's bytes); the next day table, `raw_payloads`,
holds one row per tenant and day (12 %), `secure_scores` one (1 %). Since migration 0011 they are
`control_score_rows` (read through the `control_scores` view). The primary key already leads with
(tenant_key, score_date), so it includes the partition key, and the upsert's ON CONFLICT works unchanged.

Layout: `control_score_rows` is partitioned by RANGE (score_date), one partition per calendar month
(`control_score_rows_p2026_11` holds [2026-11-01, 2026-12-01)). There is no DEFAULT partition, on purpose:
with one, PostgreSQL cannot read the months in order (an ordered Append), so "a tenant's newest day with
controls" and "the previous day with controls" would open every partition instead of the newest few.
So every writer makes the months it needs first:

- `convert` (run by `fetcher migrate` when configured) turns the plain table into the partitioned one in
  the caller's transaction: atomic, and it refuses to finish unless every row arrived.
- `ensure_partitions` (run before each tenant's save, and by `fetcher rebuild` for the archive's days)
  creates the months a save is about to write, in a transaction of its own under an advisory lock, so
  several processes (shards) may ask at once. It costs one catalog query per process, then nothing until
  a new month shows up. A write that bypassed it fails whole ("no partition of relation ... found for
  row"), rolled back with its tenant's transaction; nothing is half-written.

Errors: the driver's (`sqlalchemy.exc.DBAPIError`), and `ValueError` when a conversion's row counts differ
or the database is SQLite.
"""

from __future__ import annotations

import graphlib
import re
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from fetcher.store.engine import connect, transaction
from fetcher.store.schema import NAMING_CONVENTION, control_score_rows
from fetcher.store.schema import raw_payloads as raw

PARTITIONED: tuple[sa.Table, ...] = (control_score_rows,)
PARTITION_KEY = "score_date"
PARTITION_LOCK_KEY = 0x5EC5C10  # pg_advisory_xact_lock: one process at a time creates partitions
MODES = ("none", "monthly")
_BOUND = re.compile(r"FROM \('(\d{4}-\d{2}-\d{2})'\) TO \('(\d{4}-\d{2}-\d{2})'\)")

Range = tuple[date, date]  # [from, to)


@dataclass(frozen=True)
class Conversion:
    """What `convert` did to one table: rows copied and month partitions made (0, 0: it already was)."""

    table: str
    rows: int
    partitions: int


def month_of(day: date) -> date:
    return day.replace(day=1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def months_between(first: date, last: date) -> list[date]:
    """The first days of every month from `first`'s to `last`'s, both included."""
    months, month = [], month_of(first)
    while month <= last:
        months.append(month)
        month = next_month(month)
    return months


def partition_name(table: str, month: date) -> str:
    return f"{table}_p{month:%Y_%m}"


def covered(ranges: Iterable[Range], month: date) -> bool:
    end = next_month(month)
    return any(start <= month and end <= stop for start, stop in ranges)


# ------------------------------------------------------------------------------------------ catalog


async def is_partitioned(conn: AsyncConnection, table: str) -> bool:
    query = sa.text("SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(:t))")
    return bool((await conn.execute(query, {"t": table})).scalar_one())


async def ranges(conn: AsyncConnection, table: str) -> list[Range]:
    """The [from, to) of each range partition of `table` (the DEFAULT one has none)."""
    query = sa.text(
        "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(:t)"
    )
    found = []
    for (bound,) in (await conn.execute(query, {"t": table})).all():
        match = _BOUND.search(str(bound))
        if match:
            found.append((date.fromisoformat(match[1]), date.fromisoformat(match[2])))
    return found


async def _grants(conn: AsyncConnection, name: str) -> list[str]:
    """GRANT statements that give `name`'s present privileges again (to a table or view made anew)."""
    query = sa.text(
        "SELECT a.privilege_type, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END, "
        "a.is_grantable FROM pg_class AS c CROSS JOIN LATERAL aclexplode(c.relacl) AS a "
        "LEFT JOIN pg_roles AS r ON r.oid = a.grantee WHERE c.oid = to_regclass(:t)"
    )
    rows = (await conn.execute(query, {"t": name})).all()
    return [
        f"GRANT {privilege} ON {name} TO {grantee}{' WITH GRANT OPTION' if grantable else ''}"
        for privilege, grantee, grantable in rows
    ]


@dataclass(frozen=True)
class _View:
    name: str
    definition: str
    grants: list[str]


async def _views(conn: AsyncConnection) -> list[_View]:
    """The views of the current schema, each after the views it reads (so they can be made again in order)."""
    query = sa.text(
        "SELECT c.relname, pg_get_viewdef(c.oid) FROM pg_class AS c "
        "WHERE c.relkind = 'v' AND c.relnamespace = current_schema()::regnamespace"
    )
    definitions = {name: definition for name, definition in (await conn.execute(query)).all()}
    reads = sa.text(
        "SELECT DISTINCT v.relname, t.relname FROM pg_depend AS d "
        "JOIN pg_rewrite AS w ON w.oid = d.objid JOIN pg_class AS v ON v.oid = w.ev_class "
        "JOIN pg_class AS t ON t.oid = d.refobjid "
        "WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass "
        "AND t.relkind = 'v' AND t.oid <> v.oid AND v.relnamespace = current_schema()::regnamespace"
    )
    graph: dict[str, set[str]] = {name: set() for name in definitions}
    for view, read in (await conn.execute(reads)).all():
        if view in graph and read in graph:
            graph[view].add(read)
    order = graphlib.TopologicalSorter(graph).static_order()
    return [_View(name, definitions[name], await _grants(conn, name)) for name in order]


# ------------------------------------------------------------------------------------------ partitions


async def add_months(conn: AsyncConnection, table: str, months: Iterable[date]) -> list[str]:
    """Create the month partitions of `table` among `months` that no partition covers, in the caller's
    transaction, under the partition lock; returns the names made."""
    await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": PARTITION_LOCK_KEY})
    present = await ranges(conn, table)
    made = []
    for month in sorted(set(months)):
        if not covered(present, month):
            await _create(conn, table, month)
            present.append((month, next_month(month)))
            made.append(partition_name(table, month))
    return made


async def _create(conn: AsyncConnection, table: str, month: date) -> None:
    """A month's partition, made as a table of its own and then attached: ATTACH PARTITION takes only a SHARE
    UPDATE EXCLUSIVE lock on `table`, which other writers' ROW EXCLUSIVE does not conflict with, where
    CREATE TABLE ... PARTITION OF would take ACCESS EXCLUSIVE, wait for every open save of every shard and
    queue the next ones behind it (and deadlock against a save waiting on another save's `controls` row)."""
    name, bounds = partition_name(table, month), f"FROM ('{month.isoformat()}') TO ('{next_month(month).isoformat()}')"
    await conn.exec_driver_sql(f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    await conn.exec_driver_sql(f"ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES {bounds}")


_KNOWN: weakref.WeakKeyDictionary[Engine, dict[str, list[Range]]] = weakref.WeakKeyDictionary()


async def _known(engine: AsyncEngine) -> dict[str, list[Range]]:
    """The partitioned tables of `PARTITIONED` and their ranges, read once per engine."""
    known = _KNOWN.get(engine.sync_engine)
    if known is None:
        async with connect(engine) as conn:  # read only, rolled back: no commit in a run's count
            known = {t.name: await ranges(conn, t.name) for t in PARTITIONED if await is_partitioned(conn, t.name)}
        _KNOWN[engine.sync_engine] = known
    return known


async def ensure_partitions(engine: AsyncEngine, days: Iterable[date]) -> list[str]:
    """Before a save writes `days`: create the month partitions they need, if the tables are partitioned.

    Nothing on SQLite or an unpartitioned database. Its own transaction (never the save's: creating a
    partition takes a lock the other writers' transactions would deadlock against). Returns the names made.
    """
    if engine.dialect.name != "postgresql":
        return []
    known = await _known(engine)
    if not known:
        return []
    months = {month_of(day) for day in days}
    wanted = {table: [m for m in months if not covered(present, m)] for table, present in known.items()}
    if not any(wanted.values()):
        return []
    made = []
    async with transaction(engine) as conn:
        for table, missing in wanted.items():
            if missing:
                made += await add_months(conn, table, missing)
                known[table] = await ranges(conn, table)
    return made


async def ensure_archive_partitions(engine: AsyncEngine) -> list[str]:
    """Before `fetcher rebuild` replays the archive: the months of every archived day (`raw_payloads`)."""
    if engine.dialect.name != "postgresql" or not await _known(engine):
        return []
    async with connect(engine) as conn:
        days = sa.select(sa.func.min(raw.c.score_date), sa.func.max(raw.c.score_date))
        first, last = (await conn.execute(days)).one()
    return [] if first is None else await ensure_partitions(engine, months_between(first, last))


# ------------------------------------------------------------------------------------------ conversion


async def convert(conn: AsyncConnection, today: date) -> list[Conversion]:
    """Make each table of `PARTITIONED` that is still plain a partitioned one, in the caller's transaction.

    Its rows are copied into month partitions (every month from its oldest day to the month after `today`,
    or its newest day if later),
    the views are dropped and made again from their own definitions, and the privileges granted on the
    table and the views are granted again. Raises ValueError, rolling everything back with the caller's
    transaction, if the rows counted before and after differ. Refused (ValueError) on SQLite."""
    if conn.dialect.name != "postgresql":
        raise ValueError("partitioning needs PostgreSQL: SQLite keeps each day table as one table")
    done = []
    for table in PARTITIONED:
        if await is_partitioned(conn, table.name):
            done.append(Conversion(table.name, 0, 0))
            continue
        done.append(await _convert_table(conn, table, today))
    if conn.sync_engine in _KNOWN:
        del _KNOWN[conn.sync_engine]
    return done


async def _convert_table(conn: AsyncConnection, table: sa.Table, today: date) -> Conversion:
    name, old = table.name, f"{table.name}_unpartitioned"
    views = await _views(conn)
    grants = await _grants(conn, name)
    if views:
        await conn.exec_driver_sql(f"DROP VIEW {', '.join(view.name for view in views)}")
    pk = NAMING_CONVENTION["pk"] % {"table_name": name}
    await conn.exec_driver_sql(f"ALTER TABLE {name} RENAME TO {old}")
    await conn.exec_driver_sql(f"ALTER TABLE {old} RENAME CONSTRAINT {pk} TO {pk}_unpartitioned")
    for index in table.indexes:
        await conn.exec_driver_sql(f"ALTER INDEX {index.name} RENAME TO {index.name}_unpartitioned")
    await conn.exec_driver_sql(
        f"CREATE TABLE {name} (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE) "
        f"PARTITION BY RANGE ({PARTITION_KEY})"
    )
    keys = ", ".join(column.name for column in table.primary_key.columns)
    await conn.exec_driver_sql(f"ALTER TABLE {name} ADD CONSTRAINT {pk} PRIMARY KEY ({keys})")
    for index in table.indexes:
        await conn.execute(sa.schema.CreateIndex(index))
    first = (await conn.exec_driver_sql(f"SELECT MIN({PARTITION_KEY}) FROM {old}")).scalar_one()
    last = (await conn.exec_driver_sql(f"SELECT MAX({PARTITION_KEY}) FROM {old}")).scalar_one()
    months = months_between(min(first or today, today), max(last or today, next_month(month_of(today))))
    for month in months:
        await _create(conn, name, month)
    copied = (await conn.exec_driver_sql(f"INSERT INTO {name} SELECT * FROM {old}")).rowcount
    before = (await conn.exec_driver_sql(f"SELECT COUNT(*) FROM {old}")).scalar_one()
    after = (await conn.exec_driver_sql(f"SELECT COUNT(*) FROM {name}")).scalar_one()
    if not before == after == copied:
        raise ValueError(f"converting {name}: {before} rows before, {after} after; nothing was changed")
    await conn.exec_driver_sql(f"DROP TABLE {old}")
    for statement in grants:
        await conn.exec_driver_sql(statement)
    for view in views:
        await conn.exec_driver_sql(f"CREATE VIEW {view.name} AS {view.definition}")
        for statement in view.grants:
            await conn.exec_driver_sql(statement)
    return Conversion(name, int(after), len(months))

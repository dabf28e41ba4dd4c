"""5. Storage: bytes per score-day on SQLite and on PostgreSQL, with and without the raw archive (issue 17).

Realistic days: about 230 controls of real-length names, descriptions and implementationStatus texts, a
few controls changing a day, the newest day's lastSynced values shared by groups of controls and moving
as the groups sync (the simulator's `synced_groups`). Two scenarios, each into fresh databases migrated by
`fetcher migrate`, once with `[database] keep_raw = false` and once with the default `true`:

    backfill   `fetcher backfill --days storage_days` of `storage_tenants` tenants: the newest day in full,
               the older days thin, as Graph sends them (no description, lastSynced, count or total)
    daily      cron use: the simulator's "today" moves forward a day at a time over `storage_daily_days`
               days and each day `fetcher backfill --days 2` stores it as the newest (full) day, and
               yesterday again as Graph now sends it (thin); the first day alone (--days 1)

Then each database is compacted (SQLite: `PRAGMA wal_checkpoint(TRUNCATE)` and `VACUUM`; PostgreSQL:
`VACUUM FULL` of every table) and

    bytes per score-day = (size - size of the same database freshly migrated and compacted) / score-days

SQLite's size is the file's; PostgreSQL's the sum of `pg_total_relation_size` (heap, TOAST and indexes)
of every table in the scratch database, partitions counted with their partitioned table. The split by
table group (`GROUPS`; tables that do not exist count nothing, tables of no group are "other") comes from
SQLite's dbstat and from the same PostgreSQL sizes. Target: SQLite with the archive <= 15 kB per
score-day (issue 17: a third of the 44 kB measured on the demo database); PostgreSQL informational.

The data are deterministic, the archive's figures are not quite: its zstd dictionary is trained during the
run once 200 objects are archived, and the bodies written before it are recompressed after the run, so the
archive of one run can differ from the next (PostgreSQL `--quick`: 2.2 and 8.7 kB). `--repeat` applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from benchmarks.harness import (
    BenchmarkError,
    Postgres,
    SimServer,
    expect_complete,
    fetcher_argv,
    measure,
    migrate,
    read_ledger,
    sqlite_url,
)
from benchmarks.session import Session
from benchmarks.table import Row, skipped

NAME = "storage"
TARGET_KB = 15.0
SYNCED_GROUPS = 6  # distinct lastSynced values a tenant-day, about as many as real tenants show
OTHER = "other"
# Table groups, old layout and new: the compact layout's control_scores is a view over its key tables.
GROUPS: dict[str, tuple[str, ...]] = {
    "control scores": (
        "control_scores",
        "control_score_rows",
        "tenant_keys",
        "control_keys",
        "status_texts",
        "day_keys",
    ),
    "archive": ("raw_payloads", "archive_dictionaries"),
    "scores": ("secure_scores", "comparative_scores"),
}


# ---------------------------------------------------------------------------------------- pure parts


def group_sizes(tables: Mapping[str, int]) -> dict[str, int]:
    """Bytes by table group, every group present (0 when none of its tables exists), the rest as "other"."""
    owner = {table: group for group, names in GROUPS.items() for table in names}
    sizes = dict.fromkeys([*GROUPS, OTHER], 0)
    for table, size in tables.items():
        sizes[owner.get(table, OTHER)] += size
    return sizes


def growth(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """Bytes each table grew by; a table made after `before` grew by all of it."""
    return {table: size - before.get(table, 0) for table, size in after.items()}


def split(tables: Mapping[str, int], score_days: int) -> str:
    """'control scores 27.4, archive 6.1, ...': kB per score-day by group, groups under 0.05 kB left out."""
    shown = {group: size / score_days / 1024 for group, size in group_sizes(tables).items()}
    return ", ".join(f"{group} {kb:.1f}" for group, kb in shown.items() if abs(kb) >= 0.05)


def daily_plan(today: date, days: int) -> list[tuple[date, int]]:
    """(the simulator's newest day, `--days`) of each run of the daily scenario, oldest first."""
    first = today - timedelta(days=days - 1)
    return [(first + timedelta(days=n), 1 if n == 0 else 2) for n in range(days)]


# ---------------------------------------------------------------------------------------- databases


class SqliteFile:
    """A database file: compacted by VACUUM, sized by its file, split by dbstat."""

    label = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        path.unlink(missing_ok=True)

    @property
    def url(self) -> str:
        return sqlite_url(self.path)

    def compact(self) -> int:
        with contextlib.closing(sqlite3.connect(self.path, isolation_level=None)) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            db.execute("VACUUM")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return self.path.stat().st_size

    def tables(self) -> dict[str, int]:
        """Bytes per table, its indexes counted with it."""
        with contextlib.closing(sqlite3.connect(self.path)) as db:
            indexes = dict(db.execute("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'").fetchall())
            sizes: dict[str, int] = {}
            for name, size in db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"):
                table = indexes.get(name, name)
                sizes[table] = sizes.get(table, 0) + size
        return sizes


# Every table of the public schema with its TOAST and indexes; a partition is counted with its root.
_PG_TABLES = """
SELECT c.relname,
       CASE WHEN c.relispartition THEN pg_partition_root(c.oid)::regclass::text ELSE c.relname END,
       pg_total_relation_size(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'm')
"""


class PostgresDatabase:
    """A scratch database: compacted by VACUUM FULL, sized by pg_total_relation_size."""

    label = "postgresql"

    def __init__(self, postgres: Postgres, name: str) -> None:
        self.postgres = postgres
        self.name = name

    @property
    def url(self) -> str:
        return self.postgres.database_url(self.name, driver="sqlalchemy")

    def compact(self) -> int:
        return sum(asyncio.run(self._tables(vacuum=True)).values())

    def tables(self) -> dict[str, int]:
        return asyncio.run(self._tables(vacuum=False))

    async def _tables(self, *, vacuum: bool) -> dict[str, int]:
        import asyncpg

        conn = await asyncpg.connect(self.postgres.database_url(self.name), timeout=10)
        try:
            if vacuum:
                for record in await conn.fetch(_PG_TABLES):
                    await conn.execute(f'VACUUM FULL "{record[0]}"')
            sizes: dict[str, int] = {}
            for _, table, size in await conn.fetch(_PG_TABLES):
                sizes[table.strip('"')] = sizes.get(table.strip('"'), 0) + size
        finally:
            await conn.close()
        return sizes


Database = SqliteFile | PostgresDatabase


@dataclass
class Target:
    """One database a scenario fills, and its configuration."""

    database: Database
    keep_raw: bool
    config: Path
    empty_size: int = 0
    empty_tables: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.database.label}, keep_raw={'true (default)' if self.keep_raw else 'false'}"


@contextlib.contextmanager
def targets(session: Session, sim: SimServer, scenario: str) -> Iterator[list[Target]]:
    """Fresh, migrated databases for a scenario: SQLite, and PostgreSQL when there is a server."""
    directory = session.directory(NAME)
    with contextlib.ExitStack() as stack:
        databases: list[tuple[Database, bool]] = [
            (SqliteFile(directory / f"{scenario}-{'raw' if keep_raw else 'plain'}.db"), keep_raw)
            for keep_raw in (False, True)
        ]
        if session.postgres_missing is None:
            for keep_raw in (False, True):
                name = stack.enter_context(session.postgres.scratch(f"storage_{scenario}_{int(keep_raw)}"))
                databases.append((PostgresDatabase(session.postgres, name), keep_raw))
        made = []
        for database, keep_raw in databases:
            config = sim.write_config(
                directory / f"{scenario}-{database.label}-{int(keep_raw)}.toml",
                database_url=database.url,
                keep_raw=keep_raw,
            )
            migrate(config)
            made.append(Target(database, keep_raw, config, database.compact(), database.tables()))
        yield made


def fetch(target: Target, days: int, *, tenants: int, what: str) -> None:
    measure(fetcher_argv(target.config, "backfill", "--days", str(days))).check()
    expect_complete(read_ledger(target.database.url), tenants=tenants, days=days, what=what)


def row(session: Session, scenario: str, target: Target, score_days: int) -> Row:
    size = target.database.compact()
    tables = growth(target.empty_tables, target.database.tables())
    kb = (size - target.empty_size) / score_days / 1024
    measured = f"{kb:.1f} kB ({(size - target.empty_size) / 1024 / 1024:.1f} MB / {score_days:,} score-days)"
    name = f"storage {scenario}: {target.name}"
    yardstick = f"kB by table group: {split(tables, score_days)}"
    session.log(f"{name}: {measured}; {yardstick}")
    if target.database.label == "sqlite" and target.keep_raw:
        return Row(name, measured, yardstick, target=f"<= {TARGET_KB:g} kB", value=kb, value_limit=TARGET_KB, unit="kB")
    return Row(name, measured, yardstick, value=kb, unit="kB")


def backfill(session: Session, sim: SimServer) -> list[Row]:
    tenants, days = session.sizes.storage_tenants, session.sizes.storage_days
    scenario = f"backfill {tenants}x{days} days"
    with targets(session, sim, "backfill") as made:
        for target in made:
            session.log(f"{NAME}: {scenario}: {target.name}")
            fetch(target, days, tenants=tenants, what=f"{NAME} {scenario} {target.name}")
        return [row(session, scenario, target, tenants * days) for target in made]


def daily(session: Session, sim: SimServer) -> list[Row]:
    tenants, days = session.sizes.storage_tenants, session.sizes.storage_daily_days
    scenario = f"daily {tenants}x{days} days (each stored as the newest)"
    plan = daily_plan(date.fromisoformat(sim.info["newest_day"]), days)
    with targets(session, sim, "daily") as made:
        for newest, window in plan:
            sim.set_newest_day(newest)
            session.log(f"{NAME}: daily: {newest} (--days {window})")
            for target in made:
                fetch(target, window, tenants=tenants, what=f"{NAME} daily {newest} {target.name}")
        for target in made:
            stored = read_ledger(target.database.url).score_rows
            if stored != tenants * days:
                raise BenchmarkError(f"{NAME} {scenario} {target.name}: {stored} score-days stored")
        return [row(session, scenario, target, tenants * days) for target in made]


def run(session: Session) -> list[Row]:
    sizes = session.sizes
    with SimServer(
        session.directory("storage-sim"),
        tenants=sizes.storage_tenants,
        controls=sizes.controls,
        page_size=sizes.page_size,
        synced_groups=SYNCED_GROUPS,
    ) as sim:
        rows = [*backfill(session, sim), *daily(session, sim)]  # daily moves the clock: it goes last
    if session.postgres_missing is not None:
        rows.append(skipped("storage postgresql", session.postgres_missing))
    return rows

"""5. Storage: SQLite bytes per score-day (about 230 controls a day), with and without the raw archive.

`fetcher backfill --days 90` of `storage_tenants` tenants into a fresh database, once with
`[database] keep_raw = false` and once with the default `true`; then `PRAGMA wal_checkpoint(TRUNCATE)` and
`VACUUM`, and

    bytes per score-day = (file size - size of the freshly migrated, empty database) / score-days stored

A backfill stores the newest day in full and 89 older days as Graph sends them (thin: no description,
lastSynced, count or total). The split by table comes from SQLite's dbstat.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from benchmarks.harness import (
    SimServer,
    expect_complete,
    fetcher_argv,
    measure,
    migrate,
    read_ledger,
    sqlite_url,
)
from benchmarks.session import Session
from benchmarks.table import Row

NAME = "storage"
TABLE_GROUPS = {"control_scores": "control scores", "raw_payloads": "archive", "secure_scores": "scores"}


def vacuum(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.stat().st_size


def by_table(path: Path) -> dict[str, int]:
    """Bytes per table, its indexes counted with it."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        indexes = dict(db.execute("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'").fetchall())
        sizes: dict[str, int] = {}
        for name, size in db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"):
            table = indexes.get(name, name)
            sizes[table] = sizes.get(table, 0) + size
    return sizes


def measure_variant(session: Session, sim: SimServer, *, keep_raw: bool) -> tuple[int, int, dict[str, int]]:
    """(bytes per score-day, score-days, bytes per table)."""
    sizes = session.sizes
    label = "keep-raw" if keep_raw else "no-raw"
    directory = session.directory(NAME)
    database = directory / f"{label}.db"
    database.unlink(missing_ok=True)
    config = sim.write_config(directory / f"{label}.toml", database_url=sqlite_url(database), keep_raw=keep_raw)
    migrate(config)
    empty = vacuum(database)
    session.log(f"{NAME}: {label}: {sizes.storage_tenants} tenants x {sizes.storage_days} days")
    measure(fetcher_argv(config, "backfill", "--days", str(sizes.storage_days))).check()
    ledger = read_ledger(sqlite_url(database))
    expect_complete(ledger, tenants=sizes.storage_tenants, days=sizes.storage_days, what=f"{NAME} {label}")
    size = vacuum(database)
    return (size - empty) // ledger.score_rows, ledger.score_rows, by_table(database)


def split(tables: dict[str, int], score_days: int) -> str:
    parts = {label: tables.get(table, 0) for table, label in TABLE_GROUPS.items()}
    parts["other"] = sum(tables.values()) - sum(parts.values())
    shown = {label: size / score_days / 1024 for label, size in parts.items()}
    return ", ".join(f"{label} {size:.1f}" for label, size in shown.items() if size >= 0.05)


def run(session: Session) -> list[Row]:
    sizes = session.sizes
    with SimServer(
        session.directory("storage-sim"),
        tenants=sizes.storage_tenants,
        controls=sizes.controls,
        page_size=sizes.page_size,
    ) as sim:
        plain, days, plain_tables = measure_variant(session, sim, keep_raw=False)
        archived, _, archived_tables = measure_variant(session, sim, keep_raw=True)
    return [
        Row(
            "storage sqlite per score-day, keep_raw=false",
            f"{plain / 1024:.1f} kB",
            f"kB by table: {split(plain_tables, days)}",
        ),
        Row(
            "storage sqlite per score-day, keep_raw=true (default)",
            f"{archived / 1024:.1f} kB",
            f"kB by table: {split(archived_tables, days)}",
        ),
    ]

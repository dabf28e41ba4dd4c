"""Migration 0011 (control_scores compact) on databases made by main at 72c5d27 (tests/data/main-72c5d27):
every value of every table and view reads the same after `fetcher migrate`, as the driver returns it."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import importlib.util
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import make_url

from fetcher.config import DatabaseConfig
from fetcher.errors import NotEnoughDisk
from fetcher.store.convert import COMPACT, OLD_SCORES, DiskSpace, MoveOptions, move_batch, number_keys
from fetcher.store.engine import create_engine, current_revision, head_revision, migrate
from tests.conftest import SKIP_POSTGRES, _admin_url, create_postgres_database, drop_postgres_database

FIXTURES = Path(__file__).parents[1] / "data" / "main-72c5d27"
FIXTURE_ROWS = 5375  # control_scores rows in each fixture
Snapshot = dict[str, tuple[tuple[str, ...], list[tuple[Any, ...]]]]


def _relations(sync: sa.Connection) -> list[str]:
    """Every table and view but Alembic's, and PostgreSQL's month partitions (read through their parent)."""
    inspector = sa.inspect(sync)
    partitions: set[str] = set()
    if sync.dialect.name == "postgresql":
        partitions = {name for (name,) in sync.exec_driver_sql("SELECT inhrelid::regclass::text FROM pg_inherits")}
    names = set(inspector.get_table_names()) | set(inspector.get_view_names())
    return sorted(names - partitions - {"alembic_version"})


async def snapshot(url: str, names: list[str] | None = None) -> Snapshot:
    """Each relation's column names and every row, ordered by all its columns, as the driver returns them."""
    engine = create_engine(DatabaseConfig(url=url))
    taken: Snapshot = {}
    try:
        async with engine.connect() as conn:
            for name in names or await conn.run_sync(_relations):
                result = await conn.exec_driver_sql(f"SELECT * FROM {name}")
                width = len(result.keys())
                result = await conn.exec_driver_sql(
                    f"SELECT * FROM {name} ORDER BY {', '.join(str(i + 1) for i in range(width))}"
                )
                taken[name] = (tuple(result.keys()), [tuple(row) for row in result.all()])
            if conn.dialect.name == "postgresql":
                acl = (
                    "SELECT relname, relacl::text FROM pg_class WHERE relacl IS NOT NULL "
                    "AND relnamespace = current_schema()::regnamespace ORDER BY relname"
                )
                taken["(grants)"] = (("relation", "acl"), [tuple(r) for r in (await conn.exec_driver_sql(acl)).all()])
    finally:
        await engine.dispose()
    return taken


def tables(taken: Snapshot) -> list[str]:
    return [name for name in taken if not name.startswith("(")]


# Columns later migrations add to a documented table, with the value each row stored before them reads.
ADDED = {
    "raw_payloads": {"base_date": None, "base_sha256": None},  # 0013: every old body is whole, not a delta
    "partner_customers": {"previous_display_name": None},  # 0015: no rename was kept before it
}


def assert_same(before: Snapshot, after: Snapshot, *, added_columns: dict[str, dict[str, Any]] = ADDED) -> None:
    """Every relation keeps its columns, in order, and every row; the columns of `added_columns` (by default
    `ADDED`, what later migrations add; none for a downgrade back to `before`'s revision) come beside them."""
    for name, (columns, rows) in before.items():
        added = {c: v for c, v in added_columns.get(name, {}).items() if c not in columns}  # not there before
        new_columns, new_rows = after[name]
        assert tuple(c for c in new_columns if c not in added) == columns, name
        assert {c for c in new_columns if c in added} == set(added), name
        kept = [new_columns.index(c) for c in columns]
        extra = {c: new_columns.index(c) for c in added}
        projected, expected = [tuple(row[i] for i in kept) for row in new_rows], rows
        if added:  # the rows were ordered by every column, the added ones among them: order both alike
            expected, projected = sorted(rows, key=repr), sorted(projected, key=repr)
        assert len(projected) == len(expected), name
        for old, new in zip(expected, projected, strict=True):
            assert new == old, name
        assert all(row[i] == added[c] for row in new_rows for c, i in extra.items()), name


async def _restore(url: str, dump: Path) -> None:
    """A plain pg_dump run as one script (psql's \\restrict lines left out: they are not SQL)."""
    script = gzip.decompress(dump.read_bytes()).decode()
    script = "\n".join(line for line in script.splitlines() if not line.startswith("\\"))
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(script)
        # A BI tool's grants (the dump has none: --no-privileges), to be carried to the view and the views.
        await conn.execute(
            "GRANT SELECT ON public.control_scores, public.control_changes, public.improvement_actions TO PUBLIC"
        )
    finally:
        await conn.close()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("pg", marks=pytest.mark.postgres),
        pytest.param("pg-monthly", marks=pytest.mark.postgres),  # partitioned by 72c5d27
        pytest.param("pg+monthly", marks=pytest.mark.postgres),  # plain, migrated with partition = "monthly"
    ]
)
def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(kind, URL) of a database made by main at 72c5d27, a copy of its own."""
    kind: str = request.param
    if kind == "sqlite":
        path = tmp_path / "old.db"
        with gzip.open(FIXTURES / "fixture.sqlite.gz") as src, path.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        yield kind, f"sqlite+aiosqlite:///{path}"
        return
    if _admin_url() is None:
        pytest.skip(SKIP_POSTGRES)
    url = create_postgres_database("fetcher_migration")
    try:
        asyncio.run(_restore(url, FIXTURES / f"fixture.{kind.removesuffix('+monthly')}.sql.gz"))
        yield kind, url
    finally:
        drop_postgres_database(url)


def fetcher_migrate(tmp_path: Path, kind: str, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    partition = '\npartition = "monthly"' if "monthly" in kind else ""
    config = tmp_path / "fetcher.toml"
    config.write_text(f'[database]\nurl = "{url}"{partition}\n', encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "fetcher", "--config", str(config), "migrate", *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_every_value_reads_the_same_after_fetcher_migrate(old_database: tuple[str, str], tmp_path: Path) -> None:
    kind, url = old_database
    before = asyncio.run(snapshot(url))
    assert len(before["control_scores"][1]) == FIXTURE_ROWS
    done = fetcher_migrate(tmp_path, kind, url)
    assert done.returncode == 0, done.stderr
    assert "migrated from 0010" in done.stderr
    after = asyncio.run(snapshot(url, tables(before)))
    assert_same(before, after)


class Stop(Exception):
    """Stands for a crash or Ctrl-C between two batches."""


def _stop_after(batches: int, seen: list[int]) -> Any:
    """A progress callback that records the rows moved and stops the migration after `batches` batches."""

    def progress(done: int, total: int) -> None:
        seen.append(done)
        if len(seen) == batches:
            raise Stop(f"stopped after {done} of {total}")

    return progress


async def _migrate(url: str, options: MoveOptions) -> tuple[str | None, str | None]:
    engine = create_engine(DatabaseConfig(url=url))
    try:
        return await migrate(engine, moving=options)
    finally:
        await engine.dispose()


async def _state(url: str) -> tuple[str | None, int, int]:
    """The schema revision, and the rows in the old table (renamed while they move) and in the new one."""
    engine = create_engine(DatabaseConfig(url=url))
    try:
        revision = await current_revision(engine)
        async with engine.connect() as conn:
            old = (await conn.exec_driver_sql(f"SELECT COUNT(*) FROM {OLD_SCORES}")).scalar_one()
            new = (await conn.exec_driver_sql("SELECT COUNT(*) FROM control_score_rows")).scalar_one()
    finally:
        await engine.dispose()
    return revision, old, new


def test_an_interrupted_migration_continues_where_it_stopped(old_database: tuple[str, str], tmp_path: Path) -> None:
    """Stopped after its second batch (about 1,000 rows each, whole days), the migration has moved exactly
    those rows (committed, gone from the old table); `fetcher migrate` again moves the rest and every value
    reads as before."""
    kind, url = old_database
    before = asyncio.run(snapshot(url))
    seen: list[int] = []
    with pytest.raises(Stop):
        asyncio.run(
            _migrate(
                url, MoveOptions(batch_rows=1000, progress=_stop_after(2, seen), partition_monthly="monthly" in kind)
            )
        )
    moved = seen[-1]
    assert 2000 <= moved < 2000 + 2 * 100  # a batch ends with its last day (80 controls a day here)
    assert asyncio.run(_state(url)) == ("0010", FIXTURE_ROWS - moved, moved)
    done = fetcher_migrate(tmp_path, kind, url)
    assert done.returncode == 0, done.stderr
    assert_same(before, asyncio.run(snapshot(url, tables(before))))


async def _view_names(url: str) -> list[str]:
    engine = create_engine(DatabaseConfig(url=url))
    try:
        async with engine.connect() as conn:
            return sorted(await conn.run_sync(lambda sync: sa.inspect(sync).get_view_names()))
    finally:
        await engine.dispose()


async def _older_write(url: str) -> str:
    """An older fetcher's write of control scores: the driver's error, or '' if it was let through."""
    engine = create_engine(DatabaseConfig(url=url))
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql("UPDATE control_scores SET score = 0")
    except sa.exc.DBAPIError as error:
        return str(error.orig)
    finally:
        await engine.dispose()
    return ""


def assert_same_sums(before: Snapshot, after: Snapshot, *, postgres: bool) -> None:
    """`assert_same`, but on PostgreSQL a float may differ in its last bits (1e-12 relative): a float SUM adds
    a group's rows in the order the plan meets them, and a plan over two tables (the interim view) may sort
    them first where the plan over one table hashed them (seen on the partitioned fixtures' category_scores).
    Every row, every other value, exactly."""
    if not postgres:
        assert_same(before, after)
        return
    for name, (columns, rows) in before.items():
        new_columns, new_rows = after[name]
        assert new_columns == columns, name
        assert len(new_rows) == len(rows), name
        for old, new in zip(rows, new_rows, strict=True):
            assert all(_same_float(a, b) for a, b in zip(old, new, strict=True)), (name, old, new)


def _same_float(old: Any, new: Any) -> bool:
    if isinstance(old, float) and isinstance(new, float):
        return math.isclose(old, new, rel_tol=1e-12)
    return bool(old == new)


def test_every_view_reads_whole_while_the_rows_move(old_database: tuple[str, str], tmp_path: Path) -> None:
    """Stopped after its first batch (the database still at 0010), every view showed only the rows not yet
    moved; now each shows every row once with the same values, an older fetcher's write is refused, and every
    value reads as before once `fetcher migrate` has run again."""
    kind, url = old_database
    before = asyncio.run(snapshot(url))
    views = sorted([*asyncio.run(_view_names(url)), "control_scores"])  # the table a view from the first batch
    assert {"control_changes", "control_status", "category_scores"} <= set(views)
    seen: list[int] = []
    with pytest.raises(Stop):
        asyncio.run(
            _migrate(
                url, MoveOptions(batch_rows=1000, progress=_stop_after(1, seen), partition_monthly="monthly" in kind)
            )
        )
    assert 0 < seen[-1] < FIXTURE_ROWS
    assert asyncio.run(_state(url)) == ("0010", FIXTURE_ROWS - seen[-1], seen[-1])
    assert asyncio.run(_view_names(url)) == views
    assert_same_sums({name: before[name] for name in views}, asyncio.run(snapshot(url, views)), postgres="pg" in kind)
    assert "migration 0011 is moving control_scores" in asyncio.run(_older_write(url))
    done = fetcher_migrate(tmp_path, kind, url)
    assert done.returncode == 0, done.stderr
    assert asyncio.run(_view_names(url)) == views
    assert_same(before, asyncio.run(snapshot(url, tables(before))))


def _first_release_midway(sync: sa.Connection, monthly: bool) -> int:
    """What 0011 as first released left after one batch: its tables made, 1,000 rows (whole days) moved out
    of the control_scores table, which kept its name, the views still reading it; the revision 0010."""
    path = Path(__file__).parents[2] / "migrations" / "versions" / "0011_compact_control_scores.py"
    spec = importlib.util.spec_from_file_location("_revision_0011", path)
    assert spec is not None
    assert spec.loader is not None
    revision = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(revision)
    with Operations.context(MigrationContext.configure(sync)):
        revision._create_tables(sync.dialect.name, monthly=monthly)
    sync.commit()
    first_release = dataclasses.replace(
        COMPACT,
        source="control_scores",
        statements=lambda dialect, where: [
            statement.replace(OLD_SCORES, "control_scores") for statement in COMPACT.statements(dialect, where)
        ],
    )
    number_keys(sync)
    moved, _ = move_batch(sync, first_release, 1000)
    sync.commit()
    return moved


async def _leave_midway_as_first_released(url: str, monthly: bool) -> int:
    engine = create_engine(DatabaseConfig(url=url))
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_first_release_midway, monthly)
    finally:
        await engine.dispose()


def test_a_move_left_midway_by_the_first_release_goes_on(old_database: tuple[str, str], tmp_path: Path) -> None:
    """A database that 0011 as first released stopped after a batch (its control_scores table holding the rows
    left) is given the renamed table and the view by `fetcher migrate`, which moves the rest: every value
    reads as before."""
    kind, url = old_database
    before = asyncio.run(snapshot(url))
    moved = asyncio.run(_leave_midway_as_first_released(url, "monthly" in kind))
    assert 0 < moved < FIXTURE_ROWS
    left = asyncio.run(snapshot(url, ["control_scores", "control_score_rows"]))
    assert (len(left["control_scores"][1]), len(left["control_score_rows"][1])) == (FIXTURE_ROWS - moved, moved)
    done = fetcher_migrate(tmp_path, kind, url)
    assert done.returncode == 0, done.stderr
    assert "migrated from 0010" in done.stderr
    assert_same(before, asyncio.run(snapshot(url, tables(before))))


def test_a_resumed_migration_checks_the_disk_for_the_rows_left(old_database: tuple[str, str]) -> None:
    """Resumed after a stop (kill -9 alike), it went on without a disk check or a word; now the rows left are
    checked, and refused in one line naming them; nothing more is moved."""
    kind, url = old_database
    monthly = "monthly" in kind
    seen: list[int] = []
    with pytest.raises(Stop):
        asyncio.run(
            _migrate(url, MoveOptions(batch_rows=1000, progress=_stop_after(1, seen), partition_monthly=monthly))
        )
    left = FIXTURE_ROWS - seen[-1]
    tight = MoveOptions(free_space=lambda _conn: DiskSpace(1_000, "the test's disk"), partition_monthly=monthly)

    with pytest.raises(NotEnoughDisk) as refused:
        asyncio.run(_migrate(url, tight))

    assert "\n" not in str(refused.value)
    assert str(refused.value).startswith("migration 0011 needs about ")
    assert f"(resumed: {left:,} rows left to move), the test's disk has 1 kB" in str(refused.value)
    assert asyncio.run(_state(url)) == ("0010", left, seen[-1])


def test_no_migration_starts_without_the_free_disk_it_needs(old_database: tuple[str, str]) -> None:
    """The refusal is one line naming the space needed and the space free; nothing is changed."""
    _, url = old_database
    tight = MoveOptions(free_space=lambda _conn: DiskSpace(100_000, "the test's disk"))
    with pytest.raises(NotEnoughDisk) as refused:
        asyncio.run(_migrate(url, tight))
    message = str(refused.value)
    assert "\n" not in message
    assert "migration 0011 needs about" in message
    assert "the test's disk has 100 kB" in message  # text.human_size, as every size shown to people
    assert "--skip-disk-check" in message
    engine = create_engine(DatabaseConfig(url=url))
    assert asyncio.run(current_revision(engine)) == "0010"
    asyncio.run(engine.dispose())


def test_the_disk_check_can_be_skipped(old_database: tuple[str, str]) -> None:
    _, url = old_database
    tight = MoveOptions(check_disk=False, free_space=lambda _conn: DiskSpace(0, "the test's disk"))
    assert asyncio.run(_migrate(url, tight)) == ("0010", head_revision())


PLANNED = (
    "SELECT * FROM control_changes WHERE tenant_id = :t AND score_date > '2026-11-20'",
    "SELECT * FROM control_changes WHERE score_date = '2026-11-29'",
    "SELECT * FROM control_status WHERE tenant_id = :t",
    "SELECT * FROM category_scores WHERE tenant_id = :t AND score_date >= '2026-11-20'",
    "SELECT * FROM control_scores WHERE tenant_id = :t AND score_date = '2026-11-29'",
)


@pytest.mark.parametrize("query", PLANNED)
def test_sqlite_reads_the_moved_rows_by_primary_key(tmp_path: Path, query: str) -> None:
    """After the migration SQLite reaches control_score_rows only by its primary key: no scan of it, and
    never the control_scores view materialized whole (as control_changes did through the view)."""
    path = tmp_path / "old.db"
    with gzip.open(FIXTURES / "fixture.sqlite.gz") as src, path.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}", MoveOptions()))
    with sqlite3.connect(path) as conn:
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {query}", {"t": "x"})]
    aliases = {"r", "cur", "prev", "x", "y"}  # control_score_rows in the views
    assert not [step for step in plan if step.startswith("SCAN") and step.split()[1] in aliases], plan
    assert not [step for step in plan if "MATERIALIZE control_scores" in step], plan
    assert any(step.startswith("SEARCH") and "USING PRIMARY KEY (tenant_key=?" in step for step in plan), plan


INTERIM = (
    "SELECT * FROM control_changes WHERE tenant_id = :t AND score_date > '2026-11-20'",
    "SELECT * FROM control_status WHERE tenant_id = :t",
)


@pytest.mark.parametrize("query", INTERIM)
def test_sqlite_reads_each_table_by_key_while_the_rows_move(tmp_path: Path, query: str) -> None:
    """Midway, control_changes and control_status read the old table and the moved rows each by key: reading
    the view over both, SQLite scanned both tables (4.1 s instead of 0.07 s a tenant's control_changes on
    the demo database)."""
    path = tmp_path / "old.db"
    with gzip.open(FIXTURES / "fixture.sqlite.gz") as src, path.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    with pytest.raises(Stop):
        asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}", MoveOptions(batch_rows=1000, progress=_stop_after(1, []))))
    with sqlite3.connect(path) as conn:
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {query}", {"t": "x"})]
    rows = {OLD_SCORES, "control_scores", "control_score_rows", "r", "x", "co", "po", "cn", "pn", "cur", "prev"}
    assert not [step for step in plan if step.startswith("SCAN") and step.split()[1] in rows], plan
    assert not [step for step in plan if "AUTOMATIC" in step], plan


# A `fetcher` that sends itself `signal` when the first progress line of the move is logged: the signal
# arrives at a known point of a real `fetcher migrate`, between two of its batches, whatever the timing.
SIGNAL_AT_FIRST_PROGRESS = """
import logging, os, signal, sys
from fetcher.cli import main

SIGNAL = getattr(signal, sys.argv.pop(1))

class SignalAtProgress(logging.Handler):
    def emit(self, record):
        if "moved into the compact layout" in record.getMessage() and not getattr(self, "sent", False):
            self.sent = True
            os.kill(os.getpid(), SIGNAL)

logging.getLogger("fetcher.migrate").addHandler(SignalAtProgress())
sys.argv[0] = "fetcher"
main()
"""


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_a_signal_stops_fetcher_migrate_after_a_batch_saying_how_far_it_got(
    old_database: tuple[str, str], tmp_path: Path, signal_name: str
) -> None:
    """It exited 130 without a word (143 for SIGTERM); now the batch in progress commits and one line says
    the rows moved and to run it again, which moves the rest."""
    kind, url = old_database
    before = asyncio.run(snapshot(url))
    partition = '\npartition = "monthly"' if "monthly" in kind else ""
    config = tmp_path / "fetcher.toml"
    config.write_text(f'[database]\nurl = "{url}"{partition}\n', encoding="utf-8")
    stopped = subprocess.run(
        [sys.executable, "-c", SIGNAL_AT_FIRST_PROGRESS, signal_name, "--config", str(config), "migrate"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={**os.environ, "FETCHER_MIGRATE_BATCH_ROWS": "500"},
    )
    assert stopped.returncode == 128 + getattr(signal, signal_name), stopped.stderr
    revision, left, moved = asyncio.run(_state(url))
    assert (revision, left + moved) == ("0010", FIXTURE_ROWS)
    assert 0 < moved < FIXTURE_ROWS
    assert stopped.stderr.splitlines()[-1] == (
        f"interrupted: {moved:,} of {FIXTURE_ROWS:,} rows moved into the compact layout; run `fetcher migrate` "
        "again to continue"
    )
    assert "Traceback" not in stopped.stderr
    done = fetcher_migrate(tmp_path, kind, url)
    assert done.returncode == 0, done.stderr
    assert_same(before, asyncio.run(snapshot(url, tables(before))))


def test_fetcher_migrate_logs_the_disk_check_and_each_revision_on_one_line(tmp_path: Path) -> None:
    """`-v` said 0011's description over three lines, and nothing of the disk check unless it refused."""
    path = tmp_path / "old.db"
    with gzip.open(FIXTURES / "fixture.sqlite.gz") as src, path.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    config = tmp_path / "fetcher.toml"
    config.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{path}"\n', encoding="utf-8")
    command = [sys.executable, "-m", "fetcher", "--config", str(config), "-v", "migrate"]

    done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)

    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert all(" INFO " in line or " DEBUG " in line or ": migrated from" in line for line in lines), lines
    upgrade = [line for line in lines if "Running upgrade 0010 -> 0011" in line]
    assert len(upgrade) == 1
    assert upgrade[0].endswith("an empty `extra` is NULL.")
    disk = [line for line in lines if "fetcher.store.convert: migration 0011" in line]
    assert len(disk) == 1
    assert " INFO " in disk[0]
    assert "migration 0011 needs about " in disk[0]
    assert f"; {tmp_path} has " in disk[0]


def test_a_skipped_disk_check_is_logged_with_why(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with gzip.open(FIXTURES / "fixture.sqlite.gz") as src, path.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    config = tmp_path / "fetcher.toml"
    config.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{path}"\n', encoding="utf-8")
    command = [sys.executable, "-m", "fetcher", "--config", str(config), "migrate", "--skip-disk-check"]

    done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)

    assert done.returncode == 0, done.stderr
    disk = [line for line in done.stderr.splitlines() if "fetcher.store.convert: migration 0011" in line]
    assert len(disk) == 1
    assert disk[0].endswith("free for the compact control scores; disk check skipped (--skip-disk-check or "
                            "$FETCHER_MIGRATE_SKIP_DISK_CHECK=1)")  # fmt: skip


async def _estimated_rows(url: str, table: str) -> float:
    """PostgreSQL's planner estimate of `table`'s rows (pg_class.reltuples; -1: never analyzed nor vacuumed)."""
    engine = create_engine(DatabaseConfig(url=url))
    try:
        async with engine.connect() as conn:
            query = f"SELECT reltuples FROM pg_class WHERE oid = '{table}'::regclass"
            return float((await conn.exec_driver_sql(query)).scalar_one())
    finally:
        await engine.dispose()


def test_postgresql_has_statistics_of_the_moved_rows_after_the_first_batch(old_database: tuple[str, str]) -> None:
    """Stopped after its first batch, the new table has been analyzed (the interim views' plans over a table
    without statistics made a count of control_changes 77 s instead of 4 s)."""
    kind, url = old_database
    if kind != "pg":
        pytest.skip("PostgreSQL, plain tables (a partitioned parent's reltuples is the partitions')")
    seen: list[int] = []
    with pytest.raises(Stop):
        asyncio.run(_migrate(url, MoveOptions(batch_rows=1000, progress=_stop_after(1, seen))))
    assert asyncio.run(_estimated_rows(url, "control_score_rows")) == seen[-1]
    assert asyncio.run(_estimated_rows(url, OLD_SCORES)) == FIXTURE_ROWS - seen[-1]


def test_postgresql_analyzes_a_resumed_move_before_its_first_batch(old_database: tuple[str, str]) -> None:
    """A move left midway with no statistics of its moved rows is analyzed as it resumes; then again only once
    the moved rows have doubled (here not after a 100-row batch)."""
    kind, url = old_database
    if kind != "pg":
        pytest.skip("PostgreSQL, plain tables (a partitioned parent's reltuples is the partitions')")
    moved = asyncio.run(_leave_midway_as_first_released(url, monthly=False))
    assert asyncio.run(_estimated_rows(url, "control_score_rows")) == -1
    seen: list[int] = []
    with pytest.raises(Stop):
        asyncio.run(_migrate(url, MoveOptions(batch_rows=100, progress=_stop_after(1, seen))))
    assert moved < seen[-1] < 2 * moved
    assert asyncio.run(_estimated_rows(url, "control_score_rows")) == moved

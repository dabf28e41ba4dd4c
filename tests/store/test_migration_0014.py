"""Migration 0014 (SQLite's control rows keyed by day, the replay index dropped) on a database at main's head
(0013): main at 72c5d27's fixture (tests/data/main-72c5d27) taken through 0011 to 0013 by main's own
migrations. Every value of every table and view reads the same after it, and after its downgrade."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from fetcher.config import DatabaseConfig
from fetcher.errors import NotEnoughDisk
from fetcher.store.convert import DiskSpace, MoveOptions
from fetcher.store.engine import create_engine, current_revision, downgrade, head_revision, migrate
from tests.store.test_migration_0011 import (
    FIXTURE_ROWS,
    FIXTURES,
    Snapshot,
    Stop,
    _stop_after,
    assert_same,
    fetcher_migrate,
    old_database,  # noqa: F401 (a fixture: the database head_database starts from)
    snapshot,
    tables,
)

REPLAY_INDEX = "ix_raw_payloads_tenant_id_last_fetched_at"


async def _migrate(url: str, revision: str = "head", options: MoveOptions | None = None) -> None:
    engine = create_engine(DatabaseConfig(url=url))
    try:
        await migrate(engine, revision, moving=options)
    finally:
        await engine.dispose()


@pytest.fixture
def head_database(old_database: tuple[str, str]) -> tuple[str, str]:  # noqa: F811 (the fixture imported above)
    """(kind, URL) of a database at 0013 (main's head): 0011's fixture database taken there, a copy of its own."""
    kind, url = old_database
    asyncio.run(_migrate(url, "0013", MoveOptions(partition_monthly="monthly" in kind)))
    return kind, url


def _sqlite_head(tmp_path: Path) -> str:
    path = tmp_path / "head.db"
    with gzip.open(FIXTURES / "fixture.sqlite.gz") as src, path.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    url = f"sqlite+aiosqlite:///{path}"
    asyncio.run(_migrate(url, "0013"))
    return url


def _readable(taken: Snapshot, kind: str) -> Snapshot:
    """Every relation but SQLite's control_score_rows, whose days 0014 stores as keys: its values are read
    through the views (control_scores shows each of them)."""
    return {name: rows for name, rows in taken.items() if not (kind == "sqlite" and name == "control_score_rows")}


async def _index_names(url: str) -> set[str]:
    engine = create_engine(DatabaseConfig(url=url))
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda c: {i["name"] for i in sa.inspect(c).get_indexes("raw_payloads")})
    finally:
        await engine.dispose()


def test_every_value_reads_the_same_after_fetcher_migrate(head_database: tuple[str, str], tmp_path: Path) -> None:
    kind, url = head_database
    before = asyncio.run(snapshot(url))
    assert len(before["control_scores"][1]) == FIXTURE_ROWS
    assert REPLAY_INDEX in asyncio.run(_index_names(url))
    done = fetcher_migrate(tmp_path, kind, url)
    assert done.returncode == 0, done.stderr
    assert "migrated from 0013" in done.stderr
    after = asyncio.run(snapshot(url, tables(before)))
    assert_same(_readable(before, kind), _readable(after, kind))
    assert REPLAY_INDEX not in asyncio.run(_index_names(url))


def test_sqlite_keeps_each_day_as_its_key(tmp_path: Path) -> None:
    """Days since 1970, an integer; day_keys gives each key its date, and nothing more."""
    url = _sqlite_head(tmp_path)
    asyncio.run(_migrate(url))
    with sqlite3.connect(url.removeprefix("sqlite+aiosqlite:///")) as conn:
        types = conn.execute("SELECT DISTINCT typeof(score_date) FROM control_score_rows").fetchall()
        wrong = conn.execute(
            "SELECT COUNT(*) FROM day_keys WHERE day_key <> CAST(julianday(score_date) - 2440587.5 AS INTEGER)"
        ).fetchone()
        days = conn.execute("SELECT (SELECT COUNT(*) FROM day_keys), COUNT(DISTINCT score_date) FROM control_scores")
        counted = days.fetchone()
    assert types == [("integer",)]
    assert wrong == (0,)
    assert counted[0] == counted[1]


async def _up_and_down(url: str) -> str | None:
    """Migrate to the head, downgrade to 0013: the revision then."""
    await _migrate(url)
    engine = create_engine(DatabaseConfig(url=url))
    try:
        await downgrade(engine, "0013")
        return await current_revision(engine)
    finally:
        await engine.dispose()


def test_the_downgrade_gives_back_every_value(head_database: tuple[str, str]) -> None:
    _, url = head_database
    before = asyncio.run(snapshot(url))
    assert asyncio.run(_up_and_down(url)) == "0013"
    assert_same(before, asyncio.run(snapshot(url, tables(before))), added_columns={})  # back at 0013
    assert REPLAY_INDEX in asyncio.run(_index_names(url))


def _rows(url: str) -> tuple[int, int]:
    """SQLite: the rows still dated and those keyed by day (control_score_rows_0014 while it moves)."""
    with sqlite3.connect(url.removeprefix("sqlite+aiosqlite:///")) as conn:
        old = conn.execute("SELECT COUNT(*) FROM control_score_rows").fetchone()[0]
        new = conn.execute("SELECT COUNT(*) FROM control_score_rows_0014").fetchone()[0]
    return old, new


def test_an_interrupted_migration_continues_where_it_stopped(tmp_path: Path) -> None:
    """Stopped after its second batch (about 1,000 rows each, whole days), the migration has moved exactly
    those rows; `fetcher migrate` again moves the rest and every value reads as before."""
    url = _sqlite_head(tmp_path)
    before = asyncio.run(snapshot(url))
    seen: list[int] = []
    with pytest.raises(Stop):
        asyncio.run(_migrate(url, options=MoveOptions(batch_rows=1000, progress=_stop_after(2, seen))))
    moved = seen[-1]
    assert 2000 <= moved < 2000 + 2 * 100  # a batch ends with its last day (80 controls a day here)
    assert _rows(url) == (FIXTURE_ROWS - moved, moved)
    engine = create_engine(DatabaseConfig(url=url))
    assert asyncio.run(current_revision(engine)) == "0013"
    asyncio.run(engine.dispose())
    done = fetcher_migrate(tmp_path, "sqlite", url)
    assert done.returncode == 0, done.stderr
    assert_same(_readable(before, "sqlite"), _readable(asyncio.run(snapshot(url, tables(before))), "sqlite"))


def test_a_resumed_migration_checks_the_disk_for_the_rows_left(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Resumed after a stop (kill -9 alike), it skipped the disk check without a word; now it refuses in one
    line naming the rows left, and otherwise logs the need and the free space, as a fresh start does."""
    url = _sqlite_head(tmp_path)
    seen: list[int] = []
    with pytest.raises(Stop):
        asyncio.run(_migrate(url, options=MoveOptions(batch_rows=1000, progress=_stop_after(1, seen))))
    left = FIXTURE_ROWS - seen[-1]
    tight = MoveOptions(free_space=lambda _conn: DiskSpace(1_000, "the test's disk"))

    with pytest.raises(NotEnoughDisk) as refused:
        asyncio.run(_migrate(url, options=tight))
    with caplog.at_level("INFO", logger="fetcher.store.convert"):
        asyncio.run(_migrate(url, options=MoveOptions(free_space=lambda _conn: DiskSpace(10**12, "the test's disk"))))

    resumed = f"free for the day keys (resumed: {left:,} rows left to move)"
    assert "\n" not in str(refused.value)
    assert str(refused.value).startswith("migration 0014 needs about ")
    assert f"{resumed}, the test's disk has 1 kB" in str(refused.value)
    lines = [r.getMessage() for r in caplog.records if r.name == "fetcher.store.convert"]
    assert len(lines) == 1
    assert lines[0].startswith("migration 0014 needs about ")
    assert lines[0].endswith(f"{resumed}; the test's disk has 1.0 TB")


def _views(url: str) -> list[str]:
    with sqlite3.connect(url.removeprefix("sqlite+aiosqlite:///")) as conn:
        return [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'view' ORDER BY name")]


def test_every_view_reads_whole_while_the_rows_move(tmp_path: Path) -> None:
    """Stopped after its first batch (the database still at 0013), every view shows every row once with the
    same values, and an older fetcher's write is refused; every view again the same after the migration is run
    afresh. (PostgreSQL's 0014 moves no rows.)"""
    url = _sqlite_head(tmp_path)
    views = _views(url)
    assert {"control_scores", "control_changes", "control_status", "category_scores"} <= set(views)
    before = asyncio.run(snapshot(url, views))
    seen: list[int] = []
    with pytest.raises(Stop):
        asyncio.run(_migrate(url, options=MoveOptions(batch_rows=1000, progress=_stop_after(1, seen))))
    assert _rows(url) == (FIXTURE_ROWS - seen[-1], seen[-1])
    assert 0 < seen[-1] < FIXTURE_ROWS
    engine = create_engine(DatabaseConfig(url=url))
    assert asyncio.run(current_revision(engine)) == "0013"
    asyncio.run(engine.dispose())
    assert_same(before, asyncio.run(snapshot(url, views)))
    with (
        sqlite3.connect(url.removeprefix("sqlite+aiosqlite:///")) as conn,
        pytest.raises(sqlite3.IntegrityError) as refused,
    ):
        conn.execute("UPDATE control_score_rows SET score = 0")  # an older fetcher's write
    assert "migration 0014 is moving control_score_rows" in str(refused.value)
    asyncio.run(_migrate(url, options=MoveOptions(batch_rows=1000)))
    assert _views(url) == views
    assert_same(before, asyncio.run(snapshot(url, views)))


def test_no_migration_starts_without_the_free_disk_it_needs(tmp_path: Path) -> None:
    """The refusal is one line naming the space needed and the space free; nothing is changed."""
    url = _sqlite_head(tmp_path)
    tight = MoveOptions(free_space=lambda _conn: DiskSpace(1_000, "the test's disk"))
    with pytest.raises(NotEnoughDisk) as refused:
        asyncio.run(_migrate(url, options=tight))
    message = str(refused.value)
    assert "\n" not in message
    assert "migration 0014 needs about" in message
    assert "free for the day keys, the test's disk has 1 kB" in message
    engine = create_engine(DatabaseConfig(url=url))
    assert asyncio.run(current_revision(engine)) == "0013"
    asyncio.run(engine.dispose())
    asyncio.run(_migrate(url, options=MoveOptions(check_disk=False, free_space=tight.free_space)))
    engine = create_engine(DatabaseConfig(url=url))
    assert asyncio.run(current_revision(engine)) == head_revision()
    asyncio.run(engine.dispose())


DATE_FILTERS = (
    "SELECT * FROM control_scores WHERE tenant_id = :t AND score_date BETWEEN '2026-11-20' AND '2026-11-26'",
    "SELECT * FROM control_scores WHERE score_date = '2026-11-29'",
    "SELECT * FROM category_scores WHERE tenant_id = :t AND score_date >= '2026-11-20'",
    "SELECT * FROM control_status WHERE tenant_id = :t",
)


@pytest.mark.parametrize("query", DATE_FILTERS)
def test_sqlite_searches_the_days_then_the_rows_by_key(tmp_path: Path, query: str) -> None:
    """A filter on the views' score_date searches day_keys' dates, then control_score_rows by (tenant, day):
    never a scan of the rows, nor a read of every row of the tenant."""
    url = _sqlite_head(tmp_path)
    asyncio.run(_migrate(url))
    with sqlite3.connect(url.removeprefix("sqlite+aiosqlite:///")) as conn:
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {query}", {"t": "x"})]
    assert not [step for step in plan if step.startswith("SCAN r")], plan
    searches = [step for step in plan if step.startswith("SEARCH r ")]
    assert searches, plan
    assert all("USING PRIMARY KEY (tenant_key=? AND score_date=?)" in step for step in searches), plan
    assert any(step.startswith("SEARCH d USING COVERING INDEX") and "(score_date" in step for step in plan), plan

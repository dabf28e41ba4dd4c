"""Migration 0013 (raw_payloads' delta columns and foreign key) on a populated database, both kinds."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import signal
import subprocess
import sys
import zlib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from fetcher.config import DatabaseConfig
from fetcher.errors import NotEnoughDisk
from fetcher.store.archive import codec_for
from fetcher.store.compaction import ARCHIVES, read_row, rewrite_as_deltas
from fetcher.store.convert import DiskSpace, MoveOptions
from fetcher.store.engine import create_engine, current_revision, downgrade, head_revision, migrate
from fetcher.store.schema import raw_payloads
from tests.conftest import SKIP_POSTGRES, create_postgres_database, drop_postgres_database
from tests.payloads import OTHER_TENANT, TENANT, many_controls_day

COLUMNS = "tenant_id, score_date, sha256, fetched_at, last_fetched_at, run_id, warning, size, body"


@pytest.fixture
def empty_postgres_url() -> Iterator[str]:
    if not os.environ.get("FETCHER_TEST_POSTGRES_URL"):
        pytest.skip(SKIP_POSTGRES)
    url = create_postgres_database("fetcher_0013")
    yield url
    drop_postgres_database(url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    url: str = request.getfixturevalue("empty_postgres_url")
    return url


def archived() -> list[dict[str, object]]:
    """Rows as main's 0012 wrote them: every body whole (zlib here)."""
    at = datetime(2026, 11, 27, 6, tzinfo=UTC)
    found = []
    for tenant in (TENANT, OTHER_TENANT):
        for n in range(1, 4):
            text = orjson.dumps(many_controls_day(20, tenant, date(2026, 11, n), newest=n == 3))
            sha = f"{n:064d}"
            body = zlib.compress(text, 3)
            found.append(dict(t=tenant, d=date(2026, 11, n), s=sha, f=at, lf=at, r=None, w=None, z=len(text), b=body))
    return found


def _as_dict(row: sa.Row[object]) -> dict[str, object]:
    values = dict(row._mapping)
    values["score_date"] = str(values["score_date"])
    values["body"] = bytes(values["body"])  # type: ignore[arg-type]
    return values


async def test_0013_keeps_every_archived_row_and_adds_the_delta_columns_empty(empty_url: str) -> None:
    engine = create_engine(DatabaseConfig(url=empty_url))
    await migrate(engine, "0012")
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(f"INSERT INTO raw_payloads ({COLUMNS}) VALUES (:t, :d, :s, :f, :lf, :r, :w, :z, :b)"), archived()
        )
        before = [_as_dict(r) for r in await conn.execute(sa.text(f"SELECT {COLUMNS} FROM raw_payloads ORDER BY 1, 2"))]

    await migrate(engine, "0013")

    async with engine.connect() as conn:
        after = await conn.execute(sa.text(f"SELECT {COLUMNS}, base_date, base_sha256 FROM raw_payloads ORDER BY 1, 2"))
        rows = [_as_dict(r) for r in after]
    assert await current_revision(engine) == "0013"
    assert [{k: v for k, v in r.items() if not k.startswith("base_")} for r in rows] == before
    assert {(r["base_date"], r["base_sha256"]) for r in rows} == {(None, None)}
    with pytest.raises(sa.exc.IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(
                sa.text("UPDATE raw_payloads SET base_date = :d, base_sha256 = :s"), {"d": date(2026, 10, 1), "s": "0"}
            )
    await engine.dispose()


async def test_0013_goes_down_while_no_delta_is_stored(empty_url: str) -> None:
    engine = create_engine(DatabaseConfig(url=empty_url))
    await migrate(engine)

    await downgrade(engine, "0012")

    assert await current_revision(engine) == "0012"
    await migrate(engine, "0013")
    assert await current_revision(engine) == "0013"
    await engine.dispose()


@pytest.mark.parametrize("free", [100, 70_100_000_000])
async def test_0013_checks_the_disk_as_0011_does(tmp_path: Path, free: int, caplog: pytest.LogCaptureFixture) -> None:
    """Sizes from `text.human_size`, logged by `fetcher.store.convert`; refused: one line, nothing changed."""
    engine = create_engine(DatabaseConfig(url=f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"))
    await migrate(engine, "0012")
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(f"INSERT INTO raw_payloads ({COLUMNS}) VALUES (:t, :d, :s, :f, :lf, :r, :w, :z, :b)"), archived()
        )
    disk = MoveOptions(free_space=lambda _conn: DiskSpace(free, "the test's disk"))
    caplog.set_level(logging.INFO, logger="fetcher.store.convert")
    if free < 1_000:
        with pytest.raises(NotEnoughDisk) as refused:
            await migrate(engine, "0013", moving=disk)
        message = str(refused.value)
        assert "\n" not in message
        assert message.startswith("migration 0013 needs about ")
        assert " kB free to copy raw_payloads, the test's disk has 100 bytes: free some space" in message
        assert await current_revision(engine) == "0012"
    else:
        await migrate(engine, "0013", moving=disk)
        assert await current_revision(engine) == "0013"
    await engine.dispose()
    [line] = [r.getMessage() for r in caplog.records if "migration 0013" in r.getMessage()]
    assert "MiB" not in line
    assert line.endswith(f"the test's disk has {'100 bytes' if free < 1_000 else '70.1 GB'}")


# A `fetcher` that sends itself `signal` as SQLite's 0013 starts copying raw_payloads into Alembic's new table: the
# signal's handler runs at the copy's await, whatever the timing, so the cancellation lands inside the copy.
SIGNAL_DURING_THE_COPY = """
import os, signal, sys
import sqlalchemy as sa
from fetcher.cli import main

SIGNAL = getattr(signal, sys.argv.pop(1))

@sa.event.listens_for(sa.engine.Engine, "before_cursor_execute")
def signal_at_the_copy(conn, cursor, statement, parameters, context, executemany):
    if statement.lstrip().startswith("INSERT INTO _alembic_tmp_raw_payloads"):
        os.kill(os.getpid(), SIGNAL)

sys.argv[0] = "fetcher"
main()
"""


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_a_signal_during_0013s_copy_ends_fetcher_migrate_in_one_line(tmp_path: Path, signal_name: str) -> None:
    """Alembic's batch mode, cancelled inside its copy, drops the copy on a connection SQLAlchemy had invalidated:
    that PendingRollbackError replaced the cancellation (170 lines, exit 1). Now the documented line, 128 + signal,
    the database as it was, and the next `fetcher migrate` completes."""
    path = tmp_path / "m.db"
    asyncio.run(_archive_at_0012(create_engine(DatabaseConfig(url=f"sqlite+aiosqlite:///{path}"))))
    config = tmp_path / "fetcher.toml"
    config.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{path}"\n', encoding="utf-8")
    command = [sys.executable, "-c", SIGNAL_DURING_THE_COPY, signal_name, "--config", str(config), "migrate"]

    stopped = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)

    assert stopped.returncode == 128 + getattr(signal, signal_name), stopped.stderr
    assert stopped.stderr.splitlines()[-1] == (
        "interrupted: the migration step in progress was rolled back; the database is at revision 0012; run "
        "`fetcher migrate` again"
    )
    assert "Traceback" not in stopped.stderr
    assert asyncio.run(_revision(path)) == "0012"
    again = [sys.executable, "-m", "fetcher", "--config", str(config), "migrate"]
    done = subprocess.run(again, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr
    assert asyncio.run(_revision(path)) == head_revision()


async def _archive_at_0012(engine: AsyncEngine) -> None:
    await migrate(engine, "0012")
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(f"INSERT INTO raw_payloads ({COLUMNS}) VALUES (:t, :d, :s, :f, :lf, :r, :w, :z, :b)"), archived()
        )
    await engine.dispose()


async def _revision(path: Path) -> str | None:
    engine = create_engine(DatabaseConfig(url=f"sqlite+aiosqlite:///{path}"))
    try:
        return await current_revision(engine)
    finally:
        await engine.dispose()


def older_archive(days: int) -> list[dict[str, object]]:
    """`days` thin days a tenant as main's 0012 wrote them (whole zlib bodies), the newest full too."""
    at = datetime(2026, 11, 27, 6, tzinfo=UTC)
    found = []
    for tenant in (TENANT, OTHER_TENANT):
        for n in range(days + 1):
            day = date(2026, 11, 27) - timedelta(days=0 if n == days else n)
            text = orjson.dumps(many_controls_day(20, tenant, day, newest=n == days))
            sha = hashlib.sha256(text).hexdigest()
            found.append(dict(t=tenant, d=day, s=sha, f=at, lf=at, r=None, w=None, z=len(text), b=zlib.compress(text)))
    return found


async def test_archive_compact_after_0013_rewrites_older_bodies_as_deltas_each_reading_back_the_same(
    empty_url: str,
) -> None:
    """A database archived by 0012 (every body whole), migrated: the delta pass leaves every other column of
    every row as it was and every object's JSON the same, most of them now deltas."""
    engine = create_engine(DatabaseConfig(url=empty_url))
    await migrate(engine, "0012")
    older = older_archive(20)
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(f"INSERT INTO raw_payloads ({COLUMNS}) VALUES (:t, :d, :s, :f, :lf, :r, :w, :z, :b)"), older
        )
    await migrate(engine)

    done = await rewrite_as_deltas(engine)

    async with engine.connect() as conn:
        codec = await codec_for(conn)
        query = ARCHIVES[0].rows(*(c for c in raw_payloads.c if c.name != "body"))
        after = (await conn.execute(query.order_by(raw_payloads.c.tenant_id, raw_payloads.c.score_date))).all()
    texts = {(r["t"], r["s"]): zlib.decompress(r["b"]) for r in older}  # type: ignore[arg-type]
    assert {(r.tenant_id, r.sha256): read_row(codec, r) for r in after} == texts
    unchanged = ("tenant_id", "score_date", "sha256", "fetched_at", "last_fetched_at", "run_id", "warning", "size")
    assert sorted(tuple(_as_dict(r)[c] for c in unchanged) for r in after) == sorted(
        (r["t"], str(r["d"]), r["s"], r["f"], r["lf"], r["r"], r["w"], r["z"]) for r in older
    )
    assert done.rewritten == sum(1 for r in after if r.base_sha256 is not None) >= 2 * 15
    await engine.dispose()

"""Shared fixtures: a fresh database on SQLite and, when FETCHER_TEST_POSTGRES_URL is set, on PostgreSQL.

PostgreSQL tests get their own database per test session (created here, dropped at the end), so
concurrent runs never see each other's rows; each test starts from empty tables.
"""

from __future__ import annotations

import asyncio
import compileall
import concurrent.futures
import contextlib
import logging
import os
import shutil
import signal
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

import fetcher
from fetcher.config import DatabaseConfig
from fetcher.store.engine import create_engine, ensure_schema, migrate
from fetcher.store.schema import tables_of

POSTGRES_ENV = "FETCHER_TEST_POSTGRES_URL"
SKIP_POSTGRES = f"{POSTGRES_ENV} is not set: PostgreSQL tests skipped (CI sets it)"
# The modules holding the suite's slowest tests, slowest first (from `pytest --durations=60`; refresh it when
# that ranking changes). pytest-xdist hands tests out in collection order: these modules go first, so that
# no long test starts last while the other workers have nothing left to do. Each module stays whole, so its
# module-scoped fixtures are still made once per worker. tests/reliability/test_secrets.py is not listed: it
# scans what every other test said, so it runs last (tests/reliability/conftest.py).
SLOWEST_FIRST = (
    "test_runner.py",
    "reliability/test_shards.py",
    "test_demo.py",
    "reliability/test_injection.py",
    "test_cli.py",
    "test_signin.py",
    "test_partner.py",
    "reliability/test_environment.py",
    "reliability/test_kill.py",
    "reliability/test_graph_answers.py",
    "test_onboarding.py",
    "test_check.py",
    "test_pipeline.py",
    "simulator/test_standalone.py",
    "alerts/test_commands.py",
    "reliability/test_postgres_kill.py",
)


# Fixtures of session or module scope that run `fetcher` to fill the database their tests read (15-20 s each
# on a loaded machine): under `--dist loadgroup` their tests go to one worker (per kind of database), which
# makes the fixture once, where `--dist load` spread them and each worker made its own.
SHARED_RUNS = (
    "filled",  # tests/report/conftest.py: a backfill of 45 days of 7 tenants, on SQLite and on PostgreSQL
    "hostile",  # tests/reliability/test_hostile.py
    "mixed",  # tests/reliability/test_fault_mix.py
)


def _admin_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


async def _admin(sql: str) -> None:
    url = _admin_url()
    assert url is not None
    engine = create_engine(DatabaseConfig(url=url))
    try:
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(sa.text(sql))
    finally:
        await engine.dispose()


async def _migrate_url(url: str) -> None:
    engine = create_engine(DatabaseConfig(url=url))
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


def run_aside(coro: Any) -> Any:
    """`asyncio.run(coro)` in a thread of its own: a fixture may be set up first inside an async test's loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def create_postgres_database(prefix: str = "fetcher_test", *, template: str | None = None) -> str:
    """A new PostgreSQL database, empty or a copy of the database `template` names (which nothing may be
    connected to); returns its URL. Drop it with `drop_postgres_database`."""
    url = make_url(_admin_url() or "")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    copied = f' TEMPLATE "{template}"' if template else ""
    run_aside(_admin(f'CREATE DATABASE "{name}"{copied}'))
    return url.set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(url: str) -> None:
    name = make_url(url).database
    run_aside(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def pytest_sessionstart(session: pytest.Session) -> None:
    """Write the fetcher's bytecode once, before any test starts a `fetcher` process: with
    `PYTHONDONTWRITEBYTECODE` set (as on the CI machine) and an editable install, each of the suite's
    `fetcher` children would otherwise compile every module it imports from source (about 0.2 CPU s each)."""
    if not hasattr(session.config, "workerinput"):  # the controlling process, or a run without xdist
        compileall.compile_dir(Path(fetcher.__file__).parent, quiet=1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The modules of SLOWEST_FIRST first, in that order; every other module after them, as collected. Tests
    that share a costly fixture are grouped for `--dist loadgroup` (see `_group`)."""
    tests = config.rootpath / "tests"
    rank = {tests / name: position for position, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path, len(rank)))  # stable: each module keeps its own order
    for item in items:
        group = _group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


def _group(item: pytest.Item) -> str | None:
    """The worker group of a test that reads what a costly fixture of wider scope made, so that one worker
    makes it once rather than each: see SHARED_RUNS. Every other test is scheduled on its own."""
    names = getattr(item, "fixturenames", ())
    for name in SHARED_RUNS:
        if name in names:
            callspec = getattr(item, "callspec", None)
            kind = callspec.params.get(name) if callspec is not None else None
            return name if kind is None else f"{name}-{kind}"
    return None


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Commands run in-process configure logging (root handlers, the azure logger's level): undo it."""
    names = ("", "azure", "msal", "aiohttp", "aiosqlite", "alembic", "sqlalchemy.engine")
    saved = {name: (logging.getLogger(name).level, list(logging.getLogger(name).handlers)) for name in names}
    yield
    for name, (level, handlers) in saved.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.handlers[:] = handlers


@pytest.fixture(autouse=True)
def _restore_signal_dispositions() -> Iterator[None]:
    """`fetcher migrate` run in-process leaves SIGINT and SIGTERM ignored once it has said its outcome
    (`stop_signals(ignore_after=True)`, for the process's last moments). An ignored disposition is inherited by
    every child the worker starts later, whose SIGINT then does nothing (a simulator that never stops): undo it."""
    saved = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    yield
    for number, handler in saved.items():
        if handler is not None and signal.getsignal(number) is not handler:
            signal.signal(number, handler)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """One migrated PostgreSQL database for the whole test session."""
    if not _admin_url():
        pytest.skip(SKIP_POSTGRES)
    url = create_postgres_database()

    async def _migrate() -> None:
        engine = create_engine(DatabaseConfig(url=url))
        await migrate(engine)
        await engine.dispose()

    asyncio.run(_migrate())
    yield url
    drop_postgres_database(url)


class SqliteTemplate:
    """A SQLite file at the schema head, migrated once per worker process: a test that needs a migrated file
    copies it (a few ms) rather than migrating its own (about 0.2 CPU s in this process, 0.5 s in a `fetcher`
    child, which imports Alembic to do it)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def copy(self, to: Path, *sql: str) -> Path:
        """A migrated file at `to`, then each of `sql` run on it (one transaction); returns `to`."""
        shutil.copyfile(self.path, to)
        if sql:
            with contextlib.closing(sqlite3.connect(to, isolation_level=None)) as db:
                db.execute("BEGIN")
                for statement in sql:
                    db.execute(statement)
                db.execute("COMMIT")
        return to

    def url(self, to: Path) -> str:
        """The URL of a migrated copy at `to`."""
        return f"sqlite+aiosqlite:///{self.copy(to)}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> SqliteTemplate:
    path = tmp_path_factory.mktemp("template") / "migrated.db"
    run_aside(_migrate_url(f"sqlite+aiosqlite:///{path}"))
    # The last connection's close checkpointed the log into the file: the file alone is the database.
    assert not path.with_name(f"{path.name}-wal").exists()
    return SqliteTemplate(path)


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """The name of a PostgreSQL database at the schema head, migrated once per worker process, that tests copy
    (`CREATE DATABASE ... TEMPLATE`: about 1 s where making one and migrating it takes about 4 s)."""
    if not _admin_url():
        pytest.skip(SKIP_POSTGRES)
    url = create_postgres_database("fetcher_template")
    run_aside(_migrate_url(url))  # the engine disposed: no connection left to the template
    yield str(make_url(url).database)
    drop_postgres_database(url)


@pytest.fixture
def migrated_then(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., str]]:
    """`migrated_then(kind, *sql)`: the URL of a database of `kind` ("sqlite": tmp_path/scores.db, the file a
    test configuration names; "postgres": a database of its own, dropped after the test) at the schema head,
    then each of `sql` run on it in one transaction. For tests of what a command makes of a changed schema."""
    made: list[str] = []

    def make(kind: str, *sql: str) -> str:
        if kind == "sqlite":
            template: SqliteTemplate = request.getfixturevalue("sqlite_template")
            return f"sqlite+aiosqlite:///{template.copy(tmp_path / 'scores.db', *sql)}"
        url = create_postgres_database("fetcher_migrated", template=request.getfixturevalue("postgres_template"))
        made.append(url)
        run_aside(execute_sql(url, sql))
        return url

    yield make
    for url in made:
        drop_postgres_database(url)


async def execute_sql(url: str, sql: Sequence[str]) -> None:
    """Each of `sql` on the database at `url`, in one transaction."""
    engine = create_engine(DatabaseConfig(url=url))
    try:
        async with engine.begin() as conn:
            for statement in sql:
                await conn.execute(sa.text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The URL of an empty, migrated database of each kind."""
    if request.param == "sqlite":
        template: SqliteTemplate = request.getfixturevalue("sqlite_template")
        return template.url(tmp_path_factory.mktemp("db") / "test.db")
    url: str = request.getfixturevalue("postgres_url")
    asyncio.run(_truncate(url))
    return url


async def _truncate(url: str) -> None:
    engine = create_engine(DatabaseConfig(url=url))
    names = ", ".join(f'"{t.name}"' for t in tables_of("postgresql"))
    async with engine.begin() as conn:
        await conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    await engine.dispose()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a migrated, empty database."""
    engine = create_engine(DatabaseConfig(url=database_url))
    await ensure_schema(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def sqlite_engine(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: SqliteTemplate
) -> AsyncIterator[AsyncEngine]:
    """An engine on a migrated, empty SQLite file, for behaviour only SQLite has."""
    engine = create_engine(DatabaseConfig(url=sqlite_template.url(tmp_path_factory.mktemp("db") / "lite.db")))
    await ensure_schema(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def postgres_engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the session's PostgreSQL database, emptied, for behaviour only PostgreSQL has."""
    await _truncate(postgres_url)
    engine = create_engine(DatabaseConfig(url=postgres_url))
    yield engine
    await engine.dispose()

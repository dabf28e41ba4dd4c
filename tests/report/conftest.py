"""Databases for the report tests: one realistic one per dialect, filled once by a real `fetcher backfill`
against the simulator, and scripted score-days written straight through the store.

The realistic database is shared by every test that only reads it (session scope, its own database on
PostgreSQL, never truncated); tests that script their own days use the `engine` fixture instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from sqlalchemy.ext.asyncio import AsyncEngine

from fetcher.cli import main
from fetcher.config import DatabaseConfig
from fetcher.models import FetchContext
from fetcher.normalize import normalize_profile, normalize_score
from fetcher.simulator import SimTenant, Simulator, generate_tenants
from fetcher.store.engine import create_engine, ensure_schema, transaction
from fetcher.store.profiles import save_control_profiles
from fetcher.store.scores import save_score_days, save_tenants
from tests.conftest import SKIP_POSTGRES, create_postgres_database, drop_postgres_database
from tests.e2e import toml_table, toml_value, world

TODAY = datetime.now(UTC).date()
HOSTILE_NAME = 'Evil <script>alert("x")</script> & [bold]Sons[/bold] | Ltd'
CLIENT_ID = "00000000-0000-0000-0000-0000000000aa"
NEVER_FETCHED = "77777777-7777-4777-8777-777777777777"
DAYS = 45


@dataclass(frozen=True)
class Filled:
    """A database filled through the simulator, and the configuration reports read it with.

    `healthy` tenants have DAYS days; `one_day` has one; `empty` answered an empty list; `dropped` was
    fetched but is no longer configured; NEVER_FETCHED is configured but was never fetched.
    """

    url: str
    config: Path
    sim: Simulator
    healthy: tuple[SimTenant, ...]
    one_day: SimTenant
    empty: SimTenant
    dropped: SimTenant

    @property
    def configured(self) -> list[SimTenant]:
        return [*self.healthy, self.one_day, self.empty]

    def engine(self) -> AsyncEngine:
        return create_engine(DatabaseConfig(url=self.url))


def write_report_config(path: Path, url: str, tenants: Sequence[tuple[str, str]]) -> Path:
    """A configuration good enough for `fetcher report`: the database and the tenants."""
    lines = toml_table("database", {"url": url})
    lines += toml_table("auth", {"client_id": CLIENT_ID, "client_secret": "env:REPORT_SECRET"})
    for tenant_id, name in tenants:
        lines += ["[[tenants]]", f"tenant_id = {toml_value(tenant_id)}", f"name = {toml_value(name)}", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


async def _analyze(url: str) -> None:
    engine = create_engine(DatabaseConfig(url=url))
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(sa.text("ANALYZE"))
    await engine.dispose()


def _tenants() -> tuple[list[SimTenant], SimTenant, SimTenant, SimTenant]:
    generated = generate_tenants(7, seed=31)
    healthy = [dataclasses.replace(t, days=DAYS) for t in generated[:4]]
    healthy[1] = dataclasses.replace(healthy[1], name=HOSTILE_NAME)
    one_day = dataclasses.replace(generated[4], name="One Day Oy", days=1)
    empty = dataclasses.replace(generated[5], name="Empty Inc.", empty=True)
    dropped = dataclasses.replace(generated[6], name="Former Customer AB", days=DAYS)
    return healthy, one_day, empty, dropped


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def filled(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Filled]:
    """The realistic database of each kind, filled once per test session."""
    folder = tmp_path_factory.mktemp(f"filled-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{folder / 'filled.db'}"
    else:
        if not os.environ.get("FETCHER_TEST_POSTGRES_URL"):
            pytest.skip(SKIP_POSTGRES)
        url = create_postgres_database("fetcher_report")
    healthy, one_day, empty, dropped = _tenants()
    everyone = [*healthy, one_day, empty, dropped]
    try:
        with world(folder, url, everyone, seed=31, controls_per_day=230) as w:
            assert w.fetcher("migrate").returncode == 0
            done = w.fetcher("backfill", "--days", str(DAYS))
            assert done.returncode == 0, done.stderr
            sim = w.sim
            # In a thread of its own: an async test may be the first to ask for this fixture, inside its loop.
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                pool.submit(run, store_simulated_profiles(url, sim, [t for t in everyone if not t.empty])).result()
        if request.param == "postgres":
            run(_analyze(url))  # what autovacuum does soon after a load; the planner needs the row counts
        kept = [*healthy, one_day, empty]
        config = write_report_config(
            folder / "report.toml", url, [(t.tenant_id, t.name) for t in kept] + [(NEVER_FETCHED, "Never Fetched Ltd")]
        )
        yield Filled(url, config, sim, tuple(healthy), one_day, empty, dropped)
    finally:
        if request.param == "postgres":
            drop_postgres_database(url)


# ------------------------------------------------------------------------------------- scripted days

FETCHED = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)


def score_day(
    tenant: str,
    day: date,
    controls: Mapping[str, float | None],
    *,
    max_score: float = 100.0,
    comparatives: Sequence[tuple[str, float]] = (),
    current: float | None = None,
) -> dict[str, Any]:
    """A secureScore object as Graph sends it: `currentScore` is the controls' sum unless given."""
    scores = [s for s in controls.values() if s is not None]
    return {
        "id": f"{tenant}_{day}",
        "azureTenantId": tenant,
        "createdDateTime": f"{day}T02:00:00Z",
        "activeUserCount": 10,
        "licensedUserCount": 10,
        "enabledServices": [],
        "currentScore": sum(scores) if current is None else current,
        "maxScore": max_score,
        "averageComparativeScores": [{"basis": b, "averageScore": a} for b, a in comparatives],
        "controlScores": [
            {"controlCategory": "Identity", "controlName": name, "score": score, "description": None}
            for name, score in controls.items()
        ],
        "vendorInformation": {"provider": "SecureScore", "vendor": "Microsoft"},
    }


async def store(engine: AsyncEngine, *objects: dict[str, Any], names: Mapping[str, str] | None = None) -> None:
    """Save scripted objects through the store's own upserts, one tenant at a time."""
    await ensure_schema(engine)
    context = FetchContext("scripted", FETCHED)
    by_tenant: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        by_tenant.setdefault(obj["azureTenantId"], []).append(obj)
    async with transaction(engine) as conn:
        if names:
            await save_tenants(conn, list(names.items()), FETCHED)
        for tenant_objects in by_tenant.values():
            await save_score_days(conn, [normalize_score(o, context) for o in tenant_objects], FETCHED)


async def store_simulated_profiles(url: str, sim: Simulator, tenants: Sequence[SimTenant]) -> None:
    """The simulator's control profiles of `tenants`, saved through the store's own upserts."""
    engine = create_engine(DatabaseConfig(url=url))
    async with transaction(engine) as conn:
        for tenant in tenants:
            profiles = [normalize_profile(p, FETCHED) for p in sim.expected_profiles(tenant.tenant_id)]
            await save_control_profiles(conn, tenant.tenant_id, profiles)
    await engine.dispose()


def days_ago(n: int) -> date:
    return TODAY - timedelta(days=n)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# ------------------------------------------------------------------------------------------ the CLI


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """`fetcher`'s main configures the root logger; put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def migrate(config: Path) -> None:
    """`fetcher --config CONFIG migrate`: an empty database of the current schema."""
    done = CliRunner().invoke(main, ["--config", str(config), "migrate"], catch_exceptions=False)
    assert done.exit_code == 0, done.output


def report(config: Path, *args: str) -> Result:
    """`fetcher --config CONFIG report ARGS`, in this process."""
    return CliRunner().invoke(
        main,
        ["--config", str(config), "report", *args],
        env={"COLUMNS": "240", "REPORT_SECRET": "unused-secret"},
        catch_exceptions=False,
    )

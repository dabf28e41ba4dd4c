"""`kill -9` at random moments of a backfill, then `fetcher run`: the database equals the simulator's truth.

Each seed kills one backfill at a moment drawn from it, counted from what the process has logged so far:
every fifth seed within EARLY_WINDOW of opening the database (creating the schema on SQLite, taking the lock,
planning), the others within RUN_WINDOW of the run's start (fetching, writing, ending). Right after the
kill, every tenant is whole or absent and the ledger agrees; after `fetcher run`, every day of every
tenant is stored exactly once, row for row, with its archive.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from fetcher.simulator import Fault, generate_tenants
from fetcher.store.schema import fetch_runs, tenant_runs
from tests.reliability.conftest import Figures
from tests.reliability.harness import (
    Rig,
    Transcripts,
    assert_equals_truth,
    essence,
    ledger,
    lock_rows,
    read,
    rig,
    stored,
    tenant_with,
    truth,
)

pytestmark = pytest.mark.slow

SEED = 41
TENANTS = 8
DAYS = 20
FETCH = {"history_days": DAYS, "concurrency": 4}
EARLY_WINDOW = 0.05  # seconds after the database is first opened: schema, lock, planning
RUN_WINDOW = 1.2  # seconds after the run starts by which its backfill has usually ended
OPENED = ": schema revision "  # the fetcher's debug line as it first looks at the database's schema
STARTED = "tenant(s) to fetch"


@pytest.fixture(scope="module")
def kill_rig(tmp_path_factory: pytest.TempPathFactory, transcripts: Transcripts) -> Iterator[Rig]:
    """One simulator for every seed (its data cache stays warm); each seed brings its own database."""
    tenants = [tenant_with(t, Fault.latency(50)) for t in generate_tenants(TENANTS, seed=SEED)]
    with rig(
        tmp_path_factory.mktemp("kill"),
        "sqlite+aiosqlite:///unused.db",
        tenants,
        transcripts,
        seed=SEED,
        controls_per_day=120,
        fetch=FETCH,
    ) as r:
        yield r


def kill_moment(seed: int) -> tuple[str, float]:
    """The log line to wait for, and how long after it to kill."""
    rng = random.Random(seed)
    if seed % 5 == 0:
        return OPENED, rng.uniform(0, EARLY_WINDOW)
    return STARTED, rng.uniform(0, RUN_WINDOW)


def stage(url: str) -> str:
    """How far the killed run had come, from what its database shows."""

    def query(conn: sa.Connection) -> str:
        if not sa.inspect(conn).has_table("tenant_runs"):
            return "creating the schema"
        statuses = conn.execute(sa.select(fetch_runs.c.status)).scalars().all()
        if not statuses:
            return "taking the lock or planning"
        if statuses != ["running"]:
            return "exiting after the run ended"
        if conn.execute(sa.select(sa.func.count()).select_from(tenant_runs)).scalar_one() == 0:
            return "fetching, nothing stored yet"
        return "storing tenants"

    return read(url, query)


def assert_whole_or_absent(r: Rig) -> set[str]:
    """Every tenant holds all its days or none, and exactly the whole ones have a succeeded ledger row."""
    holding = stored(r.database_url)
    whole = set()
    for tenant_id, days in holding.items():
        assert days == truth(r.sim, tenant_id, DAYS), f"tenant {tenant_id} is half-written after the kill"
        whole.add(tenant_id)
    _, tenant_rows = ledger(r.database_url)
    assert {row["tenant_id"] for row in tenant_rows if row["status"] == "succeeded"} == whole
    return whole


def test_a_killed_backfill_loses_nothing_once_run_again(
    kill_rig: Rig, kill_seed: tuple[str, int], tmp_path: Path, request: pytest.FixtureRequest, figures: Figures
) -> None:
    backend, seed = kill_seed
    r = kill_rig
    if backend == "sqlite":
        database = tmp_path / "kill.db"
        r.database_url = f"sqlite+aiosqlite:///{database}"
    else:
        r.database_url = request.getfixturevalue("reliability_postgres")
    r.configure()
    tenants = list(r.sim.tenants)

    after, delay = kill_moment(seed)
    backfill = r.start("backfill")
    assert backfill.wait_for_log(after), essence(backfill.stderr())
    time.sleep(delay)
    killed = backfill.kill()
    reached = stage(r.database_url) if killed.returncode == -9 else "ended before the kill"
    figures.kills[f"{backend}: {reached}"] += 1
    figures.faults["kill -9"] += 1
    schema = reached != "creating the schema"
    if schema:
        assert_whole_or_absent(r)
    before = ledger(r.database_url)[0] if schema else []

    again = r.fetcher("run")

    assert again.returncode == 0, essence(again.stderr)
    figures.resumed += 1
    figures.days_compared += assert_equals_truth(r.database_url, r.sim, dict.fromkeys(tenants, DAYS))
    runs, tenant_rows = ledger(r.database_url)
    assert [run["status"] for run in runs] == [
        *("interrupted" if run["status"] == "running" else run["status"] for run in before),
        "succeeded",
    ]
    final = {row["tenant_id"]: row["status"] for row in tenant_rows if row["run_id"] == runs[-1]["run_id"]}
    assert final == dict.fromkeys(tenants, "succeeded")
    if backend == "sqlite":
        assert lock_rows(r.database_url) == []


def test_a_resumed_backfill_with_a_longer_window_loses_no_days(
    tmp_path: Path, database_url: str, transcripts: Transcripts
) -> None:
    """`backfill --days 5` cut short, then `backfill --resume` (90 days): the tenants the first finished
    hold 5 days, not 90, so the resume fetches them again; until then `status` shows them short."""
    tenants = generate_tenants(4, seed=SEED + 7)
    refused = dataclasses.replace(tenants[0], faults=(Fault.status(503, endpoint="token", times=3),))
    with rig(tmp_path, database_url, [refused, *tenants[1:]], transcripts) as r:
        first = r.fetcher("backfill", "--days", "5")  # one tenant fails: the backfill ends partial
        status_after_first = r.fetcher("status", "--format", "json")
        resumed = r.fetcher("backfill", "--resume")
        status_after_resume = r.fetcher("status", "--format", "json")

        assert (first.returncode, resumed.returncode) == (1, 0), essence(resumed.stderr)
        assert_equals_truth(r.database_url, r.sim, dict.fromkeys(r.sim.tenants, 90))
    short = {
        row["tenant_id"]: (row["stored_days"], row["short_history"]) for row in json.loads(status_after_first.stdout)
    }
    assert short == {t.tenant_id: (0 if t is tenants[0] else 5, t is not tenants[0]) for t in tenants}
    assert "3 enabled tenant(s) hold fewer days than [fetch] history_days = 90" in status_after_first.stderr
    after = {
        row["tenant_id"]: (row["stored_days"], row["short_history"]) for row in json.loads(status_after_resume.stdout)
    }
    assert after == {t.tenant_id: (90, False) for t in tenants}

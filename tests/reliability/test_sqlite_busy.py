"""An SQLite database held by another writer: the fetcher waits out `busy_timeout_seconds`, then fails the
tenant with a clear message, and stores the rest once the writer lets go."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from fetcher.simulator import Fault, generate_tenants
from tests.reliability.conftest import Figures
from tests.reliability.harness import (
    Rig,
    Transcripts,
    assert_equals_truth,
    essence,
    fatal_errors,
    ledger,
    lock_rows,
    rig,
    tenant_with,
    wait_for,
)

pytestmark = pytest.mark.slow

SEED = 43
DAYS = 10
BUSY_TIMEOUT = 0.5


@contextmanager
def held(database: Path) -> Iterator[sqlite3.Connection]:
    """Another process's writer: `BEGIN IMMEDIATE` on the same file, held until the block ends."""
    conn = sqlite3.connect(database, timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield conn
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def migrated(r: Rig) -> None:
    done = r.fetcher("migrate")
    assert done.returncode == 0, done.stderr


def test_a_run_that_cannot_take_its_lease_exits_3_with_one_line(
    tmp_path: Path, transcripts: Transcripts, figures: Figures
) -> None:
    database = tmp_path / "held.db"
    tenants = generate_tenants(2, seed=SEED)
    with rig(
        tmp_path,
        f"sqlite+aiosqlite:///{database}",
        tenants,
        transcripts,
        seed=SEED,
        fetch={"history_days": DAYS},
        database={"busy_timeout_seconds": BUSY_TIMEOUT},
    ) as r:
        migrated(r)
        with held(database):
            started = time.monotonic()
            refused = r.fetcher("run")
            waited = time.monotonic() - started
        figures.faults["sqlite writer held at start"] += 1

        assert refused.returncode == 3, essence(refused.stderr)
        errors = fatal_errors(refused.stderr)
        assert len(errors) == 1, essence(refused.stderr)
        assert "locked by another writer" in errors[0]
        assert "busy_timeout_seconds = 0.5" in errors[0]
        assert "Traceback" not in refused.stderr
        assert waited >= BUSY_TIMEOUT
        assert ledger(r.database_url) == ([], [])

        again = r.fetcher("run")

        assert again.returncode == 0, essence(again.stderr)
        assert_equals_truth(r.database_url, r.sim, dict.fromkeys(r.sim.tenants, DAYS))


def test_a_writer_holding_the_database_mid_run_fails_the_tenants_it_blocks(
    tmp_path: Path, transcripts: Transcripts, figures: Figures
) -> None:
    database = tmp_path / "held.db"
    tenants = [tenant_with(t, Fault.latency(400)) for t in generate_tenants(10, seed=SEED)]
    with rig(
        tmp_path,
        f"sqlite+aiosqlite:///{database}",
        tenants,
        transcripts,
        seed=SEED,
        controls_per_day=40,
        fetch={"history_days": DAYS, "concurrency": 2},
        database={"busy_timeout_seconds": BUSY_TIMEOUT},
    ) as r:
        migrated(r)
        backfill = r.start("backfill")
        wait_for(lambda: len(ledger(r.database_url)[1]) >= 1)
        with held(database):
            time.sleep(4 * BUSY_TIMEOUT + 1.5)
        figures.faults["sqlite writer held mid-run"] += 1
        done = backfill.finish(timeout=120)

        assert done.returncode == 1, essence(done.stderr)
        assert "Traceback" not in done.stderr
        runs, rows = ledger(r.database_url)
        assert [run["status"] for run in runs] == ["partial"]
        outcome = {row["tenant_id"]: (row["status"], row["error_kind"]) for row in rows}
        assert set(outcome) == set(r.sim.tenants), "every tenant's outcome is in the ledger"
        blocked = {t for t, (status, _) in outcome.items() if status == "failed"}
        assert blocked, "the held lock blocked no tenant; hold it longer"
        assert {outcome[t] for t in blocked} == {("failed", "database_locked")}
        messages = {row["error_message"] for row in rows if row["tenant_id"] in blocked}
        assert all("locked by another writer" in m and "busy_timeout_seconds = 0.5" in m for m in messages)
        expected = {t: 0 if t in blocked else DAYS for t in r.sim.tenants}
        assert_equals_truth(r.database_url, r.sim, expected)

        again = r.fetcher("run")

        assert again.returncode == 0, essence(again.stderr)
        assert_equals_truth(r.database_url, r.sim, dict.fromkeys(r.sim.tenants, DAYS))
        assert lock_rows(r.database_url) == []

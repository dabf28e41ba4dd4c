"""PostgreSQL connections terminated in the middle of a run (`pg_terminate_backend`, as a DBA or a failover
would): the tenants hit are retried or failed cleanly, the rest stored, and the next run completes them.

The run lock's own connection dies too; PostgreSQL then drops the advisory lock. The run goes on: every
tenant is still one transaction of upserts, so even a second run started meanwhile could not store a day
twice or half (see docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from fetcher.config import DatabaseConfig
from fetcher.simulator import Fault, generate_tenants
from fetcher.store.engine import create_engine
from tests.reliability.conftest import Figures
from tests.reliability.harness import (
    Transcripts,
    assert_equals_truth,
    essence,
    ledger,
    rig,
    stored,
    tenant_with,
    truth,
    wait_for,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SEED = 47
DAYS = 15
TERMINATE = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


async def terminate_every(url: str, interval: float, stop: threading.Event) -> int:
    """Terminate every other connection to the database each `interval` seconds until `stop`."""
    engine = create_engine(DatabaseConfig(url=url))
    killed = 0
    try:
        while not stop.is_set():
            async with engine.connect() as conn:
                killed += int((await conn.execute(sa.text(TERMINATE))).scalar_one())
                await conn.commit()
            await asyncio.sleep(interval)
    finally:
        await engine.dispose()
    return killed


def test_terminated_connections_fail_or_retry_tenants_cleanly(
    tmp_path: Path, reliability_postgres: str, transcripts: Transcripts, figures: Figures
) -> None:
    postgres_url = reliability_postgres
    tenants = [tenant_with(t, Fault.latency(250)) for t in generate_tenants(16, seed=SEED)]
    with rig(
        tmp_path,
        postgres_url,
        tenants,
        transcripts,
        seed=SEED,
        controls_per_day=120,
        fetch={"history_days": DAYS, "concurrency": 4},
    ) as r:
        backfill = r.start("backfill")
        wait_for(lambda: len(ledger(postgres_url)[1]) >= 1)
        stop, result = threading.Event(), []
        killer = threading.Thread(target=lambda: result.append(asyncio.run(terminate_every(postgres_url, 0.7, stop))))
        killer.start()
        try:
            done = backfill.finish(timeout=120)
        finally:
            stop.set()
            killer.join()
        figures.connections_terminated += result[0] if result else 0
        figures.faults["postgres connections terminated"] += result[0] if result else 0

        assert result, "the thread terminating connections failed"
        assert result[0] > 0, "no connection was terminated; the run ended too soon"
        assert done.returncode in (0, 1), essence(done.stderr)
        assert "Traceback" not in done.stderr
        runs, rows = ledger(postgres_url)
        assert len(runs) == 1
        assert runs[0]["status"] in ("succeeded", "partial")
        outcome = {row["tenant_id"]: (row["status"], row["error_kind"]) for row in rows}
        assert set(outcome) == set(r.sim.tenants), "every tenant's outcome is in the ledger"
        holding = stored(postgres_url)
        for tenant_id, (status, kind) in outcome.items():
            if status == "succeeded":
                assert holding[tenant_id] == truth(r.sim, tenant_id, DAYS)
            else:
                # A connection terminated mid-transaction is "database"; one terminated while the
                # pool reconnects is "database_unavailable": both are the database's failure.
                assert status == "failed", outcome[tenant_id]
                assert kind in {"database", "database_unavailable"}, outcome[tenant_id]
                assert tenant_id not in holding

        again = r.fetcher("run")

        assert again.returncode == 0, essence(again.stderr)
        assert_equals_truth(postgres_url, r.sim, dict.fromkeys(r.sim.tenants, DAYS))
        assert ledger(postgres_url)[0][-1]["status"] == "succeeded"

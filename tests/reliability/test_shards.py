"""Four shards of one PostgreSQL database at once (`fetcher backfill --shard K/4`, real processes against the
simulator), three rounds: every tenant stored exactly once per round, by its own shard, with the
simulator's values, and no shard failing on the rows they share (the `controls` dimension, `tenants`);
in the third, one shard is killed with SIGKILL mid-run, and its rerun (`--resume`) converges.
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from fetcher.models import Shard, shard_number
from fetcher.simulator import Fault, generate_tenants
from fetcher.store.schema import fetch_runs, tenant_runs, tenants
from tests.reliability.harness import (
    Process,
    Rig,
    Transcripts,
    assert_equals_truth,
    essence,
    ledger,
    read,
    rig,
    tenant_with,
    wait_for,
)

pytestmark = pytest.mark.slow

SEED = 53
TENANTS = 400
SHARDS = 4
DAYS = 2
ROUNDS = 2  # then a third round in which one shard is killed
VICTIM = Shard(3, SHARDS)
# Small tenants (few controls, few days) so that 4 x 400 tenants a round fit a loaded 2-core machine; the
# latency keeps each shard's run going long enough to be killed in the middle of it. Control profiles stay
# off (the harness's default): their rows are keyed per tenant, so shards never share one.
FETCH = {"history_days": DAYS, "concurrency": 16}


def start_shards(r: Rig) -> dict[Shard, Process]:
    return {Shard(k, SHARDS): r.start("backfill", "--shard", f"{k}/{SHARDS}") for k in range(1, SHARDS + 1)}


def assert_round_stored_each_tenant_once(r: Rig, runs: list[dict[str, object]]) -> None:
    """The round's runs, one per shard, each succeeded with exactly its own tenants, each tenant once."""
    url = r.database_url
    assert sorted(str(run["shard"]) for run in runs) == [f"{k}/{SHARDS}" for k in range(1, SHARDS + 1)]
    assert all(run["status"] == "succeeded" for run in runs), [(run["shard"], run["status"]) for run in runs]
    ids = {str(run["run_id"]): str(run["shard"]) for run in runs}
    rows = [row for row in ledger(url)[1] if row["run_id"] in ids]
    per_tenant = Counter(row["tenant_id"] for row in rows)
    assert set(per_tenant) == set(r.sim.tenants)
    assert set(per_tenant.values()) == {1}, "a tenant stored twice in one round"
    for row in rows:
        assert row["status"] == "succeeded", (row["tenant_id"], row["status"], row["error_message"])
        assert ids[row["run_id"]] == f"{shard_number(row['tenant_id'], SHARDS)}/{SHARDS}"
    assert_equals_truth(url, r.sim, dict.fromkeys(r.sim.tenants, DAYS))


@pytest.mark.postgres
def test_four_shards_at_once_store_every_tenant_once_and_a_killed_shard_converges(
    tmp_path: Path, reliability_postgres: str, transcripts: Transcripts
) -> None:
    url = reliability_postgres
    simulated = [tenant_with(t, Fault.latency(20)) for t in generate_tenants(TENANTS, seed=SEED)]
    with rig(tmp_path, url, simulated, transcripts, seed=SEED, controls_per_day=8, fetch=FETCH) as r:
        r.log_options = ("--log-format", "json")  # info and up: sixteen processes' debug lines cost seconds of CPU
        assert r.fetcher("migrate").returncode == 0  # as a job's first step would: shards need no schema race
        seen: set[str] = set()
        for round_number in range(1, ROUNDS + 1):
            processes = start_shards(r)
            done = {shard: p.finish(timeout=120) for shard, p in processes.items()}

            for shard, result in done.items():
                assert result.returncode == 0, f"round {round_number}, shard {shard}: {essence(result.stderr)}"
                assert "deadlock" not in result.stderr.lower()
            runs = [run for run in ledger(url)[0] if run["run_id"] not in seen]
            seen |= {str(run["run_id"]) for run in runs}
            assert_round_stored_each_tenant_once(r, runs)

        # SIGKILL one shard in the middle of its run; the others finish beside it.
        processes = start_shards(r)
        victim = processes.pop(VICTIM)
        wait_for(lambda: stored_by_running(url, VICTIM) >= 5, timeout=60)
        killed = victim.kill()
        others = {shard: p.finish(timeout=120) for shard, p in processes.items()}

        assert killed.returncode == -9
        assert all(result.returncode == 0 for result in others.values()), [essence(o.stderr) for o in others.values()]
        [dead] = [run for run in ledger(url)[0] if run["shard"] == str(VICTIM) and run["status"] == "running"]

        rerun = r.fetcher("backfill", "--shard", str(VICTIM), "--resume")

        assert rerun.returncode == 0, essence(rerun.stderr)
        runs = {str(run["run_id"]): run for run in ledger(url)[0]}
        assert runs[str(dead["run_id"])]["status"] == "interrupted"  # found dead by the rerun of its shard
        assert_equals_truth(url, r.sim, dict.fromkeys(r.sim.tenants, DAYS))
        assert read(url, lambda conn: conn.execute(sa.select(sa.func.count()).select_from(tenants)).scalar_one()) == (
            TENANTS
        )


def stored_by_running(url: str, shard: Shard) -> int:
    """How many tenants the running run of `shard` has stored so far."""

    def query(conn: sa.Connection) -> int:
        running = sa.select(fetch_runs.c.run_id).where(
            fetch_runs.c.shard == str(shard), fetch_runs.c.status == "running"
        )
        return int(
            conn.execute(
                sa.select(sa.func.count()).select_from(tenant_runs).where(tenant_runs.c.run_id.in_(running))
            ).scalar_one()
        )

    return int(read(url, query))


def test_sqlite_runs_shards_one_after_another_and_status_sees_them_all(
    tmp_path: Path, transcripts: Transcripts
) -> None:
    """SQLite has one writer: a second shard started beside the first is refused (exit 3, saying so); run one
    after another, the shards store every tenant, and `fetcher status` shows them all."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'shards.db'}"
    simulated = generate_tenants(6, seed=SEED)
    # Shard 1's first list requests hang far longer than any start-up, however loaded the machine; it is
    # stopped with SIGTERM once shard 2 has been refused, and its second run finds Graph answering.
    hang = Fault.latency(600_000, endpoint="list", times=1)
    held = [tenant_with(t, hang) if Shard(1, 2).holds(t.tenant_id) else t for t in simulated]
    with rig(tmp_path, url, held, transcripts, seed=SEED, controls_per_day=8, fetch=FETCH) as r:
        first = r.start("backfill", "--shard", "1/2")
        try:
            wait_for(lambda: len(ledger(url)[0]) == 1)
            beside = r.fetcher("backfill", "--shard", "2/2")
        finally:
            first.popen.send_signal(signal.SIGTERM)
            stopped = first.finish()
        shards = [r.fetcher("backfill", "--shard", shard) for shard in ("2/2", "1/2")]
        status = r.fetcher("status", "--format", "json")

    assert stopped.returncode == 143
    assert beside.returncode == 3
    assert "shard 2/2: shard 1/2 (pid " in beside.stderr
    assert "which takes one writer: run the shards one after another, or side by side on PostgreSQL" in beside.stderr
    assert [s.returncode for s in shards] == [0, 0], [essence(s.stderr) for s in shards]
    assert status.returncode == 0, essence(status.stderr)
    assert {row["tenant_id"] for row in json.loads(status.stdout)} == {t.tenant_id for t in simulated}
    assert_equals_truth(url, r.sim, dict.fromkeys(r.sim.tenants, DAYS))

"""Ingestion runs end to end: `fetcher` processes against the simulator, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from fetcher.config import DatabaseConfig
from fetcher.errors import DatabaseGone, SchemaDamaged
from fetcher.simulator import Fault, TokenRefusal, generate_tenants
from fetcher.store.codec import is_zstd
from fetcher.store.engine import create_engine
from fetcher.store.schema import (
    archive_dictionaries,
    control_scores,
    fetch_runs,
    raw_payloads,
    rejected_payloads,
    secure_scores,
    tenant_runs,
)
from tests.dbutil import count, rows
from tests.e2e import World, world

TODAY = datetime.now(UTC).date()


def db_rows(url: str, table: sa.Table, **where: Any) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        engine = create_engine(DatabaseConfig(url=url))
        try:
            return await rows(engine, table, **where)
        finally:
            await engine.dispose()

    return asyncio.run(read())


def db_count(url: str, table: sa.Table, **where: Any) -> int:
    async def read() -> int:
        engine = create_engine(DatabaseConfig(url=url))
        try:
            return await count(engine, table, **where)
        finally:
            await engine.dispose()

    return asyncio.run(read())


def list_tops(w: World, tenant_id: str) -> list[str]:
    """The `$top` of every first-page list request a tenant made."""
    return [
        r.query.get("$top", "")
        for r in w.sim.requests
        if r.tenant_id == tenant_id and r.endpoint == "list" and "$skiptoken" not in r.query
    ]


def assert_stored_as_simulated(w: World, tenant_id: str, days: int, kept: set[str] = frozenset()) -> None:
    """The tenant's stored days are the simulator's newest `days` (plus older `kept` ones), every control too."""
    truth = w.sim.expected_objects(tenant_id, days)
    stored = db_rows(w.database_url, secure_scores, tenant_id=tenant_id)
    assert sorted(r["id"] for r in stored) == sorted({o["id"] for o in truth} | kept)
    scores = {r["id"]: r["current_score"] for r in stored}
    assert {o["id"]: scores.get(o["id"]) for o in truth} == {o["id"]: o["currentScore"] for o in truth}
    newest = {o["id"] for o in truth}
    stored_controls = sum(
        1
        for r in db_rows(w.database_url, control_scores, tenant_id=tenant_id)
        if f"{tenant_id}_{r['score_date']}" in newest
    )
    assert stored_controls == sum(len(o["controlScores"]) for o in truth)


def test_run_twice_asks_only_for_the_new_days(tmp_path: Path, database_url: str) -> None:
    tenants = generate_tenants(3, seed=11)
    with world(tmp_path, database_url, tenants, seed=11, newest_day=TODAY - timedelta(days=1)) as w:
        first = w.fetcher("run")
        assert first.returncode == 0, first.stderr
        before = {
            t.tenant_id: {r["id"] for r in db_rows(database_url, secure_scores, tenant_id=t.tenant_id)} for t in tenants
        }
        w.sim.newest_day = TODAY
        w.sim.clear_requests()

        second = w.fetcher("run")

        assert second.returncode == 0, second.stderr
        for tenant in tenants:
            assert list_tops(w, tenant.tenant_id) == ["2"]
            assert_stored_as_simulated(w, tenant.tenant_id, 90, kept=before[tenant.tenant_id])


def test_backfill_twice_stores_the_same_rows(tmp_path: Path, database_url: str) -> None:
    tenants = generate_tenants(2, seed=12)
    with world(tmp_path, database_url, tenants, seed=12) as w:
        assert w.fetcher("backfill", "--days", "30").returncode == 0
        first = {t.name: db_rows(database_url, t) for t in (secure_scores, control_scores, raw_payloads)}

        again = w.fetcher("backfill", "--days", "30")

        assert again.returncode == 0, again.stderr
        second = {t.name: db_rows(database_url, t) for t in (secure_scores, control_scores, raw_payloads)}
        volatile = {"fetched_at", "run_id", "last_fetched_at"}
        for name, table_rows in first.items():
            strip = [{k: v for k, v in r.items() if k not in volatile} for r in table_rows]
            assert strip == [{k: v for k, v in r.items() if k not in volatile} for r in second[name]], name
        for tenant in tenants:
            assert_stored_as_simulated(w, tenant.tenant_id, 30)


def test_backfill_since_a_date_fetches_that_window(tmp_path: Path, database_url: str) -> None:
    tenant = generate_tenants(1, seed=13)[0]
    with world(tmp_path, database_url, [tenant], seed=13) as w:
        done = w.fetcher("backfill", "--since", str(TODAY - timedelta(days=4)))

        assert done.returncode == 0, done.stderr
        assert list_tops(w, tenant.tenant_id) == ["5"]
        assert_stored_as_simulated(w, tenant.tenant_id, 5)


def test_get_stores_one_day_and_prints_it(tmp_path: Path, database_url: str) -> None:
    tenant = generate_tenants(1, seed=14)[0]
    day = TODAY - timedelta(days=3)
    with world(tmp_path, database_url, [tenant], seed=14) as w:
        done = w.fetcher("get", f"{tenant.tenant_id}_{day}")

        assert done.returncode == 0, done.stderr
        printed = json.loads(done.stdout)
        assert printed["id"] == f"{tenant.tenant_id}_{day}"
        assert [r["id"] for r in db_rows(database_url, secure_scores)] == [printed["id"]]
        assert [r["command"] for r in db_rows(database_url, fetch_runs)] == ["get"]


def test_get_of_a_missing_day_fails_with_not_found(tmp_path: Path, database_url: str) -> None:
    tenant = generate_tenants(1, seed=14)[0]
    with world(tmp_path, database_url, [tenant], seed=14) as w:
        done = w.fetcher("get", f"{tenant.tenant_id}_1999-01-01")

        assert done.returncode == 1
        assert [(r["status"], r["error_kind"]) for r in db_rows(database_url, tenant_runs)] == [("failed", "not_found")]


def test_failing_tenants_end_with_exit_1_and_healthy_ones_fully_stored(tmp_path: Path, database_url: str) -> None:
    healthy = generate_tenants(4, seed=15)
    broken = generate_tenants(9, seed=16)[4:]
    troubled = [
        dataclasses.replace(broken[0], consent=False),
        dataclasses.replace(broken[1], faults=(Fault.token_refusal(TokenRefusal.INVALID_SECRET),)),
        dataclasses.replace(broken[2], registered=False),
        dataclasses.replace(broken[3], faults=(Fault.status(503, endpoint="list"),)),
        dataclasses.replace(broken[4], faults=(Fault.status(429, retry_after=1, endpoint="list", times=1),)),
    ]
    with world(tmp_path, database_url, [*healthy, *troubled], seed=15) as w:
        done = w.fetcher("backfill", "--days", "20")

        assert done.returncode == 1, done.stderr
        ledger = {r["tenant_id"]: (r["status"], r["error_kind"]) for r in db_rows(database_url, tenant_runs)}
        assert ledger == {
            **{t.tenant_id: ("succeeded", None) for t in healthy},
            troubled[0].tenant_id: ("failed", "permission"),
            troubled[1].tenant_id: ("failed", "authentication"),
            troubled[2].tenant_id: ("failed", "authentication"),
            troubled[3].tenant_id: ("failed", "server_error"),
            troubled[4].tenant_id: ("succeeded", None),
        }
        for tenant in [*healthy, troubled[4]]:
            assert_stored_as_simulated(w, tenant.tenant_id, 20)
        for tenant in troubled[:4]:
            assert db_count(database_url, secure_scores, tenant_id=tenant.tenant_id) == 0
        run = db_rows(database_url, fetch_runs)[0]
        assert (run["status"], run["tenants_succeeded"], run["tenants_failed"], run["scores_upserted"]) == (
            "partial",
            5,
            4,
            100,
        )
        throttled = {r["tenant_id"]: r["throttled"] for r in db_rows(database_url, tenant_runs)}
        assert throttled[troubled[4].tenant_id] == 1
        assert "SecurityEvents.Read.All" in done.stderr


def test_a_tenant_throttled_to_the_end_says_the_retries_ran_out(tmp_path: Path, database_url: str) -> None:
    tenant = dataclasses.replace(
        generate_tenants(1, seed=18)[0], faults=(Fault.status(429, retry_after=0, endpoint="list"),)
    )
    with world(tmp_path, database_url, [tenant], seed=18) as w:
        w.write_config(fetch={"max_attempts": 2, "control_profiles": False})

        done = w.fetcher("backfill", "--days", "2")

        assert done.returncode == 4, done.stderr
        [row] = db_rows(database_url, tenant_runs)
        assert (row["error_kind"], row["throttled"]) == ("throttled", 2)
        assert row["error_message"] == (
            f"tenant {tenant.tenant_id} ({tenant.name}): Graph throttled the request (429: TooManyRequests: Too many "
            "requests. Please try again later.), asked to wait 0 s; gave up after 2 attempts ([fetch] max_attempts)"
        )
        assert "gave up after 2 attempts ([fetch] max_attempts)" in done.stderr


def test_a_payload_for_another_tenant_is_quarantined_and_fails_the_tenant(tmp_path: Path, database_url: str) -> None:
    mine, other = generate_tenants(2, seed=17)
    victim = dataclasses.replace(mine, faults=(Fault.wrong_tenant(other.tenant_id, endpoint="list"),))
    with world(tmp_path, database_url, [victim, other], seed=17) as w:
        w.write_config(tenants=[victim.tenant_id])

        done = w.fetcher("backfill", "--days", "5")

        assert done.returncode == 4  # the run's only tenant failed: every tenant failed
        stored = db_rows(database_url, secure_scores)
        assert all(r["tenant_id"] == victim.tenant_id and r["id"].startswith(victim.tenant_id) for r in stored)
        assert db_count(database_url, secure_scores, tenant_id=other.tenant_id) == 0
        rejected = db_rows(database_url, rejected_payloads)
        assert rejected
        assert all(r["tenant_id"] == victim.tenant_id for r in rejected)
        assert all(other.tenant_id in r["reason"] for r in rejected)
        assert [(r["status"], r["error_kind"]) for r in db_rows(database_url, tenant_runs)] == [
            ("failed", "wrong_tenant")
        ]


def test_when_every_tenant_fails_for_one_cause_it_exits_4_and_says_the_cause_once(
    tmp_path: Path, database_url: str
) -> None:
    refused = (Fault.token_refusal(TokenRefusal.INVALID_SECRET),)
    tenants = [dataclasses.replace(t, faults=refused) for t in generate_tenants(3, seed=21)]
    with world(tmp_path, database_url, tenants, seed=21) as w:
        done = w.fetcher("--log-format", "json", "backfill", "--days", "2")
        verbose = w.fetcher("backfill", "--days", "2", "-v")

    assert done.returncode == 4, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    warnings = [e for e in lines if e["level"] == "warning" and e["logger"] == "fetcher.run"]
    assert len(warnings) == 1, done.stderr
    assert warnings[0]["message"].startswith("3 tenants: ")
    assert {k: warnings[0].get(k) for k in ("command", "error_kind")} == {
        "command": "backfill",
        "error_kind": "authentication",
    }
    assert warnings[0]["run_id"] in {r["run_id"] for r in db_rows(database_url, fetch_runs)}
    assert all(t.tenant_id not in warnings[0]["message"] for t in tenants)
    assert len(db_rows(database_url, tenant_runs, status="failed")) == 6
    assert verbose.returncode == 4
    assert all(t.tenant_id in verbose.stderr for t in tenants)  # -v: each tenant's own line


def test_a_second_run_on_the_same_database_is_refused(tmp_path: Path, database_url: str) -> None:
    # The first run's list requests hang far longer than any start-up, however loaded the machine;
    # it is stopped with SIGTERM once the second has been refused, so the test does not wait on it.
    delay = (Fault.latency(600_000, endpoint="list"),)
    slow = [dataclasses.replace(t, faults=delay) for t in generate_tenants(4, seed=18)]
    with world(tmp_path, database_url, slow, seed=18) as w:
        first = w.start("backfill", "--days", "60")
        try:
            _wait_for(lambda: db_count(database_url, fetch_runs) == 1)

            second = w.fetcher("run")

            assert second.returncode == 3
            assert "another fetcher run" in second.stderr
        finally:
            first.send_signal(signal.SIGTERM)
            first.wait(timeout=120)
        assert first.returncode == 143


def test_sigterm_mid_run_leaves_stored_tenants_whole_and_the_run_interrupted(tmp_path: Path, database_url: str) -> None:
    tenants = [dataclasses.replace(t, faults=(Fault.latency(150),)) for t in generate_tenants(12, seed=19)]
    with world(tmp_path, database_url, tenants, seed=19) as w:
        w.write_config(fetch={"concurrency": 2})
        proc = w.start("backfill", "--days", "60")
        _wait_for(lambda: db_count(database_url, tenant_runs) >= 2)

        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)

        stderr = proc.stderr.read() if proc.stderr else ""
        assert proc.returncode == 143, stderr
        run = db_rows(database_url, fetch_runs)[0]
        assert run["status"] == "interrupted"
        ledger = {r["tenant_id"]: r["status"] for r in db_rows(database_url, tenant_runs)}
        assert "succeeded" in ledger.values()
        # Interrupted is not failed: counted apart, and the summary ends with how to continue.
        interrupted = sum(status == "interrupted" for status in ledger.values())
        assert (run["tenants_failed"], run["tenants_interrupted"]) == (0, interrupted)
        assert f"to continue: fetcher --config {w.config} backfill --resume --days 60" in stderr
        assert "failed" not in set(ledger.values())
        assert len(ledger) < len(tenants)
        for tenant in tenants:
            if ledger.get(tenant.tenant_id) == "succeeded":
                assert_stored_as_simulated(w, tenant.tenant_id, 60)
            else:
                assert db_count(database_url, secure_scores, tenant_id=tenant.tenant_id) == 0

        resumed = w.fetcher("backfill", "--days", "60", "--resume")

        assert resumed.returncode == 0, resumed.stderr
        for tenant in tenants:
            assert_stored_as_simulated(w, tenant.tenant_id, 60)
        resumed_tenants = {r["tenant_id"] for r in db_rows(database_url, tenant_runs) if r["run_id"] != run["run_id"]}
        assert resumed_tenants == {t.tenant_id for t in tenants} - {
            t for t, status in ledger.items() if status == "succeeded"
        }


def test_a_run_stopped_after_training_leaves_its_zlib_bodies_and_the_next_run_recompresses_them(
    tmp_path: Path, database_url: str
) -> None:
    """A stopped run ends without its after-run pass over the archive; the resumed run's pass does it."""
    # 24 tenants of 60 days, each request 0.3 s late: the dictionary comes after 4 tenants, with seconds to go.
    tenants = [dataclasses.replace(t, faults=(Fault.latency(300),)) for t in generate_tenants(24, seed=24)]
    with world(tmp_path, database_url, tenants, seed=24) as w:
        w.write_config(fetch={"concurrency": 2, "control_profiles": False})
        proc = w.start("backfill", "--days", "60")
        _wait_for(lambda: db_count(database_url, archive_dictionaries) == 1)  # trained after 200 score-days

        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        left = zlib_bodies(database_url)
        resumed = w.fetcher("backfill", "--days", "60", "--resume")

        assert proc.returncode == 143
        # The bases saved before the dictionary (a delta is a zstd frame from the start): not recompressed yet.
        assert left > 0
        assert resumed.returncode == 0, resumed.stderr
        assert zlib_bodies(database_url) == 0
        assert db_count(database_url, raw_payloads) == 24 * 60


def zlib_bodies(url: str) -> int:
    return sum(not is_zstd(row["body"]) for row in db_rows(url, raw_payloads))


def test_status_exits_1_when_an_enabled_tenant_is_stale(tmp_path: Path, database_url: str) -> None:
    tenants = generate_tenants(2, seed=20)
    with world(tmp_path, database_url, tenants, seed=20, newest_day=TODAY - timedelta(days=3)) as w:
        assert w.fetcher("backfill", "--days", "5").returncode == 0

        fresh = w.invoke("status", "--max-age", "200")
        stale = w.invoke("status", "--format", "json")

        assert fresh.returncode == 0, fresh.stdout + fresh.stderr
        assert stale.returncode == 1
        states = json.loads(stale.stdout)
        assert {s["tenant_id"]: (s["newest_score_date"], s["stale"]) for s in states} == {
            t.tenant_id: (str(TODAY - timedelta(days=3)), True) for t in tenants
        }


def _wait_for(condition: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not _holds(condition):
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def _holds(condition: Any) -> bool:
    try:
        return bool(condition())
    except sa.exc.OperationalError:  # the process under test has not created the tables yet
        return False


async def test_a_sqlite_file_deleted_while_tenants_are_fetched_stops_the_run_within_a_look(
    sqlite_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run noticed only at its next commit: the tester's backfill fetched on for 30 s after the file was gone.
    Now the file is looked at every WATCH_SECONDS while fetching: the fetches (here hung for 10 minutes) are
    abandoned and the run ends with the file's one line."""
    from fetcher import runner
    from fetcher.outcome import QuietObserver, RunReport
    from fetcher.plan import plan_backfill
    from fetcher.simulator import Simulator, serving_simulator
    from tests.test_pipeline import config_for

    monkeypatch.setattr(runner, "WATCH_SECONDS", 0.01)
    path = Path(str(sqlite_engine.url.database))
    tenants = [dataclasses.replace(t, faults=(Fault.latency(600_000),)) for t in generate_tenants(2, seed=38)]
    started = asyncio.Event()

    class Started(QuietObserver):
        def started(self, _report: RunReport) -> None:
            started.set()

    async with serving_simulator(Simulator(tenants, seed=38, controls_per_day=5)) as running:
        config = config_for(running, sqlite_engine.url.render_as_string(hide_password=False))
        request = plan_backfill(config.enabled_tenants, 3, resume=False)
        run = runner.Run(config, "backfill", request, engine=sqlite_engine, observer=Started())
        task = asyncio.create_task(run.execute())
        await started.wait()
        for leftover in path.parent.glob(f"{path.name}*"):
            leftover.unlink()
        with pytest.raises(DatabaseGone) as gone:
            await asyncio.wait_for(task, 60)

    assert str(gone.value).startswith(f"database {path} was deleted while this fetcher had it open")
    assert not path.exists()


async def test_an_archive_the_full_disk_keeps_from_compacting_is_one_warning_line(
    sqlite_engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """It was SQLAlchemy's text: the driver's line, then "(Background on this error at: https://sqlalche.me/...)"."""
    import sqlite3
    from typing import cast

    from fetcher import runner
    from fetcher.config import parse_config
    from fetcher.plan import plan_backfill
    from fetcher.store.compaction import RunArchive

    url = sqlite_engine.url.render_as_string(hide_password=False)
    config = parse_config(
        {
            "database": {"url": url},
            "auth": {"client_id": "00000000-0000-0000-0000-0000000000aa", "client_secret": "env:S"},
            "tenants": [{"tenant_id": "11111111-1111-1111-1111-111111111111"}],
        },
        environ={"S": "secret"},
    )

    class FullDisk:
        engine = sqlite_engine

        async def finish(self, **_options: bool) -> None:
            error = sqlite3.OperationalError("database or disk is full")
            raise sa.exc.OperationalError("UPDATE raw_payloads SET body = ?", {}, error)

    run = runner.Run(config, "backfill", plan_backfill(config.enabled_tenants, 1, resume=False), engine=sqlite_engine)
    with caplog.at_level("WARNING", logger="fetcher.runner"):
        await run._compact_archive(cast(RunArchive, FullDisk()), True)

    assert [r.getMessage() for r in caplog.records] == [
        f"archive not compacted: database {sqlite_engine.url}: database or disk is full"
    ]


async def _settle() -> None:
    """Let every task that can run, run (no wall clock: a few turns of the loop)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def _holding(budget: Any, days: int, entered: list[int], leave: asyncio.Event) -> None:
    async with budget.hold(days):
        entered.append(days)
        await leave.wait()


async def test_tenants_in_flight_hold_at_most_the_day_budget() -> None:
    """Three tenants of 30 days fit a budget of 90; a fourth waits until one of them is saved."""
    from fetcher.runner import DayBudget

    budget, entered = DayBudget(90), []
    leave = [asyncio.Event() for _ in range(4)]
    tasks = [asyncio.create_task(_holding(budget, 30, entered, leave[i])) for i in range(4)]
    await _settle()
    assert (entered, budget.held) == ([30, 30, 30], 90)

    leave[0].set()
    await _settle()
    assert (entered, budget.held) == ([30, 30, 30, 30], 90)
    for event in leave:
        event.set()
    await asyncio.gather(*tasks)
    assert budget.held == 0


async def test_a_tenant_of_more_days_than_the_budget_runs_alone() -> None:
    from fetcher.runner import DayBudget

    budget, entered = DayBudget(60), []
    first, second = asyncio.Event(), asyncio.Event()
    tasks = [
        asyncio.create_task(_holding(budget, 90, entered, first)),
        asyncio.create_task(_holding(budget, 1, entered, second)),
    ]
    await _settle()
    assert (entered, budget.held) == ([90], 60)

    first.set()
    await _settle()
    assert (entered, budget.held) == ([90, 1], 1)
    second.set()
    await asyncio.gather(*tasks)


async def test_a_waiting_tenant_is_not_passed_by_a_smaller_one() -> None:
    """Budget 90 with 60 held: a tenant of 90 waits, and one of 30 that came after it waits behind it."""
    from fetcher.runner import DayBudget

    budget, entered = DayBudget(90), []
    leave = [asyncio.Event() for _ in range(3)]
    tasks = [asyncio.create_task(_holding(budget, 60, entered, leave[0]))]
    await _settle()
    tasks += [asyncio.create_task(_holding(budget, days, entered, leave[i])) for i, days in ((1, 90), (2, 30))]
    await _settle()
    assert entered == [60]

    leave[0].set()
    await _settle()
    assert entered == [60, 90]
    leave[1].set()
    await _settle()
    assert entered == [60, 90, 30]
    leave[2].set()
    await asyncio.gather(*tasks)


@pytest.mark.parametrize(("days_a_slot", "most_in_flight"), [(5, 1), (10, 2)])
async def test_a_backfill_starts_no_tenant_while_its_days_would_pass_the_budget(
    sqlite_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, days_a_slot: int, most_in_flight: int
) -> None:
    """At concurrency 1 (two workers) and 5 days a tenant: a budget of 5 days fetches one tenant at a time, from its
    start to its save, one of 10 two; every tenant is stored whole either way, each with its ledger row."""
    from fetcher import runner
    from fetcher.outcome import QuietObserver, RunReport, TenantOutcome
    from fetcher.plan import plan_backfill
    from fetcher.resources.secure_scores import RESOURCE
    from fetcher.simulator import Simulator, serving_simulator
    from tests.test_pipeline import config_for

    monkeypatch.setattr(runner, "DAYS_A_SLOT", days_a_slot)
    in_flight, most = 0, 0

    async def counted(*args: Any) -> Any:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        async for page in RESOURCE.fetch(*args):
            yield page

    class Saved(QuietObserver):
        def tenant_done(self, _report: RunReport, _outcome: TenantOutcome) -> None:
            nonlocal in_flight
            in_flight -= 1

    resource = dataclasses.replace(RESOURCE, fetch=counted)
    async with serving_simulator(Simulator(generate_tenants(4, seed=39), seed=39, controls_per_day=5)) as running:
        config = config_for(running, sqlite_engine.url.render_as_string(hide_password=False))
        config = dataclasses.replace(config, fetch=dataclasses.replace(config.fetch, concurrency=1))
        request = plan_backfill(config.enabled_tenants, 5, resume=False)
        run = runner.Run(
            config, "backfill", request, engine=sqlite_engine, observer=Saved(), resources=lambda _plan: [resource]
        )
        report = await run.execute()

    assert (report.exit_code, most) == (0, most_in_flight)
    assert await count(sqlite_engine, secure_scores) == 4 * 5
    assert [r["status"] for r in await rows(sqlite_engine, tenant_runs)] == ["succeeded"] * 4


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_table_dropped_while_a_run_saves_ends_it_as_at_start_up_and_keeps_what_was_stored(
    migrated_then: Callable[..., str], kind: str
) -> None:
    """A table dropped mid-run failed the tenant whose save met it with the driver's line, and the run went on to
    its end, which failed on the same line (`no such table: tenant_runs`, `relation "tenant_runs" does not exist`).
    Now the run ends at that tenant, in the start-up check's words: SchemaDamaged, one line (exit 3). The tenant
    saved before stays whole; the one whose save met the missing table stored nothing (its transaction rolled
    back)."""
    from fetcher import runner
    from fetcher.outcome import QuietObserver, RunReport, TenantOutcome
    from fetcher.plan import plan_backfill
    from fetcher.resources import secure_scores as scores_resource
    from fetcher.simulator import Simulator, serving_simulator
    from fetcher.store.engine import display_url
    from tests.conftest import execute_sql
    from tests.test_pipeline import config_for

    url = migrated_then(kind)
    first, second = generate_tenants(2, seed=39)
    first_saved = asyncio.Event()

    async def fetch_then_drop(client: Any, plan: Any, stats: Any) -> AsyncIterator[Any]:
        async for page in scores_resource.RESOURCE.fetch(client, plan, stats):
            yield page
        if plan.tenant.tenant_id == second.tenant_id:  # fetched; the table goes before its save begins
            await first_saved.wait()
            await execute_sql(url, ["DROP TABLE tenant_runs" + (" CASCADE" if kind == "postgres" else "")])

    class FirstSaved(QuietObserver):
        def tenant_done(self, _report: RunReport, outcome: TenantOutcome) -> None:
            if outcome.tenant.tenant_id == first.tenant_id:
                first_saved.set()

    resource = dataclasses.replace(scores_resource.RESOURCE, fetch=fetch_then_drop)
    engine = create_engine(DatabaseConfig(url=url))
    try:
        async with serving_simulator(Simulator([first, second], seed=39, controls_per_day=5)) as running:
            config = config_for(running, url)
            request = plan_backfill(config.enabled_tenants, 3, resume=False)
            run = runner.Run(
                config, "backfill", request, engine=engine, observer=FirstSaved(), resources=lambda _plan: (resource,)
            )
            with pytest.raises(SchemaDamaged) as damaged:
                await asyncio.wait_for(run.execute(), 120)
            expected = {o["id"] for o in running.simulator.expected_objects(first.tenant_id, 3)}
        stored = {
            t.tenant_id: {r["id"] for r in await rows(engine, secure_scores, tenant_id=t.tenant_id)}
            for t in (first, second)
        }
        controls = {t.tenant_id: await count(engine, control_scores, tenant_id=t.tenant_id) for t in (first, second)}
    finally:
        await engine.dispose()

    assert str(damaged.value) == (
        f"database {display_url(engine)}: its table tenant_runs is missing (dropped while this command ran): restore "
        """the database from a backup (see the README's "Repairing the schema revision")"""
    )
    assert (stored, controls[second.tenant_id], controls[first.tenant_id] > 0) == (
        {first.tenant_id: expected, second.tenant_id: set()},
        0,
        True,
    )

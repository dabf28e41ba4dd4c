"""The run ledger: run rows, interrupted runs, --resume's chain, and `fetcher status`'s per-tenant state."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from fetcher.models import FetchContext, Shard
from fetcher.normalize import normalize_score
from fetcher.store import ledger
from fetcher.store.engine import transaction
from fetcher.store.ledger import DeadRuns, RunTotals, TenantRun, TenantState
from fetcher.store.schema import fetch_runs
from fetcher.store.scores import save_score_days, save_tenants
from tests.dbutil import rows
from tests.store.test_scores import payload

A = "aaaaaaaa-0000-4000-8000-000000000001"
B = "bbbbbbbb-0000-4000-8000-000000000002"
C = "cccccccc-0000-4000-8000-000000000003"
T0 = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


async def start(
    engine: AsyncEngine, run_id: str, minute: int, command: str = "backfill", shard: Shard | None = None
) -> None:
    async with transaction(engine) as conn:
        await ledger.start_run(
            conn, run_id=run_id, command=command, started_at=at(minute), tenants_total=3, host="h", pid=1, shard=shard
        )


async def tenant(engine: AsyncEngine, run_id: str, tenant_id: str, status: str, minute: int, **kw: object) -> None:
    async with transaction(engine) as conn:
        await ledger.record_tenant_run(conn, TenantRun(run_id, tenant_id, status, at(minute), at(minute + 1), **kw))


async def finish(engine: AsyncEngine, run_id: str, status: str, minute: int) -> None:
    async with transaction(engine) as conn:
        await ledger.finish_run(conn, run_id, RunTotals(status, at(minute), 1, 1, 5, tenants_interrupted=1))


async def test_a_run_is_written_running_and_finished_with_its_totals(engine: AsyncEngine) -> None:
    await start(engine, "r1", 0)
    assert [r["status"] for r in await rows(engine, fetch_runs)] == ["running"]

    await finish(engine, "r1", "partial", 9)

    assert await rows(engine, fetch_runs) == [
        {
            "run_id": "r1",
            "command": "backfill",
            "started_at": at(0),
            "finished_at": at(9),
            "status": "partial",
            "tenants_total": 3,
            "tenants_succeeded": 1,
            "tenants_failed": 1,
            "scores_upserted": 5,
            "host": "h",
            "pid": 1,
            "shard": None,
            "tenants_interrupted": 1,
        }
    ]


async def test_a_shard_run_records_its_shard(engine: AsyncEngine) -> None:
    await start(engine, "r1", 0, shard=Shard(2, 4))

    assert [(r["run_id"], r["shard"]) for r in await rows(engine, fetch_runs)] == [("r1", "2/4")]


async def test_runs_left_running_are_marked_interrupted_by_the_next_run(engine: AsyncEngine) -> None:
    await start(engine, "dead", 0)
    await start(engine, "done", 1)
    await finish(engine, "done", "succeeded", 2)
    await start(engine, "alive", 3)

    async with transaction(engine) as conn:
        assert await ledger.interrupt_dead_runs(conn, alive_run_id="alive", now=at(4)) == DeadRuns(1, 3)

    assert {r["run_id"]: (r["status"], r["finished_at"]) for r in await rows(engine, fetch_runs)} == {
        "dead": ("interrupted", at(0)),  # no tenant finished: its start is its last sign of life
        "done": ("succeeded", at(2)),
        "alive": ("running", None),
    }


async def test_a_dead_run_is_marked_with_its_own_tenants_counts_and_its_last_sign_of_life(engine: AsyncEngine) -> None:
    """Counted as `finish_run` counts (stored, failed, interrupted, days), ended at its last tenant's finish."""
    await start(engine, "dead", 0)
    await tenant(engine, "dead", A, "succeeded", 1, scores_upserted=30)
    await tenant(engine, "dead", B, "partial", 2, scores_upserted=12)
    await tenant(engine, "dead", C, "failed", 5)
    await start(engine, "quiet", 6)  # died before any tenant finished: its start is all the ledger knows
    await start(engine, "alive", 20)
    await tenant(engine, "alive", A, "interrupted", 20)

    async with transaction(engine) as conn:
        assert await ledger.interrupt_dead_runs(conn, alive_run_id="alive", now=at(20)) == DeadRuns(2, 3)

    counts = ("status", "finished_at", "tenants_succeeded", "tenants_failed", "tenants_interrupted", "scores_upserted")
    assert {r["run_id"]: tuple(r[c] for c in counts) for r in await rows(engine, fetch_runs)} == {
        "dead": ("interrupted", at(6), 2, 1, 0, 42),
        "quiet": ("interrupted", at(6), 0, 0, 0, 0),
        "alive": ("running", None, 0, 0, 0, 0),
    }


async def test_a_dead_runs_interrupted_tenants_are_counted(engine: AsyncEngine) -> None:
    await start(engine, "dead", 0)
    await tenant(engine, "dead", A, "interrupted", 3)
    await start(engine, "alive", 9)

    async with transaction(engine) as conn:
        await ledger.interrupt_dead_runs(conn, alive_run_id="alive", now=at(9))

    counts = ("tenants_succeeded", "tenants_failed", "tenants_interrupted", "finished_at")
    assert [tuple(r[c] for c in counts) for r in await rows(engine, fetch_runs) if r["run_id"] == "dead"] == [
        (0, 0, 1, at(4))
    ]


async def test_a_killed_runs_tenants_in_flight_have_no_row_and_are_counted_unrecorded(engine: AsyncEngine) -> None:
    """kill -9 rolls back the transactions in flight: those tenants leave no row (a graceful stop records them
    `interrupted`), so the ledger's counts leave them out; the marking says how many of the run's tenants no
    row holds (in flight or not started: the ledger cannot tell which)."""
    await start(engine, "killed", 0)  # 3 tenants
    await tenant(engine, "killed", A, "succeeded", 1, scores_upserted=90)
    await start(engine, "alive", 9)

    async with transaction(engine) as conn:
        assert await ledger.interrupt_dead_runs(conn, alive_run_id="alive", now=at(9)) == DeadRuns(1, 2)

    counts = ("status", "tenants_total", "tenants_succeeded", "tenants_failed", "tenants_interrupted")
    assert [tuple(r[c] for c in counts) for r in await rows(engine, fetch_runs) if r["run_id"] == "killed"] == [
        ("interrupted", 3, 1, 0, 0)
    ]


async def test_a_dead_run_never_ends_after_the_run_that_finds_it(engine: AsyncEngine) -> None:
    """Another host's clock may be ahead: the finding run's start bounds the end."""
    await start(engine, "dead", 0)
    await tenant(engine, "dead", A, "succeeded", 30)
    await start(engine, "alive", 9)

    async with transaction(engine) as conn:
        await ledger.interrupt_dead_runs(conn, alive_run_id="alive", now=at(9))

    assert [r["finished_at"] for r in await rows(engine, fetch_runs) if r["run_id"] == "dead"] == [at(9)]


async def test_a_shard_marks_only_its_own_dead_runs_interrupted(engine: AsyncEngine) -> None:
    """Other shards' runs may be alive beside it: only its own shard's lock tells that a run is dead."""
    await start(engine, "dead-2", 0, shard=Shard(2, 4))
    await start(engine, "other-3", 1, shard=Shard(3, 4))
    await start(engine, "unsharded", 2)
    await start(engine, "alive-2", 3, shard=Shard(2, 4))

    async with transaction(engine) as conn:
        marked = await ledger.interrupt_dead_runs(
            conn, alive_run_id="alive-2", now=at(4), shard=Shard(2, 4), every=False
        )

    assert marked.runs == 1
    assert {r["run_id"]: r["status"] for r in await rows(engine, fetch_runs)} == {
        "dead-2": "interrupted",
        "other-3": "running",
        "unsharded": "running",
        "alive-2": "running",
    }


async def test_resume_of_a_shard_follows_that_shards_chain_only(engine: AsyncEngine) -> None:
    await start(engine, "s1", 0, shard=Shard(1, 2))
    await tenant(engine, "s1", A, "succeeded", 0)
    await finish(engine, "s1", "interrupted", 1)
    await start(engine, "s2", 2, shard=Shard(2, 2))
    await tenant(engine, "s2", B, "succeeded", 2)
    await finish(engine, "s2", "succeeded", 3)  # shard 2 finished: its chain is over, shard 1's is not
    await start(engine, "all", 4)
    await tenant(engine, "all", C, "succeeded", 4)
    await finish(engine, "all", "interrupted", 5)

    async with transaction(engine, write=False) as conn:
        assert await ledger.resumable_tenants(conn, "backfill", Shard(1, 2)) == {A}
        assert await ledger.resumable_tenants(conn, "backfill", Shard(2, 2)) == set()
        assert await ledger.resumable_tenants(conn, "backfill") == {C}


async def test_resume_skips_tenants_done_across_the_latest_unfinished_backfills(engine: AsyncEngine) -> None:
    await start(engine, "old", 0)
    await tenant(engine, "old", C, "succeeded", 0)
    await finish(engine, "old", "succeeded", 1)
    await start(engine, "first", 10)
    await tenant(engine, "first", A, "succeeded", 10)
    await tenant(engine, "first", B, "failed", 10)
    await finish(engine, "first", "interrupted", 11)
    await start(engine, "resumed", 20)
    await tenant(engine, "resumed", B, "partial", 20)
    await start(engine, "a-run", 25, command="run")
    await tenant(engine, "a-run", C, "succeeded", 25)

    async with transaction(engine, write=False) as conn:
        assert await ledger.resumable_tenants(conn) == {A, B}


async def test_resume_after_a_complete_backfill_skips_nothing(engine: AsyncEngine) -> None:
    await start(engine, "first", 0)
    await tenant(engine, "first", A, "succeeded", 0)
    await finish(engine, "first", "succeeded", 1)

    async with transaction(engine, write=False) as conn:
        assert await ledger.resumable_tenants(conn) == set()


async def test_tenant_state_shows_stored_days_last_success_and_an_error_since(engine: AsyncEngine) -> None:
    async with transaction(engine) as conn:
        await save_tenants(conn, [(A, "Alpha"), (B, "Beta"), (C, "Gamma")], T0)
        context = FetchContext("r1", T0)
        await save_score_days(conn, [normalize_score(payload("2026-11-27", tenant=A), context)], T0)
    await start(engine, "r1", 0)
    await tenant(engine, "r1", A, "succeeded", 0)
    await tenant(engine, "r1", B, "succeeded", 0)
    await start(engine, "r2", 10)
    await tenant(engine, "r2", A, "failed", 10, error_kind="throttled", error_message="429 from Graph")
    await tenant(engine, "r2", B, "succeeded", 10)

    async with transaction(engine, write=False) as conn:
        states = await ledger.tenant_states(conn)

    assert states == [
        TenantState(
            A, "Alpha", date(2026, 11, 27), at(1), at(11), "throttled", "429 from Graph", 0, date(2026, 11, 27), 1
        ),
        TenantState(B, "Beta", None, at(11), None, None, None, 0),
        TenantState(C, "Gamma", None, None, None, None, None, 0),
    ]


async def test_a_rebuild_neither_clears_a_failing_tenant_nor_makes_a_fine_one_failing(engine: AsyncEngine) -> None:
    """Health is about Graph: a rebuild (a local replay of the archive) is not a fetch, in either direction."""
    async with transaction(engine) as conn:
        await save_tenants(conn, [(A, "Alpha"), (B, "Beta")], T0)
    await start(engine, "r1", 0, command="run")
    await tenant(engine, "r1", A, "succeeded", 0)
    await tenant(engine, "r1", B, "succeeded", 0)
    await start(engine, "r2", 10, command="run")
    await tenant(engine, "r2", A, "failed", 10, error_kind="unavailable", error_message="503 from Graph")
    await tenant(engine, "r2", B, "succeeded", 10)
    await start(engine, "rb", 20, command="rebuild")
    await tenant(engine, "rb", A, "succeeded", 20)
    await tenant(engine, "rb", B, "failed", 20, error_kind="archive_unreadable", error_message="rolled back")

    async with transaction(engine, write=False) as conn:
        states = await ledger.tenant_states(conn)

    assert states == [
        TenantState(A, "Alpha", None, at(1), at(11), "unavailable", "503 from Graph", 0),
        TenantState(B, "Beta", None, at(11), None, None, None, 0),
    ]

"""The scheduler behind `run`, `backfill`, `get` and `rebuild`: workers, limits, stop.

A run: open the database, take the run lock (its shard's, with `--shard`), mark dead runs interrupted,
plan (`fetcher.plan`), then hand each tenant's plan to a worker, which runs that tenant's pipeline
(`fetcher.pipeline`: fetch or replay -> admit -> save) and records its outcome. Memory follows the
score-days in flight, not the number of tenants: up to twice `concurrency` tenants at once, and at most
`concurrency` x `DAYS_A_SLOT` of their days between a tenant's start and its save (`DayBudget`), so a
90-day backfill holds no more tenants than the HTTP side can fetch at once; the HTTP limits live in
`fetcher.limits`, and the database takes one writer at a time on SQLite, `POSTGRES_WRITERS` on
PostgreSQL. One tenant's failure is recorded and the others go on. `stop()` (SIGINT, SIGTERM) starts no
new tenant, abandons fetches in progress, lets transactions in progress commit, and ends the run
`interrupted`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from fetcher import logfields
from fetcher.config import Config
from fetcher.errors import DatabaseGone, FetcherError
from fetcher.http import auth_lookup, open_graph
from fetcher.models import RequestStats, Shard
from fetcher.outcome import Observer, QuietObserver, RunReport, TenantOutcome, utcnow
from fetcher.pipeline import Stop, TenantPipeline
from fetcher.plan import Fact, Facts, Plan, PlanRequest, in_shard
from fetcher.resources import resources_for
from fetcher.resources.base import Resource
from fetcher.signin import Prompt, SignInGates, print_prompt
from fetcher.store import ledger
from fetcher.store.archive import CODEC, archived_tenants, read_codec
from fetcher.store.compaction import RunArchive
from fetcher.store.engine import SqliteFile, create_engine, database_error, ensure_schema, is_sqlite, sqlite_file
from fetcher.store.lock import RunLock, this_process
from fetcher.store.partition import ensure_archive_partitions
from fetcher.store.profiles import profiles_fetched_at
from fetcher.store.save import in_transaction, record
from fetcher.store.scores import newest_score_dates, oldest_score_dates, save_tenants

log = logging.getLogger(__name__)

POSTGRES_WRITERS = 4
# Score-days a tenant in flight may hold (fetched, admitted, waiting for its save), per `concurrency` slot:
# Graph's whole history, so every slot can fetch a tenant of 90 days while the others wait for the save.
DAYS_A_SLOT = 90
WATCH_SECONDS = 1.0  # SQLite: how often a fetching run looks whether its file is still the one at its path
COMPACTING_COMMANDS = ("run", "backfill")  # then the archive's zlib bodies are recompressed (a bounded number)

TenantWork = Callable[[Plan, RequestStats], Awaitable[TenantOutcome]]


class Run:
    """One run of a command: `await Run(...).execute()`; `stop(signum)` from a signal handler."""

    def __init__(
        self,
        config: Config,
        command: str,
        request: PlanRequest,
        *,
        observer: Observer | None = None,
        keep_objects: bool = False,
        engine: AsyncEngine | None = None,
        resources: Callable[[Plan], Sequence[Resource[Any]]] = resources_for,
        prompt: Prompt = print_prompt,
        shard: Shard | None = None,
    ) -> None:
        self.config = config
        self.prompt = prompt  # where a person's sign-in (device_code) shows its URL and code
        self.shard = shard  # its lock, its ledger rows; the request holds only its tenants
        self.command = command
        self.request = request
        self.observer = observer or QuietObserver()
        self.keep_objects = keep_objects
        self.report = RunReport(str(uuid.uuid4()), command, utcnow(), keep_all=keep_objects)
        self._engine = engine
        self._resources = resources
        self._stop = Stop()
        self._archive: RunArchive | None = None
        self._sign_ins = SignInGates(auth_lookup(config), config.fetch.per_sign_in_concurrency)

    def stop(self, signal_number: int) -> None:
        """Start no new tenant; abandon fetches in progress; let writes in progress commit."""
        if self.report.stopped_by is None:
            self.report.stopped_by = signal_number
        self._stop.stop(signal_number)

    @property
    def stopping(self) -> bool:
        return self.report.stopped_by is not None or self._stop.stopping

    def record(self, outcome: TenantOutcome) -> None:
        """A tenant is done: count it and tell the observer."""
        self.report.add(outcome)
        self.observer.tenant_done(self.report, outcome)
        if self._archive is not None:
            self._archive.saved(self.report.counters.score_days)

    async def execute(self) -> RunReport:
        """The run; a database failure outside any one tenant's transaction ends it as a `DatabaseError`."""
        with logfields.bind(command=self.command, run_id=self.report.run_id):
            return await self._execute()

    async def _execute(self) -> RunReport:
        engine = self._engine or create_engine(self.config.database, temp_in_memory=True)
        try:
            # A first run may create its SQLite file; a rebuild needs the one whose archive it replays.
            await ensure_schema(engine, create=not self.request.replay)
            async with RunLock(engine, this_process(self.report.run_id), shard=self.shard):
                if self.request.replay:  # a fetch's saves make their months; a rebuild's come from the archive
                    await ensure_archive_partitions(engine)
                plans = await self._begin(engine)
                compacting = self.command in COMPACTING_COMMANDS and self.config.database.keep_raw
                self._archive = RunArchive(engine, await read_codec(engine), train=compacting)
                token = CODEC.set(self._archive.codec)  # what the run's new archive bodies are written with
                try:
                    await self._schedule(engine, plans)
                finally:
                    CODEC.reset(token)
                    await self._end(engine)
                await self._compact_archive(self._archive, compacting)
        except DBAPIError as error:
            raise database_error(error, engine) from None
        finally:
            if self._engine is None:
                await engine.dispose()
        return self.report

    async def _compact_archive(self, archive: RunArchive, compacting: bool) -> None:
        """After a run or backfill: the archive's dictionaries when due, and a bounded number of its zlib
        bodies recompressed (`fetcher.store.compaction`). Whatever happens here, the run's outcome stands."""
        try:
            await archive.finish(compact=compacting, stopped=self.stopping)
        except DBAPIError as error:  # one line: the driver's reason, not SQLAlchemy's "(Background on ...)" line
            log.warning("archive not compacted: %s", database_error(error, archive.engine))
        except FetcherError as error:
            log.warning("archive not compacted: %s", error)

    async def _begin(self, engine: AsyncEngine) -> list[Plan]:
        report, holder, shard = self.report, this_process(self.report.run_id), self.shard
        # The only lock on SQLite, or an unsharded run's: no other run is alive. A shard's: no other copy of it.
        every = shard is None or is_sqlite(engine)
        # Each shard names its own tenants, so shards starting together do not queue on the same rows.
        named = [(t.tenant_id, t.name) for t in in_shard(self.config.tenants, shard)]

        async def work(conn: AsyncConnection) -> list[Plan]:
            stale = await ledger.interrupt_dead_runs(
                conn, alive_run_id=report.run_id, now=report.started_at, shard=shard, every=every
            )
            if stale.runs:
                log.info(
                    "marked %d run(s) that died while running as interrupted; %d of their tenants are in no "
                    "tenant_runs row (in flight when it died, or not started)",
                    stale.runs,
                    stale.unrecorded,
                )
            await save_tenants(conn, named, report.started_at)
            plans = self.request.plans(await read_facts(conn, self.request.needs, shard))
            await ledger.start_run(
                conn,
                run_id=report.run_id,
                command=self.command,
                started_at=report.started_at,
                tenants_total=len(plans),
                host=holder.host,
                pid=holder.pid,
                shard=shard,
            )
            return plans

        return await in_transaction(engine, work, "starting the run")

    async def _schedule(self, engine: AsyncEngine, plans: list[Plan]) -> None:
        self.report.counters.tenants_total = len(plans)
        self.observer.started(self.report)
        if self.stopping:
            return
        writers = 1 if is_sqlite(engine) else POSTGRES_WRITERS
        pipeline = TenantPipeline(
            engine,
            self.report.run_id,
            self._stop,
            writers,
            self.report.unrecorded,
            keep_raw=self.config.database.keep_raw,
            keep_objects=self.keep_objects,
            resources=self._resources,
        )
        if self.request.replay:  # rebuild: tenants one after another, as the database reads and writes
            await self._workers(plans, pipeline.replay, 1)
        else:
            async with open_graph(self.config, prompt=self.prompt) as client, self._watching(engine):
                pipeline.client = client
                await self._workers(plans, pipeline.fetch, 2 * self.config.fetch.concurrency)
        if self._stop.fatal is not None:
            raise self._stop.fatal

    @contextlib.asynccontextmanager
    async def _watching(self, engine: AsyncEngine) -> AsyncIterator[None]:
        """SQLite: while tenants are fetched, the file is looked at every WATCH_SECONDS, so a file deleted or
        replaced stops the run then (its fetches abandoned), not at the next commit, maybe minutes later."""
        watched = sqlite_file(engine)
        watcher = asyncio.create_task(self._watch(watched)) if watched is not None else None
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    async def _watch(self, watched: SqliteFile) -> None:
        while not self._stop.stopping:
            await asyncio.sleep(WATCH_SECONDS)
            try:
                watched.check()
            except DatabaseGone as gone:
                self._stop.fail(gone)

    async def _workers(self, plans: Sequence[Plan], work: TenantWork, most: int) -> None:
        pending = iter(plans)  # shared by the workers: each takes the next plan when it is free
        days = DayBudget(self.config.fetch.concurrency * DAYS_A_SLOT)
        await asyncio.gather(*(self._worker(pending, work, days) for _ in range(max(1, min(len(plans), most)))))

    async def _worker(self, pending: Iterator[Plan], work: TenantWork, days: DayBudget) -> None:
        for plan in pending:
            # The sign-in first: a tenant waiting for another's sign-in holds none of the days.
            async with self._sign_ins.gate(plan.tenant), days.hold(plan.days):
                if self.stopping:
                    return
                stats = RequestStats()
                self.report.counters.live[plan.tenant.tenant_id] = stats
                with logfields.bind(tenant_id=plan.tenant.tenant_id):
                    self.record(await work(plan, stats))

    async def _end(self, engine: AsyncEngine) -> None:
        """The run's totals, with the ledger rows that could not be written when their tenant ended."""
        report = self.report
        report.finished_at = utcnow()
        report.status = report.final_status()

        async def work(conn: AsyncConnection) -> None:
            for row, rejections in report.unrecorded:
                await record(conn, rejections, row)
            await ledger.finish_run(conn, report.run_id, report.totals())

        with contextlib.suppress(asyncio.CancelledError):
            await in_transaction(engine, work, "recording the end of the run")
        report.unrecorded.clear()
        self.observer.finished(report)


class DayBudget:
    """At most `most` score-days held by the tenants in flight, from a tenant's start to its save.

    A tenant holds its plan's days (at least one; a tenant of more than `most` holds them all and runs
    alone). Tenants take their turn in order, so a large one is not passed by smaller ones for ever.
    Back-pressure from the save to the fetch: while the database is the bound (SQLite's one writer, a first
    backfill), tenants waiting for their save keep new ones from being fetched, rather than piling up
    their rows in memory.
    """

    def __init__(self, most: int) -> None:
        self.most = max(1, most)
        self.held = 0
        self._turn = asyncio.Lock()  # FIFO: the first tenant waiting is the next to start
        self._room = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def hold(self, days: int) -> AsyncIterator[None]:
        """`days` (within 1 and `most`) held for the body's time; waits until they fit."""
        days = min(max(days, 1), self.most)
        async with self._turn, self._room:
            await self._room.wait_for(lambda: self.held + days <= self.most)
            self.held += days
        try:
            yield
        finally:
            async with self._room:
                self.held -= days
                self._room.notify_all()


async def read_facts(conn: AsyncConnection, needs: frozenset[Fact], shard: Shard | None = None) -> Facts:
    """What the plan request needs to know from the database, and nothing more (`--resume`: `shard`'s chain)."""
    done = (
        frozenset(await ledger.resumable_tenants(conn, "backfill", shard)) if Fact.RESUMABLE in needs else frozenset()
    )
    if done:
        log.info(
            "resuming: %d tenant(s) done by the interrupted backfill; those whose stored days cover the window "
            "are skipped",
            len(done),
        )
    return Facts(
        newest=await newest_score_dates(conn) if Fact.NEWEST_DAYS in needs else {},
        oldest=await oldest_score_dates(conn) if Fact.OLDEST_DAYS in needs else {},
        done=done,
        archived=tuple(await archived_tenants(conn)) if Fact.ARCHIVED in needs else (),
        profiles_fetched=await profiles_fetched_at(conn) if Fact.PROFILES_FETCHED in needs else {},
    )

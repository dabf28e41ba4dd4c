"""The multi-tenant scheduler behind `run`, `backfill` and `get`.

A run: open the database, take the run lock, mark dead runs interrupted, plan each tenant's
request, then fetch tenants concurrently (the HTTP limits live in `fetcher.limits`) and store each
tenant in one transaction together with its ledger row. Memory follows the number of tenants in
flight (twice `concurrency`), not the number of tenants or days. One tenant's failure is recorded
and the others go on. `stop()` (SIGINT, SIGTERM) starts no new tenant, abandons fetches in progress,
lets transactions in progress commit, and ends the run `interrupted`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol, TypeVar

import orjson
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from fetcher.auth import TokenProvider
from fetcher.config import GRAPH_HISTORY_DAYS, Config, TenantConfig
from fetcher.errors import (
    ConfigError,
    DatabaseError,
    FetcherError,
    GraphError,
    Interrupted,
    InvalidResponse,
    PayloadError,
    WrongTenant,
)
from fetcher.http import GraphClient, create_session
from fetcher.limits import Limits
from fetcher.models import FetchContext, RequestStats, ScoreDay, ScorePage
from fetcher.normalize import normalize_score
from fetcher.retry import RetryPolicy
from fetcher.store import ledger
from fetcher.store.archive import RawPayload, Rejection, pack, save_raw_payloads, save_rejections
from fetcher.store.engine import create_engine, database_error, ensure_schema, is_sqlite, transaction
from fetcher.store.lock import RunLock, this_process
from fetcher.store.scores import newest_score_dates, save_score_days, save_tenants

log = logging.getLogger(__name__)

REJECTED_BODY_CAP = 256 * 1024
POSTGRES_WRITERS = 4
MAX_STORED_DEPTH = 254  # orjson's limit when writing JSON
# A JSON-escaped NUL (\u0000 not itself behind an escaped backslash): PostgreSQL's text and jsonb refuse it.
_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")

T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC)


async def in_transaction(engine: AsyncEngine, work: Callable[[AsyncConnection], Awaitable[T]], what: str) -> T:
    """`work` in one transaction; once more if the connection was lost (the first attempt rolled back).

    A connection lost in the middle (a PostgreSQL restart or `pg_terminate_backend`) fails the
    transaction as a whole, so trying again on a fresh connection cannot write anything twice.
    """
    for attempt in (1, 2):
        try:
            async with transaction(engine) as conn:
                return await work(conn)
        except DBAPIError as error:
            if attempt == 2 or not error.connection_invalidated:
                raise
            log.warning("lost the database connection while %s; trying once more", what)
    raise AssertionError("unreachable: the second attempt returns or raises")  # pragma: no cover


# ------------------------------------------------------------------------------------------ planning


@dataclass(frozen=True, slots=True)  # one per tenant: ten thousand of them
class Plan:
    """What to ask Graph for one tenant: the newest `days` objects, or one object by id."""

    tenant: TenantConfig
    days: int = 0
    score_id: str | None = None


def select_tenants(config: Config, wanted: Sequence[str]) -> list[TenantConfig]:
    """The enabled tenants, or those named with --tenant (named disabled tenants included)."""
    if not wanted:
        return list(config.enabled_tenants)
    chosen = []
    for tenant_id in dict.fromkeys(t.strip().lower() for t in wanted):
        tenant = config.tenant(tenant_id)
        if tenant is None:
            raise ConfigError(f"--tenant {tenant_id}: no such tenant in {config.path or 'the configuration'}")
        chosen.append(tenant)
    return chosen


def incremental_days(newest: date | None, today: date, history_days: int) -> int:
    """`$top` for `fetcher run`: the days since the newest stored one, plus that day again."""
    if newest is None:
        return history_days
    return max(1, min((today - newest).days + 1, GRAPH_HISTORY_DAYS))


def window_days(*, days: int | None, since: date | None, today: date, default: int) -> int:
    """`$top` for `fetcher backfill --days N | --since DATE`."""
    if days is not None and since is not None:
        raise ConfigError("give --days or --since, not both")
    if since is not None:
        days = (today - since).days + 1
        if days < 1:
            raise ConfigError(f"--since {since}: that is in the future")
    days = default if days is None else days
    if not 1 <= days <= GRAPH_HISTORY_DAYS:
        raise ConfigError(f"the window is {days} days; Graph keeps {GRAPH_HISTORY_DAYS} days of secureScores")
    return days


Planner = Callable[[AsyncConnection], Awaitable[list[Plan]]]


def plan_incremental(tenants: Sequence[TenantConfig], history_days: int, today: date) -> Planner:
    async def planner(conn: AsyncConnection) -> list[Plan]:
        newest = await newest_score_dates(conn)  # every tenant's: no statement with thousands of ids
        return [Plan(t, incremental_days(newest.get(t.tenant_id), today, history_days)) for t in tenants]

    return planner


def plan_backfill(tenants: Sequence[TenantConfig], days: int, *, resume: bool) -> Planner:
    async def planner(conn: AsyncConnection) -> list[Plan]:
        done = await ledger.resumable_tenants(conn, "backfill") if resume else set()
        if done:
            log.info("resuming: %d tenant(s) already done by the interrupted backfill are skipped", len(done))
        return [Plan(t, days) for t in tenants if t.tenant_id not in done]

    return planner


def plan_get(tenant: TenantConfig, score_id: str) -> Planner:
    async def planner(conn: AsyncConnection) -> list[Plan]:  # noqa: ARG001 (the Planner signature)
        return [Plan(tenant, 1, score_id)]

    return planner


# ------------------------------------------------------------------------------------------ outcomes


@dataclass
class TenantOutcome:
    """How one tenant fared; becomes its `tenant_runs` row."""

    tenant: TenantConfig
    status: str
    started_at: datetime
    finished_at: datetime
    stats: RequestStats
    scores_upserted: int = 0
    rejected: int = 0
    partial_days: int = 0
    error_kind: str | None = None
    error_message: str | None = None
    objects: list[Any] = field(default_factory=list)  # kept for `get` only

    def ledger_row(self, run_id: str) -> ledger.TenantRun:
        return ledger.TenantRun(
            run_id=run_id,
            tenant_id=self.tenant.tenant_id,
            status=self.status,
            started_at=self.started_at,
            finished_at=self.finished_at,
            scores_upserted=self.scores_upserted,
            requests=self.stats.requests,
            retries=self.stats.retries,
            throttled=self.stats.throttled,
            rejected=self.rejected,
            partial_days=self.partial_days,
            error_kind=self.error_kind,
            error_message=self.error_message,
        )

    @property
    def failed(self) -> bool:
        return self.status in (ledger.FAILED, ledger.INTERRUPTED)


@dataclass
class Counters:
    """Live totals for progress displays; `throttled` includes tenants still in flight."""

    tenants_total: int = 0
    tenants_done: int = 0
    failures: int = 0
    score_days: int = 0
    finished_throttled: int = 0
    live: dict[str, RequestStats] = field(default_factory=dict)

    @property
    def throttled(self) -> int:
        return self.finished_throttled + sum(s.throttled for s in list(self.live.values()))


@dataclass
class RunReport:
    """A run as it goes and as it ended. `outcomes` keeps the tenants worth showing (all but plain
    successes, unless `keep_all`), so a run over ten thousand tenants keeps counters, not rows."""

    run_id: str
    command: str
    started_at: datetime
    counters: Counters = field(default_factory=Counters)
    outcomes: list[TenantOutcome] = field(default_factory=list)
    status: str = ledger.RUNNING
    finished_at: datetime | None = None
    stopped_by: int | None = None  # signal number
    # Outcomes of tenants that stored nothing and whose ledger row could not be written either
    # (the database was locked or gone at that moment); written with the run's end.
    unrecorded: list[tuple[ledger.TenantRun, list[Rejection]]] = field(default_factory=list)
    keep_all: bool = False
    partial: int = 0

    def add(self, outcome: TenantOutcome) -> None:
        counters = self.counters
        counters.live.pop(outcome.tenant.tenant_id, None)
        counters.tenants_done += 1
        counters.failures += outcome.failed
        counters.score_days += outcome.scores_upserted
        counters.finished_throttled += outcome.stats.throttled
        self.partial += outcome.status == ledger.PARTIAL
        if self.keep_all or outcome.status != ledger.SUCCEEDED:
            self.outcomes.append(outcome)

    @property
    def exit_code(self) -> int:
        if self.stopped_by is not None:
            return 128 + self.stopped_by
        return 1 if self.counters.failures else 0

    def totals(self) -> ledger.RunTotals:
        failed = self.counters.failures
        return ledger.RunTotals(
            status=self.status,
            finished_at=self.finished_at or utcnow(),
            tenants_succeeded=self.counters.tenants_done - failed,
            tenants_failed=failed,
            scores_upserted=self.counters.score_days,
        )


class Observer(Protocol):
    """Told about a run as it goes (progress bars, logs)."""

    def started(self, report: RunReport) -> None: ...

    def tenant_done(self, report: RunReport, outcome: TenantOutcome) -> None: ...

    def finished(self, report: RunReport) -> None: ...


class QuietObserver:
    def started(self, report: RunReport) -> None:
        pass

    def tenant_done(self, report: RunReport, outcome: TenantOutcome) -> None:
        pass

    def finished(self, report: RunReport) -> None:
        pass


# ----------------------------------------------------------------------------------- one tenant's data


@dataclass
class TenantBatch:
    """What one tenant's answers became: rows to store, objects to archive, payloads refused."""

    tenant_id: str
    run_id: str
    keep_raw: bool
    keep_objects: bool = False
    days: list[ScoreDay] = field(default_factory=list)
    raw: list[RawPayload] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    wrong_tenant: WrongTenant | None = None
    objects: list[Any] = field(default_factory=list)

    def add_page(self, page: ScorePage, received_at: datetime) -> None:
        context = FetchContext(self.run_id, received_at, page.warnings)
        for obj in page.objects:
            self.add_object(obj, context)

    def add_object(self, obj: Any, context: FetchContext) -> None:
        text = _dumps(obj)
        if text is None:
            self._reject(
                context,
                f"the object is nested deeper than the {MAX_STORED_DEPTH} levels that can be archived and stored",
                _dumps_deep(obj),
            )
            return
        if b"\\u0000" in text and _NUL.search(text):
            self._reject(
                context,
                "a string in the object holds a NUL character (\\u0000), which PostgreSQL "
                "cannot store; refused on every database alike",
                text,
            )
            return
        try:
            day = normalize_score(obj, context, expected_tenant=self.tenant_id)
        except PayloadError as error:
            self._reject(context, str(error), text)
            if isinstance(error, WrongTenant) and self.wrong_tenant is None:
                self.wrong_tenant = error
            return
        self.days.append(day)
        if self.keep_objects:
            self.objects.append(obj)
        if self.keep_raw:
            self.raw.append(
                pack(
                    obj,
                    tenant_id=self.tenant_id,
                    score_date=day.score_date,
                    fetched_at=context.fetched_at,
                    run_id=self.run_id,
                    warning=context.warning_text,
                    text=text,
                )
            )

    def _reject(self, context: FetchContext, reason: str, body: bytes) -> None:
        self.rejections.append(Rejection(self.tenant_id, self.run_id, context.fetched_at, reason, body))

    @property
    def partial_days(self) -> int:
        return sum(1 for d in self.days if d.score.partial)


def _dumps(obj: Any) -> bytes | None:
    """The object as compact JSON, or None when it is too deep to write: orjson reads JSON nested 1024
    levels deep (deeper answers are refused as invalid) but writes only `MAX_STORED_DEPTH`, and the
    archive and the JSON columns are written with it."""
    try:
        return orjson.dumps(obj)
    except TypeError:
        return None


def _dumps_deep(obj: Any) -> bytes:
    """A quarantine body for an object orjson cannot write; empty if Python's recursion limit is met too."""
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    except (RecursionError, ValueError):
        return b""


# ----------------------------------------------------------------------------------------- the run


class Ingestion:
    """Fetches and stores a list of plans concurrently; one instance per run."""

    def __init__(
        self,
        config: Config,
        engine: AsyncEngine,
        client: GraphClient,
        report: RunReport,
        observer: Observer,
        *,
        keep_objects: bool = False,
    ) -> None:
        self.config = config
        self.engine = engine
        self.client = client
        self.report = report
        self.observer = observer
        self.keep_objects = keep_objects
        self._stopping = asyncio.Event()
        self._fetching: set[asyncio.Task[Any]] = set()
        # SQLite has one writer: queue writes here rather than in its busy-wait loop.
        self._writers = asyncio.Semaphore(1 if is_sqlite(engine) else POSTGRES_WRITERS)

    def stop(self, signal_number: int) -> None:
        """Start no new tenant; abandon fetches in progress; let writes in progress commit."""
        if self.report.stopped_by is None:
            self.report.stopped_by = signal_number
        self._stopping.set()
        for task in list(self._fetching):
            task.cancel()

    async def execute(self, plans: Sequence[Plan]) -> None:
        self.report.counters.tenants_total = len(plans)
        workers = max(1, min(len(plans), 2 * self.config.fetch.concurrency))
        pending = iter(plans)  # shared by the workers: each takes the next plan when it is free
        await asyncio.gather(*(self._worker(pending) for _ in range(workers)))

    async def _worker(self, pending: Iterator[Plan]) -> None:
        for plan in pending:
            if self._stopping.is_set():
                return
            outcome = await self._tenant(plan)
            self._record(outcome)

    def _record(self, outcome: TenantOutcome) -> None:
        self.report.add(outcome)
        self.observer.tenant_done(self.report, outcome)

    async def _tenant(self, plan: Plan) -> TenantOutcome:
        tenant = plan.tenant
        stats = RequestStats()
        self.report.counters.live[tenant.tenant_id] = stats
        outcome = TenantOutcome(tenant, ledger.SUCCEEDED, utcnow(), utcnow(), stats)
        batch = TenantBatch(tenant.tenant_id, self.report.run_id, self.config.database.keep_raw, self.keep_objects)
        fetch = asyncio.create_task(self._fetch(plan, stats, batch), name=f"fetch {tenant.tenant_id}")
        self._fetching.add(fetch)
        try:
            await fetch
        except asyncio.CancelledError:
            if not self._stopping.is_set():
                raise
            return await self._finish(
                outcome,
                ledger.INTERRUPTED,
                Interrupted(
                    "the run was stopped before this tenant was fetched", signal_number=self.report.stopped_by or 0
                ),
            )
        except FetcherError as error:
            return await self._finish(outcome, ledger.FAILED, error, self._quarantine(error, tenant))
        except Exception as error:  # a bug must cost one tenant, not the run
            log.exception("tenant %s: unexpected error", tenant.label)
            unexpected = FetcherError(f"unexpected {type(error).__name__}: {error}")
            return await self._finish(outcome, ledger.FAILED, unexpected)
        finally:
            self._fetching.discard(fetch)
            await self.client.forget(tenant.tenant_id)
        return await self._store(outcome, batch)

    async def _fetch(self, plan: Plan, stats: RequestStats, batch: TenantBatch) -> None:
        if plan.score_id is not None:
            page = await self.client.get_secure_score(plan.tenant, plan.score_id, stats)
            batch.add_page(page, utcnow())
            return
        async for page in self.client.list_secure_scores(plan.tenant, plan.days, stats):
            batch.add_page(page, utcnow())

    async def _store(self, outcome: TenantOutcome, batch: TenantBatch) -> TenantOutcome:
        """The tenant's days, archive, rejections and ledger row in one transaction, shielded from stop()."""
        outcome.rejected = len(batch.rejections)
        outcome.partial_days = batch.partial_days
        outcome.objects = batch.objects
        if batch.wrong_tenant is not None:
            outcome.status, outcome.error_kind = ledger.FAILED, batch.wrong_tenant.kind
            outcome.error_message = f"tenant {outcome.tenant.label}: {batch.wrong_tenant}; it was quarantined"
        elif batch.rejections or outcome.partial_days:
            outcome.status = ledger.PARTIAL
        outcome.scores_upserted = len({d.score_date for d in batch.days})
        try:
            await asyncio.shield(self._write(outcome, batch))
        except (DBAPIError, DatabaseError) as error:
            outcome.scores_upserted = 0
            cause = error if isinstance(error, DatabaseError) else database_error(error, self.engine)
            # The same class, so that the ledger's error_kind says what happened (database_locked, ...).
            return await self._finish(
                outcome,
                ledger.FAILED,
                type(cause)(
                    f"tenant {outcome.tenant.label}: storing its {len(batch.days)} day(s) failed and was rolled back: "
                    f"{cause}"
                ),
            )
        return outcome

    async def _write(self, outcome: TenantOutcome, batch: TenantBatch) -> None:
        """The tenant's days, archive, rejections and ledger row: one transaction."""

        async def work(conn: AsyncConnection) -> None:
            outcome.finished_at = utcnow()
            await save_score_days(conn, batch.days, outcome.finished_at, tenant_saved=True)
            await save_raw_payloads(conn, batch.raw)
            await save_rejections(conn, batch.rejections, cap=REJECTED_BODY_CAP)
            await ledger.record_tenant_run(conn, outcome.ledger_row(self.report.run_id))

        async with self._writers:
            await in_transaction(self.engine, work, f"storing tenant {outcome.tenant.label}")

    def _quarantine(self, error: FetcherError, tenant: TenantConfig) -> list[Rejection]:
        """An answer still unreadable after its retries is kept, as a refused payload, with the reason."""
        if isinstance(error, InvalidResponse) and error.body is not None:
            return [Rejection(tenant.tenant_id, self.report.run_id, utcnow(), _one_line(error, tenant), error.body)]
        return []

    async def _finish(
        self, outcome: TenantOutcome, status: str, error: FetcherError, rejections: Sequence[Rejection] = ()
    ) -> TenantOutcome:
        """Record a tenant that stored nothing: failed or interrupted, with the one-line reason.

        Its ledger row (and any quarantined answer) is written now, or, when the database refuses
        (locked, connection lost), kept for the run's end, so that the ledger still says what happened.
        """
        outcome.status, outcome.error_kind = status, error.kind
        outcome.error_message = _one_line(error, outcome.tenant)
        outcome.finished_at = utcnow()
        outcome.rejected = len(rejections)
        if status == ledger.FAILED:
            log.warning("%s", outcome.error_message)
        row = outcome.ledger_row(self.report.run_id)

        async def work(conn: AsyncConnection) -> None:
            await save_rejections(conn, rejections, cap=REJECTED_BODY_CAP)
            await ledger.record_tenant_run(conn, row)

        try:
            async with self._writers:
                await in_transaction(self.engine, work, f"recording tenant {outcome.tenant.label}")
        except (DBAPIError, DatabaseError) as db_error:
            log.warning(
                "tenant %s: its outcome is recorded at the end of the run: %s",
                outcome.tenant.label,
                _db_reason(db_error),
            )
            self.report.unrecorded.append((row, list(rejections)))
        return outcome


def _db_reason(error: Exception) -> str:
    orig = getattr(error, "orig", None) or error
    text = " ".join(str(orig).split())
    return text[:300] or type(orig).__name__


def _one_line(error: FetcherError, tenant: TenantConfig) -> str:
    message = " ".join(str(error).split())
    if isinstance(error, GraphError) and tenant.tenant_id not in message:
        message = f"tenant {tenant.label}: {message}"
    return message


# -------------------------------------------------------------------------------------- entry point


@asynccontextmanager
async def open_graph(config: Config) -> AsyncIterator[GraphClient]:
    """The run's one session, credentials, limits and retry policy, closed at the end.

    Token requests to Entra ID take the same global slots as Graph requests: `concurrency` bounds
    every HTTP request of the run.
    """
    session = create_session(config.graph, config.fetch)
    limits = Limits.from_config(config.fetch)
    tokens = TokenProvider(session, config.graph, gate=limits.global_slot)
    try:
        yield GraphClient(session, config.graph, config.fetch, tokens, limits, RetryPolicy.from_config(config.fetch))
    finally:
        await tokens.close()
        await session.close()


class Run:
    """One run of a command: `await Run(...).execute()`; `stop(signum)` from a signal handler."""

    def __init__(
        self,
        config: Config,
        command: str,
        planner: Planner,
        *,
        observer: Observer | None = None,
        keep_objects: bool = False,
        engine: AsyncEngine | None = None,
    ) -> None:
        self.config = config
        self.command = command
        self.planner = planner
        self.observer = observer or QuietObserver()
        self.keep_objects = keep_objects
        self.report = RunReport(str(uuid.uuid4()), command, utcnow(), keep_all=keep_objects)
        self._engine = engine
        self._ingestion: Ingestion | None = None

    def stop(self, signal_number: int) -> None:
        if self.report.stopped_by is None:
            self.report.stopped_by = signal_number
        if self._ingestion is not None:
            self._ingestion.stop(signal_number)

    @property
    def stopping(self) -> bool:
        return self.report.stopped_by is not None

    def record(self, outcome: TenantOutcome) -> None:
        """A tenant is done: count it and tell the observer."""
        self.report.add(outcome)
        self.observer.tenant_done(self.report, outcome)

    async def execute(self) -> RunReport:
        """The run; a database failure outside any one tenant's transaction ends it as a `DatabaseError`."""
        engine = self._engine or create_engine(self.config.database)
        try:
            await ensure_schema(engine)
            async with RunLock(engine, this_process(self.report.run_id)):
                plans = await self._begin(engine)
                try:
                    await self._ingest(engine, plans)
                finally:
                    await self._end(engine)
        except DBAPIError as error:
            raise database_error(error, engine) from None
        finally:
            if self._engine is None:
                await engine.dispose()
        return self.report

    async def _begin(self, engine: AsyncEngine) -> list[Plan]:
        report, holder = self.report, this_process(self.report.run_id)

        async def work(conn: AsyncConnection) -> list[Plan]:
            stale = await ledger.interrupt_dead_runs(conn, alive_run_id=report.run_id, now=report.started_at)
            if stale:
                log.info("marked %d run(s) that died while running as interrupted", stale)
            await save_tenants(conn, [(t.tenant_id, t.name) for t in self.config.tenants], report.started_at)
            plans = await self.planner(conn)
            await ledger.start_run(
                conn,
                run_id=report.run_id,
                command=self.command,
                started_at=report.started_at,
                tenants_total=len(plans),
                host=holder.host,
                pid=holder.pid,
            )
            return plans

        return await in_transaction(engine, work, "starting the run")

    async def _ingest(self, engine: AsyncEngine, plans: list[Plan]) -> None:
        self.report.counters.tenants_total = len(plans)
        self.observer.started(self.report)
        if self.stopping:
            return
        async with open_graph(self.config) as client:
            self._ingestion = Ingestion(
                self.config, engine, client, self.report, self.observer, keep_objects=self.keep_objects
            )
            await self._ingestion.execute(plans)

    async def _end(self, engine: AsyncEngine) -> None:
        """The run's totals, with the ledger rows that could not be written when their tenant ended."""
        report = self.report
        report.finished_at = utcnow()
        report.status = _run_status(report)

        async def work(conn: AsyncConnection) -> None:
            for row, rejections in report.unrecorded:
                await save_rejections(conn, rejections, cap=REJECTED_BODY_CAP)
                await ledger.record_tenant_run(conn, row)
            await ledger.finish_run(conn, report.run_id, report.totals())

        with contextlib.suppress(asyncio.CancelledError):
            await in_transaction(engine, work, "recording the end of the run")
        report.unrecorded.clear()
        self.observer.finished(report)


def _run_status(report: RunReport) -> str:
    if report.stopped_by is not None:
        return ledger.INTERRUPTED
    failed, done = report.counters.failures, report.counters.tenants_done
    if failed == 0:
        return ledger.PARTIAL if report.partial else ledger.SUCCEEDED
    return ledger.FAILED if failed == done else ledger.PARTIAL

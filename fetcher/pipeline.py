"""One tenant's work, as three stages with data flowing one way: fetch (or replay) -> admit -> save.

- `TenantPipeline.fetch`: each of the plan's resources (`fetcher.resources`) fetched page by page from
  Graph, every page admitted as it arrives (`fetcher.admit`), then everything saved in one transaction
  (`fetcher.store.save`). A resource whose fetch fails is recorded in the ledger row and does not keep
  the others from being saved; a tenant whose every resource failed stores nothing but its ledger row.
- `TenantPipeline.replay` (`fetcher rebuild`): the tenant's archive read again, admitted by the same
  function a fetch uses, and saved, in one transaction.

The scheduler (`fetcher.runner`) decides which tenant runs when and hands in the `Stop`; a stop abandons
fetches in progress (the tenant is recorded `interrupted`) but never a transaction in progress.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from fetcher.admit import Admission
from fetcher.errors import (
    AuthenticationError,
    DatabaseError,
    DatabaseGone,
    FetcherError,
    GraphError,
    Interrupted,
    InvalidResponse,
    SchemaDamaged,
    WrongTenant,
)
from fetcher.models import FetchContext, RequestStats, Status, TenantRef
from fetcher.outcome import TenantOutcome, utcnow
from fetcher.plan import Plan
from fetcher.resources import resources_for
from fetcher.resources.base import PageSource, Resource, Tally
from fetcher.store.archive import Rejection
from fetcher.store.engine import database_error
from fetcher.store.ledger import TenantRun
from fetcher.store.save import TenantWrite, in_transaction, record, save_admitted, save_group
from fetcher.store.scores import ensure_tenant

log = logging.getLogger("fetcher.runner")

T = TypeVar("T")
REPLAY_CHUNK = 30  # archived objects admitted and saved at a time: memory does not grow with history
GROUP_MOST = 32  # finished tenants saved in one transaction at most
# Database errors that end the run: the SQLite file is gone, or a table or view of the schema was dropped
# since the run checked it. No later tenant could be stored or recorded either.
RUN_ENDING = (DatabaseGone, SchemaDamaged)


class Stopped(Exception):
    """The run was stopped while this tenant's fetch was in progress."""


class Stop:
    """The run's stop: set once by a signal; what can be abandoned (fetches) registers here."""

    def __init__(self) -> None:
        self.signal_number: int | None = None
        self.fatal: DatabaseError | None = None  # the run cannot go on: nothing more can be stored (RUN_ENDING)
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def stopping(self) -> bool:
        return self.signal_number is not None or self.fatal is not None

    def fail(self, error: DatabaseError) -> None:
        """Stop as a signal would, because the database is gone or damaged (`RUN_ENDING`); the run then ends
        with `error`."""
        if self.fatal is None:
            self.fatal = error
        for task in list(self._tasks):
            task.cancel()

    def stop(self, signal_number: int) -> None:
        """Start nothing new; cancel what can be abandoned."""
        if self.signal_number is None:
            self.signal_number = signal_number
        for task in list(self._tasks):
            task.cancel()

    async def abandonable(self, work: Awaitable[T], name: str) -> T:
        """`work`, cancelled by `stop()` (then `Stopped` is raised); other cancellations pass through."""
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self._tasks.add(task)
        try:
            return await task
        except asyncio.CancelledError:
            if not self.stopping:
                raise
            raise Stopped from None
        finally:
            self._tasks.discard(task)


class GroupCommit:
    """Tenants that finish while the database is busy are saved together, in one transaction.

    A tenant's `save` queues its write. When fewer than `writers` transactions are in progress (one on
    SQLite), the caller becomes a writer: it saves what is queued, `most` writes a transaction at a time
    through `fetcher.store.save.save_group`, until the queue is empty; otherwise it waits for a writer to
    save its write. Each caller gets its own tenant's error, if any: a group that fails is saved again one
    tenant a transaction.
    """

    def __init__(self, engine: AsyncEngine, writers: int, most: int = GROUP_MOST) -> None:
        self.engine = engine
        self.most = most
        self._idle = writers  # writers that may start now
        self._queued: list[tuple[TenantWrite, asyncio.Future[None]]] = []

    async def save(self, write: TenantWrite) -> None:
        """`write` saved, alone or with others; raises what kept this tenant's write from being saved."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queued.append((write, done))
        if self._idle:
            self._idle -= 1
            try:
                while self._queued:  # no await between this test and the release below: nothing is left behind
                    group, self._queued = self._queued[: self.most], self._queued[self.most :]
                    await self._save(group)
            except BaseException as error:  # cancelled, or worse: no caller may wait for ever
                for _, waiting in self._queued:
                    if not waiting.done():
                        waiting.set_exception(error)
                self._queued = []
                raise
            finally:
                self._idle += 1
        await done

    async def _save(self, group: list[tuple[TenantWrite, asyncio.Future[None]]]) -> None:
        try:
            errors = await save_group(self.engine, [write for write, _ in group])
        except BaseException as error:
            for _, waiting in group:
                if not waiting.done():
                    waiting.set_exception(error)
            raise
        for (_, waiting), failure in zip(group, errors, strict=True):
            if failure is None:
                waiting.set_result(None)
            else:
                waiting.set_exception(failure)


@dataclass
class Fetched:
    """One resource of one tenant after the fetch and admit stages: admitted, or failed with `error`."""

    resource: Resource[Any]
    admission: Admission[Any] = field(default_factory=Admission)
    error: FetcherError | None = None


@dataclass
class Replayed:
    """What a tenant's replayed archive came to, over all its chunks."""

    days: set[Any] = field(default_factory=set)
    rejections: list[Rejection] = field(default_factory=list)
    wrong_tenant: WrongTenant | None = None

    def add(self, admission: Admission[Any], tally: Tally) -> None:
        self.days |= tally.score_days
        self.rejections += admission.rejections
        self.wrong_tenant = self.wrong_tenant or admission.wrong_tenant


class TenantPipeline:
    """Runs the stages for one tenant at a time; one instance per run, shared by the scheduler's workers."""

    def __init__(
        self,
        engine: AsyncEngine,
        run_id: str,
        stop: Stop,
        writers: int,
        unrecorded: list[tuple[TenantRun, list[Rejection]]],
        *,
        client: PageSource | None = None,
        keep_raw: bool = True,
        keep_objects: bool = False,
        resources: Callable[[Plan], Sequence[Resource[Any]]] = resources_for,
    ) -> None:
        self.engine = engine
        self.run_id = run_id
        self.stop = stop
        # SQLite has one writer: queue writes here rather than in its busy-wait loop.
        self.writers = asyncio.Semaphore(writers)
        self.group = GroupCommit(engine, writers)
        self.unrecorded = unrecorded
        self.client = client
        self.keep_raw = keep_raw
        self.keep_objects = keep_objects
        self.resources = resources  # which resources a plan fetches (`fetcher.resources` registers them)

    # ------------------------------------------------------------------------------------------- fetch

    async def fetch(self, plan: Plan, stats: RequestStats) -> TenantOutcome:
        """Fetch, admit and save one tenant's resources; never raises for the tenant's own failures."""
        tenant = plan.tenant
        outcome = TenantOutcome(tenant, Status.SUCCEEDED, utcnow(), utcnow(), stats)
        resources = self.resources(plan)
        try:
            fetched = await self.stop.abandonable(self._fetch_all(plan, resources, stats), f"fetch {tenant.tenant_id}")
        except Stopped:
            why = Interrupted(_stopped_while(stats), signal_number=self.stop.signal_number or 0)
            return await self._finish(outcome, Status.INTERRUPTED, why)
        finally:
            if self.client is not None:
                await self.client.forget(tenant.tenant_id)
        failures = [f for f in fetched if f.error is not None]
        quarantined = [q for f in failures if f.error is not None for q in self._quarantine(f.error, tenant)]
        if len(failures) == len(fetched):  # nothing to store
            return await self._finish(outcome, Status.FAILED, _failure(fetched, tenant), quarantined)
        return await self._store(outcome, fetched, quarantined)

    async def _fetch_all(self, plan: Plan, resources: Sequence[Resource[Any]], stats: RequestStats) -> list[Fetched]:
        """Each resource in turn; after a refused credential none more: the tenant's next token request would
        be refused alike (it is not transient), and its failure says it once."""
        fetched: list[Fetched] = []
        for resource in resources:
            fetched.append(await self._fetch_one(plan, resource, stats))
            if isinstance(fetched[-1].error, AuthenticationError):
                break
        return fetched

    async def _fetch_one(self, plan: Plan, resource: Resource[Any], stats: RequestStats) -> Fetched:
        """One resource fetched and admitted page by page; its failure is kept, not raised."""
        assert self.client is not None
        fetched = Fetched(resource)
        try:
            async for page in resource.fetch(self.client, plan, stats):
                context = FetchContext(self.run_id, utcnow(), page.warnings, nul_free=page.nul_free)
                resource.admit(
                    page.objects,
                    context,
                    tenant_id=plan.tenant.tenant_id,
                    keep_raw=self.keep_raw,
                    keep_objects=self.keep_objects,
                    into=fetched.admission,
                )
        except FetcherError as error:
            fetched.error = error
        except Exception as error:  # a bug must cost one tenant, not the run
            log.exception("tenant %s: unexpected error", plan.tenant.label)
            fetched.error = FetcherError(f"unexpected {type(error).__name__}: {error}")
        return fetched

    async def _store(
        self, outcome: TenantOutcome, fetched: list[Fetched], quarantined: list[Rejection]
    ) -> TenantOutcome:
        """The admitted resources, rejections and ledger row in one transaction, shielded from stop()."""
        admitted = [(f.resource, f.admission) for f in fetched if f.error is None]
        rejections = [r for _, a in admitted for r in a.rejections] + quarantined
        tally = _tally(admitted)
        outcome.rejected, outcome.partial_days = len(rejections), tally.partial_days
        outcome.objects = [o for _, a in admitted for o in a.objects]
        outcome.scores_upserted = len(tally.score_days)
        _judge(outcome, fetched, bool(rejections), tally.mismatched_ids)
        try:
            await asyncio.shield(self._write(outcome, admitted, rejections))
        except (DBAPIError, DatabaseError) as error:
            outcome.scores_upserted = 0
            cause = error if isinstance(error, DatabaseError) else database_error(error, self.engine)
            if isinstance(cause, RUN_ENDING):
                return self._end_run(outcome, cause)
            return await self._finish(outcome, Status.FAILED, _not_stored(outcome, admitted, cause))
        return outcome

    async def _write(
        self, outcome: TenantOutcome, admitted: list[tuple[Resource[Any], Admission[Any]]], rejections: list[Rejection]
    ) -> None:
        outcome.finished_at = utcnow()
        await self.group.save(TenantWrite(admitted, rejections, outcome.ledger_row(self.run_id)))

    def _quarantine(self, error: FetcherError, tenant: TenantRef) -> list[Rejection]:
        """An answer still unreadable after its retries is kept, as a refused payload, with the reason."""
        if isinstance(error, InvalidResponse) and error.body is not None:
            return [Rejection(tenant.tenant_id, self.run_id, utcnow(), one_line_error(error, tenant), error.body)]
        return []

    # ------------------------------------------------------------------------------------------ replay

    async def replay(self, plan: Plan, stats: RequestStats) -> TenantOutcome:
        """Rebuild one tenant: replay its archive through admit into save, in one transaction."""
        tenant = plan.tenant
        outcome = TenantOutcome(tenant, Status.SUCCEEDED, utcnow(), utcnow(), stats)

        async def work(conn: AsyncConnection) -> None:
            replayed = await self._replay(conn, plan)
            outcome.scores_upserted, outcome.rejected = len(replayed.days), len(replayed.rejections)
            if replayed.wrong_tenant is not None:
                outcome.status, outcome.error_kind = Status.FAILED, replayed.wrong_tenant.kind
                outcome.error_message = f"tenant {tenant.label}: {replayed.wrong_tenant}; it was quarantined"
            elif replayed.rejections:
                outcome.status = Status.PARTIAL
            outcome.finished_at = utcnow()
            await record(conn, replayed.rejections, outcome.ledger_row(self.run_id))

        try:
            async with self.writers:
                await in_transaction(self.engine, work, f"rebuilding tenant {tenant.label}")
        except (DBAPIError, DatabaseError) as error:
            outcome.scores_upserted = outcome.rejected = 0
            outcome.status, outcome.error_message = Status.SUCCEEDED, None
            cause = error if isinstance(error, DatabaseError) else database_error(error, self.engine)
            if isinstance(cause, RUN_ENDING):
                return self._end_run(outcome, cause)
            failure = type(cause)(f"tenant {tenant.label}: rebuild rolled back: {cause}")
            return await self._finish(outcome, Status.FAILED, failure)
        return outcome

    async def _replay(self, conn: AsyncConnection, plan: Plan) -> Replayed:
        tenant_id = plan.tenant.tenant_id
        await ensure_tenant(conn, tenant_id, utcnow())
        replayed = Replayed()
        for resource in self.resources(plan):
            if resource.replay is None:
                continue
            chunk: list[tuple[Any, FetchContext]] = []
            async for item in resource.replay(conn, tenant_id):
                chunk.append(item)
                if len(chunk) >= REPLAY_CHUNK:
                    await self._replay_chunk(conn, resource, tenant_id, chunk, replayed)
                    chunk = []
            await self._replay_chunk(conn, resource, tenant_id, chunk, replayed)
        return replayed

    async def _replay_chunk(
        self,
        conn: AsyncConnection,
        resource: Resource[Any],
        tenant_id: str,
        chunk: list[tuple[Any, FetchContext]],
        replayed: Replayed,
    ) -> None:
        """Archived objects admitted as a fetch admits them, each with the context it was stored with."""
        if not chunk:
            return
        admission: Admission[Any] = Admission()
        for obj, context in chunk:
            resource.admit(
                [obj], context, tenant_id=tenant_id, keep_raw=False, keep_objects=False, into=admission, replay=True
            )
        # Refused by this run, though received (`received_at`) by the run that archived it.
        admission.rejections = [dataclasses.replace(r, run_id=self.run_id) for r in admission.rejections]
        for rejection in admission.rejections:
            log.warning("tenant %s: an archived object no longer passes validation: %s", tenant_id, rejection.reason)
        replayed.add(admission, resource.tally(admission.rows))
        await save_admitted(conn, resource, admission, saved_at=chunk[-1][1].fetched_at, tenant_saved=True)

    # ---------------------------------------------------------------------------------------- failures

    def _end_run(self, outcome: TenantOutcome, error: DatabaseError) -> TenantOutcome:
        """The database file is gone, or a table of it (`RUN_ENDING`): nothing more can be stored or recorded, so
        the run stops here."""
        outcome.status, outcome.error_kind, outcome.error_message = Status.FAILED, error.kind, str(error)
        self.stop.fail(error)
        return outcome

    async def _finish(
        self, outcome: TenantOutcome, status: Status, error: FetcherError, rejections: Sequence[Rejection] = ()
    ) -> TenantOutcome:
        """Record a tenant that stored nothing: failed or interrupted, with the one-line reason.

        Its ledger row (and any quarantined answer) is written now, or, when the database refuses
        (locked, connection lost), kept for the run's end, so that the ledger still says what happened.
        """
        outcome.status, outcome.error_kind = status, error.kind
        outcome.error_message = one_line_error(error, outcome.tenant)
        outcome.finished_at = utcnow()
        outcome.rejected = len(rejections)
        if status == Status.FAILED:
            # The run's end summarises failures sharing one cause once; each tenant's line is for -v.
            log.debug(
                "%s",
                outcome.error_message,
                extra={"tenant_id": outcome.tenant.tenant_id, "run_id": self.run_id, "error_kind": error.kind},
            )
        # The database is gone or damaged: nothing can be recorded; the run's end says why.
        if self.stop.fatal is not None:
            return outcome
        row = outcome.ledger_row(self.run_id)
        try:
            await self.group.save(TenantWrite((), rejections, row))
        except (DBAPIError, DatabaseError) as db_error:
            cause = db_error if isinstance(db_error, DatabaseError) else database_error(db_error, self.engine)
            if isinstance(cause, RUN_ENDING):  # no later row could be written either: the run's end says why
                self.stop.fail(cause)
                return outcome
            log.warning(
                "tenant %s: its outcome is recorded at the end of the run: %s",
                outcome.tenant.label,
                _db_reason(db_error),
            )
            self.unrecorded.append((row, list(rejections)))
        return outcome


def _not_stored(
    outcome: TenantOutcome, admitted: Sequence[tuple[Resource[Any], Admission[Any]]], cause: DatabaseError
) -> FetcherError:
    """The failure of a tenant whose save the database refused, naming what each resource had to store; of the
    database error's class (the ledger's error_kind says what happened: database_locked, ...), unless the tenant
    had already failed (a resource Graph refused): that cause stays its kind and comes first in the message."""
    held = " and ".join(f"{len(a.rows)} {resource.name}" for resource, a in admitted if a.rows) or "outcome"
    failure: FetcherError = type(cause)(
        f"tenant {outcome.tenant.label}: storing its {held} failed and was rolled back: {cause}"
    )
    if outcome.status is Status.FAILED and outcome.error_kind is not None:
        failure = FetcherError(f"{outcome.error_message}; {failure}")
        failure.kind = outcome.error_kind
    return failure


def _tally(admitted: Sequence[tuple[Resource[Any], Admission[Any]]]) -> Tally:
    tallies = [resource.tally(admission.rows) for resource, admission in admitted]
    return Tally(
        frozenset().union(*(t.score_days for t in tallies)),
        sum(t.partial_days for t in tallies),
        sum(t.mismatched_ids for t in tallies),
    )


def _judge(outcome: TenantOutcome, fetched: Sequence[Fetched], rejected: bool, mismatched: int = 0) -> None:
    """The status of a tenant that stored something: failed (a resource failed, or an object was for
    another tenant), partial (days flagged partial, payloads quarantined, days stored with an id that
    names another day, which the ledger row's message counts), or succeeded."""
    wrong = next((f.admission.wrong_tenant for f in fetched if f.admission.wrong_tenant is not None), None)
    if any(f.error is not None for f in fetched):
        failure = _failure(fetched, outcome.tenant)
        outcome.status, outcome.error_kind, outcome.error_message = Status.FAILED, failure.kind, str(failure)
    elif wrong is not None:
        outcome.status, outcome.error_kind = Status.FAILED, wrong.kind
        outcome.error_message = f"tenant {outcome.tenant.label}: {wrong}; it was quarantined"
    elif rejected or outcome.partial_days or mismatched:
        outcome.status = Status.PARTIAL
        if mismatched:
            outcome.error_message = (
                f"tenant {outcome.tenant.label}: {mismatched} day(s) stored under the date of their createdDateTime "
                "although Graph's id names another day; flagged in secure_scores.id_mismatch"
            )


def _failure(fetched: Sequence[Fetched], tenant: TenantRef) -> FetcherError:
    """The tenant's failure: its one failed resource's error, or, when it fetches several resources, an
    error of the first failure's kind whose message names each failed resource and why, a cause the
    resources share (a 403 for missing consent) said once: `secureScores and secureScoreControlProfiles: ...`."""
    failed = [(f.resource.name, f.error) for f in fetched if f.error is not None]
    first = failed[0][1]
    if len(fetched) == 1:
        return first
    causes: dict[str, list[str]] = {}
    for name, error in failed:
        causes.setdefault(one_line_error(error, tenant), []).append(name)
    failure = copy.copy(first)  # its kind (the ledger's error_kind) and its attributes, another message
    failure.message = "; ".join(f"{' and '.join(names)}: {cause}" for cause, names in causes.items())
    failure.args = (failure.message,)
    return failure


def _stopped_while(stats: RequestStats) -> str:
    """Why an interrupted tenant stored nothing, with the requests it had made."""
    if not stats.requests:
        return "the run was stopped before this tenant was fetched"
    return f"the run was stopped while this tenant was being fetched, after {stats.requests} request(s)"


def one_line_error(error: FetcherError, tenant: TenantRef) -> str:
    """The error on one line, naming the tenant."""
    message = " ".join(str(error).split())
    if isinstance(error, GraphError) and tenant.tenant_id not in message:
        message = f"tenant {tenant.label}: {message}"
    return message


def _db_reason(error: Exception) -> str:
    orig = getattr(error, "orig", None) or error
    text = " ".join(str(orig).split())
    return text[:300] or type(orig).__name__

"""The run ledger: `fetch_runs` and `tenant_runs`, and the questions asked of them.

A run's row is written `running` when it starts and finished at its end, with its shard ("K/N", or
null for every tenant); one that died stays `running` until the next run of its shard (which holds that
shard's lock, so no other copy is alive) or the next unsharded run marks it `interrupted`. A tenant's
row is written in the same transaction as its data, so the ledger never claims days that are not stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from operator import attrgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert

from fetcher.health import LastError
from fetcher.models import Shard, Status
from fetcher.store import bulk
from fetcher.store.schema import (
    as_date,
    as_utc,
    fetch_runs,
    rejected_payloads,
    secure_scores,
    tenant_runs,
    tenants,
)

DONE_WELL = tuple(s for s in Status if s.done_well)
ARCHIVE_COMMANDS = ("rebuild",)  # replay the local archive: they ask nothing of Graph


def from_graph() -> sa.ColumnElement[bool]:
    """`tenant_runs` rows of runs that fetched from Graph (run, backfill, get), not of a `rebuild`: a tenant's
    health, last run and last success (`status`, `report`, `metrics`, the alert rules) are about Graph, so a
    replay of the archive neither clears a failing tenant nor makes a fine one failing. A rebuild's own
    outcome stays in its `fetch_runs` row (and `metrics`' per-command run figures)."""
    replays = sa.select(fetch_runs.c.run_id).where(fetch_runs.c.command.in_(ARCHIVE_COMMANDS))
    return tenant_runs.c.run_id.not_in(replays)


_INSERT_TENANT_RUN = sa.insert(tenant_runs)


@dataclass(frozen=True)
class TenantRun:
    """How one tenant fared in one run."""

    run_id: str
    tenant_id: str
    status: Status
    started_at: datetime
    finished_at: datetime
    scores_upserted: int = 0
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    rejected: int = 0
    partial_days: int = 0
    error_kind: str | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class RunTotals:
    status: Status
    finished_at: datetime
    tenants_succeeded: int
    tenants_failed: int
    scores_upserted: int
    tenants_interrupted: int = 0


@dataclass(frozen=True)
class TenantState:
    """A row of `fetcher status`."""

    tenant_id: str
    name: str
    newest_score_date: date | None
    last_success_at: datetime | None
    last_error_at: datetime | None
    last_error_kind: str | None
    last_error_message: str | None
    rejected_payloads: int
    oldest_score_date: date | None = None
    stored_days: int = 0


async def start_run(
    conn: AsyncConnection,
    *,
    run_id: str,
    command: str,
    started_at: datetime,
    tenants_total: int,
    host: str,
    pid: int,
    shard: Shard | None = None,
) -> None:
    await conn.execute(
        sa.insert(fetch_runs).values(
            run_id=run_id,
            command=command,
            started_at=started_at,
            status=Status.RUNNING,
            tenants_total=tenants_total,
            host=host,
            pid=pid,
            shard=_shard_text(shard),
        )
    )


def _shard_text(shard: Shard | None) -> str | None:
    return None if shard is None else str(shard)


def _of_shard(shard: Shard | None) -> sa.ColumnElement[bool]:
    return fetch_runs.c.shard.is_(None) if shard is None else fetch_runs.c.shard == str(shard)


@dataclass(frozen=True)
class DeadRuns:
    """Runs found dead and marked interrupted, and how many of their tenants no `tenant_runs` row holds: those
    in flight when the process was killed (their transactions rolled back) or not yet started."""

    runs: int = 0
    unrecorded: int = 0


async def interrupt_dead_runs(
    conn: AsyncConnection, *, alive_run_id: str, now: datetime, shard: Shard | None = None, every: bool = True
) -> DeadRuns:
    """Mark other `running` runs as interrupted: all of them (`every`: an unsharded run, or any run on
    SQLite, holds the only lock), else those of `shard`. Call it while holding the run lock.

    A dead run gets the totals `finish_run` would have written, counted from its own `tenant_runs` rows
    (which its data was committed with), and, as its end, its last sign of life the ledger holds: its
    latest tenant's finish, else its start. `now` bounds that end (a clock that went back). A graceful stop
    records a tenant in flight as `interrupted`; a killed run cannot, so those tenants are only counted here
    (`tenants_total` less the three counts), with the tenants it had not started: they cannot be told apart."""
    query = sa.update(fetch_runs).where(fetch_runs.c.status == Status.RUNNING, fetch_runs.c.run_id != alive_run_id)
    if not every:
        query = query.where(_of_shard(shard))
    last_seen = sa.func.coalesce(_of_run(sa.func.max(tenant_runs.c.finished_at)), fetch_runs.c.started_at)
    result = await conn.execute(
        query.values(
            status=Status.INTERRUPTED,
            finished_at=sa.case((last_seen < now, last_seen), else_=now),
            tenants_succeeded=_of_run(_count_where(tenant_runs.c.status.in_(DONE_WELL))),
            tenants_failed=_of_run(_count_where(tenant_runs.c.status == Status.FAILED)),
            tenants_interrupted=_of_run(_count_where(tenant_runs.c.status == Status.INTERRUPTED)),
            scores_upserted=_of_run(sa.func.coalesce(sa.func.sum(tenant_runs.c.scores_upserted), 0)),
        ).returning(_UNRECORDED)
    )
    unrecorded = result.scalars().all()
    return DeadRuns(len(unrecorded), sum(max(0, n) for n in unrecorded))


_UNRECORDED = (
    fetch_runs.c.tenants_total
    - fetch_runs.c.tenants_succeeded
    - fetch_runs.c.tenants_failed
    - fetch_runs.c.tenants_interrupted
)


def _of_run(aggregate: sa.ColumnElement[Any]) -> sa.ScalarSelect[Any]:
    """`aggregate` over the `tenant_runs` rows of the `fetch_runs` row being updated."""
    return sa.select(aggregate).where(tenant_runs.c.run_id == fetch_runs.c.run_id).scalar_subquery()


def _count_where(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.count(sa.case((condition, 1)))


_TENANT_RUN_FIELDS = tuple(TenantRun.__dataclass_fields__)
_tenant_run_values = attrgetter(*_TENANT_RUN_FIELDS)


async def record_tenant_run(conn: AsyncConnection, record: TenantRun) -> None:
    await record_tenant_runs(conn, [record])


async def record_tenant_runs(conn: AsyncConnection, records: Sequence[TenantRun]) -> None:
    """Tenants' rows, one statement for all of them (a group commit's tenants), in the caller's transaction.

    A fixed cost a nightly run pays per tenant, so measured: building an INSERT with the values in it cost
    half a millisecond of CPU per tenant; the same statement with parameters through SQLAlchemy 0.17 to
    0.24 ms on SQLite, straight to the driver (`fetcher.store.bulk`, as the day rows go) 0.09 to 0.13 ms.
    PostgreSQL keeps SQLAlchemy's statement: its bulk path is a COPY, three round trips for a few rows.
    """
    if not records:
        return
    if conn.dialect.name == "sqlite":
        statement = bulk.compiled(conn, "tenant_runs", _insert_tenant_runs, _TENANT_RUN_FIELDS)
        await bulk.execute_many(conn, statement, [_tenant_run_values(record) for record in records])
        return
    await conn.execute(
        _INSERT_TENANT_RUN, [{name: getattr(record, name) for name in _TENANT_RUN_FIELDS} for record in records]
    )


def _insert_tenant_runs(conn: AsyncConnection) -> Insert:  # noqa: ARG001 (a bulk.StatementFactory)
    return _INSERT_TENANT_RUN


async def finish_run(conn: AsyncConnection, run_id: str, totals: RunTotals) -> None:
    await conn.execute(
        sa.update(fetch_runs)
        .where(fetch_runs.c.run_id == run_id)
        .values(
            status=totals.status,
            finished_at=totals.finished_at,
            tenants_succeeded=totals.tenants_succeeded,
            tenants_failed=totals.tenants_failed,
            tenants_interrupted=totals.tenants_interrupted,
            scores_upserted=totals.scores_upserted,
        )
    )


async def resumable_tenants(conn: AsyncConnection, command: str = "backfill", shard: Shard | None = None) -> set[str]:
    """Tenants already done by the latest unfinished chain of `command` runs of `shard` (None: unsharded).

    The chain is the newest runs of that command and shard that ended interrupted or partial (or died
    running), back to the last one that ended otherwise; a resumed run that is itself cut short
    adds to the chain, so resuming twice skips what both runs did.
    """
    runs = (
        await conn.execute(
            sa.select(fetch_runs.c.run_id, fetch_runs.c.status)
            .where(fetch_runs.c.command == command, _of_shard(shard))
            .order_by(fetch_runs.c.started_at.desc())
        )
    ).all()
    chain = []
    for run_id, status in runs:
        if status not in (Status.INTERRUPTED, Status.PARTIAL, Status.RUNNING):
            break
        chain.append(run_id)
    if not chain:
        return set()
    done = await conn.scalars(
        sa.select(tenant_runs.c.tenant_id).where(tenant_runs.c.run_id.in_(chain), tenant_runs.c.status.in_(DONE_WELL))
    )
    return set(done.all())


async def tenant_states(conn: AsyncConnection, tenant_ids: Sequence[str] | None = None) -> list[TenantState]:
    """Newest day, last success and last error (of runs from Graph: `from_graph`) of every known tenant (or the
    given ones)."""
    newest = (
        sa.select(
            secure_scores.c.tenant_id,
            sa.func.max(secure_scores.c.score_date).label("newest"),
            sa.func.min(secure_scores.c.score_date).label("oldest"),
            sa.func.count().label("days"),
        )
        .group_by(secure_scores.c.tenant_id)
        .subquery()
    )
    success = (
        sa.select(tenant_runs.c.tenant_id, sa.func.max(tenant_runs.c.finished_at).label("at"))
        .where(tenant_runs.c.status.in_(DONE_WELL), from_graph())
        .group_by(tenant_runs.c.tenant_id)
        .subquery()
    )
    rejected = (
        sa.select(rejected_payloads.c.tenant_id, sa.func.count().label("n"))
        .group_by(rejected_payloads.c.tenant_id)
        .subquery()
    )
    query = (
        sa.select(
            tenants.c.tenant_id,
            tenants.c.name,
            newest.c.newest,
            success.c.at,
            rejected.c.n,
            newest.c.oldest,
            newest.c.days,
        )
        .outerjoin(newest, newest.c.tenant_id == tenants.c.tenant_id)
        .outerjoin(success, success.c.tenant_id == tenants.c.tenant_id)
        .outerjoin(rejected, rejected.c.tenant_id == tenants.c.tenant_id)
        .order_by(tenants.c.name, tenants.c.tenant_id)
    )
    if tenant_ids is not None:
        query = query.where(tenants.c.tenant_id.in_(list(tenant_ids)))
    rows = (await conn.execute(query)).all()
    errors = await last_errors(conn)
    states = []
    for tenant_id, name, newest_day, success_at, rejected_count, oldest_day, days in rows:
        error = errors.get(tenant_id)
        states.append(
            TenantState(
                tenant_id=tenant_id,
                name=name,
                newest_score_date=as_date(newest_day),
                last_success_at=as_utc(success_at),
                last_error_at=error.at if error else None,
                last_error_kind=error.kind if error else None,
                last_error_message=error.message if error else None,
                rejected_payloads=int(rejected_count or 0),
                oldest_score_date=as_date(oldest_day),
                stored_days=int(days or 0),
            )
        )
    return states


async def last_errors(conn: AsyncConnection) -> dict[str, LastError]:
    """Each tenant's latest run from Graph (`from_graph`), where that run did not end well (failed or interrupted)."""
    latest = (
        sa.select(tenant_runs.c.tenant_id, sa.func.max(tenant_runs.c.finished_at).label("at"))
        .where(from_graph())
        .group_by(tenant_runs.c.tenant_id)
        .subquery()
    )
    rows = (
        await conn.execute(
            sa.select(
                tenant_runs.c.tenant_id,
                tenant_runs.c.finished_at,
                tenant_runs.c.error_kind,
                tenant_runs.c.error_message,
            )
            .join(
                latest, sa.and_(latest.c.tenant_id == tenant_runs.c.tenant_id, latest.c.at == tenant_runs.c.finished_at)
            )
            .where(tenant_runs.c.status.not_in(DONE_WELL), from_graph())
        )
    ).all()
    return {tenant_id: LastError(as_utc(at), kind, message) for tenant_id, at, kind, message in rows}


async def run_rows(conn: AsyncConnection, run_id: str) -> tuple[Any, list[Any]]:
    """A run's `fetch_runs` row and its `tenant_runs` rows (for summaries and tests)."""
    run = (await conn.execute(sa.select(fetch_runs).where(fetch_runs.c.run_id == run_id))).one()
    rows = (
        await conn.execute(
            sa.select(tenant_runs).where(tenant_runs.c.run_id == run_id).order_by(tenant_runs.c.tenant_id)
        )
    ).all()
    return run, list(rows)

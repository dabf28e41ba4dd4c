"""What `fetcher metrics` reads: each tenant's last run and last success, and each command's latest run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from fetcher.models import Status
from fetcher.store.ledger import DONE_WELL, from_graph
from fetcher.store.schema import as_utc, fetch_runs, tenant_runs


@dataclass(frozen=True, slots=True)
class TenantRunState:
    """A tenant's latest finished run (status and time) and latest success."""

    tenant_id: str
    status: str
    finished_at: datetime
    last_success_at: datetime | None


@dataclass(frozen=True, slots=True)
class RunSummary:
    """The latest finished run of one command (of one shard: `shard` "K/N", "" for a run of every tenant),
    with its tenants' request counts summed."""

    command: str
    status: str
    started_at: datetime
    finished_at: datetime
    tenants_succeeded: int
    tenants_failed: int
    requests: int
    retries: int
    throttled: int
    shard: str = ""
    tenants_interrupted: int = 0  # stopped, not failed (migration 0009)

    @property
    def duration_seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


async def tenant_run_states(conn: AsyncConnection) -> dict[str, TenantRunState]:
    """Each tenant's latest run and latest success from Graph (`from_graph`: a `rebuild` is left out)."""
    t = tenant_runs.c
    order = sa.func.row_number().over(partition_by=t.tenant_id, order_by=t.finished_at.desc()).label("n")
    ranked = (
        sa.select(t.tenant_id, t.status, t.finished_at, order)
        .where(t.finished_at.is_not(None), from_graph())
        .subquery()
    )
    success = (
        sa.select(t.tenant_id, sa.func.max(t.finished_at).label("at"))
        .where(t.status.in_(DONE_WELL), from_graph())
        .group_by(t.tenant_id)
        .subquery()
    )
    query = (
        sa.select(ranked.c.tenant_id, ranked.c.status, ranked.c.finished_at, success.c.at)
        .outerjoin(success, success.c.tenant_id == ranked.c.tenant_id)
        .where(ranked.c.n == 1)
    )
    states = {}
    for tenant, status, finished, succeeded in (await conn.execute(query)).all():
        states[tenant] = TenantRunState(tenant, status, as_utc(finished) or datetime.min, as_utc(succeeded))
    return states


async def latest_runs_by_command(conn: AsyncConnection) -> list[RunSummary]:
    """For each command (run, backfill, ...) and shard, its newest finished run, in command and shard order."""
    f, t = fetch_runs.c, tenant_runs.c
    shard = sa.func.coalesce(f.shard, "").label("shard")
    order = sa.func.row_number().over(partition_by=(f.command, shard), order_by=f.started_at.desc()).label("n")
    ranked = (
        sa.select(
            f.run_id,
            f.command,
            f.status,
            f.started_at,
            f.finished_at,
            f.tenants_succeeded,
            f.tenants_failed,
            shard,
            f.tenants_interrupted,
            order,
        )
        .where(f.status != Status.RUNNING, f.finished_at.is_not(None))
        .subquery()
    )
    runs = (
        await conn.execute(sa.select(ranked).where(ranked.c.n == 1).order_by(ranked.c.command, ranked.c.shard))
    ).all()
    sums_query = (
        sa.select(t.run_id, sa.func.sum(t.requests), sa.func.sum(t.retries), sa.func.sum(t.throttled))
        .where(t.run_id.in_([r.run_id for r in runs]))
        .group_by(t.run_id)
    )
    sums = {run_id: (req, ret, thr) for run_id, req, ret, thr in (await conn.execute(sums_query)).all()} if runs else {}
    return [_summary(row, sums.get(row.run_id, (0, 0, 0))) for row in runs]


def _summary(row: sa.Row[Any], sums: tuple[Any, Any, Any]) -> RunSummary:
    return RunSummary(
        command=row.command,
        status=row.status,
        started_at=as_utc(row.started_at) or datetime.min,
        finished_at=as_utc(row.finished_at) or datetime.min,
        tenants_succeeded=int(row.tenants_succeeded),
        tenants_failed=int(row.tenants_failed),
        requests=int(sums[0] or 0),
        retries=int(sums[1] or 0),
        throttled=int(sums[2] or 0),
        shard=row.shard,
        tenants_interrupted=int(row.tenants_interrupted),
    )

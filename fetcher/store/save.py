"""The save stage: a tenant's admitted rows, archive rows, rejections and ledger row in one transaction.

`save_tenant` is what a fetch calls once per tenant; `save_admitted` and `record` are its parts, for a
caller that holds its own transaction (`fetcher rebuild` reads the archive in the same one). Because
the ledger row is written with the data, the ledger never claims days that are not stored; because a
connection lost in the middle rolls everything back, `in_transaction` can safely try once more.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from fetcher.admit import Admission
from fetcher.resources.base import Resource
from fetcher.store import ledger
from fetcher.store.archive import Rejection, save_rejections
from fetcher.store.engine import transaction

log = logging.getLogger(__name__)

REJECTED_BODY_CAP = 256 * 1024  # bytes of a quarantined body kept (the size is kept whole)

T = TypeVar("T")


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


async def save_admitted(
    conn: AsyncConnection,
    resource: Resource[Any],
    admission: Admission[Any],
    *,
    saved_at: datetime,
    tenant_saved: bool = True,
) -> None:
    """One resource's admitted rows and archive rows, in the caller's transaction."""
    await resource.save(conn, admission, saved_at=saved_at, tenant_saved=tenant_saved)


async def record(conn: AsyncConnection, rejections: Sequence[Rejection], row: ledger.TenantRun) -> None:
    """A tenant's quarantined payloads (bodies capped at `REJECTED_BODY_CAP`) and its ledger row."""
    await save_rejections(conn, rejections, cap=REJECTED_BODY_CAP)
    await ledger.record_tenant_run(conn, row)


async def save_tenant(
    engine: AsyncEngine,
    admitted: Sequence[tuple[Resource[Any], Admission[Any]]],
    rejections: Sequence[Rejection],
    row: ledger.TenantRun,
) -> None:
    """Everything one tenant's work produced, in one transaction: each resource's rows and archive rows,
    the rejections, the ledger row (its `finished_at` is the rows' save time). With nothing admitted it
    records a tenant that stored nothing (failed, interrupted)."""

    async def work(conn: AsyncConnection) -> None:
        for resource, admission in admitted:
            await save_admitted(conn, resource, admission, saved_at=row.finished_at)
        await record(conn, rejections, row)

    what = "storing" if admitted else "recording"
    await in_transaction(engine, work, f"{what} tenant {row.tenant_id}")

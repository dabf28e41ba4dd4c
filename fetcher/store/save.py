"""The save stage: a tenant's admitted rows, archive rows, rejections and ledger row in one transaction.

`save_tenant` saves one tenant; `save_group` saves several finished tenants in one transaction (a group
commit: one transaction's fixed cost shared by the group) and, when that transaction fails, each tenant
again in a transaction of its own, so one tenant that cannot be saved costs nobody else its data.
`save_admitted` and `record` are the parts, for a caller that holds its own transaction (`fetcher rebuild`
reads the archive in the same one). Because the ledger row is written with the data, the ledger never
claims days that are not stored; because a connection lost in the middle rolls everything back,
`in_transaction` can safely try once more.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from fetcher.admit import Admission
from fetcher.resources.base import Resource
from fetcher.store import ledger
from fetcher.store.archive import Rejection, save_rejections
from fetcher.store.engine import transaction
from fetcher.store.partition import ensure_partitions

log = logging.getLogger(__name__)

REJECTED_BODY_CAP = 256 * 1024  # bytes of a quarantined body kept (the size is kept whole)

T = TypeVar("T")


@dataclass(frozen=True)
class TenantWrite:
    """Everything one tenant's work produced: each resource's admitted rows, the rejections, the ledger row
    (its `finished_at` is the rows' save time). With nothing admitted, a tenant that stored nothing."""

    admitted: Sequence[tuple[Resource[Any], Admission[Any]]]
    rejections: Sequence[Rejection]
    row: ledger.TenantRun


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
    shared_saved: bool = False,
) -> None:
    """One resource's admitted rows and archive rows, in the caller's transaction."""
    await resource.save(conn, admission, saved_at=saved_at, tenant_saved=tenant_saved, shared_saved=shared_saved)


async def record(conn: AsyncConnection, rejections: Sequence[Rejection], row: ledger.TenantRun) -> None:
    """A tenant's quarantined payloads (bodies capped at `REJECTED_BODY_CAP`) and its ledger row."""
    await save_rejections(conn, rejections, cap=REJECTED_BODY_CAP)
    await ledger.record_tenant_run(conn, row)


async def write_tenant(
    conn: AsyncConnection, write: TenantWrite, *, shared_saved: bool = False, ledger_row: bool = True
) -> None:
    """One tenant's rows, archive rows, rejections and ledger row, in the caller's transaction.

    `shared_saved`: the rows tenants share are saved already, for the whole group (`save_group`).
    `ledger_row`: False when the caller writes the ledger rows of a group together, in the same transaction.
    """
    for resource, admission in write.admitted:
        await save_admitted(conn, resource, admission, saved_at=write.row.finished_at, shared_saved=shared_saved)
    if ledger_row:
        await record(conn, write.rejections, write.row)
    else:
        await save_rejections(conn, write.rejections, cap=REJECTED_BODY_CAP)


async def save_tenant(
    engine: AsyncEngine,
    admitted: Sequence[tuple[Resource[Any], Admission[Any]]],
    rejections: Sequence[Rejection],
    row: ledger.TenantRun,
) -> None:
    """Everything one tenant's work produced, in one transaction (see `TenantWrite`). On a partitioned
    database the month partitions its rows need are made first, in a transaction of their own."""
    write = TenantWrite(admitted, rejections, row)
    what = "storing" if admitted else "recording"
    await ensure_partitions(engine, score_dates(admitted))
    await in_transaction(engine, lambda conn: write_tenant(conn, write), f"{what} tenant {row.tenant_id}")


async def save_group(engine: AsyncEngine, writes: Sequence[TenantWrite]) -> list[Exception | None]:
    """Several tenants in one transaction, each tenant's rows with its own ledger row; per write, None when
    it was saved, else the error that kept it from being saved (and rolled its rows back).

    When the group's transaction fails, nothing of it is stored, and each tenant is saved again in a
    transaction of its own: the group costs one more try, and a tenant that cannot be saved fails alone.
    On SQLite a tenant alone takes the group's path too (its members and bases read in one round trip each,
    `fetcher.store.scores`); on PostgreSQL it is saved by `save_tenant`.
    """
    if len(writes) > 1 or (writes and engine.dialect.name == "sqlite"):
        await ensure_partitions(engine, (day for write in writes for day in score_dates(write.admitted)))

        async def work(conn: AsyncConnection) -> None:
            await _save_shared(conn, writes)
            for write in writes:
                await write_tenant(conn, write, shared_saved=True, ledger_row=False)
            await _save_shared(conn, writes, last=True)
            await ledger.record_tenant_runs(conn, [write.row for write in writes])  # one statement for the group

        try:
            await in_transaction(engine, work, f"storing {len(writes)} tenants")
            return [None] * len(writes)
        except Exception as error:  # whichever tenant caused it, the others must still be saved
            if len(writes) == 1:
                return [error]  # the tenant's own failure: a second try alone would be the same transaction
            log.info(
                "storing %d tenants in one transaction failed (%s); storing each alone",
                len(writes),
                type(error).__name__,
            )
    return [await _save_alone(engine, write) for write in writes]


async def _save_shared(conn: AsyncConnection, writes: Sequence[TenantWrite], *, last: bool = False) -> None:
    """Each resource's `save_shared`, for the whole group, before any tenant's own rows; with `last`, its
    `save_last` (the rows tenants share), after them."""
    by_resource: dict[str, tuple[Resource[Any], list[Admission[Any]]]] = {}
    for write in writes:
        for resource, admission in write.admitted:
            by_resource.setdefault(resource.name, (resource, []))[1].append(admission)
    for resource, admissions in by_resource.values():
        saver = resource.save_last if last else resource.save_shared
        if saver is not None:
            await saver(conn, admissions)


async def _save_alone(engine: AsyncEngine, write: TenantWrite) -> Exception | None:
    try:
        await save_tenant(engine, write.admitted, write.rejections, write.row)
    except Exception as error:  # the tenant's own failure, returned to the tenant's caller to judge
        return error
    return None


def score_dates(admitted: Sequence[tuple[Resource[Any], Admission[Any]]]) -> Iterator[date]:
    """The days the admitted rows are for (rows with a `score_date`), whose partitions a save needs; lazy, so
    an unpartitioned database never walks the rows."""
    return (day for _, admission in admitted for row in admission.rows if (day := getattr(row, "score_date", None)))

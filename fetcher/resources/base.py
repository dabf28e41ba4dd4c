"""What a Graph resource is made of (see `fetcher.resources` for how one is added)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Generic, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from fetcher.admit import Admission, Row
from fetcher.models import FetchContext, RequestStats, ScorePage, TenantRef
from fetcher.plan import Plan


class PageSource(Protocol):
    """What a fetcher needs of the run's `GraphClient`."""

    def list_pages(
        self, tenant: TenantRef, path: str, top: int | None, stats: RequestStats
    ) -> AsyncIterator[ScorePage]: ...

    async def get_item(self, tenant: TenantRef, path: str, item_id: str, stats: RequestStats) -> ScorePage: ...

    async def forget(self, tenant_id: str) -> None: ...


class Fetcher(Protocol):
    """The fetch stage of a resource: one tenant's pages, as they arrive."""

    def __call__(self, client: PageSource, plan: Plan, stats: RequestStats) -> AsyncIterator[ScorePage]: ...


class Admitter(Protocol[Row]):
    """The admit stage of a resource (pure): objects received together -> rows, archive rows, rejections."""

    def __call__(
        self,
        objects: Iterable[Any],
        context: FetchContext,
        *,
        tenant_id: str,
        keep_raw: bool,
        keep_objects: bool,
        into: Admission[Row],
        replay: bool = False,
    ) -> Admission[Row]: ...


class Saver(Protocol[Row]):
    """The save stage of a resource: its rows and archive rows, in the caller's transaction.

    `tenant_saved`: the tenant's `tenants` row is known to exist (a run saves them all at its start).
    `shared_saved`: the save is one of a group's, whose `save_shared` and `save_last` save what tenants share
    in this transaction (and whatever else they save for the whole group: secureScores' archive rows).
    """

    async def __call__(
        self,
        conn: AsyncConnection,
        admission: Admission[Row],
        *,
        saved_at: datetime,
        tenant_saved: bool,
        shared_saved: bool = False,
    ) -> None: ...


# For the admissions of a group of tenants saved in one transaction: `save_shared` saves, first and once,
# what the tenants' own saves use (secureScores: its texts' keys) and rows of each tenant's own that are
# cheaper in one statement for the group (its archive); `save_last` saves, after every tenant's own rows and
# just before the commit, the rows tenants share that other writers update too (the `controls` dimension),
# once, in one order, so that concurrent transactions take their locks alike and cannot deadlock, and hold
# them for the commit only: PostgreSQL keeps a row an upsert met locked until the transaction ends.
SharedSaver = Callable[[AsyncConnection, Sequence[Admission[Row]]], Awaitable[None]]

# A rebuild: clears the rows a tenant's archive made, then yields the archived objects again in the order
# the fetches last saw them, each with the fetch context it was stored with.
Replayer = Callable[[AsyncConnection, str], AsyncIterator[tuple[Any, FetchContext]]]


@dataclass(frozen=True)
class Tally:
    """What a tenant's ledger row counts of an admission: distinct score days, days flagged partial, days
    whose Graph id names another tenant-day (`secure_scores.id_mismatch`)."""

    score_days: frozenset[date] = frozenset()
    partial_days: int = 0
    mismatched_ids: int = 0


@dataclass(frozen=True)
class Resource(Generic[Row]):
    """One Graph resource; `name` is Graph's (e.g. `secureScores`) and names it in the ledger."""

    name: str
    fetch: Fetcher
    admit: Admitter[Row]
    save: Saver[Row]
    tally: Callable[[Sequence[Row]], Tally]
    replay: Replayer | None = None  # None: not archived, so nothing to rebuild
    save_shared: SharedSaver[Row] | None = None  # None: nothing saved once for a group before its tenants
    save_last: SharedSaver[Row] | None = None  # None: no rows tenants share

"""Discovery's cache, SQL: the customers a partner tenant listed (`partner_customers`) and its latest
discovery (`partner_discoveries`), so that `run` and `backfill` reuse a recent list and fall back to
the last known one when Graph cannot be asked.

A customer is never deleted: one that a successful discovery no longer lists gets `gone_since`, and
gets it cleared if a later discovery lists it again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from fetcher.discovery import Customer
from fetcher.store.schema import as_utc, partner_customers, partner_discoveries

_SLICE = 1000  # rows per statement: thousands of customers make no thousands-row parameter list


@dataclass(frozen=True, slots=True)
class KnownCustomers:
    """The last known customer list of a partner tenant: the active customers (in first-seen order), from
    the discovery that succeeded at `discovered_at` from `source`; `earlier`: tenant id to a customer's
    display name before its latest rename upstream, for those renamed since discovery first found them."""

    source: str
    discovered_at: datetime
    customers: tuple[Customer, ...]
    earlier: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DiscoveryState:
    """A partner tenant's latest discovery attempt: when it was tried, its error (None: it succeeded), and
    the list in use: its time (None: no discovery ever succeeded) and customer count."""

    partner_tenant_id: str
    source: str
    attempted_at: datetime
    discovered_at: datetime | None
    customers: int
    error_kind: str | None
    error_message: str | None

    @property
    def failed(self) -> bool:
        return self.error_kind is not None


async def discovery_state(conn: AsyncConnection, partner_tenant_id: str) -> DiscoveryState | None:
    """The partner's latest discovery attempt, or None when discovery was never tried."""
    d = partner_discoveries.c
    row = (
        await conn.execute(
            sa.select(d.source, d.attempted_at, d.discovered_at, d.customers, d.error_kind, d.error_message).where(
                d.partner_tenant_id == partner_tenant_id
            )
        )
    ).first()
    if row is None:
        return None
    attempted_at = as_utc(row.attempted_at)
    assert attempted_at is not None
    return DiscoveryState(
        partner_tenant_id, row.source, attempted_at, as_utc(row.discovered_at), row.customers or 0,
        row.error_kind, row.error_message,
    )  # fmt: skip


def _insert(conn: AsyncConnection) -> Callable[[sa.Table], Any]:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


async def known_customers(conn: AsyncConnection, partner_tenant_id: str) -> KnownCustomers | None:
    """The partner's last successfully discovered list, or None when no discovery ever succeeded."""
    state = (
        await conn.execute(
            sa.select(partner_discoveries.c.source, partner_discoveries.c.discovered_at).where(
                partner_discoveries.c.partner_tenant_id == partner_tenant_id
            )
        )
    ).first()
    if state is None or state.discovered_at is None:
        return None
    c = partner_customers.c
    rows = (
        await conn.execute(
            sa.select(c.tenant_id, c.display_name, c.previous_display_name)
            .where(c.partner_tenant_id == partner_tenant_id, c.gone_since.is_(None))
            .order_by(c.first_seen_at, c.tenant_id)
        )
    ).all()
    customers = tuple(Customer(r.tenant_id, r.display_name) for r in rows)
    earlier = {r.tenant_id: r.previous_display_name for r in rows if r.previous_display_name}
    discovered_at = as_utc(state.discovered_at)
    assert discovered_at is not None
    return KnownCustomers(state.source, discovered_at, customers, earlier)


async def save_discovery(
    conn: AsyncConnection,
    partner_tenant_id: str,
    source: str,
    customers: Sequence[Customer],
    now: datetime,
    renamed: Mapping[str, str] | None = None,
) -> None:
    """Record a successful discovery at `now`: `customers` seen (added or renamed, `gone_since` cleared),
    every other known customer of the partner marked gone since `now` unless it already was. `renamed`:
    tenant id to the display name a customer renamed upstream had before (`previous_display_name`, kept
    until its next rename)."""
    c = partner_customers.c
    upsert = _insert(conn)(partner_customers)
    stmt = upsert.on_conflict_do_update(
        index_elements=["partner_tenant_id", "tenant_id"],
        set_={"display_name": upsert.excluded.display_name, "last_seen_at": upsert.excluded.last_seen_at,
              "gone_since": None,
              "previous_display_name": sa.func.coalesce(upsert.excluded.previous_display_name,
                                                        c.previous_display_name)},
    )  # fmt: skip
    before = renamed or {}
    rows = [
        {"partner_tenant_id": partner_tenant_id, "tenant_id": customer.tenant_id,
         "display_name": customer.display_name, "previous_display_name": before.get(customer.tenant_id),
         "first_seen_at": now, "last_seen_at": now, "gone_since": None}
        for customer in sorted(customers, key=lambda c: c.tenant_id)  # shards discovering at once lock in one order
    ]  # fmt: skip
    for start in range(0, len(rows), _SLICE):
        await conn.execute(stmt, rows[start : start + _SLICE])
    await conn.execute(
        sa.update(partner_customers)
        .where(c.partner_tenant_id == partner_tenant_id, c.last_seen_at < now, c.gone_since.is_(None))
        .values(gone_since=now)
    )
    await _save_state(
        conn,
        {"partner_tenant_id": partner_tenant_id, "source": source, "discovered_at": now,
         "customers": len(customers), "attempted_at": now, "error_kind": None, "error_message": None},
    )  # fmt: skip


async def save_discovery_failure(
    conn: AsyncConnection, partner_tenant_id: str, source: str, now: datetime, kind: str, message: str
) -> None:
    """Record a failed discovery at `now`; the last successful list (and its time) is kept."""
    row = {"partner_tenant_id": partner_tenant_id, "source": source, "discovered_at": None, "customers": 0,
           "attempted_at": now, "error_kind": kind[:64], "error_message": message}  # fmt: skip
    await _save_state(conn, row, keep=("source", "discovered_at", "customers"))


async def _save_state(conn: AsyncConnection, row: Mapping[str, Any], keep: Sequence[str] = ()) -> None:
    upsert = _insert(conn)(partner_discoveries)
    updated = {name: upsert.excluded[name] for name in row if name != "partner_tenant_id" and name not in keep}
    await conn.execute(upsert.on_conflict_do_update(index_elements=["partner_tenant_id"], set_=updated), row)

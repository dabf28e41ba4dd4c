"""Saving control profiles: idempotent upserts of `control_profiles` and `control_state_updates`.

The same rules as score-days (`fetcher.store.scores`), in the caller's transaction:
- a profile is keyed on (tenant_id, control_name); a null never erases a stored value, `extra` is merged
  key by key (new keys win), `fetched_at` is the latest fetch's;
- a profile missing from a later answer is kept: Graph retires controls by marking them `deprecated`,
  and the reports of the days it scored still need its title;
- state updates are history, kept forever: keyed on (tenant_id, control_name, updated_at, state), a
  repeated one only fills columns that were null.

`raw_control_profiles` archives every profile object as received (`fetcher.store.archive.pack`),
deduplicated by content per tenant: an unchanged profile fetched again only moves its `last_fetched_at`,
and replaying the archive in that order rebuilds what the fetches stored (`fetcher rebuild`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert

from fetcher.models import ControlProfile, ControlProfileRow, StateUpdateRow
from fetcher.store import bulk
from fetcher.store.archive import RawPayload, archive_columns
from fetcher.store.schema import as_utc, control_profiles, control_state_updates, raw_control_profiles
from fetcher.store.scores import _upsert  # the score tables' null-keeping upsert, shared on purpose

PROFILE_OVERWRITE = ("fetched_at",)


async def save_control_profiles(conn: AsyncConnection, tenant_id: str, profiles: Sequence[ControlProfile]) -> int:
    """Upsert one tenant's profiles and their state updates; returns how many profiles were saved.

    Raises ValueError for a profile of another tenant. A control named twice keeps its last profile.
    """
    unique: dict[str, ControlProfile] = {}
    for item in profiles:
        if item.profile.tenant_id != tenant_id:
            raise ValueError(f"save_control_profiles takes tenant {tenant_id}'s profiles, got {item.profile.tenant_id}")
        unique[item.profile.control_name] = item
    ordered = [unique[name] for name in sorted(unique)]  # concurrent writers lock rows in one order
    await bulk.execute_many(
        conn,
        bulk.compiled(
            conn,
            "control_profiles",
            lambda c: _upsert(c, control_profiles, overwrite=PROFILE_OVERWRITE),
            ControlProfileRow._fields,
        ),
        [p.profile for p in ordered],
    )
    await bulk.execute_many(
        conn,
        bulk.compiled(
            conn, "control_state_updates", lambda c: _upsert(c, control_state_updates), StateUpdateRow._fields
        ),
        [u for p in ordered for u in p.updates],
    )
    return len(ordered)


async def profiles_fetched_at(conn: AsyncConnection, tenant_ids: Sequence[str] | None = None) -> dict[str, datetime]:
    """When each tenant's profiles were last fetched (the newest `fetched_at`), for tenants that have any."""
    p = control_profiles.c
    query = sa.select(p.tenant_id, sa.func.max(p.fetched_at)).group_by(p.tenant_id)
    if tenant_ids is not None:
        query = query.where(p.tenant_id.in_(list(tenant_ids)))
    found = {tenant: as_utc(when) for tenant, when in (await conn.execute(query)).all()}
    return {tenant: when for tenant, when in found.items() if when is not None}


async def delete_profiles(conn: AsyncConnection, tenant_id: str, names: Sequence[str] | None = None) -> None:
    """Remove a tenant's profiles (all, or those `names`), not its state updates, which are history."""
    query = sa.delete(control_profiles).where(control_profiles.c.tenant_id == tenant_id)
    if names is None:
        await conn.execute(query)
        return
    for start in range(0, len(names), 500):
        await conn.execute(query.where(control_profiles.c.control_name.in_(list(names[start : start + 500]))))


def _upsert_raw(conn: AsyncConnection) -> Insert:
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(raw_control_profiles)
    return stmt.on_conflict_do_update(
        index_elements=["tenant_id", "sha256"],
        set_={
            "last_fetched_at": stmt.excluded.last_fetched_at,
            "run_id": stmt.excluded.run_id,
            "warning": stmt.excluded.warning,
        },
    )


async def save_raw_profiles(conn: AsyncConnection, payloads: Sequence[RawPayload]) -> None:
    """Archive profile objects (their `score_date` is not used); one already archived only moves its time."""
    unique = list({(p.tenant_id, p.sha256): p for p in payloads}.values())  # one statement, one row per key
    archive = bulk.compiled(
        conn, "raw_control_profiles", _upsert_raw, RawPayload._fields, aliases={"last_fetched_at": "fetched_at"}
    )
    await bulk.execute_many(conn, archive, unique)


async def iter_raw_profiles(conn: AsyncConnection, tenant_id: str) -> AsyncIterator[RawPayload]:
    """A tenant's archived profiles in the order the fetches last saw each."""
    r = raw_control_profiles.c
    query = (
        sa.select(*archive_columns(raw_control_profiles))
        .where(r.tenant_id == tenant_id)
        .order_by(r.last_fetched_at, r.sha256)
    )
    result = await conn.stream(query)
    async for row in result:
        fetched = as_utc(row.last_fetched_at)
        assert fetched is not None
        yield RawPayload(
            row.tenant_id, fetched.date(), row.sha256, row.body, row.size, fetched, row.run_id, row.warning
        )


def archived_names(objects: Iterable[Any]) -> list[str]:
    """The control names (profile ids) of archived profile objects."""
    names: set[str] = set()
    for obj in objects:
        if isinstance(obj, dict) and isinstance(obj.get("id"), str):
            names.add(obj["id"].strip())
    return sorted(names)

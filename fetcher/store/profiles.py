"""Saving control profiles: idempotent upserts of `control_profiles` and `control_state_updates`.

The same rules as score-days (`fetcher.store.scores`), in the caller's transaction:
- a profile is keyed on (tenant_id, control_name); a null never erases a stored value, `extra` is merged
  key by key (new keys win), `fetched_at` is the latest fetch's;
- a profile missing from a later answer is kept: Graph retires controls by marking them `deprecated`,
  and the reports of the days it scored still need its title;
- state updates are history, kept forever: keyed on (tenant_id, control_name, updated_at, state), a
  repeated one only fills columns that were null.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from fetcher.models import ControlProfile, ControlProfileRow, StateUpdateRow
from fetcher.store import bulk
from fetcher.store.schema import as_utc, control_profiles, control_state_updates
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


async def delete_profiles(conn: AsyncConnection, tenant_id: str) -> None:
    """Remove a tenant's profiles (not its state updates, which are history), e.g. before a rebuild."""
    await conn.execute(sa.delete(control_profiles).where(control_profiles.c.tenant_id == tenant_id))

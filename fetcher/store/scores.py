"""Saving score-days: idempotent upserts of scores, comparatives, controls and control scores.

All writes of one call share the caller's transaction. Semantics, identical on SQLite and
PostgreSQL:
- rows are keyed on their natural keys; storing the same input twice changes nothing;
- a null never erases a stored non-null value of the same row, and `extra` is merged key by key
  (new keys win), so a thin older day cannot wipe detail stored from a fuller fetch;
- a day's non-empty control (or comparative) list replaces the stored set for that day: a control
  missing from it is deleted. An empty or absent list is thin, and keeps what is stored;
- `partial`, `warning`, `fetched_at` and `run_id` describe the latest fetch and are overwritten.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert

from fetcher.models import ScoreDay
from fetcher.store.schema import (
    as_date,
    comparative_scores,
    control_scores,
    controls,
    secure_scores,
    tenants,
)

SCORE_OVERWRITE = ("id", "created_at", "partial", "warning", "fetched_at", "run_id")
CONTROL_DIMENSION = ("control_category", "description")

InsertFactory = Callable[[sa.Table], Any]


def _insert(conn: AsyncConnection) -> InsertFactory:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _merge_json(conn: AsyncConnection, stored: sa.ColumnElement[Any], new: sa.ColumnElement[Any]) -> Any:
    """Shallow merge of JSON objects, new keys winning (`jsonb ||`, or our SQLite function)."""
    if conn.dialect.name == "postgresql":
        return stored.op("||", return_type=postgresql.JSONB)(new)
    return sa.func.json_merge(stored, new, type_=sa.JSON)


def _upsert(conn: AsyncConnection, table: sa.Table, *, overwrite: Iterable[str] = ()) -> Insert:
    """INSERT ... ON CONFLICT (primary key) DO UPDATE with the null-keeping merge described above."""
    stmt = _insert(conn)(table)
    excluded = stmt.excluded
    keys = {c.name for c in table.primary_key.columns}
    updates: dict[str, Any] = {}
    for column in table.columns:
        name = column.name
        if name in keys:
            continue
        if name in overwrite:
            updates[name] = excluded[name]
        elif name == "extra":
            updates[name] = _merge_json(conn, column, excluded[name])
        else:
            updates[name] = sa.func.coalesce(excluded[name], column)
    return stmt.on_conflict_do_update(index_elements=sorted(keys), set_=updates)  # type: ignore[no-any-return]


def _upsert_controls(conn: AsyncConnection) -> Insert:
    """The controls dimension: widest seen-date range, latest non-null category and description."""
    stmt = _insert(conn)(controls)
    new, old = stmt.excluded, controls.c
    newer = new.last_seen_date >= old.last_seen_date
    updates: dict[str, Any] = {
        "first_seen_date": sa.case((new.first_seen_date < old.first_seen_date, new.first_seen_date),
                                   else_=old.first_seen_date),
        "last_seen_date": sa.case((newer, new.last_seen_date), else_=old.last_seen_date),
    }
    for name in CONTROL_DIMENSION:
        takes_new = sa.and_(new[name].is_not(None), sa.or_(old[name].is_(None), newer))
        updates[name] = sa.case((takes_new, new[name]), else_=old[name])
    return stmt.on_conflict_do_update(index_elements=["control_name"], set_=updates)  # type: ignore[no-any-return]


async def save_tenants(conn: AsyncConnection, rows: Sequence[tuple[str, str]], now: datetime) -> None:
    """Insert or rename tenants (id, name)."""
    if not rows:
        return
    stmt = _insert(conn)(tenants)
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id"], set_={"name": stmt.excluded.name, "updated_at": stmt.excluded.updated_at},
        where=tenants.c.name != stmt.excluded.name,
    )
    await conn.execute(stmt, [{"tenant_id": t, "name": n, "updated_at": now} for t, n in rows])


async def save_score_days(conn: AsyncConnection, days: Sequence[ScoreDay], now: datetime) -> int:
    """Upsert the score-days of one tenant in the caller's transaction; returns how many were saved."""
    if not days:
        return 0
    tenant_ids = {d.tenant_id for d in days}
    if len(tenant_ids) != 1:
        raise ValueError(f"save_score_days takes one tenant's days, got {sorted(tenant_ids)}")
    tenant_id = tenant_ids.pop()
    await conn.execute(
        _insert(conn)(tenants).on_conflict_do_nothing(index_elements=["tenant_id"]),
        {"tenant_id": tenant_id, "name": "", "updated_at": now},
    )
    for batch in _unique_days(days):
        await _save_batch(conn, tenant_id, batch)
    return len({d.score_date for d in days})


def _unique_days(days: Sequence[ScoreDay]) -> Iterator[list[ScoreDay]]:
    """Split into batches without a repeated day, keeping order, so later fetches apply last."""
    batch: list[ScoreDay] = []
    seen: set[date] = set()
    for day in days:
        if day.score_date in seen:
            yield batch
            batch, seen = [], set()
        batch.append(day)
        seen.add(day.score_date)
    if batch:
        yield batch


async def _save_batch(conn: AsyncConnection, tenant_id: str, days: list[ScoreDay]) -> None:
    stored = await _stored_days(conn, tenant_id, [d.score_date for d in days])
    await conn.execute(_upsert(conn, secure_scores, overwrite=SCORE_OVERWRITE), [d.score.as_params() for d in days])
    dimension = _control_dimension(days)
    if dimension:
        await conn.execute(_upsert_controls(conn), dimension)
    await _delete_replaced(conn, tenant_id, [d for d in days if d.score_date in stored])
    control_rows = [_control_params(c) for d in days for c in d.controls]
    if control_rows:
        await conn.execute(_upsert(conn, control_scores), control_rows)
    comparative_rows = [c.as_params() for d in days for c in d.comparatives]
    if comparative_rows:
        await conn.execute(_upsert(conn, comparative_scores), comparative_rows)


async def _stored_days(conn: AsyncConnection, tenant_id: str, dates: list[date]) -> set[date]:
    query = sa.select(secure_scores.c.score_date).where(
        secure_scores.c.tenant_id == tenant_id, secure_scores.c.score_date.in_(dates)
    )
    return set((await conn.scalars(query)).all())


async def _delete_replaced(conn: AsyncConnection, tenant_id: str, days: list[ScoreDay]) -> None:
    """For stored days that arrive with a non-empty list, delete the members the list no longer has."""
    for day in days:
        for table, name_column, names in (
            (control_scores, "control_name", [c.control_name for c in day.controls]),
            (comparative_scores, "basis", [c.basis for c in day.comparatives]),
        ):
            if names:
                await conn.execute(sa.delete(table).where(
                    table.c.tenant_id == tenant_id,
                    table.c.score_date == day.score_date,
                    table.c[name_column].not_in(names),
                ))


def _control_params(row: Any) -> dict[str, Any]:
    params: dict[str, Any] = row.as_params()
    for name in CONTROL_DIMENSION:
        del params[name]
    return params


def _control_dimension(days: Sequence[ScoreDay]) -> list[dict[str, Any]]:
    """One `controls` row per control seen in the batch, sorted so concurrent writers lock in order."""
    rows: dict[str, dict[str, Any]] = {}
    for day in sorted(days, key=lambda d: d.score_date):
        for c in day.controls:
            row = rows.get(c.control_name)
            if row is None:
                rows[c.control_name] = {
                    "control_name": c.control_name, "control_category": c.control_category,
                    "description": c.description, "first_seen_date": day.score_date,
                    "last_seen_date": day.score_date,
                }
                continue
            row["last_seen_date"] = day.score_date
            for name in CONTROL_DIMENSION:
                value = getattr(c, name)
                if value is not None:
                    row[name] = value
    return [rows[name] for name in sorted(rows)]


async def newest_score_dates(conn: AsyncConnection, tenant_ids: Sequence[str] | None = None) -> dict[str, date]:
    """The newest stored `score_date` of each tenant that has any."""
    query = sa.select(secure_scores.c.tenant_id, sa.func.max(secure_scores.c.score_date)).group_by(
        secure_scores.c.tenant_id
    )
    if tenant_ids is not None:
        query = query.where(secure_scores.c.tenant_id.in_(list(tenant_ids)))
    rows = (await conn.execute(query)).all()
    return {tenant: newest for tenant, newest in ((t, as_date(n)) for t, n in rows) if newest is not None}


async def delete_days(conn: AsyncConnection, tenant_id: str, dates: Sequence[date]) -> None:
    """Remove a tenant's normalized rows for these days (children first), e.g. before a rebuild."""
    for start in range(0, len(dates), 500):
        chunk = list(dates[start:start + 500])
        for table in (control_scores, comparative_scores, secure_scores):
            await conn.execute(sa.delete(table).where(table.c.tenant_id == tenant_id, table.c.score_date.in_(chunk)))

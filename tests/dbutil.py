"""Reading whole tables back, for tests that assert on database state."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine


async def rows(engine: AsyncEngine, table: sa.Table, **where: Any) -> list[dict[str, Any]]:
    """Every row of `table` (optionally filtered by column equality) as dicts, in primary-key order."""
    query = sa.select(table).order_by(*table.primary_key.columns)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in (await conn.execute(query)).all()]


async def count(engine: AsyncEngine, table: sa.Table, **where: Any) -> int:
    query = sa.select(sa.func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())

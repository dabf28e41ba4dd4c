"""Shards: the shard of each run (fetch_runs.shard) and of the SQLite lease holder (run_lock.shard).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30

`fetcher run|backfill --shard K/N` records "K/N"; null is a run of every tenant, as every run before this
revision was. Nullable columns: added in place on both databases, no table rewritten.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("fetch_runs", "run_lock")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("shard", sa.String(16), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("shard")

"""raw_payloads.base_date, base_sha256: an archived object stored as a zstd delta against another.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30

Two nullable columns name a delta's base (the same tenant's object it is compressed against, by content:
`fetcher.store.codec`, `fetcher.store.deltas`), and a foreign key from (tenant_id, base_date, base_sha256)
to raw_payloads' own primary key keeps a base from being deleted while a delta needs it. Existing rows
are bases (NULL): nothing is rewritten.

PostgreSQL adds the columns and the constraint in place (no row is touched). SQLite cannot add a table
constraint to a table, so it copies raw_payloads into a new one (Alembic's batch mode, one transaction):
the disk must hold a second copy of the archive for that time, checked before it starts (skip with
`--skip-disk-check` or `FETCHER_MIGRATE_SKIP_DISK_CHECK=1`). A copy cannot be resumed, but it is all or
nothing: stopped, it leaves the table as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from fetcher.store.convert import check_disk, options_from

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FK = "fk_raw_payloads_tenant_id_raw_payloads"


def upgrade() -> None:
    columns: list[sa.Column[Any]] = [
        sa.Column("base_date", sa.Date(), nullable=True),
        sa.Column("base_sha256", sa.String(64), nullable=True),
    ]
    key = ["tenant_id", "base_date", "base_sha256"], ["tenant_id", "score_date", "sha256"]
    if op.get_bind().dialect.name != "sqlite":
        for column in columns:
            op.add_column("raw_payloads", column)
        op.create_foreign_key(op.f(FK), "raw_payloads", "raw_payloads", *key)
        return
    _check_free_space()
    with op.batch_alter_table("raw_payloads", recreate="always") as batch:
        for column in columns:
            batch.add_column(column)
        batch.create_foreign_key(op.f(FK), "raw_payloads", *key)


def _check_free_space() -> None:
    """SQLite: refuse (`NotEnoughDisk`) to copy an archive the disk cannot hold twice (`check_disk`, as 0011)."""
    bind = op.get_bind()
    config = op.get_context().config
    stored = bind.execute(
        sa.text("SELECT COALESCE(SUM(LENGTH(body) + 200), 0) FROM raw_payloads")  # 200: a row's other columns
    ).scalar()
    needed = 2 * int(stored or 0)  # the new table, and the write-ahead log of the transaction that fills it
    if needed:
        options = options_from(config.attributes if config is not None else {})
        check_disk(bind, needed, "migration 0013", "to copy raw_payloads", options)


def downgrade() -> None:
    # A delta cannot be read without its base's column: refuse rather than lose the archive.
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT COUNT(*) FROM raw_payloads WHERE base_sha256 IS NOT NULL")).scalar():
        raise RuntimeError("raw_payloads holds deltas; downgrading past 0013 would make them unreadable")
    if bind.dialect.name != "sqlite":
        op.drop_constraint(op.f(FK), "raw_payloads", type_="foreignkey")
        op.drop_column("raw_payloads", "base_sha256")
        op.drop_column("raw_payloads", "base_date")
        return
    with op.batch_alter_table("raw_payloads", recreate="always") as batch:
        batch.drop_constraint(op.f(FK), type_="foreignkey")
        batch.drop_column("base_sha256")
        batch.drop_column("base_date")

"""archive_dictionaries: the zstd dictionaries the raw archive's bodies are compressed with.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30

Only the table. The archive's existing zlib bodies stay readable as they are; they are recompressed
with a dictionary after a run or backfill (a bounded number a run) or by `fetcher archive compact`, in
batches, each its own transaction: not here, where it would hold the migration for as long as it takes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "archive_dictionaries",
        sa.Column("dict_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("dictionary", sa.LargeBinary(), nullable=False),
        sa.Column("recompressed_at", UTC_TIME, nullable=True),
        sa.PrimaryKeyConstraint("dict_id", name=op.f("pk_archive_dictionaries")),
        sa.UniqueConstraint("kind", name=op.f("uq_archive_dictionaries_kind")),
    )


def downgrade() -> None:
    # zstd bodies would be unreadable without their dictionary: refuse rather than lose the archive.
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT COUNT(*) FROM archive_dictionaries")).scalar():
        raise RuntimeError(
            "archive_dictionaries holds a dictionary the archive's bodies may need; "
            "downgrading past 0012 would make them unreadable"
        )
    op.drop_table("archive_dictionaries")

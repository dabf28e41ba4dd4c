"""fetch_runs.tenants_interrupted: tenants a stopped run interrupted, no longer counted as failed.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30

Before this revision an interrupted tenant was counted in `tenants_failed`; older rows keep that count
(what was interrupted then cannot be told apart), newer runs count the two apart.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("fetch_runs", sa.Column("tenants_interrupted", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("fetch_runs") as batch:
        batch.drop_column("tenants_interrupted")

"""The raw archive of control profiles: raw_control_profiles.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29

Every secureScoreControlProfile object as received, compressed, deduplicated by content per tenant
(the object holds its own id, so its hash names one version of one control's profile). Written out in
full, like the revisions before it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "raw_control_profiles",
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("fetched_at", UTC_TIME, nullable=False),
        sa.Column("last_fetched_at", UTC_TIME, nullable=False),
        sa.Column("run_id", sa.String(36), nullable=True),
        sa.Column("warning", sa.Text(), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "sha256", name=op.f("pk_raw_control_profiles")),
    )
    op.create_index(
        "ix_raw_control_profiles_tenant_id_last_fetched_at", "raw_control_profiles", ["tenant_id", "last_fetched_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_raw_control_profiles_tenant_id_last_fetched_at", table_name="raw_control_profiles")
    op.drop_table("raw_control_profiles")

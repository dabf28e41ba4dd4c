"""Tenant discovery's cache: partner_customers and partner_discoveries.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

With `tenants_source = "partner"`, `run` and `backfill` fetch the customers discovered at the partner
tenant. `partner_customers` keeps every customer ever listed (`gone_since` set when a discovery no
longer lists it; never deleted, so its history stays reportable); `partner_discoveries` holds, per
partner tenant, when discovery last succeeded (reused for `[partner] refresh_hours`) and the last
attempt's error (a failed discovery falls back to the last known list).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "partner_customers",
        sa.Column("partner_tenant_id", sa.String(36), nullable=False),
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("display_name", sa.String(256), server_default="", nullable=False),
        sa.Column("first_seen_at", UTC_TIME, nullable=False),
        sa.Column("last_seen_at", UTC_TIME, nullable=False),
        sa.Column("gone_since", UTC_TIME, nullable=True),
        sa.PrimaryKeyConstraint("partner_tenant_id", "tenant_id", name=op.f("pk_partner_customers")),
    )
    op.create_table(
        "partner_discoveries",
        sa.Column("partner_tenant_id", sa.String(36), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("discovered_at", UTC_TIME, nullable=True),
        sa.Column("customers", sa.Integer(), server_default="0", nullable=False),
        sa.Column("attempted_at", UTC_TIME, nullable=False),
        sa.Column("error_kind", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("partner_tenant_id", name=op.f("pk_partner_discoveries")),
    )


def downgrade() -> None:
    op.drop_table("partner_discoveries")
    op.drop_table("partner_customers")

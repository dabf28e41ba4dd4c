"""Alert state: alerts and the notifications owed to each channel.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

`alerts`: one row per alert, opened when a rule's condition starts to hold for a tenant and resolved
when it stops (`status` open or resolved); `details` holds the figures of the latest evaluation.
`alert_notifications`: one row per message owed to a channel (`event` opened, reminder or resolved),
unsent (`sent_at` null) until a delivery succeeds; `claimed_until` keeps two evaluations from sending
the same row at once. No secret is stored: channels are named, not addressed.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("rule_name", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("tenant_name", sa.String(256), server_default="", nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("opened_at", UTC_TIME, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.Column("resolved_at", UTC_TIME, nullable=True),
        sa.Column("details", JSON, nullable=False),
        sa.PrimaryKeyConstraint("alert_id", name=op.f("pk_alerts")),
    )
    op.create_index("ix_alerts_status_rule_name_tenant_id", "alerts", ["status", "rule_name", "tenant_id"])
    op.create_table(
        "alert_notifications",
        sa.Column("notification_id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(128), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("details", JSON, nullable=False),
        sa.Column("sent_at", UTC_TIME, nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_attempt_at", UTC_TIME, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("claimed_until", UTC_TIME, nullable=True),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.alert_id"], name=op.f("fk_alert_notifications_alert_id_alerts")),
        sa.PrimaryKeyConstraint("notification_id", name=op.f("pk_alert_notifications")),
    )
    op.create_index("ix_alert_notifications_alert_id_channel", "alert_notifications", ["alert_id", "channel"])
    op.create_index("ix_alert_notifications_sent_at", "alert_notifications", ["sent_at"])


def downgrade() -> None:
    op.drop_table("alert_notifications")
    op.drop_table("alerts")

"""Initial schema: tenants, scores, comparatives, controls, the run ledger, the raw archive.

Revision ID: 0001
Revises:
Create Date: 2026-11-28

Written out in full rather than importing the package's types, so that this revision keeps
creating the same tables whatever the code becomes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
TENANT_ID = sa.String(36)
CLUSTERED = {"sqlite_with_rowid": False}  # SQLite: stored in primary-key order, no separate key index


def _counter(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.Integer(), server_default="0", nullable=False)


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("tenant_id", TENANT_ID, nullable=False),
        sa.Column("name", sa.String(256), server_default="", nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_tenants")),
    )
    op.create_table(
        "controls",
        sa.Column("control_name", sa.String(256), nullable=False),
        sa.Column("control_category", sa.String(256), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("first_seen_date", sa.Date(), nullable=False),
        sa.Column("last_seen_date", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("control_name", name=op.f("pk_controls")),
    )
    op.create_table(
        "secure_scores",
        sa.Column("tenant_id", TENANT_ID, nullable=False),
        sa.Column("score_date", sa.Date(), nullable=False),
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("current_score", sa.Float(), nullable=True),
        sa.Column("max_score", sa.Float(), nullable=True),
        sa.Column("active_user_count", sa.BigInteger(), nullable=True),
        sa.Column("licensed_user_count", sa.BigInteger(), nullable=True),
        sa.Column("enabled_services", JSON, nullable=True),
        sa.Column("vendor", sa.String(256), nullable=True),
        sa.Column("provider", sa.String(256), nullable=True),
        sa.Column("provider_version", sa.String(256), nullable=True),
        sa.Column("sub_provider", sa.String(256), nullable=True),
        sa.Column("partial", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("warning", sa.Text(), nullable=True),
        sa.Column("extra", JSON, nullable=False),
        sa.Column("fetched_at", UTC_TIME, nullable=False),
        sa.Column("run_id", sa.String(36), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.tenant_id"], name=op.f("fk_secure_scores_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("tenant_id", "score_date", name=op.f("pk_secure_scores")),
        sa.UniqueConstraint("id", name=op.f("uq_secure_scores_id")),
        **CLUSTERED,
    )
    op.create_index("ix_secure_scores_score_date", "secure_scores", ["score_date"])
    op.create_table(
        "comparative_scores",
        sa.Column("tenant_id", TENANT_ID, nullable=False),
        sa.Column("score_date", sa.Date(), nullable=False),
        sa.Column("basis", sa.String(128), nullable=False),
        sa.Column("average_score", sa.Float(), nullable=True),
        sa.Column("seat_size_lower", sa.BigInteger(), nullable=True),
        sa.Column("seat_size_upper", sa.BigInteger(), nullable=True),
        sa.Column("extra", JSON, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "score_date", "basis", name=op.f("pk_comparative_scores")),
        **CLUSTERED,
    )
    op.create_table(
        "control_scores",
        sa.Column("tenant_id", TENANT_ID, nullable=False),
        sa.Column("score_date", sa.Date(), nullable=False),
        sa.Column("control_name", sa.String(256), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("score_in_percentage", sa.Float(), nullable=True),
        sa.Column("implementation_status", sa.Text(), nullable=True),
        sa.Column("last_synced", UTC_TIME, nullable=True),
        sa.Column("is_on", sa.Boolean(), nullable=True),
        sa.Column("count", sa.BigInteger(), nullable=True),
        sa.Column("total", sa.BigInteger(), nullable=True),
        sa.Column("extra", JSON, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "score_date", "control_name", name=op.f("pk_control_scores")),
        **CLUSTERED,
    )
    op.create_table(
        "fetch_runs",
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("command", sa.String(32), nullable=False),
        sa.Column("started_at", UTC_TIME, nullable=False),
        sa.Column("finished_at", UTC_TIME, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        _counter("tenants_total"),
        _counter("tenants_succeeded"),
        _counter("tenants_failed"),
        _counter("scores_upserted"),
        sa.Column("host", sa.String(256), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_fetch_runs")),
    )
    op.create_index("ix_fetch_runs_started_at", "fetch_runs", ["started_at"])
    op.create_table(
        "tenant_runs",
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("tenant_id", TENANT_ID, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", UTC_TIME, nullable=False),
        sa.Column("finished_at", UTC_TIME, nullable=True),
        _counter("scores_upserted"),
        _counter("requests"),
        _counter("retries"),
        _counter("throttled"),
        _counter("rejected"),
        _counter("partial_days"),
        sa.Column("error_kind", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["fetch_runs.run_id"], name=op.f("fk_tenant_runs_run_id_fetch_runs")),
        sa.PrimaryKeyConstraint("run_id", "tenant_id", name=op.f("pk_tenant_runs")),
    )
    op.create_index("ix_tenant_runs_tenant_id_finished_at", "tenant_runs", ["tenant_id", "finished_at"])
    op.create_table(
        "run_lock",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("host", sa.String(256), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("acquired_at", UTC_TIME, nullable=False),
        sa.Column("expires_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_run_lock")),
    )
    op.create_table(
        "raw_payloads",
        sa.Column("tenant_id", TENANT_ID, nullable=False),
        sa.Column("score_date", sa.Date(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("fetched_at", UTC_TIME, nullable=False),
        sa.Column("last_fetched_at", UTC_TIME, nullable=False),
        sa.Column("run_id", sa.String(36), nullable=True),
        sa.Column("warning", sa.Text(), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "score_date", "sha256", name=op.f("pk_raw_payloads")),
    )
    op.create_index("ix_raw_payloads_tenant_id_last_fetched_at", "raw_payloads", ["tenant_id", "last_fetched_at"])
    op.create_table(
        "rejected_payloads",
        sa.Column("rejection_id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("tenant_id", TENANT_ID, nullable=False),
        sa.Column("run_id", sa.String(36), nullable=True),
        sa.Column("received_at", UTC_TIME, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("rejection_id", name=op.f("pk_rejected_payloads")),
    )
    op.create_index("ix_rejected_payloads_tenant_id_received_at", "rejected_payloads", ["tenant_id", "received_at"])


def downgrade() -> None:
    for table in (
        "rejected_payloads",
        "raw_payloads",
        "run_lock",
        "tenant_runs",
        "fetch_runs",
        "control_scores",
        "comparative_scores",
        "secure_scores",
        "controls",
        "tenants",
    ):
        op.drop_table(table)

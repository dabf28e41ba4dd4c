"""partner_customers.previous_display_name: a customer's display name before its latest rename upstream.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30

Whichever discovery sees a rename first (`tenants discover`, or a run in automatic mode) keeps the name it
replaced here, so that a configured name equal to it (written by an earlier `tenants discover`) follows the
rename wherever names are resolved: a run, `status`, `report`, and the next `tenants discover`'s file. Null
until a rename is seen; rows of earlier revisions start null.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("partner_customers", sa.Column("previous_display_name", sa.String(256)))


def downgrade() -> None:
    with op.batch_alter_table("partner_customers") as batch:
        batch.drop_column("previous_display_name")

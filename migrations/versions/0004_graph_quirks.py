"""Graph's misleading answers (issue 12): only the natural key refuses a day; placeholders are no value.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

- `secure_scores.id` is no longer unique. Graph has answered two objects with different ids for one
  day, and the same id for another day later: a unique id then failed the tenant on every run for as
  long as that day stayed inside Graph's 90 days. The primary key (tenant_id, score_date) is the only
  key a day is stored under.
- `secure_scores.id_mismatch`: true when Graph's id does not name the row's tenant and day
  (`{azureTenantId}_{yyyy-mm-dd}` of `createdDateTime`), so such a day is stored but flagged.
- Placeholders stored before this revision (a negative average, seat bound, user count or control
  figure, a percentage outside 0..100, a maxScore of 0, a lastSynced before 2000) become null, their
  value kept in `extra`, as `fetcher.normalize` now stores them. `fetcher rebuild` redoes the same
  from the raw archive, with the values exactly as received.

Written out in full, like 0001, so that this revision does the same whatever the code becomes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CLUSTERED = {"sqlite_with_rowid": False}

# (table, column, the JSON key it came from, when its value is a placeholder). The currentScore rule
# for a maxScore of 0 runs before the maxScore rule, which clears the condition it reads.
PLACEHOLDERS = (
    ("comparative_scores", "average_score", "averageScore", "average_score < 0 OR average_score > 100"),
    ("comparative_scores", "seat_size_lower", "SeatSizeRangeLowerValue", "seat_size_lower < 0"),
    ("comparative_scores", "seat_size_upper", "SeatSizeRangeUpperValue", "seat_size_upper < 0"),
    ("secure_scores", "current_score", "currentScore", "current_score < 0 OR max_score <= 0"),
    ("secure_scores", "max_score", "maxScore", "max_score <= 0"),
    ("secure_scores", "active_user_count", "activeUserCount", "active_user_count < 0"),
    ("secure_scores", "licensed_user_count", "licensedUserCount", "licensed_user_count < 0"),
    ("control_scores", "score", "score", "score < 0"),
    ("control_scores", "score_in_percentage", "scoreInPercentage", "NOT score_in_percentage BETWEEN 0 AND 100"),
    ("control_scores", "count", "count", "count < 0"),
    ("control_scores", "total", "total", "total < 0"),
    ("control_scores", "last_synced", "lastSynced", "last_synced < '2000-01-01'"),
)


def _move_placeholder(dialect: str, table: str, column: str, key: str, condition: str) -> str:
    if dialect == "sqlite":
        merged = f"json_set(extra, '$.{key}', {column})"
    else:
        merged = f"extra || jsonb_build_object('{key}', {column})"
    return f"UPDATE {table} SET extra = {merged}, {column} = NULL WHERE {column} IS NOT NULL AND ({condition})"


def _sqlite_views() -> list[tuple[str, str]]:
    """The views, to be dropped while secure_scores is rebuilt (SQLite checks them on a rename)."""
    rows = op.get_bind().exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'view' ORDER BY name")
    return [(name, sql) for name, sql in rows]


def _rebuild_secure_scores_sqlite(change: str) -> None:
    """SQLite cannot drop a unique constraint: the table is rebuilt, its views set aside meanwhile."""
    views = _sqlite_views()
    for name, _ in views:
        op.execute(f"DROP VIEW {name}")
    with op.batch_alter_table("secure_scores", recreate="always", table_kwargs=CLUSTERED) as batch:
        if change == "upgrade":
            batch.drop_constraint("uq_secure_scores_id", type_="unique")
            batch.add_column(sa.Column("id_mismatch", sa.Boolean(), server_default=sa.false(), nullable=False))
        else:
            batch.drop_column("id_mismatch")
            batch.create_unique_constraint("uq_secure_scores_id", ["id"])
    for _, sql in views:
        op.execute(sql)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _rebuild_secure_scores_sqlite("upgrade")
    else:
        op.drop_constraint("uq_secure_scores_id", "secure_scores", type_="unique")
        op.add_column(
            "secure_scores", sa.Column("id_mismatch", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    for table, column, key, condition in PLACEHOLDERS:
        op.execute(_move_placeholder(dialect, table, column, key, condition))
    op.execute(
        "UPDATE secure_scores SET id_mismatch = "
        + ("1" if dialect == "sqlite" else "true")
        + " WHERE lower(id) <> lower(tenant_id) || '_' || "
        + ("score_date" if dialect == "sqlite" else "to_char(score_date, 'YYYY-MM-DD')")
    )


def downgrade() -> None:
    """Back to a unique id; fails if two days now share an id (which 0003's schema cannot hold)."""
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_secure_scores_sqlite("downgrade")
    else:
        op.drop_column("secure_scores", "id_mismatch")
        op.create_unique_constraint("uq_secure_scores_id", "secure_scores", ["id"])

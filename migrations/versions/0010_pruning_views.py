"""PostgreSQL: control_status and control_changes find a tenant's days with controls by index, so that on
monthly partitions (`[database] partition = "monthly"`) they read only the months they need.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30

Same rows as 0005's views (a test compares them on one database before and after), found differently:
- "the tenant's newest day with controls" and "the previous day with controls" are the newest
  `control_scores` day (before a day): one backward index scan that PostgreSQL runs month by month,
  newest first, stopping at the first month holding one; 0005 joined every `secure_scores` day of the
  tenant to `control_scores`, which opens every month;
- "this day has controls" is a scalar subquery run with the day as a parameter, which opens that day's
  month only; 0005's EXISTS could become a hash join over every month.
A day with control scores always has its `secure_scores` row (the store writes and deletes them
together), so the newest control day is the same day either way. SQLite keeps 0005's views.

0005's view texts are loaded from its file and changed by exact replacements, each asserted.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VIEWS = ("improvement_actions", "control_status", "control_changes")  # dropped in this order

OLD_NEWEST_DAY_ROWS = """FROM {newest} AS n
JOIN control_scores AS c ON c.tenant_id = n.tenant_id AND c.score_date = n.score_date
JOIN tenants AS t ON t.tenant_id = c.tenant_id"""

# Per tenant, its newest control day's rows; OFFSET 0 keeps the subquery a parameterized scan (never a hash
# join over every month), so each tenant opens the months down to its newest control day, then that one.
NEWEST_DAY_ROWS = """FROM tenants AS t
CROSS JOIN LATERAL (
    SELECT x.* FROM control_scores AS x
    WHERE x.tenant_id = t.tenant_id
      AND x.score_date = (SELECT y.score_date FROM control_scores AS y WHERE y.tenant_id = t.tenant_id
                          ORDER BY y.score_date DESC LIMIT 1)
    OFFSET 0
) AS c"""

PREVIOUS_AND_PRESENT = """           (SELECT y.score_date FROM control_scores AS y
            WHERE y.tenant_id = s.tenant_id AND y.score_date < s.score_date
            ORDER BY y.score_date DESC LIMIT 1) AS previous_date
    FROM secure_scores AS s
    WHERE (SELECT 1 FROM control_scores AS x
           WHERE x.tenant_id = s.tenant_id AND x.score_date = s.score_date LIMIT 1) = 1"""

OLD_PREVIOUS_AND_PRESENT = """           (SELECT p.score_date FROM secure_scores AS p
            WHERE p.tenant_id = s.tenant_id AND p.score_date < s.score_date
              AND EXISTS (SELECT 1 FROM control_scores AS y
                          WHERE y.tenant_id = p.tenant_id AND y.score_date = p.score_date)
            ORDER BY p.score_date DESC LIMIT 1) AS previous_date
    FROM secure_scores AS s
    WHERE EXISTS (SELECT 1 FROM control_scores AS x WHERE x.tenant_id = s.tenant_id AND x.score_date = s.score_date)"""


def _revision_0005() -> ModuleType:
    path = next(Path(__file__).parent.glob("0005_*.py"))
    spec = importlib.util.spec_from_file_location("_revision_0005", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _replaced(text: str, old: str, new: str) -> str:
    assert old in text, "0005's view text is not the one this revision rewrites"
    return text.replace(old, new)


def _create(control_status: str, control_changes: str, improvement_actions: str) -> None:
    for view in VIEWS:
        op.execute(f"DROP VIEW {view}")
    op.execute(control_status)
    op.execute(improvement_actions)
    op.execute(control_changes)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    old = _revision_0005()
    rows = OLD_NEWEST_DAY_ROWS.format(newest=old.NEWEST_CONTROL_DAY)
    status = _replaced(old.CONTROL_STATUS, rows, NEWEST_DAY_ROWS)
    changes = _replaced(old._control_changes("postgresql"), OLD_PREVIOUS_AND_PRESENT, PREVIOUS_AND_PRESENT)
    _create(status, changes, old.IMPROVEMENT_ACTIONS)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    old = _revision_0005()
    _create(old.CONTROL_STATUS, old._control_changes("postgresql"), old.IMPROVEMENT_ACTIONS)

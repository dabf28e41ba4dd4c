"""Reporting views: latest_scores, score_history, control_changes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

The views are the reporting interface (Power BI, Grafana, Metabase, `fetcher report`); the README
defines every column. They return the same columns and the same figures on SQLite and PostgreSQL:
date arithmetic is written per dialect, and control_changes takes a different route on each to the
same rows (see there). Written out in full, like 0001, so that this revision keeps creating the same
views whatever the code becomes.

They need no index of their own: every lookup they make is a prefix of a primary key
((tenant_id, score_date[, control_name])) or the score_date index of secure_scores.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VIEWS = ("control_changes", "latest_scores", "score_history")


def _percent(alias: str) -> str:
    """The score as a percentage of the maximum; null when the maximum is unknown or zero."""
    return f"CASE WHEN {alias}.max_score > 0 THEN 100.0 * {alias}.current_score / {alias}.max_score END"


SCORE_HISTORY = f"""
CREATE VIEW score_history AS
SELECT s.tenant_id, t.name AS tenant_name, s.score_date, s.current_score, s.max_score,
       {_percent("s")} AS percent
FROM secure_scores AS s
JOIN tenants AS t ON t.tenant_id = s.tenant_id
"""


def _days_before(dialect: str, column: str, days: int) -> str:
    return f"date({column}, '-{days} days')" if dialect == "sqlite" else f"({column} - {days})"


def _days_since(dialect: str, column: str) -> str:
    """Whole days from `column` to today's UTC date (SQLite's 'now' is UTC; PostgreSQL's session zone is not)."""
    if dialect == "sqlite":
        return f"CAST(julianday(date('now')) - julianday({column}) AS INTEGER)"
    return f"(CAST(timezone('UTC', CURRENT_TIMESTAMP) AS DATE) - {column})"


def _baseline(dialect: str, days: int) -> str:
    """The newest stored day on or before `days` days before the newest day."""
    return (
        f"(SELECT MAX(b.score_date) FROM secure_scores AS b WHERE b.tenant_id = n.tenant_id "
        f"AND b.score_date <= {_days_before(dialect, 'n.score_date', days)})"
    )


def _newest_comparative(basis: str) -> str:
    return (
        f"(SELECT MAX(c.score_date) FROM comparative_scores AS c WHERE c.tenant_id = n.tenant_id "
        f"AND c.basis = '{basis}' AND c.average_score IS NOT NULL)"
    )


def _latest_scores(dialect: str) -> str:
    return f"""
CREATE VIEW latest_scores AS
WITH newest AS (
    SELECT tenant_id, MAX(score_date) AS score_date FROM secure_scores GROUP BY tenant_id
), marks AS (
    SELECT n.tenant_id, n.score_date,
           {_baseline(dialect, 7)} AS baseline_7d_date,
           {_baseline(dialect, 30)} AS baseline_30d_date,
           {_newest_comparative("AllTenants")} AS all_tenants_date,
           {_newest_comparative("TotalSeats")} AS total_seats_date
    FROM newest AS n
)
SELECT t.tenant_id, t.name AS tenant_name, m.score_date,
       s.current_score, s.max_score, {_percent("s")} AS percent,
       m.baseline_7d_date,
       s.current_score - b7.current_score AS change_7d_points,
       {_percent("s")} - {_percent("b7")} AS change_7d_percent,
       m.baseline_30d_date,
       s.current_score - b30.current_score AS change_30d_points,
       {_percent("s")} - {_percent("b30")} AS change_30d_percent,
       ca.average_score AS all_tenants_average, m.all_tenants_date,
       cs.average_score AS total_seats_average, m.total_seats_date,
       cs.seat_size_lower AS total_seats_lower, cs.seat_size_upper AS total_seats_upper,
       {_days_since(dialect, "m.score_date")} AS days_since_newest
FROM tenants AS t
LEFT JOIN marks AS m ON m.tenant_id = t.tenant_id
LEFT JOIN secure_scores AS s ON s.tenant_id = m.tenant_id AND s.score_date = m.score_date
LEFT JOIN secure_scores AS b7 ON b7.tenant_id = m.tenant_id AND b7.score_date = m.baseline_7d_date
LEFT JOIN secure_scores AS b30 ON b30.tenant_id = m.tenant_id AND b30.score_date = m.baseline_30d_date
LEFT JOIN comparative_scores AS ca
       ON ca.tenant_id = m.tenant_id AND ca.score_date = m.all_tenants_date AND ca.basis = 'AllTenants'
LEFT JOIN comparative_scores AS cs
       ON cs.tenant_id = m.tenant_id AND cs.score_date = m.total_seats_date AND cs.basis = 'TotalSeats'
"""


# control_changes: a tenant's days that carry control scores, each with the one before it. A day stored
# without any (Graph sent an empty list) says nothing about controls, so it is skipped rather than read
# as every control disappearing. Then, per such day, the controls of the day and of the one before,
# outer-joined by name. The two dialects get the same rows by different routes, each chosen for its
# planner (measured at 1,000 tenants x 90 days x 230 controls, see docs/reporting.md).

# SQLite: the previous day by a window function (a correlated subquery here would be re-run for every
# control row), and the outer join as two arms, for SQLite before 3.39 has no FULL JOIN. Only
# tenant_id is a partition column, so a filter on it reaches inside the window. SQLite carries a range
# filter on the view's score_date over the join's equality onto control_scores and then walks the
# whole range for every day (quadratic); the unary + on the day columns stops that inference.
SQLITE_CONTROL_DAYS = """(
    SELECT s.tenant_id, s.score_date,
           LAG(s.score_date) OVER (PARTITION BY s.tenant_id ORDER BY s.score_date) AS previous_date
    FROM secure_scores AS s
    WHERE EXISTS (SELECT 1 FROM control_scores AS x WHERE x.tenant_id = s.tenant_id AND x.score_date = s.score_date)
)"""

SQLITE_CONTROL_CHANGES = f"""
CREATE VIEW control_changes AS
SELECT d.tenant_id, d.score_date, d.previous_date, cur.control_name, k.control_category,
       prev.score AS previous_score, cur.score AS score,
       COALESCE(cur.score, 0) - COALESCE(prev.score, 0) AS change,
       CASE WHEN prev.control_name IS NULL THEN 'appeared' ELSE 'changed' END AS kind
FROM {SQLITE_CONTROL_DAYS} AS d
JOIN control_scores AS cur ON cur.tenant_id = d.tenant_id AND cur.score_date = +d.score_date
LEFT JOIN control_scores AS prev
       ON prev.tenant_id = d.tenant_id AND prev.score_date = +d.previous_date
      AND prev.control_name = cur.control_name
LEFT JOIN controls AS k ON k.control_name = cur.control_name
WHERE d.previous_date IS NOT NULL AND (prev.control_name IS NULL OR cur.score IS NOT prev.score)
UNION ALL
SELECT d.tenant_id, d.score_date, d.previous_date, prev.control_name, k.control_category,
       prev.score AS previous_score, NULL AS score,
       0 - COALESCE(prev.score, 0) AS change,
       'disappeared' AS kind
FROM {SQLITE_CONTROL_DAYS} AS d
JOIN control_scores AS prev ON prev.tenant_id = d.tenant_id AND prev.score_date = +d.previous_date
LEFT JOIN control_scores AS cur
       ON cur.tenant_id = d.tenant_id AND cur.score_date = +d.score_date AND cur.control_name = prev.control_name
LEFT JOIN controls AS k ON k.control_name = prev.control_name
WHERE cur.control_name IS NULL
"""

# PostgreSQL: the previous day by a correlated subquery, so that a filter on score_date narrows the days
# first; the two days' controls FULL JOINed inside LATERAL, so each day costs two short index range
# scans whatever the statistics say (plain joins drew hash joins over all of control_scores).
POSTGRES_CONTROL_CHANGES = """
CREATE VIEW control_changes AS
SELECT d.tenant_id, d.score_date, d.previous_date, ch.control_name, k.control_category,
       ch.previous_score, ch.score, ch.change, ch.kind
FROM (
    SELECT s.tenant_id, s.score_date,
           (SELECT p.score_date FROM secure_scores AS p
            WHERE p.tenant_id = s.tenant_id AND p.score_date < s.score_date
              AND EXISTS (SELECT 1 FROM control_scores AS y
                          WHERE y.tenant_id = p.tenant_id AND y.score_date = p.score_date)
            ORDER BY p.score_date DESC LIMIT 1) AS previous_date
    FROM secure_scores AS s
    WHERE EXISTS (SELECT 1 FROM control_scores AS x WHERE x.tenant_id = s.tenant_id AND x.score_date = s.score_date)
) AS d
CROSS JOIN LATERAL (
    SELECT COALESCE(cur.control_name, prev.control_name) AS control_name,
           prev.score AS previous_score, cur.score AS score,
           COALESCE(cur.score, 0) - COALESCE(prev.score, 0) AS change,
           CASE WHEN prev.control_name IS NULL THEN 'appeared'
                WHEN cur.control_name IS NULL THEN 'disappeared' ELSE 'changed' END AS kind
    FROM (SELECT control_name, score FROM control_scores
          WHERE tenant_id = d.tenant_id AND score_date = d.score_date) AS cur
    FULL JOIN (SELECT control_name, score FROM control_scores
               WHERE tenant_id = d.tenant_id AND score_date = d.previous_date) AS prev
           ON prev.control_name = cur.control_name
    WHERE cur.control_name IS NULL OR prev.control_name IS NULL OR cur.score IS DISTINCT FROM prev.score
) AS ch
LEFT JOIN controls AS k ON k.control_name = ch.control_name
WHERE d.previous_date IS NOT NULL
"""


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute(SCORE_HISTORY)
    op.execute(_latest_scores(dialect))
    op.execute(SQLITE_CONTROL_CHANGES if dialect == "sqlite" else POSTGRES_CONTROL_CHANGES)


def downgrade() -> None:
    for view in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {view}")

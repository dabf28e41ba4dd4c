"""Control profiles: control_profiles, control_state_updates; views control_status, category_scores,
improvement_actions; control_changes gains the title, the state update and the cause.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29

Written out in full, like 0001 and 0002, so that this revision keeps creating the same tables and views
whatever the code becomes; the README defines every column. The views return the same columns and figures
on SQLite and PostgreSQL; control_changes keeps 0002's route per dialect (see there) and adds its new
columns by joins that are prefixes of primary keys.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
TENANT_ID = sa.String(36)
CLUSTERED = {"sqlite_with_rowid": False}

NEW_VIEWS = ("improvement_actions", "category_scores", "control_status")


# The newest state update of (tenant, control) `c`: latest updated_at, ties broken by state.
NEWEST_UPDATE = """LEFT JOIN control_state_updates AS u
       ON u.tenant_id = c.tenant_id AND u.control_name = c.control_name
      AND NOT EXISTS (SELECT 1 FROM control_state_updates AS y
                      WHERE y.tenant_id = u.tenant_id AND y.control_name = u.control_name
                        AND (y.updated_at > u.updated_at OR (y.updated_at = u.updated_at AND y.state > u.state)))"""

# A tenant's newest day that carries control scores (a day stored without any says nothing about them).
NEWEST_CONTROL_DAY = """(
    SELECT s.tenant_id, MAX(s.score_date) AS score_date FROM secure_scores AS s
    WHERE EXISTS (SELECT 1 FROM control_scores AS x WHERE x.tenant_id = s.tenant_id AND x.score_date = s.score_date)
    GROUP BY s.tenant_id
)"""


CONTROL_STATUS = f"""
CREATE VIEW control_status AS
SELECT c.tenant_id, t.name AS tenant_name, c.score_date, c.control_name,
       COALESCE(p.title, c.control_name) AS title,
       COALESCE(p.control_category, k.control_category) AS control_category,
       c.score, p.max_score,
       CASE WHEN p.max_score IS NULL OR c.score IS NULL THEN NULL
            WHEN p.max_score > c.score THEN p.max_score - c.score ELSE 0.0 END AS points_available,
       u.state, u.updated_by AS state_updated_by, u.updated_at AS state_updated_at, u.comment AS state_comment,
       p.rank, p.tier, p.action_type, p.service, p.user_impact, p.implementation_cost, p.action_url, p.deprecated
FROM {NEWEST_CONTROL_DAY} AS n
JOIN control_scores AS c ON c.tenant_id = n.tenant_id AND c.score_date = n.score_date
JOIN tenants AS t ON t.tenant_id = c.tenant_id
LEFT JOIN control_profiles AS p ON p.tenant_id = c.tenant_id AND p.control_name = c.control_name
LEFT JOIN controls AS k ON k.control_name = c.control_name
{NEWEST_UPDATE}
"""


CATEGORY_SCORES = """
CREATE VIEW category_scores AS
SELECT c.tenant_id, c.score_date, COALESCE(p.control_category, k.control_category) AS control_category,
       SUM(c.score) AS score, SUM(p.max_score) AS max_score,
       CASE WHEN SUM(p.max_score) > 0 THEN 100.0 * SUM(c.score) / SUM(p.max_score) END AS percent,
       COUNT(*) AS controls, COUNT(p.max_score) AS controls_with_max
FROM control_scores AS c
LEFT JOIN control_profiles AS p ON p.tenant_id = c.tenant_id AND p.control_name = c.control_name
LEFT JOIN controls AS k ON k.control_name = c.control_name
GROUP BY c.tenant_id, c.score_date, COALESCE(p.control_category, k.control_category)
"""

# Per control across the portfolio, from control_status: deprecated controls cannot be acted on and are
# left out. The percentage each tenant would gain is its points available over its secureScore maxScore.
IMPROVEMENT_ACTIONS = """
CREATE VIEW improvement_actions AS
SELECT st.control_name, MAX(st.title) AS title, MAX(st.control_category) AS control_category,
       MAX(st.action_type) AS action_type, MAX(st.user_impact) AS user_impact,
       MAX(st.implementation_cost) AS implementation_cost, MAX(st.action_url) AS action_url,
       COUNT(*) AS tenants,
       SUM(CASE WHEN st.points_available > 0 THEN 1 ELSE 0 END) AS tenants_with_points,
       SUM(CASE WHEN st.points_available > 0 THEN st.points_available ELSE 0.0 END) AS points_available_total,
       AVG(CASE WHEN st.points_available > 0 THEN st.points_available END) AS points_available_average,
       AVG(CASE WHEN st.points_available > 0 AND s.max_score > 0
                THEN 100.0 * st.points_available / s.max_score END) AS percent_gain_average,
       SUM(CASE WHEN st.state = 'Ignored' THEN 1 ELSE 0 END) AS tenants_ignored,
       SUM(CASE WHEN st.state = 'ThirdParty' THEN 1 ELSE 0 END) AS tenants_third_party
FROM control_status AS st
JOIN secure_scores AS s ON s.tenant_id = st.tenant_id AND s.score_date = st.score_date
WHERE st.deprecated IS NULL OR st.deprecated = FALSE
GROUP BY st.control_name
HAVING SUM(CASE WHEN st.points_available > 0 THEN 1 ELSE 0 END) > 0
"""


def _utc_date(dialect: str, column: str) -> str:
    return f"date({column})" if dialect == "sqlite" else f"CAST(timezone('UTC', {column}) AS DATE)"


def _state_between(dialect: str, alias: str) -> str:
    """The newest state update of the change's control made after its previous day, up to its day."""
    when = _utc_date(dialect, f"{alias}.updated_at")
    return f"""LEFT JOIN control_state_updates AS {alias}
       ON {alias}.tenant_id = ch_tenant AND {alias}.control_name = ch_control
      AND {when} > ch_previous AND {when} <= ch_day
      AND NOT EXISTS (SELECT 1 FROM control_state_updates AS y
                      WHERE y.tenant_id = {alias}.tenant_id AND y.control_name = {alias}.control_name
                        AND {_utc_date(dialect, "y.updated_at")} > ch_previous
                        AND {_utc_date(dialect, "y.updated_at")} <= ch_day
                        AND (y.updated_at > {alias}.updated_at
                             OR (y.updated_at = {alias}.updated_at AND y.state > {alias}.state)))"""


# A change is Microsoft's when a control appeared or disappeared, or when its score moved while its
# percentage of the control's maximum stayed put (a new maxScore); a state update makes it the tenant's.
CAUSE = """CASE WHEN u.state IS NOT NULL THEN 'tenant'
            WHEN ch.kind <> 'changed' THEN 'microsoft'
            WHEN ch.previous_percent IS NOT NULL AND ch.percent IS NOT NULL AND ch.previous_percent > 0
                 AND ch.previous_percent = ch.percent THEN 'microsoft'
            ELSE 'tenant' END"""

SQLITE_CONTROL_DAYS = """(
    SELECT s.tenant_id, s.score_date,
           LAG(s.score_date) OVER (PARTITION BY s.tenant_id ORDER BY s.score_date) AS previous_date
    FROM secure_scores AS s
    WHERE EXISTS (SELECT 1 FROM control_scores AS x WHERE x.tenant_id = s.tenant_id AND x.score_date = s.score_date)
)"""

SQLITE_CHANGES = f"""(
SELECT d.tenant_id, d.score_date, d.previous_date, cur.control_name,
       prev.score AS previous_score, cur.score AS score,
       COALESCE(cur.score, 0) - COALESCE(prev.score, 0) AS change,
       CASE WHEN prev.control_name IS NULL THEN 'appeared' ELSE 'changed' END AS kind,
       prev.score_in_percentage AS previous_percent, cur.score_in_percentage AS percent
FROM {SQLITE_CONTROL_DAYS} AS d
JOIN control_scores AS cur ON cur.tenant_id = d.tenant_id AND cur.score_date = +d.score_date
LEFT JOIN control_scores AS prev
       ON prev.tenant_id = d.tenant_id AND prev.score_date = +d.previous_date
      AND prev.control_name = cur.control_name
WHERE d.previous_date IS NOT NULL AND (prev.control_name IS NULL OR cur.score IS NOT prev.score)
UNION ALL
SELECT d.tenant_id, d.score_date, d.previous_date, prev.control_name,
       prev.score AS previous_score, NULL AS score,
       0 - COALESCE(prev.score, 0) AS change,
       'disappeared' AS kind, prev.score_in_percentage AS previous_percent, NULL AS percent
FROM {SQLITE_CONTROL_DAYS} AS d
JOIN control_scores AS prev ON prev.tenant_id = d.tenant_id AND prev.score_date = +d.previous_date
LEFT JOIN control_scores AS cur
       ON cur.tenant_id = d.tenant_id AND cur.score_date = +d.score_date AND cur.control_name = prev.control_name
WHERE cur.control_name IS NULL
)"""

POSTGRES_CHANGES = """(
SELECT d.tenant_id, d.score_date, d.previous_date, x.control_name,
       x.previous_score, x.score, x.change, x.kind, x.previous_percent, x.percent
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
                WHEN cur.control_name IS NULL THEN 'disappeared' ELSE 'changed' END AS kind,
           prev.score_in_percentage AS previous_percent, cur.score_in_percentage AS percent
    FROM (SELECT control_name, score, score_in_percentage FROM control_scores
          WHERE tenant_id = d.tenant_id AND score_date = d.score_date) AS cur
    FULL JOIN (SELECT control_name, score, score_in_percentage FROM control_scores
               WHERE tenant_id = d.tenant_id AND score_date = d.previous_date) AS prev
           ON prev.control_name = cur.control_name
    WHERE cur.control_name IS NULL OR prev.control_name IS NULL OR cur.score IS DISTINCT FROM prev.score
) AS x
WHERE d.previous_date IS NOT NULL
)"""


def _control_changes(dialect: str) -> str:
    changes = SQLITE_CHANGES if dialect == "sqlite" else POSTGRES_CHANGES
    state = (
        _state_between(dialect, "u")
        .replace("ch_tenant", "ch.tenant_id")
        .replace("ch_control", "ch.control_name")
        .replace("ch_previous", "ch.previous_date")
        .replace("ch_day", "ch.score_date")
    )
    return f"""
CREATE VIEW control_changes AS
SELECT ch.tenant_id, ch.score_date, ch.previous_date, ch.control_name, k.control_category,
       ch.previous_score, ch.score, ch.change, ch.kind,
       COALESCE(p.title, ch.control_name) AS title,
       u.state, u.updated_by AS state_updated_by, u.updated_at AS state_updated_at,
       {CAUSE} AS cause
FROM {changes} AS ch
LEFT JOIN controls AS k ON k.control_name = ch.control_name
LEFT JOIN control_profiles AS p ON p.tenant_id = ch.tenant_id AND p.control_name = ch.control_name
{state}
"""


def _previous_revision() -> ModuleType:
    """0002, loaded from its file beside this one, to restore its control_changes on downgrade."""
    path = next(Path(__file__).parent.glob("0002_*.py"))
    spec = importlib.util.spec_from_file_location("_revision_0002", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "control_profiles",
        sa.Column("tenant_id", TENANT_ID, nullable=False),
        sa.Column("control_name", sa.String(256), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("max_score", sa.Float(), nullable=True),
        sa.Column("rank", sa.BigInteger(), nullable=True),
        sa.Column("tier", sa.String(64), nullable=True),
        sa.Column("action_type", sa.String(64), nullable=True),
        sa.Column("service", sa.String(128), nullable=True),
        sa.Column("user_impact", sa.String(64), nullable=True),
        sa.Column("implementation_cost", sa.String(64), nullable=True),
        sa.Column("threats", JSON, nullable=True),
        sa.Column("remediation", sa.Text(), nullable=True),
        sa.Column("remediation_impact", sa.Text(), nullable=True),
        sa.Column("action_url", sa.Text(), nullable=True),
        sa.Column("deprecated", sa.Boolean(), nullable=True),
        sa.Column("control_category", sa.String(256), nullable=True),
        sa.Column("last_modified_at", UTC_TIME, nullable=True),
        sa.Column("extra", JSON, nullable=False),
        sa.Column("fetched_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "control_name", name=op.f("pk_control_profiles")),
        **CLUSTERED,
    )
    op.create_table(
        "control_state_updates",
        sa.Column("tenant_id", TENANT_ID, nullable=False),
        sa.Column("control_name", sa.String(256), nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.Column("state", sa.String(64), nullable=False),
        sa.Column("assigned_to", sa.Text(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("updated_by", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint(
            "tenant_id", "control_name", "updated_at", "state", name=op.f("pk_control_state_updates")
        ),
        **CLUSTERED,
    )
    op.execute("DROP VIEW control_changes")
    op.execute(_control_changes(dialect))
    op.execute(CONTROL_STATUS)
    op.execute(CATEGORY_SCORES)
    op.execute(IMPROVEMENT_ACTIONS)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for view in (*NEW_VIEWS, "control_changes"):
        op.execute(f"DROP VIEW IF EXISTS {view}")
    previous = _previous_revision()
    op.execute(previous.SQLITE_CONTROL_CHANGES if dialect == "sqlite" else previous.POSTGRES_CONTROL_CHANGES)
    op.drop_table("control_state_updates")
    op.drop_table("control_profiles")

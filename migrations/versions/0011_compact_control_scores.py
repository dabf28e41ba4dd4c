"""Compact control scores: control_scores becomes a view over control_score_rows, whose repeated texts
(tenant id, control name, implementation status) are integer keys into tenant_keys, control_keys and
status_texts; on SQLite last_synced is microseconds since 1970 (an integer) and an empty `extra` is NULL.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30

The view `control_scores` has the old table's columns, names, order and values (on SQLite last_synced is
shown as the text SQLAlchemy stored, 'YYYY-MM-DD HH:MM:SS.ffffff'; `extra` NULL as '{}'), so every reader
keeps working. The views that read control_scores are dropped and made again from their own definitions
(on SQLite, control_changes with its LEFT JOINs reading control_score_rows: see SQLITE_CHANGES)
(PostgreSQL will not drop a table a view reads; SQLite checks every view when a table is dropped and
made again under a name a view reads), with their privileges and the table's, granted again to the view.
A monthly partitioned control_scores (`[database] partition = "monthly"`) gives a control_score_rows
partitioned by the same months.

This first version copies the rows in one INSERT ... SELECT, in the migration's transaction.

Written out in full, like the revisions before it, so that it does the same whatever the code becomes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
TENANT_ID = sa.String(36)
CLUSTERED = {"sqlite_with_rowid": False}
KEY_TABLES = ("status_texts", "control_keys", "tenant_keys")

# The old table's columns, in order.
COLUMNS = (
    "tenant_id, score_date, control_name, score, score_in_percentage, implementation_status, last_synced, "
    "is_on, count, total, extra"
)
ROW_COLUMNS = (
    "tenant_key, score_date, control_key, status_key, score, score_in_percentage, last_synced, count, total, "
    "is_on, extra"
)

# SQLite: microseconds since 1970 shown as the text SQLAlchemy's DateTime stores; NULL stays NULL.
SQLITE_SYNCED = (
    "strftime('%Y-%m-%d %H:%M:%S', r.last_synced / 1000000, 'unixepoch') || printf('.%06d', r.last_synced % 1000000)"
)
# ... and back: whole seconds from the first 19 characters, microseconds from the 6 after the dot.
SQLITE_MICROSECONDS = (
    "CAST(strftime('%s', substr(c.last_synced, 1, 19)) AS INTEGER) * 1000000 "
    "+ CAST(substr(c.last_synced || '.000000', 21, 6) AS INTEGER)"
)


def _select_scores(dialect: str) -> str:
    """The view's query: control_scores' rows, from control_score_rows and the key tables."""
    synced = SQLITE_SYNCED if dialect == "sqlite" else "r.last_synced"
    empty = "'{}'" if dialect == "sqlite" else "'{}'::jsonb"
    return f"""SELECT t.tenant_id, r.score_date, c.control_name, r.score, r.score_in_percentage,
       s.implementation_status,
       {synced} AS last_synced,
       r.is_on, r.count, r.total,
       COALESCE(r.extra, {empty}) AS extra
FROM control_score_rows AS r
JOIN tenant_keys AS t ON t.tenant_key = r.tenant_key
JOIN control_keys AS c ON c.control_key = r.control_key
LEFT JOIN status_texts AS s ON s.status_key = r.status_key"""


def _select_rows(dialect: str) -> str:
    """control_scores' rows as control_score_rows' (the key tables filled first)."""
    synced = SQLITE_MICROSECONDS if dialect == "sqlite" else "c.last_synced"
    empty = "'{}'" if dialect == "sqlite" else "'{}'::jsonb"
    return f"""SELECT t.tenant_key, c.score_date, k.control_key, s.status_key, c.score, c.score_in_percentage,
       {synced}, c.count, c.total, c.is_on,
       CASE WHEN c.extra = {empty} THEN NULL ELSE c.extra END
FROM control_scores_table AS c
JOIN tenant_keys AS t ON t.tenant_id = c.tenant_id
JOIN control_keys AS k ON k.control_name = c.control_name
LEFT JOIN status_texts AS s ON s.implementation_status = c.implementation_status
ORDER BY t.tenant_key, c.score_date, k.control_key"""  # SQLite: appended in key order, pages filled


FILL_KEYS = (
    "INSERT INTO tenant_keys (tenant_id) SELECT DISTINCT tenant_id FROM control_scores_table ORDER BY tenant_id",
    "INSERT INTO control_keys (control_name) SELECT DISTINCT control_name FROM control_scores_table "
    "ORDER BY control_name",
    "INSERT INTO status_texts (implementation_status) SELECT DISTINCT implementation_status "
    "FROM control_scores_table WHERE implementation_status IS NOT NULL ORDER BY implementation_status",
)


# SQLite will not flatten a view that is a join into the right side of a LEFT JOIN: it materializes the
# whole control_scores view and scans it for every row of the left side. So on SQLite control_changes' two
# LEFT JOINs onto control_scores read control_score_rows by key instead; the same rows (exact replacements
# of 0005's text, each asserted, undone by the downgrade).
TENANT_KEY = "(SELECT tk.tenant_key FROM tenant_keys AS tk WHERE tk.tenant_id = d.tenant_id)"
SQLITE_CHANGES = (
    (
        "CASE WHEN prev.control_name IS NULL THEN 'appeared' ELSE 'changed' END AS kind",
        "CASE WHEN prev.control_key IS NULL THEN 'appeared' ELSE 'changed' END AS kind",
    ),
    (
        """LEFT JOIN control_scores AS prev
       ON prev.tenant_id = d.tenant_id AND prev.score_date = +d.previous_date
      AND prev.control_name = cur.control_name
WHERE d.previous_date IS NOT NULL AND (prev.control_name IS NULL OR cur.score IS NOT prev.score)""",
        f"""LEFT JOIN control_score_rows AS prev
       ON prev.tenant_key = {TENANT_KEY} AND prev.score_date = +d.previous_date
      AND prev.control_key = (SELECT ck.control_key FROM control_keys AS ck WHERE ck.control_name = cur.control_name)
WHERE d.previous_date IS NOT NULL AND (prev.control_key IS NULL OR cur.score IS NOT prev.score)""",
    ),
    (
        """LEFT JOIN control_scores AS cur
       ON cur.tenant_id = d.tenant_id AND cur.score_date = +d.score_date AND cur.control_name = prev.control_name
WHERE cur.control_name IS NULL""",
        f"""LEFT JOIN control_score_rows AS cur
       ON cur.tenant_key = {TENANT_KEY} AND cur.score_date = +d.score_date
      AND cur.control_key = (SELECT ck.control_key FROM control_keys AS ck WHERE ck.control_name = prev.control_name)
WHERE cur.control_key IS NULL""",
    ),
)


def _rewritten(name: str, statement: str, dialect: str, *, upgrade: bool) -> str:
    """A dependent view's statement for after the change (or, downgrading, for before it)."""
    if dialect != "sqlite" or name != "control_changes":
        return statement
    for before, after in SQLITE_CHANGES:
        old, new = (before, after) if upgrade else (after, before)
        assert old in statement, "control_changes is not the view this revision rewrites"
        statement = statement.replace(old, new)
    return statement


# ------------------------------------------------------------------------------------------ catalog


def _views(dialect: str) -> list[tuple[str, str]]:
    """Every view but control_scores as (name, CREATE VIEW statement), each after the views it reads."""
    bind = op.get_bind()
    if dialect == "sqlite":
        rows = bind.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'view' AND name <> 'control_scores' ORDER BY rowid"
        )
        return [(name, sql) for name, sql in rows]
    definitions = dict(
        bind.exec_driver_sql(
            "SELECT c.relname, pg_get_viewdef(c.oid) FROM pg_class AS c "
            "WHERE c.relkind = 'v' AND c.relnamespace = current_schema()::regnamespace "
            "AND c.relname <> 'control_scores'"
        ).all()
    )
    reads = bind.exec_driver_sql(
        "SELECT DISTINCT v.relname, t.relname FROM pg_depend AS d "
        "JOIN pg_rewrite AS w ON w.oid = d.objid JOIN pg_class AS v ON v.oid = w.ev_class "
        "JOIN pg_class AS t ON t.oid = d.refobjid "
        "WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass "
        "AND t.relkind = 'v' AND t.oid <> v.oid AND v.relnamespace = current_schema()::regnamespace"
    ).all()
    order: list[str] = []
    graph = {name: {read for view, read in reads if view == name and read in definitions} for name in definitions}
    while graph:
        ready = sorted(name for name, needs in graph.items() if not needs - set(order))
        order += ready
        for name in ready:
            del graph[name]
    return [(name, f"CREATE VIEW {name} AS {definitions[name]}") for name in order]


def _grants(name: str) -> list[tuple[str, str, bool]]:
    """PostgreSQL: (privilege, grantee, grantable) of each privilege granted on `name`."""
    rows = op.get_bind().exec_driver_sql(
        "SELECT a.privilege_type, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END, "
        "a.is_grantable FROM pg_class AS c CROSS JOIN LATERAL aclexplode(c.relacl) AS a "
        f"LEFT JOIN pg_roles AS r ON r.oid = a.grantee WHERE c.oid = to_regclass('{name}')"
    )
    return [(privilege, grantee, bool(grantable)) for privilege, grantee, grantable in rows]


def _grant(name: str, grants: list[tuple[str, str, bool]], *, view: bool) -> None:
    for privilege, grantee, grantable in grants:
        if view and privilege not in ("SELECT", "REFERENCES", "TRIGGER"):
            continue  # a view is read only: writes granted on the table do not apply to it
        op.execute(f"GRANT {privilege} ON {name} TO {grantee}{' WITH GRANT OPTION' if grantable else ''}")


def _partitions(table: str) -> list[tuple[str, str]]:
    """PostgreSQL: (name, bound) of each partition of `table`, e.g. ('control_scores_p2026_11',
    "FOR VALUES FROM ('2026-11-01') TO ('2026-12-01')"); none for a plain table."""
    rows = op.get_bind().exec_driver_sql(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits AS i "
        f"JOIN pg_class AS c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass('{table}') ORDER BY c.relname"
    )
    return [(name, bound) for name, bound in rows]


def _is_partitioned(table: str) -> bool:
    query = f"SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass('{table}'))"
    return bool(op.get_bind().exec_driver_sql(query).scalar_one())


def _make_partitions(old: str, new: str, partitions: list[tuple[str, str]]) -> None:
    for name, bound in partitions:
        op.execute(f"CREATE TABLE {new + name.removeprefix(old)} PARTITION OF {new} {bound}")


def _count(table: str) -> int:
    return int(op.get_bind().exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar_one())


# ------------------------------------------------------------------------------------------ tables


def _create_key_tables() -> None:
    op.create_table(
        "tenant_keys",
        sa.Column("tenant_key", sa.Integer(), sa.Identity(), nullable=False),
        sa.Column("tenant_id", TENANT_ID, nullable=False),
        sa.PrimaryKeyConstraint("tenant_key", name=op.f("pk_tenant_keys")),
        sa.UniqueConstraint("tenant_id", name=op.f("uq_tenant_keys_tenant_id")),
    )
    op.create_table(
        "control_keys",
        sa.Column("control_key", sa.Integer(), sa.Identity(), nullable=False),
        sa.Column("control_name", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("control_key", name=op.f("pk_control_keys")),
        sa.UniqueConstraint("control_name", name=op.f("uq_control_keys_control_name")),
    )
    op.create_table(
        "status_texts",
        sa.Column("status_key", sa.Integer(), sa.Identity(), nullable=False),
        sa.Column("implementation_status", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("status_key", name=op.f("pk_status_texts")),
        sa.UniqueConstraint("implementation_status", name=op.f("uq_status_texts_implementation_status")),
    )


def _create_rows_table(dialect: str, *, partitioned: bool) -> None:
    synced = sa.Integer() if dialect == "sqlite" else UTC_TIME
    partitioning = {"postgresql_partition_by": "RANGE (score_date)"} if partitioned else {}
    op.create_table(
        "control_score_rows",
        sa.Column("tenant_key", sa.Integer(), nullable=False),
        sa.Column("score_date", sa.Date(), nullable=False),
        sa.Column("control_key", sa.Integer(), nullable=False),
        sa.Column("status_key", sa.Integer(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("score_in_percentage", sa.Float(), nullable=True),
        sa.Column("last_synced", synced, nullable=True),
        sa.Column("count", sa.BigInteger(), nullable=True),
        sa.Column("total", sa.BigInteger(), nullable=True),
        sa.Column("is_on", sa.Boolean(), nullable=True),
        sa.Column("extra", JSON, nullable=True),
        sa.PrimaryKeyConstraint("tenant_key", "score_date", "control_key", name=op.f("pk_control_score_rows")),
        **CLUSTERED,
        **partitioning,
    )


def _create_old_table(*, partitioned: bool) -> None:
    """0001's control_scores, as control_scores_table (renamed once the view is gone)."""
    partitioning = {"postgresql_partition_by": "RANGE (score_date)"} if partitioned else {}
    op.create_table(
        "control_scores_table",
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
        sa.PrimaryKeyConstraint("tenant_id", "score_date", "control_name", name="pk_control_scores"),
        **CLUSTERED,
        **partitioning,
    )


# ------------------------------------------------------------------------------------------ steps


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    postgres = dialect == "postgresql"
    views = _views(dialect)
    grants = _grants("control_scores") if postgres else []
    view_grants = {name: _grants(name) for name, _ in views} if postgres else {}
    partitions = _partitions("control_scores") if postgres else []
    partitioned = postgres and _is_partitioned("control_scores")
    for name, _ in reversed(views):
        op.execute(f"DROP VIEW {name}")
    # The old table under a name of its own, so that the view can take its name.
    op.rename_table("control_scores", "control_scores_table")
    _create_key_tables()
    _create_rows_table(dialect, partitioned=partitioned)
    _make_partitions("control_scores", "control_score_rows", partitions)
    for statement in FILL_KEYS:
        op.execute(statement)
    before = _count("control_scores_table")
    op.execute(f"INSERT INTO control_score_rows ({ROW_COLUMNS}) {_select_rows(dialect)}")
    after = _count("control_score_rows")
    if before != after:
        raise RuntimeError(f"0011: {before} control_scores rows, {after} copied; nothing was changed")
    op.execute("DROP TABLE control_scores_table")
    op.execute(f"CREATE VIEW control_scores AS\n{_select_scores(dialect)}")
    _grant("control_scores", grants, view=True)
    for name, statement in views:
        op.execute(_rewritten(name, statement, dialect, upgrade=True))
        _grant(name, view_grants.get(name, []), view=True)
    if postgres:
        op.execute("ANALYZE tenant_keys, control_keys, status_texts, control_score_rows")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    postgres = dialect == "postgresql"
    views = _views(dialect)
    view_grants = {name: _grants(name) for name, _ in views} if postgres else {}
    grants = _grants("control_scores") if postgres else []
    partitions = _partitions("control_score_rows") if postgres else []
    partitioned = postgres and _is_partitioned("control_score_rows")
    _create_old_table(partitioned=partitioned)
    _make_partitions("control_score_rows", "control_scores_table", partitions)
    op.execute(f"INSERT INTO control_scores_table ({COLUMNS}) {_select_scores(dialect)}")
    if _count("control_scores_table") != _count("control_score_rows"):
        raise RuntimeError("0011 downgrade: the rows copied back differ in number; nothing was changed")
    for name, _ in reversed(views):
        op.execute(f"DROP VIEW {name}")
    op.execute("DROP VIEW control_scores")
    op.drop_table("control_score_rows")
    for table in KEY_TABLES:
        op.drop_table(table)
    op.rename_table("control_scores_table", "control_scores")
    for name, _ in partitions:
        op.execute(
            f"ALTER TABLE control_scores_table{name.removeprefix('control_score_rows')} "
            f"RENAME TO control_scores{name.removeprefix('control_score_rows')}"
        )
    _grant("control_scores", grants, view=False)
    for name, statement in views:
        op.execute(_rewritten(name, statement, dialect, upgrade=False))
        _grant(name, view_grants.get(name, []), view=True)

"""Compact control scores: control_scores becomes a view over control_score_rows, whose repeated texts
(tenant id, control name, implementation status) are integer keys into tenant_keys, control_keys and
status_texts; on SQLite last_synced is microseconds since 1970 (an integer) and an empty `extra` is NULL.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30

The view `control_scores` has the old table's columns, names, order and values (on SQLite last_synced is
shown as the text SQLAlchemy stored, 'YYYY-MM-DD HH:MM:SS.ffffff'; `extra` NULL as '{}'), so every reader
keeps working. The views that read control_scores are dropped and made again from their own definitions
(PostgreSQL will not drop a table a view reads; SQLite checks every view when a table is dropped and
made again under a name a view reads), with their privileges and the table's, granted again to the view.
A monthly partitioned control_scores (`[database] partition = "monthly"`) gives a control_score_rows
partitioned by the same months.

The rows move in batches (`fetcher.store.convert`): each batch one committed transaction that copies the
next rows in key order and deletes them from the old table, so an interrupted migration continues where it
stopped, and the disk holds the old rows plus the moved ones, never two copies of everything. A first
committed transaction makes the key tables and control_score_rows, renames the old table
control_scores_0010 (`OLD_SCORES`) and puts in its place a view control_scores reading both tables
(`serve_both`: a day moves whole in one batch, so each row is in one of them), the views that read it made
again over it with their grants (on SQLite control_changes and control_status read each table by key
meanwhile: `interim_views`): before, during and after an interrupted move every view shows every row
once, with the same values. An older fetcher (0010's code) writing control scores meanwhile fails (a
trigger says why; an upsert, which a view cannot take, in the database's own words). The views, the old
table's drop, the final view control_scores and the grants come last, in one transaction (with the
revision). A database without control scores (a new one) is migrated in one transaction, as before. Before
the first batch, the free disk is checked (`check_free_space`). A database left midway by this revision as
first released (its old table kept the name control_scores, emptied as the rows moved) is given the
renamed table and the view when the migration is run again, then goes on.

control_changes (both dialects) and control_status (PostgreSQL) are made from their revisions' texts with
control_score_rows read by keys rather than through the view, which their planners could not see through
(below, "views").

Written out in full, like the revisions before it, so that it does the same whatever the code becomes.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from fetcher.store.convert import (
    OLD_SCORES,
    check_free_space,
    check_resumed,
    move_control_scores,
    options_from,
    rows_left,
)
from fetcher.store.partition import month_of, months_between, next_month

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
TENANT_ID = sa.String(36)
CLUSTERED: dict[str, Any] = {"sqlite_with_rowid": False}
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


# ------------------------------------------------------------------------------------------ catalog


def _views(dialect: str) -> list[tuple[str, str]]:
    """Every view but control_scores as (name, CREATE VIEW statement), each after the views it reads."""
    bind = op.get_bind()
    if dialect == "sqlite":
        rows = bind.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'view' AND name <> 'control_scores' ORDER BY rowid"
        )
        return [(name, sql) for name, sql in rows]
    definitions: dict[str, str] = dict(
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
    partitioning: dict[str, Any] = {"postgresql_partition_by": "RANGE (score_date)"} if partitioned else {}
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
    partitioning: dict[str, Any] = {"postgresql_partition_by": "RANGE (score_date)"} if partitioned else {}
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
    bind = op.get_bind()
    config = op.get_context().config
    options = options_from(config.attributes if config is not None else {})
    if not sa.inspect(bind).has_table("control_score_rows"):
        rows = rows_left(bind)
        # A database with rows to move gets its months now; an empty one is partitioned as before, by `then`.
        _create_tables(dialect, monthly=options.partition_monthly and rows > 0)
        serve_both(dialect)
        check_free_space(bind, rows, options)  # of the old table by its new name; refused, all is rolled back
        if rows:
            bind.commit()  # the batches commit: a resumed migration finds the tables and the view
    else:
        if _is_table("control_scores"):  # left midway by this revision as first released
            serve_both(dialect)
            bind.commit()
        check_resumed(bind, options)
    move_control_scores(bind, options)
    _swap(dialect)


def _is_table(name: str) -> bool:
    return name in sa.inspect(op.get_bind()).get_table_names()


def _create_tables(dialect: str, *, monthly: bool) -> None:
    """The key tables and control_score_rows: partitioned by the old table's months if it is, or by month
    from its oldest day to the month after today when `fetcher migrate` is to partition it."""
    postgres = dialect == "postgresql"
    partitions = _partitions("control_scores") if postgres else []
    _create_key_tables()
    _create_rows_table(dialect, partitioned=postgres and (bool(partitions) or monthly))
    _make_partitions("control_scores", "control_score_rows", partitions)
    if postgres and monthly and not partitions:
        _make_months()


def _make_months() -> None:
    """The months `fetcher.store.partition.convert` would make: from the oldest day (or today) to the newest
    (or the month after today)."""
    bind = op.get_bind()
    today = datetime.now(UTC).date()
    first, last = bind.exec_driver_sql("SELECT MIN(score_date), MAX(score_date) FROM control_scores").one()
    months = months_between(min(first or today, today), max(last or today, next_month(month_of(today))))
    for month in months:
        bounds = f"FROM ('{month.isoformat()}') TO ('{next_month(month).isoformat()}')"
        op.execute(
            f"CREATE TABLE control_score_rows_p{month:%Y_%m} PARTITION OF control_score_rows FOR VALUES {bounds}"
        )


def _select_both(dialect: str) -> str:
    """The interim view's query: the rows not yet moved, then the moved ones (`_select_scores`)."""
    return f"SELECT {COLUMNS} FROM {OLD_SCORES}\nUNION ALL\n{_select_scores(dialect)}"


MOVING = "migration 0011 is moving control_scores: run `fetcher migrate` (the new fetcher) to the end"


def _refuse_writes(dialect: str) -> None:
    """An older fetcher (0010's code) writing control_scores while the rows move fails with `MOVING`. The
    triggers (and PostgreSQL's function) go with the interim view."""
    if dialect == "sqlite":
        for event in ("INSERT", "UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER control_scores_moving_{event.lower()} INSTEAD OF {event} ON control_scores "
                f"BEGIN SELECT RAISE(ABORT, '{MOVING}'); END"
            )
        return
    bind = op.get_bind()
    bind.exec_driver_sql(
        "CREATE FUNCTION control_scores_moving() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN RAISE EXCEPTION '{MOVING}'; END $$"
    )
    bind.exec_driver_sql(
        "CREATE TRIGGER control_scores_moving INSTEAD OF INSERT OR UPDATE OR DELETE ON control_scores "
        "FOR EACH ROW EXECUTE FUNCTION control_scores_moving()"
    )


def _drop_views(
    dialect: str,
) -> tuple[list[tuple[str, str]], list[tuple[str, str, bool]], dict[str, list[tuple[str, str, bool]]]]:
    """Every view over control_scores dropped, dependents first: their names and statements, and the grants
    of control_scores and of each view (PostgreSQL; none on SQLite), for making them again."""
    postgres = dialect == "postgresql"
    views = _views(dialect)
    grants = _grants("control_scores") if postgres else []
    view_grants = {name: _grants(name) for name, _ in views} if postgres else {}
    for name, _ in reversed(views):
        op.execute(f"DROP VIEW {name}")
    return views, grants, view_grants


def serve_both(dialect: str) -> None:
    """Before the first batch: the old table renamed `OLD_SCORES`, and in its place a view control_scores over
    it and control_score_rows (`_select_both`) with the table's grants; every other view made again over the
    view (SQLite's control_changes and control_status by key: `interim_views`), with its own grants, as `_swap`
    does at the end."""
    views, grants, view_grants = _drop_views(dialect)
    op.execute(f"ALTER TABLE control_scores RENAME TO {OLD_SCORES}")
    op.execute(f"CREATE VIEW control_scores AS\n{_select_both(dialect)}")
    _grant("control_scores", grants, view=True)
    _refuse_writes(dialect)
    interim = interim_views(dialect)
    for name, statement in views:
        op.execute(interim.get(name, statement))
        _grant(name, view_grants.get(name, []), view=True)


def _swap(dialect: str) -> None:
    """The old table, moved and empty, is dropped with the interim view; the view control_scores reads
    control_score_rows alone; the views are made again (two of them read by keys), each with its grants."""
    postgres = dialect == "postgresql"
    views, grants, view_grants = _drop_views(dialect)
    left = _count(OLD_SCORES)
    if left:
        raise RuntimeError(f"0011: {left} control_scores rows were not moved; run the migration again")
    op.execute("DROP VIEW control_scores")  # its triggers with it
    if postgres:
        op.execute("DROP FUNCTION control_scores_moving()")
    op.execute(f"DROP TABLE {OLD_SCORES}")
    op.execute(f"CREATE VIEW control_scores AS\n{_select_scores(dialect)}")
    _grant("control_scores", grants, view=True)
    keyed = {"control_changes": control_changes(dialect), "control_status": control_status(dialect)}
    for name, statement in views:
        op.execute(keyed.get(name, statement))
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
    before = {"control_changes": previous_control_changes(dialect), "control_status": previous_control_status(dialect)}
    for name, statement in views:
        op.execute(before.get(name, statement))
        _grant(name, view_grants.get(name, []), view=True)


# ------------------------------------------------------------------------------------------------- views
# The views that read control_scores keep their columns and values (tests/store/test_migration_0011.py
# compares them). SQLite cannot flatten a view of joins on the right of a LEFT JOIN: control_changes read
# through the control_scores view materialized all of it for every day (minutes on the demo database). So
# its SQLite form joins control_score_rows by keys, the day columns still behind a unary + (0002's note).
# The other views flatten the control_scores view into their joins and keep the primary-key searches.

SQLITE_CONTROL_DAYS = """(
    SELECT s.tenant_id, k.tenant_key, s.score_date,
           LAG(s.score_date) OVER (PARTITION BY s.tenant_id ORDER BY s.score_date) AS previous_date
    FROM secure_scores AS s
    JOIN tenant_keys AS k ON k.tenant_id = s.tenant_id
    WHERE EXISTS (SELECT 1 FROM control_score_rows AS x
                  WHERE x.tenant_key = k.tenant_key AND x.score_date = s.score_date)
)"""

SQLITE_CHANGES = f"""(
SELECT d.tenant_id, d.score_date, d.previous_date, n.control_name,
       prev.score AS previous_score, cur.score AS score,
       COALESCE(cur.score, 0) - COALESCE(prev.score, 0) AS change,
       CASE WHEN prev.control_key IS NULL THEN 'appeared' ELSE 'changed' END AS kind,
       prev.score_in_percentage AS previous_percent, cur.score_in_percentage AS percent
FROM {SQLITE_CONTROL_DAYS} AS d
JOIN control_score_rows AS cur ON cur.tenant_key = d.tenant_key AND cur.score_date = +d.score_date
JOIN control_keys AS n ON n.control_key = cur.control_key
LEFT JOIN control_score_rows AS prev
       ON prev.tenant_key = d.tenant_key AND prev.score_date = +d.previous_date
      AND prev.control_key = cur.control_key
WHERE d.previous_date IS NOT NULL AND (prev.control_key IS NULL OR cur.score IS NOT prev.score)
UNION ALL
SELECT d.tenant_id, d.score_date, d.previous_date, n.control_name,
       prev.score AS previous_score, NULL AS score,
       0 - COALESCE(prev.score, 0) AS change,
       'disappeared' AS kind, prev.score_in_percentage AS previous_percent, NULL AS percent
FROM {SQLITE_CONTROL_DAYS} AS d
JOIN control_score_rows AS prev ON prev.tenant_key = d.tenant_key AND prev.score_date = +d.previous_date
JOIN control_keys AS n ON n.control_key = prev.control_key
LEFT JOIN control_score_rows AS cur
       ON cur.tenant_key = d.tenant_key AND cur.score_date = +d.score_date AND cur.control_key = prev.control_key
WHERE cur.control_key IS NULL
)"""


def _load(prefix: str) -> ModuleType:
    """An earlier revision's module, loaded from its file beside this one, for its view texts."""
    path = next(Path(__file__).parent.glob(f"{prefix}_*.py"))
    spec = importlib.util.spec_from_file_location(f"_revision_{prefix}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _replaced(text: str, old: str, new: str) -> str:
    assert old in text, "an earlier revision's view text is not the one this revision rewrites"
    return text.replace(old, new)


# PostgreSQL: through the control_scores view, "the tenant's newest (or previous) control day" became a hash
# join of every control row of the tenant and a sort (the view's inner join onto control_keys hides the
# primary key's order): 25x slower on the demo database. Read by keys, each is again one backward index
# scan that stops at the first row, month by month on partitions (0010's note), and a day's controls are
# an index range scan of one month.
POSTGRES_CHANGES = """(
SELECT d.tenant_id, d.score_date, d.previous_date, n.control_name,
       x.previous_score, x.score, x.change, x.kind, x.previous_percent, x.percent
FROM (
    SELECT s.tenant_id, k.tenant_key, s.score_date,
           (SELECT y.score_date FROM control_score_rows AS y
            WHERE y.tenant_key = k.tenant_key AND y.score_date < s.score_date
            ORDER BY y.score_date DESC LIMIT 1) AS previous_date
    FROM secure_scores AS s
    JOIN tenant_keys AS k ON k.tenant_id = s.tenant_id
    WHERE (SELECT 1 FROM control_score_rows AS x
           WHERE x.tenant_key = k.tenant_key AND x.score_date = s.score_date LIMIT 1) = 1
) AS d
CROSS JOIN LATERAL (
    SELECT COALESCE(cur.control_key, prev.control_key) AS control_key,
           prev.score AS previous_score, cur.score AS score,
           COALESCE(cur.score, 0) - COALESCE(prev.score, 0) AS change,
           CASE WHEN prev.control_key IS NULL THEN 'appeared'
                WHEN cur.control_key IS NULL THEN 'disappeared' ELSE 'changed' END AS kind,
           prev.score_in_percentage AS previous_percent, cur.score_in_percentage AS percent
    FROM (SELECT control_key, score, score_in_percentage FROM control_score_rows
          WHERE tenant_key = d.tenant_key AND score_date = d.score_date) AS cur
    FULL JOIN (SELECT control_key, score, score_in_percentage FROM control_score_rows
               WHERE tenant_key = d.tenant_key AND score_date = d.previous_date) AS prev
           ON prev.control_key = cur.control_key
    WHERE cur.control_key IS NULL OR prev.control_key IS NULL OR cur.score IS DISTINCT FROM prev.score
) AS x
JOIN control_keys AS n ON n.control_key = x.control_key
WHERE d.previous_date IS NOT NULL
)"""

POSTGRES_NEWEST_DAY_ROWS = """FROM tenants AS t
CROSS JOIN LATERAL (
    SELECT x.* FROM control_scores AS x
    WHERE x.tenant_id = t.tenant_id
      AND x.score_date = (SELECT y.score_date FROM control_score_rows AS y
                          WHERE y.tenant_key = (SELECT k.tenant_key FROM tenant_keys AS k
                                                WHERE k.tenant_id = t.tenant_id)
                          ORDER BY y.score_date DESC LIMIT 1)
    OFFSET 0
) AS c"""


# SQLite, while the rows move: where 0005's views read control_scores in a correlated EXISTS or on a LEFT
# JOIN's right, SQLite materialized the interim view whole (UNION ALL of both tables: 4 s a tenant's
# control_changes on the demo database), so there each table is read by its own key.
HAS_CONTROLS = (
    "EXISTS (SELECT 1 FROM control_scores AS x WHERE x.tenant_id = s.tenant_id AND x.score_date = s.score_date)"
)
HAS_CONTROLS_BOTH = f"""(EXISTS (SELECT 1 FROM {OLD_SCORES} AS x
                WHERE x.tenant_id = s.tenant_id AND x.score_date = s.score_date)
        OR EXISTS (SELECT 1 FROM tenant_keys AS xk JOIN control_score_rows AS x ON x.tenant_key = xk.tenant_key
                   WHERE xk.tenant_id = s.tenant_id AND x.score_date = s.score_date))"""
PREV_LEFT = """LEFT JOIN control_scores AS prev
       ON prev.tenant_id = d.tenant_id AND prev.score_date = +d.previous_date
      AND prev.control_name = cur.control_name"""
PREV_BOTH = f"""LEFT JOIN {OLD_SCORES} AS po
       ON po.tenant_id = d.tenant_id AND po.score_date = +d.previous_date AND po.control_name = cur.control_name
LEFT JOIN tenant_keys AS ptk ON ptk.tenant_id = d.tenant_id
LEFT JOIN control_keys AS pck ON pck.control_name = cur.control_name
LEFT JOIN control_score_rows AS pn
       ON pn.tenant_key = ptk.tenant_key AND pn.score_date = +d.previous_date AND pn.control_key = pck.control_key"""
CUR_JOIN = "JOIN control_scores AS cur ON cur.tenant_id = d.tenant_id AND cur.score_date = +d.score_date"
CUR_BOTH = f"""LEFT JOIN {OLD_SCORES} AS co ON co.tenant_id = d.tenant_id AND co.score_date = +d.score_date
LEFT JOIN tenant_keys AS ctk ON ctk.tenant_id = d.tenant_id
LEFT JOIN control_score_rows AS cn ON cn.tenant_key = ctk.tenant_key AND cn.score_date = +d.score_date
LEFT JOIN control_keys AS cck ON cck.control_key = cn.control_key"""
PREV_JOIN = "JOIN control_scores AS prev ON prev.tenant_id = d.tenant_id AND prev.score_date = +d.previous_date"
PREV_ROWS = f"""LEFT JOIN {OLD_SCORES} AS po ON po.tenant_id = d.tenant_id AND po.score_date = +d.previous_date
LEFT JOIN tenant_keys AS ptk ON ptk.tenant_id = d.tenant_id
LEFT JOIN control_score_rows AS pn ON pn.tenant_key = ptk.tenant_key AND pn.score_date = +d.previous_date
LEFT JOIN control_keys AS pck ON pck.control_key = pn.control_key"""
CUR_LEFT = """LEFT JOIN control_scores AS cur
       ON cur.tenant_id = d.tenant_id AND cur.score_date = +d.score_date AND cur.control_name = prev.control_name
WHERE cur.control_name IS NULL"""
CUR_NEITHER = f"""WHERE (po.control_name IS NOT NULL OR pn.control_key IS NOT NULL)
  AND NOT EXISTS (SELECT 1 FROM {OLD_SCORES} AS co WHERE co.tenant_id = d.tenant_id
                  AND co.score_date = +d.score_date AND co.control_name = prev.control_name)
  AND NOT EXISTS (SELECT 1 FROM tenant_keys AS ck
                  JOIN control_keys AS cc ON cc.control_name = prev.control_name
                  JOIN control_score_rows AS cn ON cn.tenant_key = ck.tenant_key AND cn.control_key = cc.control_key
                  WHERE ck.tenant_id = d.tenant_id AND cn.score_date = +d.score_date)"""


def _either(text: str, alias: str, old: str, new: str, control: str) -> str:
    """`alias`'s columns in `text` read from the old table (`old`) or the moved rows (`new`, its control name
    from `control`): a day is in one of them, so one side is NULL and COALESCE takes the other."""
    text = text.replace(f"{alias}.control_name", f"COALESCE({old}.control_name, {control}.control_name)")
    text = re.sub(rf"\b{alias}\.(score_in_percentage|score)\b", rf"COALESCE({old}.\1, {new}.\1)", text)
    assert f"{alias}." not in text, f"0005's control_changes reads a {alias} column this revision does not rewrite"
    return text


def interim_views(dialect: str) -> dict[str, str]:
    """SQLite: 0005's control_status and control_changes (as 0010 left them there) while the rows move, each
    table read by key where the interim view would be scanned whole or per row (a day is in one table, so of
    a day's row, or a previous day's, one side is NULL and COALESCE takes the other). PostgreSQL reads the
    interim view by key as is."""
    if dialect != "sqlite":
        return {}
    old = _load("0005")
    status = _replaced(str(old.CONTROL_STATUS), HAS_CONTROLS, HAS_CONTROLS_BOTH)
    changes = old._control_changes("sqlite")
    assert changes.count(HAS_CONTROLS) == 2, "0005's control_changes is not the text this revision rewrites"
    appeared, vanished = changes.replace(HAS_CONTROLS, HAS_CONTROLS_BOTH).split("\nUNION ALL\n", 1)
    appeared = _replaced(_replaced(appeared, PREV_LEFT, PREV_BOTH), CUR_JOIN, CUR_BOTH)
    appeared = _replaced(appeared, "prev.control_name IS NULL", "(po.control_name IS NULL AND pn.control_key IS NULL)")
    appeared = _replaced(
        appeared,
        "WHERE d.previous_date IS NOT NULL AND",
        "WHERE (co.control_name IS NOT NULL OR cn.control_key IS NOT NULL) AND d.previous_date IS NOT NULL AND",
    )
    appeared = _replaced(
        appeared, "d.previous_date, cur.control_name,", "d.previous_date, cur.control_name AS control_name,"
    )
    appeared = _either(_either(appeared, "prev", "po", "pn", "pck"), "cur", "co", "cn", "cck")
    vanished = _replaced(_replaced(vanished, CUR_LEFT, CUR_NEITHER), PREV_JOIN, PREV_ROWS)
    vanished = _replaced(
        vanished, "d.previous_date, prev.control_name,", "d.previous_date, prev.control_name AS control_name,"
    )
    vanished = _either(vanished, "prev", "po", "pn", "pck")
    return {"control_status": status, "control_changes": f"{appeared}\nUNION ALL\n{vanished}"}


def control_changes(dialect: str) -> str:
    """0005's control_changes, its changes read by keys."""
    old = _load("0005")
    if dialect == "sqlite":
        return _replaced(old._control_changes("sqlite"), old.SQLITE_CHANGES, SQLITE_CHANGES)
    return _replaced(old._control_changes("postgresql"), old.POSTGRES_CHANGES, POSTGRES_CHANGES)


def control_status(dialect: str) -> str:
    """0005's control_status; on PostgreSQL 0010's, its newest control day found by keys."""
    old = _load("0005")
    if dialect == "sqlite":
        return str(old.CONTROL_STATUS)
    pruning = _load("0010")
    rows = pruning.OLD_NEWEST_DAY_ROWS.format(newest=old.NEWEST_CONTROL_DAY)
    return _replaced(old.CONTROL_STATUS, rows, POSTGRES_NEWEST_DAY_ROWS)


def previous_control_changes(dialect: str) -> str:
    """control_changes as 0010 left it (downgrade)."""
    old = _load("0005")
    if dialect == "sqlite":
        return str(old._control_changes("sqlite"))
    pruning = _load("0010")
    changes = old._control_changes("postgresql")
    return _replaced(changes, pruning.OLD_PREVIOUS_AND_PRESENT, pruning.PREVIOUS_AND_PRESENT)


def previous_control_status(dialect: str) -> str:
    """control_status as 0010 left it (downgrade)."""
    old = _load("0005")
    if dialect == "sqlite":
        return str(old.CONTROL_STATUS)
    pruning = _load("0010")
    return _replaced(
        old.CONTROL_STATUS, pruning.OLD_NEWEST_DAY_ROWS.format(newest=old.NEWEST_CONTROL_DAY), pruning.NEWEST_DAY_ROWS
    )

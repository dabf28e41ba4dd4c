"""Day keys: on SQLite control_score_rows.score_date is the day's key (days since 1970, an integer) read
through day_keys; ix_raw_payloads_tenant_id_last_fetched_at is dropped.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30

SQLite kept each control row's day as 10 bytes of text, 230 rows a score-day: as an integer it takes 2
(1.8 kB a score-day less). The key is the date's own number (`fetcher.store.schema.day_key`), so writers
compute it; day_keys (day_key, score_date) holds each key's date. The views join it as they join
tenant_keys: `control_scores` shows the same text date, and a filter on it searches day_keys' dates, then
control_score_rows by key (the date computed from the key in the view would scan the tenant's rows).
control_changes reads control_score_rows by keys, the days' keys computed from secure_scores' dates. Every
other view is made again from its own definition.

The rows move in batches (`fetcher.store.convert.move_rows`, as 0011's): each batch one committed
transaction that copies the next days' rows into control_score_rows_0014 and deletes them from
control_score_rows, so an interrupted migration continues where it stopped; the free disk is checked before
the first batch. That first transaction (with the two tables) also makes control_scores and control_changes
read both tables while the rows move (`interim_views`: the rows still dated, and the moved ones with their
days read from day_keys), so the views, and those reading control_scores, show every row once, with the same
values, before, during and after an interrupted move. The views, the old table's drop and the new one's
rename come last, in one transaction (with the revision). A database without control rows is migrated in
one transaction. An older fetcher (0013's code) writing a control row meanwhile fails (a trigger says why);
one reading control_score_rows itself sees only the rows not yet moved: stop the cron jobs and older
binaries before migrating.

PostgreSQL keeps its DATE (4 bytes, as an integer would be, and the month partitions' bounds): it has no
day_keys. Both dialects drop the index on raw_payloads (tenant_id, last_fetched_at): it only ordered a
tenant's replay (`fetcher rebuild`), which now sorts the few hundred rows the primary key finds; 0.15 kB a
score-day.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import sqlalchemy as sa
from alembic import op

from fetcher.store.convert import (
    DAY_KEYED,
    DAY_KEYS,
    SQLITE_DAY_KEY,
    check_free_space,
    check_resumed,
    move_rows,
    options_from,
)

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REPLAY_INDEX = "ix_raw_payloads_tenant_id_last_fetched_at"
ROW_COLUMNS = (
    "tenant_key, score_date, control_key, status_key, score, score_in_percentage, last_synced, count, total, "
    "is_on, extra"
)
DAY_DATED = "control_score_rows_0013"  # the downgrade's copy, until it takes the name
NEW_SHARE = 1.0  # the new rows take about 85 % of the old ones: counted whole


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


# ------------------------------------------------------------------------------------------------- views


def _key(date: str) -> str:
    return SQLITE_DAY_KEY.format(date=date)


def control_scores() -> str:
    """SQLite: 0011's control_scores view, its day read from day_keys.

    Tenant, day, then the row, in that order (CROSS JOIN: SQLite keeps its left table outer): a filter on a
    tenant and days searches day_keys' dates and then each day's rows by key, where the planner, left free,
    read every row of the tenant and looked its day up after (no statistics tell it day_keys is small). A
    query of every row walks tenants and days in key order, the rows' own order, and seeks each day's rows."""
    synced = _load("0011").SQLITE_SYNCED
    return f"""SELECT t.tenant_id, d.score_date, c.control_name, r.score, r.score_in_percentage,
       s.implementation_status,
       {synced} AS last_synced,
       r.is_on, r.count, r.total,
       COALESCE(r.extra, '{{}}') AS extra
FROM tenant_keys AS t
CROSS JOIN day_keys AS d
CROSS JOIN control_score_rows AS r ON r.tenant_key = t.tenant_key AND r.score_date = d.day_key
JOIN control_keys AS c ON c.control_key = r.control_key
LEFT JOIN status_texts AS s ON s.status_key = r.status_key"""


def control_changes() -> str:
    """SQLite: 0011's control_changes, the days' keys computed from secure_scores' dates."""
    text = _load("0011").control_changes("sqlite")
    text = _replaced(text, "x.score_date = s.score_date)", f"x.score_date = {_key('s.score_date')})")
    text = _replaced(text, ".score_date = +d.score_date", f".score_date = +{_key('d.score_date')}")
    return _replaced(text, ".score_date = +d.previous_date", f".score_date = +{_key('d.previous_date')}")


def _both() -> str:
    """SQLite, while the rows move: 0013's control_score_rows (day as text) read from both tables, the moved
    rows' days from day_keys. A day moves whole in one batch, so each row is in one of them."""
    moved = ", ".join(f"r.{column}" for column in ROW_COLUMNS.split(", ")).replace("r.score_date", "d.score_date")
    return (
        f"(SELECT {ROW_COLUMNS} FROM control_score_rows\n"
        f" UNION ALL SELECT {moved} FROM {DAY_KEYED} AS r JOIN day_keys AS d ON d.day_key = r.score_date)"
    )


PREV_JOIN = """LEFT JOIN control_score_rows AS prev
       ON prev.tenant_key = d.tenant_key AND prev.score_date = +d.previous_date
      AND prev.control_key = cur.control_key"""
CUR_JOIN = """LEFT JOIN control_score_rows AS cur
       ON cur.tenant_key = d.tenant_key AND cur.score_date = +d.score_date AND cur.control_key = prev.control_key
WHERE cur.control_key IS NULL"""


def _interim_changes() -> str:
    """0011's control_changes over `_both`. SQLite neither flattens nor indexes a UNION on a LEFT JOIN's
    right (each row of the left scanned the whole union: over a minute a tenant on the demo database), so
    a day's previous rows are joined from each table (a day is in one of them: COALESCE takes its value),
    and a vanished control is one NOT EXISTS, which SQLite searches in each table by key."""
    changes = _load("0011").control_changes("sqlite")
    appeared, vanished = changes.split("\nUNION ALL\n", 1)
    prev = (
        "LEFT JOIN control_score_rows AS po\n"
        "       ON po.tenant_key = d.tenant_key AND po.score_date = +d.previous_date\n"
        "      AND po.control_key = cur.control_key\n"
        f"LEFT JOIN {DAY_KEYED} AS pn\n"
        f"       ON pn.tenant_key = d.tenant_key AND pn.score_date = +{_key('d.previous_date')}\n"
        "      AND pn.control_key = cur.control_key"
    )
    appeared = re.sub(r"\bprev\.(\w+)", r"COALESCE(po.\1, pn.\1)", _replaced(appeared, PREV_JOIN, prev))
    cur = (
        "WHERE NOT EXISTS (SELECT 1 FROM control_score_rows AS cur WHERE cur.tenant_key = d.tenant_key\n"
        "                  AND cur.score_date = +d.score_date AND cur.control_key = prev.control_key)"
    )
    vanished = _replaced(vanished, CUR_JOIN, cur)
    both = f"{_both()} AS"  # every read of control_score_rows but po's
    return re.sub(r"\bcontrol_score_rows AS (?!po\b)", lambda _: f"{both} ", f"{appeared}\nUNION ALL\n{vanished}")


def interim_views() -> dict[str, str]:
    """SQLite: 0011's control_scores and control_changes over `_both`, while the rows move (upgrade)."""
    scores = _replaced(_load("0011")._select_scores("sqlite"), "control_score_rows AS", f"{_both()} AS")
    return {"control_scores": f"CREATE VIEW control_scores AS\n{scores}", "control_changes": _interim_changes()}


def _previous() -> dict[str, str]:
    """The SQLite views 0014 changes, as 0011 left them (downgrade)."""
    old = _load("0011")
    return {
        "control_scores": f"CREATE VIEW control_scores AS\n{old._select_scores('sqlite')}",
        "control_changes": old.control_changes("sqlite"),
    }


def _views() -> list[tuple[str, str]]:
    """Every SQLite view as (name, CREATE VIEW statement), each after the views it reads."""
    rows = op.get_bind().exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'view' ORDER BY rowid")
    return [(name, sql) for name, sql in rows]


def _remake_views(definitions: dict[str, str]) -> None:
    """Every view dropped and made again, each after the views it reads, those of `definitions` from there."""
    views = _views()
    for name, _ in reversed(views):
        op.execute(f"DROP VIEW {name}")
    for name, statement in views:
        op.execute(definitions.get(name, statement))


def _swap(table: str, definitions: dict[str, str]) -> None:
    """`table`, filled, takes control_score_rows' place; every view is dropped first (SQLite checks each one
    when a table a view reads is renamed) and made again, those of `definitions` from there."""
    left = int(op.get_bind().exec_driver_sql("SELECT COUNT(*) FROM control_score_rows").scalar_one())
    if left and table == DAY_KEYED:
        raise RuntimeError(f"0014: {left} control_score_rows rows were not moved; run the migration again")
    views = _views()
    for name, _ in reversed(views):
        op.execute(f"DROP VIEW {name}")
    op.execute("DROP TABLE control_score_rows")
    op.execute(f"ALTER TABLE {table} RENAME TO control_score_rows")
    for name, statement in views:
        op.execute(definitions.get(name, statement))


# ------------------------------------------------------------------------------------------------- steps


def _create_rows_table(name: str, day: sa.types.TypeEngine[Any]) -> None:
    """0011's control_score_rows (SQLite), named `name`, its score_date of type `day`."""
    op.create_table(
        name,
        sa.Column("tenant_key", sa.Integer(), nullable=False),
        sa.Column("score_date", day, nullable=False),
        sa.Column("control_key", sa.Integer(), nullable=False),
        sa.Column("status_key", sa.Integer(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("score_in_percentage", sa.Float(), nullable=True),
        sa.Column("last_synced", sa.Integer(), nullable=True),
        sa.Column("count", sa.BigInteger(), nullable=True),
        sa.Column("total", sa.BigInteger(), nullable=True),
        sa.Column("is_on", sa.Boolean(), nullable=True),
        sa.Column("extra", sa.JSON(none_as_null=True), nullable=True),
        sa.PrimaryKeyConstraint("tenant_key", "score_date", "control_key", name="pk_control_score_rows"),
        sqlite_with_rowid=False,
    )


def _refuse_writes() -> None:
    """An older fetcher (0013's code) writing a control row while the rows move would give a moved day a
    second copy (and the next batch a conflict): its transaction fails with this message instead. The
    triggers go with the old table."""
    message = "migration 0014 is moving control_score_rows: run `fetcher migrate` (the new fetcher) to the end"
    for event in ("INSERT", "UPDATE"):
        op.execute(
            f"CREATE TRIGGER control_score_rows_moving_{event.lower()} BEFORE {event} ON control_score_rows "
            f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
        )


def _create_day_keys() -> None:
    op.create_table(
        "day_keys",
        sa.Column("day_key", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("score_date", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("day_key", name=op.f("pk_day_keys")),
        sa.UniqueConstraint("score_date", name=op.f("uq_day_keys_score_date")),
    )


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.drop_index(REPLAY_INDEX, table_name="raw_payloads")
        return
    config = op.get_context().config
    options = options_from(config.attributes if config is not None else {})
    if not sa.inspect(bind).has_table(DAY_KEYED):
        rows = int(bind.exec_driver_sql("SELECT COUNT(*) FROM control_score_rows").scalar_one())
        check_free_space(bind, rows, options, DAY_KEYS, "for the day keys", NEW_SHARE)
        _create_day_keys()
        _create_rows_table(DAY_KEYED, sa.Integer())
        if rows:
            _remake_views(interim_views())
            _refuse_writes()
            bind.commit()  # the batches commit: a resumed migration finds the tables
    else:
        check_resumed(bind, options, DAY_KEYS, "for the day keys", NEW_SHARE)
    move_rows(bind, DAY_KEYS, options)
    _swap(
        DAY_KEYED,
        {"control_scores": f"CREATE VIEW control_scores AS\n{control_scores()}", "control_changes": control_changes()},
    )
    op.drop_index(REPLAY_INDEX, table_name="raw_payloads")


def downgrade() -> None:
    """One transaction, as 0011's: the rows copied back with their dates, day_keys dropped."""
    op.create_index(REPLAY_INDEX, "raw_payloads", ["tenant_id", "last_fetched_at"])
    if op.get_bind().dialect.name != "sqlite":
        return
    _create_rows_table(DAY_DATED, sa.Date())
    op.execute(
        f"INSERT INTO {DAY_DATED} ({ROW_COLUMNS}) SELECT {ROW_COLUMNS.replace('score_date', 'd.score_date')} "
        "FROM control_score_rows AS r JOIN day_keys AS d ON d.day_key = r.score_date "
        "ORDER BY r.tenant_key, r.score_date, r.control_key"
    )
    counted = (
        op.get_bind()
        .exec_driver_sql(f"SELECT (SELECT COUNT(*) FROM {DAY_DATED}), (SELECT COUNT(*) FROM control_score_rows)")
        .one()
    )
    if counted[0] != counted[1]:
        raise RuntimeError("0014 downgrade: a row's day has no day key; nothing was changed")
    _swap(DAY_DATED, _previous())
    op.drop_table("day_keys")

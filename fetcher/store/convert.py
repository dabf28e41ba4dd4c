"""Moving a table's rows into a new layout in batches (`Move`, `move_rows`): the old control_scores table into
the compact control_score_rows (migration 0011), and on SQLite control_score_rows into its day-keyed twin
(migration 0014).

Each batch is one transaction that copies the next `batch_rows` rows, in primary-key order, into the new
table (0011 assigning tenant, control and status keys as it meets them, 0014 day keys) and deletes them from
the old table. So an interrupted migration (Ctrl-C, a crash, a full disk) has lost nothing and redone nothing:
`fetcher migrate` again continues with the rows that are left, and the disk holds the old table plus the
new rows of the batches done, never both copies of everything.

Before the first batch, `check_free_space` refuses to start when the database's disk has less free space
than the move needs (`space_needed`); `FETCHER_MIGRATE_SKIP_DISK_CHECK=1` or `fetcher migrate
--skip-disk-check` starts anyway. PostgreSQL's free space is read from its data directory when the server
runs on this machine and the role may read `data_directory`; otherwise the need is logged and not checked.

The statements are written out per dialect: SQLite keeps score_date as ISO text and last_synced as
microseconds since 1970 (SQLAlchemy stored it as 'YYYY-MM-DD HH:MM:SS.ffffff'); PostgreSQL keeps its types.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from fetcher.errors import ConfigError, DatabaseError, Interrupted, NotEnoughDisk
from fetcher.text import human_size

log = logging.getLogger(__name__)

OPTIONS_ATTRIBUTE = "fetcher_move_options"  # where `engine.migrate` leaves the options for the moves
SKIP_DISK_CHECK_ENV = "FETCHER_MIGRATE_SKIP_DISK_CHECK"
BATCH_ROWS_ENV = "FETCHER_MIGRATE_BATCH_ROWS"  # rows a batch (default 50,000); the tests' small batches
# The new rows take about a third of the old ones (measured on the demo database: SQLite 25 %, PostgreSQL
# 39 %; README: Upgrading to the compact layout), counted at half; and the write-ahead log holds about twice
# a batch (SQLite keeps the file of its largest transaction). SQLite reuses the pages each batch frees for
# the next one, so the file grows by about a batch; PostgreSQL frees the old table's space only when it is
# dropped at the end.
NEW_SHARE = 0.5
BATCH_LOG_FACTOR = 2

Progress = Callable[[int, int], None]  # rows moved so far, rows to move in all


@dataclass(frozen=True)
class DiskSpace:
    """Free bytes where the database keeps its files, and where that is (for the message)."""

    free: int
    where: str


FreeSpace = Callable[[Connection], DiskSpace | None]


class StopRequest:
    """A signal's request to stop the move (`fetcher migrate` sets it), honoured between two batches: the
    batch in progress commits first. `moving` says whether a move is under way to honour it; `committed`, that
    the migration's last transaction committed, so a signal has nothing left to stop."""

    def __init__(self) -> None:
        self.signal_number: int | None = None
        self.moving = False
        self.committed = False  # the whole migration committed (`fetcher.store.engine.migrate`): nothing to stop


@dataclass(frozen=True)
class MoveOptions:
    """How a migration moves the rows (0011, 0014): batch size, a progress callback, the free-space check."""

    batch_rows: int = 50_000
    progress: Progress | None = None
    check_disk: bool = True
    free_space: FreeSpace | None = None  # None: the database's own disk (`database_free_space`)
    # [database] partition = "monthly": control_score_rows is made partitioned by month from the start, so
    # the rows move once (not into a plain table that `fetcher migrate` then converts in one transaction).
    partition_monthly: bool = False
    stop: StopRequest | None = None


def options_from(attributes: Mapping[str, Any]) -> MoveOptions:
    """The options `fetcher migrate` gave (the `alembic` command line gives none), with the environment's
    override of the disk check."""
    options = attributes.get(OPTIONS_ATTRIBUTE) or MoveOptions()
    if os.environ.get(SKIP_DISK_CHECK_ENV, "").strip().lower() in {"1", "true", "yes"}:
        options = dataclasses.replace(options, check_disk=False)
    batch_rows = os.environ.get(BATCH_ROWS_ENV, "").strip()
    if batch_rows:
        if not batch_rows.isdigit() or int(batch_rows) < 1:
            raise ConfigError(f"${BATCH_ROWS_ENV}={batch_rows!r}: give a number of rows, 1 or more")
        options = dataclasses.replace(options, batch_rows=int(batch_rows))
    assert isinstance(options, MoveOptions)
    return options


# ------------------------------------------------------------------------------------------------ disk


def old_table_bytes(conn: Connection, table: str = "control_scores") -> int:
    """Bytes `table` (a move's source) takes, its indexes and partitions included."""
    if conn.dialect.name == "postgresql":
        return int(
            conn.exec_driver_sql(
                "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class AS c "
                f"WHERE c.oid = '{table}'::regclass "
                f"OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = '{table}'::regclass)"
            ).scalar_one()
        )
    try:
        size = conn.exec_driver_sql(f"SELECT SUM(pgsize) FROM dbstat WHERE name = '{table}'").scalar_one()
    except sa.exc.OperationalError:  # SQLite built without the dbstat table: the whole file, an upper bound
        page_size = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
        size = conn.exec_driver_sql("PRAGMA page_count").scalar_one() * page_size
    return int(size or 0)


def space_needed(dialect: str, old_bytes: int, rows: int, batch_rows: int, new_share: float = NEW_SHARE) -> int:
    """Free bytes a move needs, the new rows taking `new_share` of the old (0011: NEW_SHARE): SQLite about a
    batch's new rows and its log; PostgreSQL every new row, and a batch's log."""
    batch_bytes = old_bytes * min(1.0, batch_rows / rows) if rows else 0
    if dialect == "sqlite":
        return int((new_share + BATCH_LOG_FACTOR) * batch_bytes)
    return int(new_share * old_bytes + BATCH_LOG_FACTOR * batch_bytes)


def database_free_space(conn: Connection) -> DiskSpace | None:
    """Free space of the SQLite file's folder, or of PostgreSQL's data directory when the server runs here
    and this role may read where it is; None when it cannot be known."""
    if conn.dialect.name == "sqlite":
        path = next((row[2] for row in conn.exec_driver_sql("PRAGMA database_list") if row[1] == "main"), "")
        if not path:
            return None  # in memory
        folder = Path(path).parent
        return DiskSpace(shutil.disk_usage(folder).free, str(folder))
    row = conn.exec_driver_sql(
        "SELECT (SELECT setting FROM pg_settings WHERE name = 'data_directory'), inet_server_addr()::text"
    ).one()
    directory, address = row
    local = address is None or ipaddress.ip_interface(address).ip.is_loopback
    if not directory or not local or not Path(directory).is_dir():
        return None
    return DiskSpace(shutil.disk_usage(directory).free, f"the server's data directory {directory}")


def check_free_space(
    conn: Connection,
    rows: int,
    options: MoveOptions,
    move: Move | None = None,
    purpose: str = "for the compact control scores",
    new_share: float = NEW_SHARE,
) -> None:
    """Refuse (`NotEnoughDisk`) to start a move (`move`, 0011's by default) of `rows` rows the disk cannot hold
    (`check_disk`); its new rows take `new_share` of the old ones."""
    if not rows:
        return
    move = move or COMPACT
    needed = space_needed(conn.dialect.name, old_table_bytes(conn, move.source), rows, options.batch_rows, new_share)
    check_disk(conn, needed, move.who, purpose, options)


def check_resumed(
    conn: Connection,
    options: MoveOptions,
    move: Move | None = None,
    purpose: str = "for the compact control scores",
    new_share: float = NEW_SHARE,
) -> None:
    """A move resumed (its target already there: an earlier `fetcher migrate` stopped midway): the disk
    check of `check_free_space` for the rows still in `move.source` (0011's by default), or one INFO line
    saying none are left, so a resumed migration says its line as a fresh one does."""
    move = move or COMPACT
    rows = _count(conn, move.source)
    if not rows:
        log.info("%s resumed: no rows left to move; no disk check", move.who)
        return
    check_free_space(conn, rows, options, move, f"{purpose} (resumed: {rows:,} rows left to move)", new_share)


def check_disk(conn: Connection, needed: int, who: str, purpose: str, options: MoveOptions) -> None:
    """Refuse (`NotEnoughDisk`) to start a migration needing `needed` bytes (free beside the database) that
    the disk lacks; one line naming the need and the free (`human_size`), e.g. `who` "migration 0013",
    `purpose` "to copy raw_payloads". Logs the need and the free space at INFO, or why they were not compared.
    """
    need = f"{who} needs about {human_size(needed)} free {purpose}"
    if not options.check_disk:
        log.info("%s; disk check skipped (--skip-disk-check or $%s=1)", need, SKIP_DISK_CHECK_ENV)
        return
    space = (options.free_space or database_free_space)(conn)
    if space is None:
        log.info("%s; disk check skipped: the database's free disk cannot be read from here", need)
        return
    log.info("%s; %s has %s", need, space.where, human_size(space.free))
    if space.free < needed:
        raise NotEnoughDisk(
            f"{need}, {space.where} has {human_size(space.free)}: free some space, or start anyway with "
            f"--skip-disk-check (${SKIP_DISK_CHECK_ENV}=1)"
        )


# ----------------------------------------------------------------------------------------------- batches


@dataclass(frozen=True)
class Move:
    """One table's rows moved into another in batches (`move_rows`): migration 0011's control_scores into
    control_score_rows, 0014's control_score_rows into its day-keyed twin.

    A batch ends at the end of a day, `day`'s two columns of the source (tenant, date), so that a day's rows
    move together and keep their order; `order` is the source's whole key. `statements(dialect, where)` are a
    batch's statements, the source's rows aliased `o` and chosen by `where`; the last one deletes them from
    the source (its row count is the batch's)."""

    who: str  # "migration 0011", for messages
    source: str
    target: str
    day: tuple[str, str]
    order: str
    statements: Callable[[str, str], list[str]]
    done: str  # what a moved row became, for the progress and the stop: "moved into the compact layout"
    shown_as: str = ""  # the table the progress names, when not `source` (0011's, renamed while it moves)
    # PostgreSQL: the tables the interim views read, analyzed while the rows move (`_analyze_while_moving`)
    analyze: tuple[str, ...] = ()

    def shown(self) -> str:
        return self.shown_as or self.source

    def up_to(self) -> str:
        return f"(o.{self.day[0]}, o.{self.day[1]}) <= (:end_0, :end_1)"

    def after(self) -> str:
        # After the previous batch's last day: PostgreSQL's index still holds the moved rows until a vacuum,
        # and every batch walking them again from the start grew slower as the move went on.
        return f"(o.{self.day[0]}, o.{self.day[1]}) > (:after_0, :after_1)"


_ALL = "1 = 1"  # a WHERE also keeps SQLite's INSERT ... SELECT ... ON CONFLICT unambiguous


@runtime_checkable
class Labelled(Protocol):
    """A progress callback that says which move it shows (`fetcher.output`'s bar and log lines)."""

    def label(self, table: str, done: str) -> None: ...


def _batch_end(conn: Connection, move: Move, batch_rows: int, after: dict[str, Any]) -> dict[str, Any] | None:
    """The day (`move.day`) of the `batch_rows`-th row left in key order (after `after`, the previous batch's
    last day), the batch's last day; None: the rest is a batch."""
    where = move.after().replace("o.", "") if after else _ALL
    row = conn.execute(
        sa.text(
            f"SELECT {', '.join(move.day)} FROM {move.source} WHERE {where} "
            f"ORDER BY {move.order} LIMIT 1 OFFSET {int(batch_rows) - 1}"
        ),
        after,
    ).first()
    return None if row is None else {"end_0": row[0], "end_1": row[1]}


def move_batch(
    conn: Connection, move: Move, batch_rows: int, after: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any] | None]:
    """Move the next batch in the connection's current transaction: how many rows it moved, and its last day
    (to give as `after` to the next batch), None when it was the last batch (it took every row left)."""
    bounds = {name.replace("end", "after"): value for name, value in (after or {}).items()}
    end = _batch_end(conn, move, batch_rows, bounds)
    where = " AND ".join([*([move.after()] if after else []), *([move.up_to()] if end else [])]) or _ALL
    for statement in move.statements(conn.dialect.name, where):
        result = conn.execute(sa.text(statement), {**bounds, **(end or {})})
    return int(result.rowcount), end


def move_rows(conn: Connection, move: Move, options: MoveOptions) -> int:
    """Move every row of `move.source` into `move.target`, a committed transaction per batch; the source is
    left empty. Returns the rows moved by this call (a resumed move counts the earlier ones as done).

    Between two batches, a stop request (`options.stop`) raises `Interrupted` saying how far it got."""
    done, left = _count(conn, move.target), _count(conn, move.source)
    total = done + left
    moved, last = 0, not left  # nothing to move (a new database): no commit, the upgrade stays one transaction
    end: dict[str, Any] | None = None
    stop = options.stop
    if stop is not None:
        stop.moving = not last
    progress: object = options.progress  # any callable; a Labelled one is told the move
    if isinstance(progress, Labelled):
        progress.label(move.shown(), move.done)
    analyzed = _analyze_while_moving(conn, move, done, 0) if left else 0  # a resumed move: stats first
    try:
        while not last:
            if stop is not None and stop.signal_number is not None:
                raise Interrupted(
                    f"interrupted: {min(done + moved, total):,} of {total:,} rows {move.done}; "
                    "run `fetcher migrate` again to continue",
                    signal_number=stop.signal_number,
                )
            _still_a_table(conn, move)
            count, end = move_batch(conn, move, options.batch_rows, end)
            last = end is None
            conn.commit()
            moved += count
            if not last:
                analyzed = _analyze_while_moving(conn, move, done + moved, analyzed)
            if options.progress is not None:
                options.progress(min(done + moved, total), total)
    finally:
        if stop is not None:
            stop.moving = False
    return moved


def _analyze_while_moving(conn: Connection, move: Move, moved: int, analyzed: int) -> int:
    """PostgreSQL: ANALYZE `move.analyze` (committed) when `moved` rows are in the target and it was last
    analyzed at `analyzed` rows (0: never) and has since doubled; returns the rows at the last ANALYZE.

    A new table has no planner statistics until autovacuum comes to it, and the interim views' plans over it
    were a hundred times slower (docs/benchmarks.md, "Statistics while 0011 moves"). Doubling keeps the cost
    to about log2(rows / batch) ANALYZEs, each sampling at most 30,000 rows a table."""
    if conn.dialect.name != "postgresql" or not move.analyze or moved <= 0 or moved < 2 * analyzed:
        return analyzed
    conn.exec_driver_sql(f"ANALYZE {', '.join(move.analyze)}")
    conn.commit()
    log.debug("%s: analyzed %s at %s rows moved", move.who, ", ".join(move.analyze), f"{moved:,}")
    return moved


def _still_a_table(conn: Connection, move: Move) -> None:
    """SQLite has no lock that outlives a commit: a second `fetcher migrate` may have finished the move."""
    if conn.dialect.name == "postgresql":
        query = f"SELECT relkind::text FROM pg_class WHERE oid = to_regclass('{move.source}')"
        kind = conn.exec_driver_sql(query).scalar()
        table = kind in ("r", "p") and bool(conn.exec_driver_sql(query.replace(move.source, move.target)).scalar())
    else:
        query = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN (?, ?)"
        table = conn.exec_driver_sql(query, (move.source, move.target)).scalar() == 2
    if not table:
        raise DatabaseError(f"{move.source} was moved by another `fetcher migrate` meanwhile: run it again")


def _count(conn: Connection, table: str) -> int:
    return int(conn.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar_one())


# --------------------------------------------------------------------------------- migration 0011's move

# The old control_scores table while its rows move: renamed, so that the view control_scores can read it and
# control_score_rows together (migration 0011's `serve_both`).
OLD_SCORES = "control_scores_0010"

_KEYS = (
    f"INSERT INTO tenant_keys (tenant_id) SELECT DISTINCT o.tenant_id FROM {OLD_SCORES} AS o WHERE {{where}} "
    "ON CONFLICT (tenant_id) DO NOTHING",
    f"INSERT INTO control_keys (control_name) SELECT DISTINCT o.control_name FROM {OLD_SCORES} AS o "
    "WHERE {where} ON CONFLICT (control_name) DO NOTHING",
    "INSERT INTO status_texts (implementation_status) SELECT DISTINCT o.implementation_status "
    f"FROM {OLD_SCORES} AS o WHERE {{where}} AND o.implementation_status IS NOT NULL "
    "ON CONFLICT (implementation_status) DO NOTHING",
)

# SQLAlchemy stored SQLite's times as 'YYYY-MM-DD HH:MM:SS.ffffff': whole seconds, then the fraction padded to
# microseconds (so a shorter fraction, never written by SQLAlchemy, still counts right).
_SQLITE_MICROSECONDS = (
    "CAST(strftime('%s', substr(o.last_synced, 1, 19)) AS INTEGER) * 1000000 "
    "+ CAST(substr(substr(o.last_synced, 21) || '000000', 1, 6) AS INTEGER)"
)
_ROWS = """INSERT INTO control_score_rows
    (tenant_key, score_date, control_key, status_key, score, score_in_percentage, last_synced, count, total,
     is_on, extra)
SELECT t.tenant_key, o.score_date, c.control_key, s.status_key, o.score, o.score_in_percentage, {last_synced},
       o.count, o.total, o.is_on, NULLIF(o.extra, {empty})
FROM {source} AS o
JOIN tenant_keys AS t ON t.tenant_id = o.tenant_id
JOIN control_keys AS c ON c.control_name = o.control_name
LEFT JOIN status_texts AS s ON s.implementation_status = o.implementation_status
WHERE {where}
ORDER BY {order}
ON CONFLICT (tenant_key, score_date, control_key) DO UPDATE SET
    status_key = excluded.status_key, score = excluded.score, score_in_percentage = excluded.score_in_percentage,
    last_synced = excluded.last_synced, count = excluded.count, total = excluded.total, is_on = excluded.is_on,
    extra = excluded.extra"""


def _compact_statements(dialect: str, where: str) -> list[str]:
    if dialect == "postgresql":
        # In the old table's physical order: a sum over a day's rows (category_scores) adds them in the order
        # a sequential scan meets them, so the moved rows give the same float to the last bit.
        # No writer meets the renamed table (the view in its place refuses writes), so no row is written
        # between the copy and the delete.
        rows = _ROWS.format(
            source=OLD_SCORES, last_synced="o.last_synced", empty="'{}'::jsonb", where=where, order="o.ctid"
        )
        return [*(k.format(where=where) for k in _KEYS), rows, f"DELETE FROM {OLD_SCORES} AS o WHERE {where}"]
    # SQLite keeps both tables in key order, the keys numbered in the names' order (`number_keys`).
    order = "o.tenant_id, o.score_date, o.control_name"
    rows = _ROWS.format(source=OLD_SCORES, last_synced=_SQLITE_MICROSECONDS, empty="'{}'", where=where, order=order)
    return [*(k.format(where=where) for k in _KEYS), rows, _sqlite_delete(OLD_SCORES, where)]


def _sqlite_delete(table: str, where: str) -> str:
    """SQLite cannot alias a DELETE's table; the row value compares the same key."""
    return f"DELETE FROM {table} WHERE {where.replace('o.', '')}"


COMPACT = Move(
    "migration 0011",
    OLD_SCORES,
    "control_score_rows",
    ("tenant_id", "score_date"),
    "tenant_id, score_date, control_name",
    _compact_statements,
    "moved into the compact layout",
    shown_as="control_scores",
    analyze=(OLD_SCORES, "control_score_rows", "tenant_keys", "control_keys", "status_texts"),
)

# Keys numbered in the old key's order, so control_score_rows keeps the rows in the order control_scores had
# them, and the views' float sums (category_scores, improvement_actions) add them up in the same order to the
# same last bit. Each batch still keys what these tables lack.
_ORDERED_KEYS = (
    "INSERT INTO tenant_keys (tenant_id) SELECT tenant_id FROM tenants WHERE 1 = 1 ORDER BY tenant_id "
    "ON CONFLICT (tenant_id) DO NOTHING",
    "INSERT INTO control_keys (control_name) SELECT control_name FROM controls WHERE 1 = 1 ORDER BY control_name "
    "ON CONFLICT (control_name) DO NOTHING",
)


def number_keys(conn: Connection) -> None:
    """Key every known tenant and control, in the order of their ids and names (before the first batch)."""
    for statement in _ORDERED_KEYS:
        conn.exec_driver_sql(statement)


def move_control_scores(conn: Connection, options: MoveOptions) -> int:
    """Migration 0011: every row of control_scores into control_score_rows (`move_rows`)."""
    number_keys(conn)
    return move_rows(conn, COMPACT, options)


def rows_left(conn: Connection) -> int:
    """Rows in the old control_scores table, before migration 0011 renames it (`OLD_SCORES`)."""
    return _count(conn, "control_scores")


# --------------------------------------------------------------------------------- migration 0014's move

# SQLite's day key of a 'YYYY-MM-DD' text (`schema.day_key`): julianday gives the day's noon, exact in a double.
SQLITE_DAY_KEY = "CAST(julianday({date}) - 2440587.5 AS INTEGER)"
DAY_KEYED = "control_score_rows_0014"  # control_score_rows keyed by day (SQLite), until it takes the name
_DAY_COLUMNS = "status_key, score, score_in_percentage, last_synced, count, total, is_on, extra"


def _day_key_statements(dialect: str, where: str) -> list[str]:
    if dialect != "sqlite":
        raise ValueError("migration 0014 moves control_score_rows on SQLite only")
    key = SQLITE_DAY_KEY.format(date="o.score_date")
    return [
        f"INSERT INTO day_keys (day_key, score_date) SELECT DISTINCT {key}, o.score_date "
        f"FROM control_score_rows AS o WHERE {where} ON CONFLICT DO NOTHING",
        f"INSERT INTO {DAY_KEYED} (tenant_key, score_date, control_key, {_DAY_COLUMNS}) "
        f"SELECT o.tenant_key, {key}, o.control_key, {', '.join('o.' + c for c in _DAY_COLUMNS.split(', '))} "
        f"FROM control_score_rows AS o WHERE {where} ORDER BY o.tenant_key, o.score_date, o.control_key",
        _sqlite_delete("control_score_rows", where),
    ]


DAY_KEYS = Move(
    "migration 0014",
    "control_score_rows",
    DAY_KEYED,
    ("tenant_key", "score_date"),
    "tenant_key, score_date, control_key",
    _day_key_statements,
    "moved to day keys",
)


def grants(conn: Connection, name: str) -> list[str]:
    """PostgreSQL: GRANT statements that give `name` its present privileges again, once it is made anew (the
    control_scores view in place of the table, the views that read it); SQLite has none."""
    if conn.dialect.name != "postgresql":
        return []
    query = sa.text(
        "SELECT a.privilege_type, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END, "
        "a.is_grantable FROM pg_class AS c CROSS JOIN LATERAL aclexplode(c.relacl) AS a "
        "LEFT JOIN pg_roles AS r ON r.oid = a.grantee WHERE c.oid = to_regclass(:t) AND a.grantee <> c.relowner"
    )
    return [
        f"GRANT {privilege} ON {name} TO {grantee}{' WITH GRANT OPTION' if grantable else ''}"
        for privilege, grantee, grantable in conn.execute(query, {"t": name}).all()
    ]

"""Saving score-days: idempotent upserts of scores, comparatives, controls and control scores.

All writes of one call share the caller's transaction. Semantics, identical on SQLite and
PostgreSQL:
- rows are keyed on their natural keys; storing the same input twice changes nothing;
- a null never erases a stored non-null value of the same row, and `extra` is merged key by key
  (new keys win), so a thin older day cannot wipe detail stored from a fuller fetch;
- a day's non-empty control (or comparative) list replaces the stored set for that day: a control
  missing from it is deleted. An empty or absent list is thin, and keeps what is stored;
- `id`, `id_mismatch`, `partial`, `warning`, `fetched_at` and `run_id` describe the latest fetch and are
  overwritten;
- only the natural key (tenant, day) can refuse a row: Graph's `id` is stored, not trusted as a key.

Control scores are written to `control_score_rows`, keyed by integers (`fetcher.store.keys`); readers read
the `control_scores` view over it, which shows the same rows as the table of that name did.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from itertools import chain, compress, groupby, repeat
from operator import attrgetter, itemgetter, not_
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert

from fetcher.models import ComparativeRow, ControlScoreRow, ScoreDay, ScoreRow
from fetcher.store import bulk, keys
from fetcher.store.schema import (
    as_date,
    comparative_scores,
    control_score_rows,
    controls,
    day_key,
    secure_scores,
    tenant_keys,
    tenants,
)

SCORE_OVERWRITE = ("id", "created_at", "partial", "warning", "fetched_at", "run_id", "id_mismatch")
CONTROL_DIMENSION = ("control_category", "description")
CONTROL_DIMENSION_FIELDS = ("control_name", "control_category", "description", "first_seen_date", "last_seen_date")

InsertFactory = Callable[[sa.Table], Any]


def _insert(conn: AsyncConnection) -> InsertFactory:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _merge_json(conn: AsyncConnection, stored: sa.Column[Any], new: sa.ColumnElement[Any]) -> Any:
    """Shallow merge of JSON objects, new keys winning (`jsonb ||`, or our SQLite function, which keeps
    either side when the other is NULL: a nullable `extra`'s NULL means {})."""
    if conn.dialect.name == "postgresql":
        merged = stored.op("||", return_type=postgresql.JSONB)(new)
        return sa.func.coalesce(merged, new, stored, type_=postgresql.JSONB) if stored.nullable else merged
    return sa.func.json_merge(stored, new, type_=sa.JSON)


def _upsert(conn: AsyncConnection, table: sa.Table, *, overwrite: Iterable[str] = ()) -> Insert:
    """INSERT ... ON CONFLICT (primary key) DO UPDATE with the null-keeping merge described above."""
    stmt = _insert(conn)(table)
    excluded = stmt.excluded
    keys = {c.name for c in table.primary_key.columns}
    updates: dict[str, Any] = {}
    for column in table.columns:
        name = column.name
        if name in keys:
            continue
        if name in overwrite:
            updates[name] = excluded[name]
        elif name == "extra":
            updates[name] = _merge_json(conn, column, excluded[name])
        else:
            updates[name] = sa.func.coalesce(excluded[name], column)
    # Rows a fetch leaves as they were are not rewritten: no dead tuples, no WAL, much faster re-runs.
    changed = sa.or_(*(table.c[name].is_distinct_from(value) for name, value in updates.items()))
    return stmt.on_conflict_do_update(  # type: ignore[no-any-return]
        index_elements=sorted(keys), set_=updates, where=changed
    )


def _upsert_controls(conn: AsyncConnection) -> Insert:
    """The controls dimension: widest seen-date range, latest non-null category and description."""
    stmt = _insert(conn)(controls)
    new, old = stmt.excluded, controls.c
    newer = new.last_seen_date >= old.last_seen_date
    updates: dict[str, Any] = {
        "first_seen_date": sa.case(
            (new.first_seen_date < old.first_seen_date, new.first_seen_date), else_=old.first_seen_date
        ),
        "last_seen_date": sa.case((newer, new.last_seen_date), else_=old.last_seen_date),
    }
    for name in CONTROL_DIMENSION:
        takes_new = sa.and_(new[name].is_not(None), sa.or_(old[name].is_(None), newer))
        updates[name] = sa.case((takes_new, new[name]), else_=old[name])
    return stmt.on_conflict_do_update(index_elements=["control_name"], set_=updates)  # type: ignore[no-any-return]


async def save_tenants(conn: AsyncConnection, rows: Sequence[tuple[str, str]], now: datetime) -> None:
    """Insert or rename tenants (id, name)."""
    if not rows:
        return
    stmt = _insert(conn)(tenants)
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id"],
        set_={"name": stmt.excluded.name, "updated_at": stmt.excluded.updated_at},
        where=tenants.c.name != stmt.excluded.name,
    )
    for start in range(0, len(rows), 1000):  # in slices: ten thousand tenants make no ten-thousand-row list
        await conn.execute(
            stmt, [{"tenant_id": t, "name": n, "updated_at": now} for t, n in rows[start : start + 1000]]
        )
    await keys.resolve(conn, keys.TENANTS, [t for t, _ in rows])  # their keys, cached for the run's saves


async def ensure_tenant(conn: AsyncConnection, tenant_id: str, now: datetime) -> None:
    """A `tenants` row for `tenant_id` (unnamed) unless there is one."""
    await conn.execute(
        _insert(conn)(tenants).on_conflict_do_nothing(index_elements=["tenant_id"]),
        {"tenant_id": tenant_id, "name": "", "updated_at": now},
    )


async def save_score_days(
    conn: AsyncConnection,
    days: Sequence[ScoreDay],
    now: datetime,
    *,
    tenant_saved: bool = False,
    controls_saved: bool = False,
) -> int:
    """Upsert the score-days of one tenant in the caller's transaction; returns how many were saved.

    `tenant_saved`: the caller already saved the tenant's `tenants` row (a run does, at its start).
    `controls_saved`: the caller saves their `controls` rows (`save_controls`, for a group, after every
    tenant's rows); else they are saved after the days' rows, which keeps their row locks short.
    """
    if not days:
        return 0
    tenant_ids = {d.tenant_id for d in days}
    if len(tenant_ids) != 1:
        raise ValueError(f"save_score_days takes one tenant's days, got {sorted(tenant_ids)}")
    tenant_id = tenant_ids.pop()
    if not tenant_saved:
        await ensure_tenant(conn, tenant_id, now)
    for batch in _unique_days(days):
        await _save_batch(conn, tenant_id, batch, controls_saved=controls_saved)
    return len({d.score_date for d in days})


def _unique_days(days: Sequence[ScoreDay]) -> Iterator[list[ScoreDay]]:
    """Split into batches without a repeated day, keeping order, so later fetches apply last."""
    batch: list[ScoreDay] = []
    seen: set[date] = set()
    for day in days:
        if day.score_date in seen:
            yield batch
            batch, seen = [], set()
        batch.append(day)
        seen.add(day.score_date)
    if batch:
        yield batch


async def _save_batch(
    conn: AsyncConnection, tenant_id: str, days: list[ScoreDay], *, controls_saved: bool = False
) -> None:
    day_keys = _group_keys(conn, tenant_id) if controls_saved else None
    stored = None if day_keys is None else await _group_members(conn, tenant_id)
    resolved_here = day_keys is None  # then every status of these days has its key: no need to check
    if day_keys is None:
        day_keys = await resolve_keys(conn, days)
    tenant_key = day_keys.tenants[tenant_id]
    deferred = None if stored is None else _deferred_rows(conn)
    if deferred is None:  # this batch reads what earlier ones stored: the group's rows go first
        await save_group_rows(conn)
    await _delete_replaced(conn, tenant_id, tenant_key, day_keys, days, stored)
    rows = control_rows(days)
    if rows:
        await keys.ensure_days(conn, [d.score_date for d in days if d.controls])
    scores = [d.score for d in days]
    comparatives = [c for d in days for c in d.comparatives]
    if deferred is not None:  # a group's nightly tenant: sent for the whole group by save_group_rows
        deferred["scores"] += _encode(conn, "scores", scores)
        deferred["control_score_rows"] += _encode_controls(conn, tenant_key, day_keys, rows)
        deferred["comparatives"] += _encode(conn, "comparatives", comparatives)
    else:  # control rows as columns: on PostgreSQL streamed to COPY, never a list of tuples (execute_columns)
        await _execute_many(conn, "scores", scores)
        if rows:
            columns = control_columns(tenant_key, day_keys, rows, checked=resolved_here)
            await bulk.execute_columns(conn, _plan(conn, "control_score_rows"), columns, len(rows))
        await _execute_many(conn, "comparatives", comparatives)
    if not controls_saved:  # last: the dimension's rows stay locked from its upsert to the commit
        await save_controls(conn, days)


def control_rows(days: Iterable[ScoreDay]) -> list[ControlScoreRow]:
    """The days' control rows in one list, joined in C (`chain`): a tenant of 90 days has 20,700."""
    return list(chain.from_iterable(day.controls for day in days))


@dataclass(frozen=True)
class DayKeys:
    """The keys of the texts of some days: tenant id, control name, implementation status -> key."""

    tenants: Mapping[str, int]
    controls: Mapping[str, int]
    statuses: Mapping[str, int]


async def resolve_keys(conn: AsyncConnection, days: Sequence[ScoreDay]) -> DayKeys:
    """The keys of the days' tenants, controls and statuses (of any tenants: a group resolves its texts
    once, and each tenant's save then finds them cached), inserting the missing ones."""
    rows = control_rows(days)
    tenant_ids = {d.tenant_id for d in days}
    found = await keys.resolve_many(
        conn,
        [
            (keys.TENANTS, tenant_ids),
            (keys.CONTROLS, set(map(_CONTROL_NAME, rows))),
            (keys.STATUSES, set(map(_STATUS, rows))),
        ],
    )
    return DayKeys(*found)


async def resolve_group_keys(conn: AsyncConnection, days: Sequence[ScoreDay], *, defer_rows: bool = False) -> None:
    """Resolve the keys of a group's days (`resolve_keys`) and keep them for the rest of the transaction:
    each tenant's save in it (`controls_saved`, its days among them) then takes them without walking its
    rows again (two sets of 20,700 texts for a tenant of 90 days).

    Each tenant's first batch then takes its stored members from a read of several tenants' at once
    (`GroupMembers`: one statement for up to `GROUP_MEMBERS_CAP` tenant-days) instead of a statement of its
    own: on PostgreSQL a round trip a tenant, on SQLite four round trips to aiosqlite's thread.

    With `defer_rows`, and when the group's control rows are at most `GROUP_DEFER_ROWS`, each tenant's first
    batch (the one that takes the group's members) keeps its scores, control rows and comparatives for the
    caller to send for the whole group with `save_group_rows`, before the transaction's end and before anything
    reads them: one statement a kind a group instead of three a tenant. A batch that reads its own members (a
    later batch, a tenant outside the group) sends the deferred rows first, so it sees them. A larger group
    (a backfill's 90 days) sends each tenant's rows as they come, so it does not hold them twice."""
    sync = conn.sync_connection
    assert sync is not None
    day_keys = await resolve_keys(conn, days)
    transaction = sync.get_transaction()
    sync.info[GROUP_KEYS] = (transaction, day_keys, GroupMembers(day_keys, days))
    sync.info.pop(GROUP_ROWS, None)
    if defer_rows and sum(map(len, map(_CONTROLS, days))) <= GROUP_DEFER_ROWS:
        sync.info[GROUP_ROWS] = (transaction, {kind: [] for kind in ("scores", "control_score_rows", "comparatives")})


def _group_keys(conn: AsyncConnection, tenant_id: str) -> DayKeys | None:
    """The keys `resolve_group_keys` kept in this very transaction, if they cover `tenant_id`."""
    sync = conn.sync_connection
    assert sync is not None
    kept = sync.info.get(GROUP_KEYS)
    if kept is None or kept[0] is not sync.get_transaction() or tenant_id not in kept[1].tenants:
        return None
    day_keys: DayKeys = kept[1]
    return day_keys


async def _group_members(conn: AsyncConnection, tenant_id: str) -> list[Any] | None:
    """The stored members of `tenant_id`'s days in the group `resolve_group_keys` began in this very transaction,
    taken once: they hold only until the tenant's first batch writes (`_unique_days` splits a day repeated into
    batches, each of which must see the one before), so a later batch or save finds None and reads its own."""
    sync = conn.sync_connection
    assert sync is not None
    kept = sync.info.get(GROUP_KEYS)
    if kept is None or kept[0] is not sync.get_transaction():
        return None
    group: GroupMembers = kept[2]
    return await group.take(conn, tenant_id)


class GroupMembers:
    """The stored members of a group's listed days, read a few tenants at a time as their saves come.

    The group's tenants, in the order their days come, are cut into runs whose tenants times listed days stay
    within `GROUP_MEMBERS_CAP` (a tenant alone may exceed it: its own read is no larger); the first tenant of
    a run to take its members reads the run's in one statement (`_read_group_members`). A run is read before
    any of its tenants writes, and no tenant writes another's rows, so what it reads is what each tenant's
    own read would find; only one run's members are held at a time."""

    def __init__(self, day_keys: DayKeys, days: Sequence[ScoreDay]) -> None:
        self.day_keys = day_keys
        listed: dict[str, list[ScoreDay]] = {}
        for day in days:
            if day.controls or day.comparatives:
                listed.setdefault(day.tenant_id, []).append(day)
        self.found: dict[str, list[Any]] = {d.tenant_id: [] for d in days if d.tenant_id not in listed}
        self.unread: dict[str, list[ScoreDay]] = {}  # tenant -> the days of the run it is in, until read
        run: list[ScoreDay] = []
        tenants: set[str] = set()
        dates: set[date] = set()
        for tenant_id, own in listed.items():
            more = dates | {d.score_date for d in own}
            if run and (len(tenants) + 1) * len(more) > GROUP_MEMBERS_CAP:
                self._close(run, tenants)
                run, tenants, more = [], set(), {d.score_date for d in own}
            run += own
            tenants.add(tenant_id)
            dates = more
        self._close(run, tenants)

    def _close(self, run: list[ScoreDay], tenants: set[str]) -> None:
        for tenant_id in tenants:
            self.unread[tenant_id] = run

    async def take(self, conn: AsyncConnection, tenant_id: str) -> list[Any] | None:
        """`tenant_id`'s stored members (kind, day, member), reading its run's first; None once taken."""
        run = self.unread.get(tenant_id)
        if run is not None:
            for day in run:
                self.unread.pop(day.tenant_id, None)
            self.found.update(await _read_group_members(conn, self.day_keys, run))
        return self.found.pop(tenant_id, None)


GROUP_KEYS = "fetcher.store.scores.group_keys"  # conn.info: (transaction, DayKeys, GroupMembers) of a group
GROUP_ROWS = "fetcher.store.scores.group_rows"  # conn.info: (transaction, kind -> rows) deferred by a group
GROUP_MEMBERS_CAP = 256  # tenants x listed days read at once: a nightly group is 32 x 2, a backfill's 32 x 90
GROUP_DEFER_ROWS = 65_536  # a group's control rows deferred at most: a nightly 32 x 2 x 230, not a backfill's
_CONTROLS = attrgetter("controls")
_SCORE_DATE = attrgetter("score_date")
DIMENSION_SKIP_DAYS = 10  # days in a batch from which `_control_dimension` reads only the rows that count
_CONTROL_NAME = itemgetter(ControlScoreRow._fields.index("control_name"))
_STATUS = itemgetter(ControlScoreRow._fields.index("implementation_status"))
CONTROL_ROW_FIELDS = tuple(column.name for column in control_score_rows.columns)
_COPIED = tuple(  # the fields of a ControlScoreRow copied as they are, in the columns' order
    ControlScoreRow._fields.index(name) for name in CONTROL_ROW_FIELDS[4:-1]
)


def control_columns(
    tenant_key: int, day_keys: DayKeys, rows: Sequence[ControlScoreRow], *, checked: bool = False
) -> list[Iterator[Any]]:
    """The columns (CONTROL_ROW_FIELDS) of `rows` (a tenant's control scores) as `control_score_rows` takes
    them, each an iterator in C (`map`, `itemgetter`): `fetcher.store.bulk` zips them into the rows it sends,
    so no Python frame runs per row and no row is made twice.

    `ValueError` when a status has no key: the statuses' column reads its keys with `.get` (a row without
    a status has none), so a status left unresolved would otherwise be stored as NULL without a word. With
    `checked`, the caller resolved `day_keys` from these very rows (`resolve_keys`), and the check, a set of
    20,700 texts for a tenant of 90 days, is left out."""
    if not checked:
        statuses = set(map(_STATUS, rows))
        statuses.discard(None)
        if not statuses <= day_keys.statuses.keys():
            missing = len(statuses - day_keys.statuses.keys())
            raise ValueError(f"control_score_rows: {missing} status(es) without a key")
    return [
        repeat(tenant_key, len(rows)),
        map(itemgetter(1), rows),
        map(day_keys.controls.__getitem__, map(_CONTROL_NAME, rows)),
        map(day_keys.statuses.get, map(_STATUS, rows)),
        *(map(itemgetter(field), rows) for field in _COPIED),
        map(itemgetter(ControlScoreRow._fields.index("extra")), rows),  # {} is stored as NULL (bulk's converter)
    ]


def _bulk_statement(kind: str) -> tuple[bulk.StatementFactory, tuple[str, ...]]:
    """The upsert behind each kind of row, and the row's field names (a row is a named tuple)."""
    if kind == "scores":
        return (lambda conn: _upsert(conn, secure_scores, overwrite=SCORE_OVERWRITE)), ScoreRow._fields
    if kind == "control_score_rows":
        return (lambda conn: _upsert(conn, control_score_rows)), CONTROL_ROW_FIELDS
    if kind == "comparatives":
        return (lambda conn: _upsert(conn, comparative_scores)), ComparativeRow._fields
    return _upsert_controls, CONTROL_DIMENSION_FIELDS


def _plan(conn: AsyncConnection, kind: str) -> bulk.Bulk:
    statement, fields = _bulk_statement(kind)
    return bulk.compiled(conn, kind, statement, fields)


async def _execute_many(conn: AsyncConnection, kind: str, rows: Sequence[Sequence[Any]]) -> None:
    await bulk.execute_many(conn, _plan(conn, kind), rows)


def _encode(conn: AsyncConnection, kind: str, rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    return bulk.encode(_plan(conn, kind), rows) if rows else []


def _encode_controls(
    conn: AsyncConnection, tenant_key: int, day_keys: DayKeys, rows: Sequence[ControlScoreRow]
) -> list[tuple[Any, ...]]:
    if not rows:
        return []
    return bulk.encode_columns(_plan(conn, "control_score_rows"), control_columns(tenant_key, day_keys, rows))


def _deferred_rows(conn: AsyncConnection) -> dict[str, list[tuple[Any, ...]]] | None:
    """The rows a group defers to `save_group_rows` in this very transaction, by kind (None: no group does)."""
    sync = conn.sync_connection
    assert sync is not None
    kept = sync.info.get(GROUP_ROWS)
    if kept is None or kept[0] is not sync.get_transaction():
        return None
    rows: dict[str, list[tuple[Any, ...]]] = kept[1]
    return rows


async def save_group_rows(conn: AsyncConnection) -> None:
    """Send the rows the group's tenants deferred (`resolve_group_keys(defer_rows=True)`): one statement a
    kind for the whole group, in the order of `_bulk_statement`'s kinds; nothing when none are deferred."""
    sync = conn.sync_connection
    assert sync is not None
    kept = sync.info.pop(GROUP_ROWS, None)
    if kept is None or kept[0] is not sync.get_transaction():
        return
    for kind, rows in kept[1].items():
        if rows:
            await bulk.execute_encoded(conn, _plan(conn, kind), rows)


# Built once, their values as parameters: SQLAlchemy then finds them compiled in its cache, where building
# them anew for every batch cost a fixed share of each small tenant's CPU. A control is its key, a basis its
# text: the union's member column is the key cast to text.
_CONTROL_MEMBERS = sa.select(
    sa.literal("control").label("kind"),
    control_score_rows.c.score_date,
    sa.cast(control_score_rows.c.control_key, sa.Text).label("member"),
).where(
    control_score_rows.c.tenant_key == sa.bindparam("tenant_key"),
    control_score_rows.c.score_date.in_(sa.bindparam("control_days", expanding=True)),
)
_BASIS_MEMBERS = sa.select(
    sa.literal("basis").label("kind"), comparative_scores.c.score_date, comparative_scores.c.basis.label("member")
).where(
    comparative_scores.c.tenant_id == sa.bindparam("tenant_id"),
    comparative_scores.c.score_date.in_(sa.bindparam("basis_days", expanding=True)),
)
_STORED_MEMBERS = sa.union_all(_CONTROL_MEMBERS, _BASIS_MEMBERS)
_GROUP_MEMBERS = sa.union_all(
    sa.select(
        sa.literal("control").label("kind"),
        sa.cast(control_score_rows.c.tenant_key, sa.Text).label("owner"),
        control_score_rows.c.score_date,
        sa.cast(control_score_rows.c.control_key, sa.Text).label("member"),
    ).where(
        control_score_rows.c.tenant_key.in_(sa.bindparam("tenant_keys", expanding=True)),
        control_score_rows.c.score_date.in_(sa.bindparam("control_days", expanding=True)),
    ),
    sa.select(
        sa.literal("basis").label("kind"),
        comparative_scores.c.tenant_id.label("owner"),
        comparative_scores.c.score_date,
        comparative_scores.c.basis.label("member"),
    ).where(
        comparative_scores.c.tenant_id.in_(sa.bindparam("tenant_ids", expanding=True)),
        comparative_scores.c.score_date.in_(sa.bindparam("basis_days", expanding=True)),
    ),
)


async def _read_group_members(
    conn: AsyncConnection, day_keys: DayKeys, days: Sequence[ScoreDay]
) -> dict[str, list[Any]]:
    """The stored members of some tenants' listed days, by tenant, as `_STORED_MEMBERS` reads one tenant's
    (kind, day, member), in one statement (`GroupMembers` keeps it within `GROUP_MEMBERS_CAP` tenant-days).

    The statement reads every tenant's rows on every listed day of `days`; `_delete_replaced` skips the days a
    tenant does not list. A tenant with nothing stored gets an empty list."""
    tenant_ids = sorted({d.tenant_id for d in days})
    control_days = sorted({d.score_date for d in days if d.controls})
    basis_days = sorted({d.score_date for d in days if d.comparatives})
    found: dict[str, list[Any]] = {tenant_id: [] for tenant_id in tenant_ids}
    if not control_days and not basis_days:
        return found
    if conn.dialect.name == "sqlite":
        return await _read_group_members_sqlite(conn, day_keys, found, control_days, basis_days)
    owners = {str(day_keys.tenants[t]): t for t in tenant_ids}
    result = await conn.execute(
        _GROUP_MEMBERS,
        {
            "tenant_keys": [day_keys.tenants[t] for t in tenant_ids],
            "tenant_ids": tenant_ids,
            "control_days": control_days,
            "basis_days": basis_days,
        },
    )
    for kind, owner, day, member in result.all():
        found[owners[owner] if kind == "control" else owner].append((kind, day, member))
    return found


# `_GROUP_MEMBERS` on SQLite, written out for the driver (`bulk.fetch_sqlite`): the lists as JSON arrays.
_GROUP_MEMBERS_SQLITE = """\
SELECT 'control', tenant_key, score_date, control_key FROM control_score_rows
WHERE tenant_key IN (SELECT value FROM json_each(?)) AND score_date IN (SELECT value FROM json_each(?))
UNION ALL
SELECT 'basis', tenant_id, score_date, basis FROM comparative_scores
WHERE tenant_id IN (SELECT value FROM json_each(?)) AND score_date IN (SELECT value FROM json_each(?))"""


async def _read_group_members_sqlite(
    conn: AsyncConnection,
    day_keys: DayKeys,
    found: dict[str, list[Any]],
    control_days: list[date],
    basis_days: list[date],
) -> dict[str, list[Any]]:
    """`_read_group_members` on SQLite: one round trip, the rows as `_GROUP_MEMBERS` gives them (a control as
    its key's text, a day as a date)."""
    owners = {day_keys.tenants[t]: t for t in found}
    parameters = (
        orjson.dumps(list(owners)).decode(),
        orjson.dumps([day_key(day) for day in control_days]).decode(),
        orjson.dumps(list(found)).decode(),
        orjson.dumps([day.isoformat() for day in basis_days]).decode(),
    )
    days: dict[Any, date] = {day_key(day): day for day in control_days} | {d.isoformat(): d for d in basis_days}
    rows = await bulk.fetch_sqlite(conn, _GROUP_MEMBERS_SQLITE, parameters)
    for (kind, owner, day), run in groupby(rows, _KIND_OWNER_DAY):  # a tenant-day's rows come together
        members = map(_LAST, run)
        if kind == "control":
            found[owners[owner]] += zip(repeat(kind), repeat(days[day]), map(str, members))
        else:
            found[owner] += zip(repeat(kind), repeat(days[day]), members)
    return found


_KIND_OWNER_DAY = itemgetter(0, 1, 2)
_LAST = itemgetter(3)


_DELETE_MEMBER = {
    "control": sa.delete(control_score_rows).where(
        control_score_rows.c.tenant_key == sa.bindparam("t"),
        control_score_rows.c.score_date == sa.bindparam("d"),
        control_score_rows.c.control_key == sa.bindparam("n"),
    ),
    "basis": sa.delete(comparative_scores).where(
        comparative_scores.c.tenant_id == sa.bindparam("t"),
        comparative_scores.c.score_date == sa.bindparam("d"),
        comparative_scores.c.basis == sa.bindparam("n"),
    ),
}


async def _delete_replaced(
    conn: AsyncConnection,
    tenant_id: str,
    tenant_key: int,
    day_keys: DayKeys,
    days: list[ScoreDay],
    stored: Sequence[Any] | None = None,
) -> None:
    """For days that arrive with a non-empty list, delete the stored members the list no longer has.

    One query reads the stored members of those days, controls and bases together (for days never
    stored it finds nothing), unless the group read them already (`stored`: (kind, day, member), on
    days the tenant may not list); only the rare leftovers are deleted. A day's list is made a set only
    when the day has stored members: a backfill's new days cost no per-control work here.
    """
    listed = {("control", d.score_date): d for d in days if d.controls}
    listed |= {("basis", d.score_date): d for d in days if d.comparatives}
    if not listed:
        return
    if stored is None:
        result = await conn.execute(
            _STORED_MEMBERS,
            {"tenant_id": tenant_id, "tenant_key": tenant_key}
            | {f"{kind}_days": [day for k, day in listed if k == kind] for kind in ("control", "basis")},
        )
        stored = result.all()
    wanted: dict[tuple[str, date], set[str]] = {}
    gone: dict[str, list[dict[str, Any]]] = {"control": [], "basis": []}
    # The rows come a day at a time (each table's key order): a run of one day is compared as a set, in C.
    for (kind, value), run in groupby(stored, _KIND_AND_DAY):
        day = as_date(value)
        assert day is not None
        members = wanted.get((kind, day))
        if members is None:
            if (kind, day) not in listed:
                continue
            members = wanted[(kind, day)] = _members(kind, listed[(kind, day)], day_keys)
        for member in sorted(set(map(_MEMBER, run)) - members):
            owner, name = (tenant_key, int(member)) if kind == "control" else (tenant_id, member)
            gone[kind].append({"t": owner, "d": day, "n": name})
    for kind, rows in gone.items():
        if rows:
            await conn.execute(_DELETE_MEMBER[kind], rows)


_KIND_AND_DAY = itemgetter(0, 1)
_MEMBER = itemgetter(2)


def _members(kind: str, day: ScoreDay, day_keys: DayKeys) -> set[str]:
    """A day's listed members as `_STORED_MEMBERS` shows them: control keys as text (in C: `map`, a day has
    230 controls), or bases."""
    if kind == "control":
        return set(map(str, map(day_keys.controls.__getitem__, map(_CONTROL_NAME, day.controls))))
    return {c.basis for c in day.comparatives}


async def save_controls(conn: AsyncConnection, days: Sequence[ScoreDay]) -> None:
    """The `controls` rows of `days` (of any tenants), upserted in one statement in control-name order; on
    PostgreSQL only those it changes (`_dimension_changes`)."""
    dimension = _control_dimension(days)
    if dimension and conn.dialect.name == "postgresql":
        dimension = await _dimension_changes(conn, dimension)
    if dimension:
        await _execute_many(conn, "controls", dimension)


def _control_dimension(days: Sequence[ScoreDay]) -> list[list[Any]]:
    """One `controls` row per control seen in the batch, sorted so concurrent writers lock in order.

    Fields as CONTROL_DIMENSION_FIELDS: the newest non-null category and description, the seen range. Every
    row is read for a few days (a nightly tenant's), only the rows that can change the answer for more (a
    backfill's): that costs passes in C over every day's names, which pay from about ten days (callgrind: 1.08
    M instructions for 2 days by every row against 1.76 M skipping; 29.7 M against 23.4 M for 90 days).
    """
    if len(days) < DIMENSION_SKIP_DAYS:
        return _dimension_of_every_row(days)
    return _dimension_of_open_rows(days)


def _dimension_of_every_row(days: Sequence[ScoreDay]) -> list[list[Any]]:
    """`_control_dimension` by reading every row, oldest day first, the later row winning."""
    rows: dict[str, list[Any]] = {}
    for day in sorted(days, key=_SCORE_DATE):
        when = day.score_date
        for c in day.controls:
            row = rows.get(c.control_name)
            if row is None:
                rows[c.control_name] = [c.control_name, c.control_category, c.description, when, when]
                continue
            row[4] = when
            if c.control_category is not None:
                row[1] = c.control_category
            if c.description is not None:
                row[2] = c.description
    return [rows[name] for name in sorted(rows)]


def _dimension_of_open_rows(days: Sequence[ScoreDay]) -> list[list[Any]]:
    """`_control_dimension` by reading only the rows that can change it. A tenant's days list nearly the same
    controls: the days are read newest first, and a row only while its control is not complete (seen, with a
    category and a description); the first-seen dates, oldest first, only on a day that lists a control not
    seen before. Which rows those are is found in C, on each day's names taken once (`issuperset`, `compress`).
    """
    ordered = sorted(days, key=_SCORE_DATE)  # stable: of equal dates, the later in `days` is the newer
    names = [tuple(map(_CONTROL_NAME, day.controls)) for day in ordered]
    rows: dict[str, list[Any]] = {}
    complete: set[str] = set()
    for day, listed in zip(reversed(ordered), reversed(names), strict=True):
        if complete.issuperset(listed):
            continue
        # within a day too, the later row is the newer; `complete` grows as the rows are read
        for c in compress(day.controls[::-1], map(not_, map(complete.__contains__, listed[::-1]))):
            row = rows.get(c.control_name)
            if row is None:
                row = rows[c.control_name] = [c.control_name, c.control_category, c.description, None, day.score_date]
            else:
                row[1] = c.control_category if row[1] is None else row[1]
                row[2] = c.description if row[2] is None else row[2]
            if row[1] is not None and row[2] is not None:
                complete.add(c.control_name)
    _first_seen(ordered, names, rows)
    return [rows[name] for name in sorted(rows)]


def _first_seen(ordered: Sequence[ScoreDay], names: Sequence[tuple[str, ...]], rows: Mapping[str, list[Any]]) -> None:
    """Set each dimension row's first-seen date (its index 3): `ordered` are days oldest first, `names` theirs."""
    seen: set[str] = set()
    for day, listed in zip(ordered, names, strict=True):
        if seen.issuperset(listed):
            continue
        for name in listed:
            if name not in seen:
                seen.add(name)
                rows[name][3] = day.score_date


_STORED_DIMENSION = sa.select(*(controls.c[name] for name in CONTROL_DIMENSION_FIELDS)).where(
    controls.c.control_name.in_(sa.bindparam("names", expanding=True))
)


async def _dimension_changes(conn: AsyncConnection, rows: list[list[Any]]) -> list[list[Any]]:
    """The `controls` rows the upsert would change: new controls, a wider seen range, a newer category or
    description. The others are left out, because PostgreSQL locks every row an ON CONFLICT DO UPDATE meets,
    changed or not: every tenant's transaction would hold the whole dimension to its commit, and the writers
    of every shard would queue behind each other on the same few hundred rows."""
    stored = {row[0]: row for row in (await conn.execute(_STORED_DIMENSION, {"names": [r[0] for r in rows]})).all()}
    return [row for row in rows if row[0] not in stored or _widens(stored[row[0]], row)]


def _widens(old: Sequence[Any], new: Sequence[Any]) -> bool:
    """Whether `_upsert_controls` would change stored row `old` with `new` (both CONTROL_DIMENSION_FIELDS)."""
    _, old_category, old_description, old_first, old_last = old
    _, category, description, first, last = new
    if first < as_date(old_first) or last > as_date(old_last):
        return True
    newer = last >= as_date(old_last)
    return any(
        value is not None and (was is None or newer) and value != was
        for value, was in ((category, old_category), (description, old_description))
    )


async def newest_score_dates(conn: AsyncConnection, tenant_ids: Sequence[str] | None = None) -> dict[str, date]:
    """The newest stored `score_date` of each tenant that has any."""
    query = sa.select(secure_scores.c.tenant_id, sa.func.max(secure_scores.c.score_date)).group_by(
        secure_scores.c.tenant_id
    )
    if tenant_ids is not None:
        query = query.where(secure_scores.c.tenant_id.in_(list(tenant_ids)))
    rows = (await conn.execute(query)).all()
    return {tenant: newest for tenant, newest in ((t, as_date(n)) for t, n in rows) if newest is not None}


async def oldest_score_dates(conn: AsyncConnection) -> dict[str, date]:
    """The oldest stored `score_date` of each tenant that has any."""
    query = sa.select(secure_scores.c.tenant_id, sa.func.min(secure_scores.c.score_date)).group_by(
        secure_scores.c.tenant_id
    )
    rows = (await conn.execute(query)).all()
    return {tenant: oldest for tenant, oldest in ((t, as_date(o)) for t, o in rows) if oldest is not None}


async def delete_days(conn: AsyncConnection, tenant_id: str, dates: Sequence[date]) -> None:
    """Remove a tenant's normalized rows for these days (children first), e.g. before a rebuild."""
    tenant_key = sa.select(tenant_keys.c.tenant_key).where(tenant_keys.c.tenant_id == tenant_id).scalar_subquery()
    rows = control_score_rows.c
    for start in range(0, len(dates), 500):
        chunk = list(dates[start : start + 500])
        await conn.execute(
            sa.delete(control_score_rows).where(rows.tenant_key == tenant_key, rows.score_date.in_(chunk))
        )
        for table in (comparative_scores, secure_scores):
            await conn.execute(sa.delete(table).where(table.c.tenant_id == tenant_id, table.c.score_date.in_(chunk)))

"""The integer keys of `control_score_rows`: tenant ids, control names and implementation statuses.

`resolve_many` gives the key of each text, inserting the missing ones (INSERT ... ON CONFLICT DO NOTHING,
then a SELECT). A key is never reused or changed once assigned, so the texts' keys are cached per engine;
but only keys whose rows are committed. On SQLite the missing texts are inserted in the caller's
transaction (one writer): a key inserted by a transaction that rolls back does not exist, and SQLite would
give its number to the next text inserted. So a key a transaction inserted is *pending* on that connection,
used by that transaction only, until its commit (a connection event) makes it known to the whole process;
a rollback forgets it. On PostgreSQL they are inserted and committed at once in a short transaction of
their own (`_fill_committed`), so that concurrent writers needing the same new text do not wait for each
other's transactions to end, and cached. A warm cache costs no statement; a group of tenants saved in one
transaction resolves its texts once: an INSERT ... ON CONFLICT DO NOTHING per kind with texts not cached,
and one SELECT of all their keys (on SQLite one a kind, the texts sent as one JSON array: `_fill_sqlite`).
Controls and statuses, few, are read whole at their first use in a process; tenants' keys come with
`save_tenants`.

The statuses' cache is bounded (`STATUS_CACHE`): cleared when full, as statuses may carry counts.

Day keys (SQLite, migration 0014) are not assigned but computed (`schema.day_key`): `ensure_days` adds the
`day_keys` rows of the days a save writes, cached, pending and forgotten the same way.
"""

from __future__ import annotations

import functools
import sqlite3
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from fetcher.store import bulk
from fetcher.store.schema import control_keys, day_key, day_keys, has_table, status_texts, tenant_keys

STATUS_CACHE = 20_000  # statuses kept per process before the cache is cleared
PENDING = "fetcher.store.keys.pending"  # conn.info: keys this connection's open transaction inserted
PROMOTED = "fetcher.store.keys.promoted"  # conn.info: keys its commit made known (undone if the commit fails)
SLICE = 1000  # texts per statement
PRELOAD = 5000  # keys of an unbounded small kind read at its first use


@dataclass(frozen=True)
class KeyTable:
    """One table of keys: its name (the kind), its text column, its key column, and its cache's bound."""

    table: sa.Table
    text: str
    key: str
    limit: int | None = None
    preload: bool = False  # few enough to read whole at first use

    @property
    def kind(self) -> str:
        return self.table.name


TENANTS = KeyTable(tenant_keys, "tenant_id", "tenant_key")
CONTROLS = KeyTable(control_keys, "control_name", "control_key", preload=True)
STATUSES = KeyTable(status_texts, "implementation_status", "status_key", STATUS_CACHE, preload=True)
KINDS = {kind.kind: kind for kind in (TENANTS, CONTROLS, STATUSES)}
DAYS = KeyTable(day_keys, "score_date", "day_key")  # computed keys: `ensure_days`, not `resolve`


@dataclass
class _Known:
    """An engine's committed keys, per kind: text -> key."""

    keys: dict[str, dict[str, int]] = field(default_factory=dict)
    limits: dict[str, int | None] = field(default_factory=dict)
    preloaded: set[str] = field(default_factory=set)

    def of(self, kind: KeyTable) -> dict[str, int]:
        self.limits[kind.kind] = kind.limit
        return self.keys.setdefault(kind.kind, {})

    def add(self, kind: str, found: dict[str, int]) -> None:
        """Cache committed keys; a bounded kind's cache is replaced by an empty one first when they would
        overfill it (replaced, not cleared: a caller still reading the old mapping, which `resolve_many` may
        return, keeps every key it was given)."""
        known = self.keys.setdefault(kind, {})
        limit = self.limits.get(kind)
        if limit is not None and len(known) + len(found) > limit:
            known = self.keys[kind] = {}
        known.update(found)


_KNOWN: weakref.WeakKeyDictionary[Engine, _Known] = weakref.WeakKeyDictionary()

Pending = dict[str, dict[str, int]]  # kind -> text -> key


def _known(engine: Engine) -> _Known:
    known = _KNOWN.get(engine)
    if known is None:
        known = _KNOWN[engine] = _Known()
        event.listen(engine, "begin", _on_begin)
        event.listen(engine, "commit", _on_commit)
        event.listen(engine, "rollback", _on_rollback)
    return known


def _on_begin(conn: Connection) -> None:
    conn.info.pop(PROMOTED, None)
    conn.info.pop(PENDING, None)  # left by a transaction that ended without either event (a lost connection)


def _on_commit(conn: Connection) -> None:
    pending: Pending | None = conn.info.pop(PENDING, None)
    if not pending:
        return
    known = _known(conn.engine)
    for kind, keys in pending.items():
        known.add(kind, keys)
    conn.info[PROMOTED] = pending


def _on_rollback(conn: Connection) -> None:
    try:
        info = conn.info
    except InvalidRequestError:
        # Invalidated (the connection was lost mid-transaction): what its transaction inserted or promoted
        # cannot be read any more, so forget every cached key, replaced rather than cleared as in `add`; the
        # next save reads them again.
        known = _known(conn.engine)
        known.keys, known.preloaded = {}, set()
        return
    info.pop(PENDING, None)
    promoted: Pending | None = info.pop(PROMOTED, None)
    if promoted:  # the commit that made them known failed: forget them again
        known = _known(conn.engine)
        for kind, keys in promoted.items():
            for text in keys:
                known.keys.get(kind, {}).pop(text, None)


async def resolve(conn: AsyncConnection, kind: KeyTable, texts: Iterable[str | None]) -> Mapping[str, int]:
    """The key of each text (None is skipped), inserting those without one, in the caller's transaction."""
    return (await resolve_many(conn, [(kind, texts)]))[0]


async def resolve_many(
    conn: AsyncConnection, wanted: Sequence[tuple[KeyTable, Iterable[str | None]]]
) -> list[Mapping[str, int]]:
    """The keys of texts of several kinds at once (None is skipped), inserting those without one, in the
    caller's transaction: no statement when every text is cached, else one read of every kind's missing
    texts, and for texts still missing an insert per kind and one read more.

    Each mapping returned holds at least its texts (it may be the cache itself: read it, never change it).
    """
    sync = conn.sync_connection
    assert sync is not None
    cache = _known(sync.engine)
    pending: Pending = sync.info.get(PENDING, {})
    found: list[Mapping[str, int]] = []
    missing: dict[KeyTable, set[str]] = {}
    for kind, texts in wanted:
        known = cache.of(kind)
        needed = set(texts)
        needed.discard(None)
        if kind.preload and kind.kind not in cache.preloaded:
            await _preload(conn, cache, kind, pending.get(kind.kind, {}))
        if needed <= known.keys():  # the usual case, in C: every text is known
            found.append(known)
            continue
        keys = known | pending.get(kind.kind, {})
        found.append(keys)
        if lacking := needed - keys.keys():
            missing[kind] = lacking  # type: ignore[assignment]
    if missing:
        await _fill(conn, missing, found=dict(zip([k for k, _ in wanted], found, strict=True)))
    return found


async def ensure_days(conn: AsyncConnection, days: Iterable[date]) -> None:
    """Add the `day_keys` rows of `days` that are not there, in the caller's transaction (SQLite; nothing on
    PostgreSQL, which has no such table): no statement when every day is cached, else one INSERT ... ON
    CONFLICT DO NOTHING of the days not cached. Call it before storing rows of those days: the views join
    it, and a row whose day has no key would not show."""
    if not has_table(day_keys, conn.dialect.name):
        return
    sync = conn.sync_connection
    assert sync is not None
    known = _known(sync.engine).of(DAYS)
    pending = sync.info.get(PENDING, {}).get(DAYS.kind, {})
    missing = {text: day for day in days if (text := day.isoformat()) not in known and text not in pending}
    if not missing:
        return
    insert = sqlite.insert(day_keys).on_conflict_do_nothing()
    await conn.execute(insert, [{"day_key": day_key(day), "score_date": day} for _, day in sorted(missing.items())])
    sync.info.setdefault(PENDING, {}).setdefault(DAYS.kind, {}).update(
        {text: day_key(day) for text, day in missing.items()}
    )


async def _fill(conn: AsyncConnection, missing: dict[KeyTable, set[str]], *, found: dict[KeyTable, Any]) -> None:
    """Insert the `missing` texts where they have no key, then read their keys into the `found` mappings
    (copies, never the cache): two statements, whether the texts were stored or not. On SQLite their keys
    stay pending until the transaction commits (some may be this transaction's own); PostgreSQL commits
    them at once (`_fill_committed`)."""
    sync = conn.sync_connection
    assert sync is not None
    if conn.dialect.name == "postgresql":
        await _fill_committed(conn.engine, missing, found=found)
        return
    for kind, texts in missing.items():
        keys = await _fill_sqlite(conn, kind, texts)
        sync.info.setdefault(PENDING, {}).setdefault(kind.kind, {}).update(keys)
        found[kind].update(keys)


async def _fill_sqlite(conn: AsyncConnection, kind: KeyTable, texts: set[str]) -> dict[str, int]:
    """SQLite: insert `texts` where they have no key and read their keys, each in one statement straight to
    the driver, the texts sent as one JSON array (`json_each`: in SQLite's core since 3.38, in the JSON1
    extension of most builds before).

    A group's new statuses (statuses carry counts: about 37 new texts a nightly tenant) cost SQLAlchemy's
    executemany of one dict a text and an expanding IN padded to a power of two: 4.0 ms of CPU for 600 texts,
    against 1.7 ms so (docs/benchmarks.md, seventh session). Inserted in sorted order, as `_insert` does."""
    table, text, key = kind.table.name, kind.text, kind.key
    array = orjson.dumps(sorted(texts)).decode()
    insert = f"INSERT INTO {table} ({text}) SELECT value FROM json_each(?) ORDER BY key ON CONFLICT ({text}) DO NOTHING"
    read = f"SELECT {text}, {key} FROM {table} WHERE {text} IN (SELECT value FROM json_each(?))"
    driver: Any = (await conn.get_raw_connection()).driver_connection
    try:
        for sql in (insert, read):
            bulk.log_statement(sql, len(texts))
            cursor = await driver.execute(sql, (array,))
        return dict(await cursor.fetchall())
    except sqlite3.Error as error:
        raise DBAPIError.instance(sql, None, error, sqlite3.Error, dialect=conn.dialect) from error


async def _fill_committed(
    engine: AsyncEngine, missing: dict[KeyTable, set[str]], *, found: dict[KeyTable, Any]
) -> None:
    """PostgreSQL: the `missing` texts inserted and their keys read in a short transaction of their own, on
    another of the engine's connections, committed before the caller's transaction goes on; their keys are
    then cached as any committed key.

    Inserted in the caller's transaction (a group of tenants, seconds long), a new text (a status with
    counts: new ones come with most tenants) made every other writer needing it wait on the unique index
    until that transaction ended: the four writers of a backfill queued behind each other (sixth session,
    docs/benchmarks.md). A key whose caller then rolls back stays assigned and unused, which PostgreSQL
    allows (an identity never gives a number twice); SQLite, one writer and numbers reused, keeps them
    pending instead. The caller's transaction must not hold these texts' rows itself (it never inserts them).
    """
    async with engine.begin() as own:
        for kind, texts in missing.items():
            await _insert(own, kind, texts)
        read = await _read(own, missing)
    known = _known(engine.sync_engine)
    for kind, keys in read.items():
        known.add(kind.kind, keys)
        found[kind].update(keys)


async def _preload(conn: AsyncConnection, cache: _Known, kind: KeyTable, pending: Mapping[str, int]) -> None:
    """Cache a small kind's keys (the newest `limit` of a bounded one) at its first use in the process: a
    run's first group then reads nothing more of it."""
    table = kind.table
    query = sa.select(table.c[kind.text], table.c[kind.key]).order_by(table.c[kind.key].desc())
    rows = (await conn.execute(query.limit(kind.limit or PRELOAD))).all()
    cache.add(kind.kind, {text: key for text, key in rows if text not in pending})
    cache.preloaded.add(kind.kind)


async def _read(conn: AsyncConnection, texts: Mapping[KeyTable, set[str]]) -> dict[KeyTable, dict[str, int]]:
    """The stored keys of `texts`, of every kind in one statement (a slice of texts at a time)."""
    kinds = list(texts)
    by_name = {kind.kind: kind for kind in kinds}
    found: dict[KeyTable, dict[str, int]] = {kind: {} for kind in kinds}
    slices = {kind: sorted(texts[kind]) for kind in kinds}
    for start in range(0, max(len(t) for t in slices.values()), SLICE):
        parts = {kind: slices[kind][start : start + SLICE] for kind in kinds if slices[kind][start : start + SLICE]}
        query = _read_statement(tuple(sorted(kind.kind for kind in parts)))
        params = {kind.kind: _padded(part) for kind, part in parts.items()}
        for name, text, key in (await conn.execute(query, params)).all():
            found[by_name[name]][text] = key
    return found


def _padded(texts: list[str]) -> list[str]:
    """`texts` with its last one repeated up to the next power of two. An expanding IN is a new statement
    for every count of texts, and the driver keeps each one prepared (sqlite3: 128 a connection), up to
    1,000 parameters long: unpadded, SQLite's memory grew to 13 MB in a 1,000-tenant backfill (2.5 before
    these keys), where a handful of lengths keep it under 5."""
    size = 1 << (len(texts) - 1).bit_length()
    return texts + texts[-1:] * (size - len(texts))


@functools.cache
def _read_statement(names: tuple[str, ...]) -> sa.CompoundSelect[Any] | sa.Select[Any]:
    """SELECT kind, text, key of the texts given for each kind named (built once per set of kinds)."""
    selects = []
    for name in names:
        kind = KINDS[name]
        table = kind.table
        selects.append(
            sa.select(
                sa.literal(name).label("kind"),
                sa.cast(table.c[kind.text], sa.Text).label("text"),
                table.c[kind.key].label("key"),
            ).where(table.c[kind.text].in_(sa.bindparam(name, expanding=True)))
        )
    return selects[0] if len(selects) == 1 else sa.union_all(*selects)


async def _insert(conn: AsyncConnection, kind: KeyTable, texts: set[str]) -> None:
    """Insert `texts` (sorted, so concurrent writers lock alike); a text another writer inserted meanwhile
    is left as it is."""
    insert: Any = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(kind.table).on_conflict_do_nothing(index_elements=[kind.text])
    ordered = sorted(texts)
    for start in range(0, len(ordered), SLICE):
        await conn.execute(stmt, [{kind.text: text} for text in ordered[start : start + SLICE]])

"""The integer keys of `control_score_rows`: tenant ids, control names and implementation statuses.

`resolve` gives the key of each text, inserting the missing ones (INSERT ... ON CONFLICT DO NOTHING, then
one SELECT), in the caller's transaction. A key is never reused or changed once assigned, so the texts'
keys are cached per engine; but only keys whose rows are committed: a key inserted by a transaction that
rolls back does not exist, and SQLite would give its number to the next text inserted. So a key a
transaction inserted is *pending* on that connection, used by that transaction only, until its commit
(a connection event) makes it known to the whole process; a rollback forgets it. A warm cache costs no
statement; a group of tenants saved in one transaction resolves its texts once, in three statements
per kind of text at most.

The statuses' cache is bounded (`STATUS_CACHE`): cleared when full, as statuses may carry counts.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection

from fetcher.store.schema import control_keys, status_texts, tenant_keys

STATUS_CACHE = 20_000  # statuses kept per process before the cache is cleared
PENDING = "fetcher.store.keys.pending"  # conn.info: keys this connection's open transaction inserted
PROMOTED = "fetcher.store.keys.promoted"  # conn.info: keys its commit made known (undone if the commit fails)
SLICE = 1000  # texts per statement


@dataclass(frozen=True)
class KeyTable:
    """One table of keys: its name (the kind), its text column, its key column, and its cache's bound."""

    table: sa.Table
    text: str
    key: str
    limit: int | None = None

    @property
    def kind(self) -> str:
        return self.table.name


TENANTS = KeyTable(tenant_keys, "tenant_id", "tenant_key")
CONTROLS = KeyTable(control_keys, "control_name", "control_key")
STATUSES = KeyTable(status_texts, "implementation_status", "status_key", STATUS_CACHE)


@dataclass
class _Known:
    """An engine's committed keys, per kind: text -> key."""

    keys: dict[str, dict[str, int]] = field(default_factory=dict)
    limits: dict[str, int | None] = field(default_factory=dict)

    def of(self, kind: KeyTable) -> dict[str, int]:
        self.limits[kind.kind] = kind.limit
        return self.keys.setdefault(kind.kind, {})

    def add(self, kind: str, found: dict[str, int]) -> None:
        """Cache committed keys; a bounded kind's cache is cleared first when they would overfill it."""
        known = self.keys.setdefault(kind, {})
        limit = self.limits.get(kind)
        if limit is not None and len(known) + len(found) > limit:
            known.clear()
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
    conn.info.pop(PENDING, None)
    promoted: Pending | None = conn.info.pop(PROMOTED, None)
    if promoted:  # the commit that made them known failed: forget them again
        known = _known(conn.engine)
        for kind, keys in promoted.items():
            for text in keys:
                known.keys.get(kind, {}).pop(text, None)


def forget(engine: Engine) -> None:
    """Drop the engine's cached keys (after the key tables were emptied under it, e.g. by a test)."""
    known = _KNOWN.get(engine)
    if known is not None:
        known.keys.clear()


async def resolve(conn: AsyncConnection, kind: KeyTable, texts: Iterable[str | None]) -> dict[str, int]:
    """The key of each text (None is skipped), inserting those without one, in the caller's transaction.

    The mapping returned holds at least those texts (it may be the cache itself: read it, never change it)."""
    sync = conn.sync_connection
    assert sync is not None
    cache = _known(sync.engine)
    known = cache.of(kind)
    pending: dict[str, int] = sync.info.get(PENDING, {}).get(kind.kind, {})
    wanted = set(texts)
    wanted.discard(None)
    if wanted <= known.keys():  # the usual case, in C: every text is known
        return known
    keys = known | pending if pending else dict(known)
    missing: set[str] = wanted - keys.keys()  # type: ignore[assignment]
    if not missing:
        return keys
    found = await _read(conn, kind, missing)
    cache.add(kind.kind, found)  # committed (this transaction's own inserts are pending, found above)
    keys |= found
    missing -= found.keys()
    if missing:
        await _insert(conn, kind, missing)
        inserted = await _read(conn, kind, missing)
        sync.info.setdefault(PENDING, {}).setdefault(kind.kind, {}).update(inserted)
        keys |= inserted
    return keys


async def _read(conn: AsyncConnection, kind: KeyTable, texts: set[str]) -> dict[str, int]:
    table = kind.table
    ordered = sorted(texts)
    found: dict[str, int] = {}
    for start in range(0, len(ordered), SLICE):
        query = sa.select(table.c[kind.text], table.c[kind.key]).where(
            table.c[kind.text].in_(ordered[start : start + SLICE])
        )
        found.update({text: key for text, key in (await conn.execute(query)).all()})
    return found


async def _insert(conn: AsyncConnection, kind: KeyTable, texts: set[str]) -> None:
    """Insert `texts` (sorted, so concurrent writers lock alike); a text another writer inserted meanwhile
    is left as it is."""
    insert: Any = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(kind.table).on_conflict_do_nothing(index_elements=[kind.text])
    ordered = sorted(texts)
    for start in range(0, len(ordered), SLICE):
        await conn.execute(stmt, [{kind.text: text} for text in ordered[start : start + SLICE]])

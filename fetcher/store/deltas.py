"""Which archived secureScores are stored as deltas, and against which base; compressing a save's objects.

A tenant's days differ little from one another, so most of an object is in its neighbours: written as a
zstd delta against a *base* (the JSON of another object of the same tenant, `fetcher.store.codec`), a day
takes a tenth of its dictionary frame. The rules, from measurement on the simulator's 230-control days
with `synced_groups` (as the storage benchmark makes them; sizes at `codec.DELTA_LEVEL`):

- **No chain longer than one.** A base is always stored whole (a dictionary frame, or zlib before the
  database has a dictionary), so reading any object takes at most two decompressions, and a damaged base
  costs only its own deltas.
- **A base within `WINDOW` days, of the same shape.** An object is a delta against the tenant's nearest
  base at most `WINDOW` days from it (before or after) whose JSON is within `SHAPE` of its size; with
  none, it becomes a base. Graph sends the newest day in full (descriptions, lastSynced: 90 kB of JSON)
  and older days thin (42 kB), so size tells the two shapes apart, and a delta across shapes does not pay:
  a full day against a thin base 8.3 kB, a thin one against a full base 2.7 kB, both more than their
  dictionary frames (3.1 and 2.2 kB); full against full 0.95 kB (1 day apart) to 1.5 kB (7 days), thin
  against thin 0.2 to 0.4 kB. A week keeps one base of each shape a week per tenant, so the daily run's two
  objects a day (today full, yesterday again thin) cost about 1.4 kB plus a seventh of two bases.
- **Never worse than a base.** A delta as large as its base's stored body (the size this object's own
  frame would have) is written as a base instead: one more compression, for the rare mismatch only.
- **By content.** A delta names its base by (tenant, day, sha256 of its JSON) in `base_date`,
  `base_sha256`, never by its bytes, so recompressing a base (`fetcher archive compact`, the pass after a
  run) leaves its deltas readable; a foreign key to raw_payloads' primary key keeps the base as long as a
  delta needs it.

When: at the save (`compress_pending`), since choosing a base needs the database. `pack(defer=True)` keeps
the object's JSON until then, instead of a body. The candidate bases of a whole group of tenants are read
in one statement (the bodies of bases within `WINDOW` days of the group's days); the objects a save makes
bases are candidates for its later ones. Nothing is cached between saves: a nightly run saves a tenant
once, and a base is read (and decompressed, 20 to 40 us) at most once a save.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableSequence, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
import zstandard
from sqlalchemy.ext.asyncio import AsyncConnection

from fetcher.store import bulk
from fetcher.store.archive import RawPayload, body_as_bytes, run_codec
from fetcher.store.codec import SECURE_SCORES, Codec, Unreadable, compress, delta_compressor
from fetcher.store.schema import as_date, raw_payloads

WINDOW = 7  # days between a delta and its base at most: a base a week of each shape
SHAPE = 1.3  # sizes of a delta's JSON and its base's within this ratio (a full day is 2.1x a thin one)


@dataclass
class Base:
    """A candidate base: a stored or just-compressed object that is not a delta."""

    score_date: date
    sha256: str
    size: int  # its JSON's bytes
    stored: int  # its body's bytes
    body: bytes | None = None  # stored in the database: read on first use
    text: bytes | None = None  # its JSON, once known
    _compressor: zstandard.ZstdCompressor | None = field(default=None, repr=False)

    def fits(self, day: date, size: int) -> bool:
        return abs((self.score_date - day).days) <= WINDOW and size <= self.size * SHAPE and self.size <= size * SHAPE

    def compressor(self, codec: Codec) -> zstandard.ZstdCompressor:
        """Its deltas' compressor; `Unreadable` when its stored body cannot be read."""
        if self._compressor is None:
            if self.text is None:
                assert self.body is not None
                self.text = codec.decompress(self.body, delta=False)
            self._compressor = delta_compressor(self.text)
        return self._compressor


def pending(payloads: Sequence[RawPayload]) -> bool:
    return any(p.text is not None for p in payloads)


async def compress_pending(conn: AsyncConnection, groups: Sequence[MutableSequence[RawPayload]]) -> None:
    """Compress, in place, each payload whose body is still to be made (`pack(defer=True)`): a delta
    against a base (see the module docstring), else a base with the run's codec. `groups`: lists of one
    tenant's payloads each (several tenants of a group commit at once); each list ends up with its bases
    before its deltas, the order the archive's foreign key needs them inserted in. Payloads compressed
    already are left as they are, so a save tried again does nothing twice."""
    todo = [group for group in groups if pending(group)]
    if not todo:
        return
    near = await stored_near(conn, [p for group in todo for p in group if p.text is not None])
    codec = run_codec()
    for group in todo:
        made = [_compressed(p, near.setdefault(p.tenant_id, Stored()), codec) for p in _by_day(group)]
        group[:] = sorted(made, key=lambda p: p.base_sha256 is not None)


def _compressed(payload: RawPayload, near: Stored, codec: Codec) -> RawPayload:
    """`compress_one`, but an object the archive held before this save is only marked `archived`: the upsert
    would keep its stored form and drop whatever body this save made (a day fetched again unchanged, a
    backfill run again, a second run the same day), so it costs no compression."""
    if payload.text is not None and (payload.score_date, payload.sha256) in near.archived:
        return payload._replace(text=None, archived=True)
    return compress_one(payload, near, codec)


def _by_day(group: Sequence[RawPayload]) -> list[RawPayload]:
    return sorted(group, key=lambda p: p.score_date)


def compress_one(payload: RawPayload, near: Stored, codec: Codec) -> RawPayload:
    """`payload` with its body: a delta against the nearest fitting base of `near`, or a base (then one of
    `near`'s, unless the archive holds the object already). A payload compressed already is returned as it is."""
    text, bases = payload.text, near.bases
    if text is None:
        return payload
    for base in sorted((b for b in bases if b.fits(payload.score_date, len(text))), key=_distance(payload)):
        try:
            body = compress(base.compressor(codec), text)
        except Unreadable:
            bases.remove(base)  # `fetcher archive compact` names it; this object does not depend on it
            continue
        if len(body) < base.stored:
            return payload._replace(body=body, text=None, base_date=base.score_date, base_sha256=base.sha256)
        break
    body = codec.compress(SECURE_SCORES, text)
    if (payload.score_date, payload.sha256) not in near.keys:
        bases.append(Base(payload.score_date, payload.sha256, len(text), len(body), text=text))
        near.keys.add((payload.score_date, payload.sha256))
    return payload._replace(body=body, text=None)


def _distance(payload: RawPayload) -> Callable[[Base], tuple[int, int]]:
    """Nearest in days first, then in size."""
    return lambda base: (abs((base.score_date - payload.score_date).days), abs(base.size - payload.size))


@dataclass
class Stored:
    """What the archive holds near a save's days, for one tenant."""

    bases: list[Base] = field(default_factory=list)
    keys: set[tuple[date, str]] = field(default_factory=set)  # (score_date, sha256) of every row, deltas too
    archived: frozenset[tuple[date, str]] = frozenset()  # `keys` as read, before this save added its own


async def stored_near(conn: AsyncConnection, payloads: Sequence[RawPayload]) -> dict[str, Stored]:
    """The rows within `WINDOW` days of `payloads`' days, by tenant, in one statement: the bases with
    their bodies, and the keys of all (an object stored already keeps its stored form, so this save makes no
    body for it and it does not become a base here)."""
    r = raw_payloads.c
    tenants = sorted({p.tenant_id for p in payloads})
    first = min(p.score_date for p in payloads) - timedelta(days=WINDOW)
    last = max(p.score_date for p in payloads) + timedelta(days=WINDOW)
    if conn.dialect.name == "sqlite":
        parameters = (orjson.dumps(tenants).decode(), first.isoformat(), last.isoformat())
        return _stored(await bulk.fetch_sqlite(conn, _STORED_NEAR_SQLITE, parameters))
    is_base = r.base_sha256.is_(None)
    query = sa.select(
        r.tenant_id,
        r.score_date,
        r.sha256,
        r.size,
        sa.func.length(r.body).label("stored"),
        sa.case((is_base, body_as_bytes(raw_payloads)), else_=sa.null()).label("body"),
    ).where(r.tenant_id.in_(tenants), r.score_date.between(first, last))
    return _stored(await conn.execute(query))


# `stored_near`'s statement on SQLite, written out for the driver (`bulk.fetch_sqlite`): one round trip.
_STORED_NEAR_SQLITE = """\
SELECT tenant_id, score_date, sha256, size, length(body),
       CASE WHEN base_sha256 IS NULL THEN CAST(body AS BLOB) END
FROM raw_payloads
WHERE tenant_id IN (SELECT value FROM json_each(?)) AND score_date BETWEEN ? AND ?"""


def _stored(rows: Iterable[Sequence[Any]]) -> dict[str, Stored]:
    """`stored_near`'s rows (tenant, day, sha256, size, stored size, a base's body or None), by tenant."""
    found: dict[str, Stored] = {}
    for tenant_id, score_date, sha256, size, stored, body in rows:
        day = as_date(score_date)
        assert day is not None
        near = found.setdefault(tenant_id, Stored())
        near.keys.add((day, sha256))
        if body is not None:
            near.bases.append(Base(day, sha256, size, stored, bytes(body)))
    for near in found.values():
        near.archived = frozenset(near.keys)
    return found

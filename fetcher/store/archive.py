"""The raw archive and the quarantine.

`raw_payloads` keeps every secureScore object as received (re-serialized compactly, compressed),
deduplicated by content hash per tenant-day: fetching an unchanged day again only moves its
`last_fetched_at`. Because the store's merge is "latest non-null wins" per field, replaying the
archive in `last_fetched_at` order rebuilds exactly what the fetches stored (`fetcher rebuild`).

Bodies are compressed by `fetcher.store.codec`: zstd with the database's dictionary for their kind
(`archive_dictionaries`), or zlib when the database had none yet; readers take both. A run compresses
with the codec `fetcher.runner` puts in `CODEC` from the database's dictionaries (zlib outside a run).

`rejected_payloads` keeps what failed validation, with the reason, capped in size, uncompressed.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import Insert

from fetcher.errors import ArchiveUnreadable
from fetcher.store import bulk
from fetcher.store.codec import SECURE_SCORES, Codec, Dictionary, Unreadable
from fetcher.store.schema import archive_dictionaries, as_date, raw_payloads, rejected_payloads

# The codec new archive bodies are written with: a run's, from its database's dictionaries; zlib outside one.
CODEC: ContextVar[Codec | None] = ContextVar("archive_codec", default=None)
_ZLIB = Codec()


class RawPayload(NamedTuple):
    """One archived object: a tenant-day's body as received and when it was last seen."""

    tenant_id: str
    score_date: date
    sha256: str
    body: bytes  # compressed JSON (`fetcher.store.codec`)
    size: int  # uncompressed bytes
    fetched_at: datetime
    run_id: str | None
    warning: str | None
    base_date: date | None = None  # a delta's base (`fetcher.store.deltas`); None for a base
    base_sha256: str | None = None
    text: bytes | None = None  # written: the JSON, when `body` is still to be made (`pack(defer=True)`)
    base_body: bytes | None = None  # read: the base's body, for a delta
    archived: bool = False  # written: the archive holds this object already (`compress_pending`): no body made

    def payload(self, codec: Codec, what: str = "secureScore") -> Any:
        """The object, read with the database's dictionaries; `ArchiveUnreadable` names tenant and day."""
        try:
            text = codec.decompress(self.body, self.base_body, delta=self.base_sha256 is not None)
            return orjson.loads(text)
        except (Unreadable, orjson.JSONDecodeError) as error:
            # A damaged frame without a checksum (zstd bodies written before they had one) can decompress to
            # bytes that are not JSON.
            why = f"not JSON once decompressed ({error})" if isinstance(error, orjson.JSONDecodeError) else error
            raise ArchiveUnreadable(
                f"tenant {self.tenant_id}: the archived {what} of {self.score_date} "
                f"(sha256 {self.sha256[:12]}) cannot be read: {why}{base_named(self.base_date, self.base_sha256)}"
            ) from None


def base_named(base_date: Any, base_sha256: str | None) -> str:
    """For a message about a delta: which base it needs ("" for a base)."""
    return "" if base_sha256 is None else f" (its base: {as_date(base_date)}, sha256 {base_sha256[:12]})"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A payload that failed validation, kept for inspection."""

    tenant_id: str
    run_id: str | None
    received_at: datetime
    reason: str
    body: bytes

    def params(self, cap: int) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "run_id": self.run_id,
            "received_at": self.received_at,
            "reason": self.reason,
            "size": len(self.body),
            "truncated": len(self.body) > cap,
            "body": self.body[:cap],
        }


def pack(
    obj: Any,
    *,
    tenant_id: str,
    score_date: date,
    fetched_at: datetime,
    run_id: str | None,
    warning: str | None,
    text: bytes | None = None,
    kind: str = SECURE_SCORES,
    defer: bool = False,
) -> RawPayload:
    """Serialize (unless `text`, its serialization, is given), hash and compress one object for the archive,
    with the run's codec (`CODEC`); with `defer`, keep the JSON instead, for the save to compress as a delta
    or a base (`fetcher.store.deltas.compress_pending`: it needs the database)."""
    text = orjson.dumps(obj) if text is None else text
    return RawPayload(
        tenant_id=tenant_id,
        score_date=score_date,
        sha256=hashlib.sha256(text).hexdigest(),
        body=b"" if defer else run_codec().compress(kind, text),
        size=len(text),
        fetched_at=fetched_at,
        run_id=run_id,
        warning=warning,
        text=text if defer else None,
    )


def run_codec() -> Codec:
    """The codec new bodies are written with (`CODEC`)."""
    return CODEC.get() or _ZLIB


def _insert(conn: AsyncConnection) -> Any:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _upsert_raw(conn: AsyncConnection) -> Insert:
    stmt = _insert(conn)(raw_payloads)
    return stmt.on_conflict_do_update(  # type: ignore[no-any-return]
        index_elements=["tenant_id", "score_date", "sha256"],
        set_={
            "last_fetched_at": stmt.excluded.last_fetched_at,
            "run_id": stmt.excluded.run_id,
            "warning": stmt.excluded.warning,
        },
    )


async def save_raw_payloads(conn: AsyncConnection, payloads: Sequence[RawPayload]) -> None:
    """Archive objects (compressed: none `pending`); an object already archived for its tenant-day only gets
    its time updated: by the upsert's conflict, or, for one `compress_pending` found `archived` (and so made
    no body for), by `_TOUCH_RAW`, which updates the same three columns and writes no row that is not there."""
    if any(p.text is not None for p in payloads):
        raise ValueError("raw_payloads: an object's body is not compressed yet (fetcher.store.deltas)")
    archive = bulk.compiled(
        conn, "raw_payloads", _upsert_raw, RawPayload._fields, aliases={"last_fetched_at": "fetched_at"}
    )
    await bulk.execute_many(conn, archive, [p for p in payloads if not p.archived])
    seen = [p for p in payloads if p.archived]
    if seen:
        await conn.execute(_TOUCH_RAW, [_touched(p) for p in seen])


# An object archived already, fetched again: what the upsert's conflict would update, and nothing else.
_TOUCH_RAW = (
    sa.update(raw_payloads)
    .where(
        raw_payloads.c.tenant_id == sa.bindparam("k_tenant_id"),
        raw_payloads.c.score_date == sa.bindparam("k_score_date"),
        raw_payloads.c.sha256 == sa.bindparam("k_sha256"),
    )
    .values(
        last_fetched_at=sa.bindparam("k_fetched_at"),
        run_id=sa.bindparam("k_run_id"),
        warning=sa.bindparam("k_warning"),
    )
)


def _touched(payload: RawPayload) -> dict[str, Any]:
    return {
        "k_tenant_id": payload.tenant_id,
        "k_score_date": payload.score_date,
        "k_sha256": payload.sha256,
        "k_fetched_at": payload.fetched_at,
        "k_run_id": payload.run_id,
        "k_warning": payload.warning,
    }


async def save_rejections(conn: AsyncConnection, rejections: Sequence[Rejection], *, cap: int) -> None:
    if rejections:
        await conn.execute(sa.insert(rejected_payloads), [r.params(cap) for r in rejections])


def body_as_bytes(table: sa.Table) -> sa.ColumnElement[bytes]:
    """A table's `body`, read as bytes whatever its stored type: SQLite's columns are typeless, and a body
    written as TEXT (by another tool) would otherwise fail to decode as UTF-8, with no tenant or day named."""
    return sa.cast(table.c.body, sa.LargeBinary).label("body")


def archive_columns(table: sa.Table) -> list[sa.ColumnElement[Any]]:
    """Every column of an archive table, `body` read with `body_as_bytes`."""
    return [body_as_bytes(table) if c.name == "body" else c for c in table.c]


async def archived_tenants(conn: AsyncConnection) -> list[str]:
    rows = await conn.scalars(sa.select(raw_payloads.c.tenant_id).distinct().order_by(raw_payloads.c.tenant_id))
    return list(rows.all())


BASE = raw_payloads.alias("base")


def with_base(query: sa.Select[Any]) -> sa.Select[Any]:
    """`query` over raw_payloads, joined to each delta's base, whose body it adds as `base_body` (NULL for a
    base, or for a delta whose base is missing, which the foreign key forbids)."""
    r = raw_payloads.c
    on = sa.and_(BASE.c.tenant_id == r.tenant_id, BASE.c.score_date == r.base_date, BASE.c.sha256 == r.base_sha256)
    return query.add_columns(sa.cast(BASE.c.body, sa.LargeBinary).label("base_body")).outerjoin_from(
        raw_payloads, BASE, on
    )


async def iter_raw_payloads(conn: AsyncConnection, tenant_id: str) -> AsyncIterator[RawPayload]:
    """A tenant's archive in the order the fetches last saw each object, each delta with its base's body."""
    r = raw_payloads.c
    query = with_base(
        sa.select(*archive_columns(raw_payloads))
        .where(r.tenant_id == tenant_id)
        .order_by(r.last_fetched_at, r.score_date, r.sha256)
    )
    result = await conn.stream(query)
    async for row in result:
        day = as_date(row.score_date)
        assert day is not None
        yield RawPayload(
            row.tenant_id,
            day,
            row.sha256,
            row.body,
            row.size,
            row.last_fetched_at,
            row.run_id,
            row.warning,
            as_date(row.base_date),
            row.base_sha256,
            None,
            None if row.base_body is None else bytes(row.base_body),
        )


async def archived_days(conn: AsyncConnection, tenant_id: str) -> list[date]:
    rows = await conn.scalars(
        sa.select(raw_payloads.c.score_date).where(raw_payloads.c.tenant_id == tenant_id).distinct()
    )
    return sorted(d for d in (as_date(v) for v in rows.all()) if d is not None)


# ------------------------------------------------------------------------------------------- dictionaries


def dictionary_of(row: Any) -> Dictionary:
    return Dictionary(row.dict_id, row.kind, row.created_at, row.samples, bytes(row.dictionary), row.recompressed_at)


async def read_dictionaries(conn: AsyncConnection) -> list[Dictionary]:
    rows = await conn.execute(sa.select(archive_dictionaries).order_by(archive_dictionaries.c.created_at))
    return [dictionary_of(row) for row in rows]


async def read_codec(engine: AsyncEngine) -> Codec:
    """The codec of the database's dictionaries: what a run writes new bodies with."""
    async with engine.connect() as conn:
        return Codec(await read_dictionaries(conn))


async def codec_for(conn: AsyncConnection) -> Codec:
    """The codec of the database's dictionaries, in the caller's transaction: what reads the archive."""
    return Codec(await read_dictionaries(conn))

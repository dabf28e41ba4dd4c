"""The raw archive's dictionaries: when one is trained, where it is kept, and rewriting zlib bodies with it.

A database starts without a dictionary, so a run writes its archive bodies as zlib (`fetcher.store.codec`).
After a `run` or `backfill` (`compact_after_run`; a run stopped by a signal leaves it to the next, see
`RunArchive.finish`), and by `fetcher archive compact`:

1. a kind without a dictionary whose archive holds `TRAIN_AFTER` objects gets one, trained on up to
   `MAX_SAMPLES` of them and stored in `archive_dictionaries`. Shards that train at once each insert theirs;
   the table's unique `kind` keeps the first, and every trainer reads back and uses that one;
2. the kind's zlib bodies are rewritten with it, in primary-key order, a batch a transaction. A body is
   either zlib or zstd, so a pass stopped anywhere resumes by itself: the next one skips what is done.
   After a run at most `AFTER_RUN_LIMIT` bodies are rewritten (about 5 s); `fetcher archive compact` has
   no bound. A pass that reaches the end sets the dictionary's `recompressed_at`, so later runs (which
   write zstd from their start) skip the scan; a run that wrote zlib bodies (it started before the
   dictionary existed) clears it and scans again.

`fetcher archive compact` then rewrites the whole secureScore bodies a database archived before migration
0013 holds as deltas, by the writer's rule (`rewrite_as_deltas`), and it decodes every zstd body (`verify`),
so that any body that cannot be read is named; and no dictionary is trained for a kind whose bodies name one
`archive_dictionaries` lacks (it would take the kind's place, and the lost one could not be restored from a
backup).

Retraining when the objects drift from the dictionary is not done: the dictionary of a kind is kept for
the life of the database (bodies name it, so it can never be dropped while one does).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
import zstandard
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from fetcher.errors import ArchiveUnreadable, FetcherError
from fetcher.heap import release_freed_memory
from fetcher.store.archive import (
    RawPayload,
    base_named,
    body_as_bytes,
    dictionary_of,
    read_codec,
    with_base,
)
from fetcher.store.codec import (
    CONTROL_PROFILES,
    MAX_SAMPLE_BYTES,
    MAX_SAMPLES,
    SECURE_SCORES,
    TRAIN_AFTER,
    Codec,
    Dictionary,
    MissingDictionary,
    Unreadable,
    is_zstd,
    train,
)
from fetcher.store.deltas import WINDOW, Base, Stored, compress_one
from fetcher.store.save import in_transaction
from fetcher.store.schema import archive_dictionaries, as_date, raw_control_profiles, raw_payloads

log = logging.getLogger(__name__)

BATCH = 500  # bodies read (and those that are zlib rewritten) a transaction
AFTER_RUN_LIMIT = 20_000  # bodies rewritten after a run: about 5 s (0.25 ms each: zlib out, zstd in)

Progress = Callable[[int], None]  # told how many more bodies were scanned


def _ignore(scanned: int) -> None:
    pass


@dataclass(frozen=True)
class Archive:
    """An archive table and the kind of object it keeps."""

    kind: str
    table: sa.Table
    what: str  # in messages

    @property
    def key(self) -> list[sa.Column[Any]]:
        return list(self.table.primary_key.columns)

    @property
    def deltas(self) -> bool:
        """Whether the table holds deltas (`fetcher.store.deltas`): raw_payloads does."""
        return "base_sha256" in self.table.c

    def rows(self, *columns: sa.ColumnElement[Any]) -> sa.Select[Any]:
        """`columns` and the body of each row, with its base's (`base_body`) where the table holds deltas."""
        query = sa.select(*columns, body_as_bytes(self.table))
        if not self.deltas:
            return query
        return with_base(query.add_columns(self.table.c.base_date, self.table.c.base_sha256))


ARCHIVES = (
    Archive(SECURE_SCORES, raw_payloads, "secureScore"),
    Archive(CONTROL_PROFILES, raw_control_profiles, "control profile"),
)


@dataclass
class Compacted:
    """What one pass did to one kind's archive."""

    kind: str
    dictionary: Dictionary | None = None
    trained: bool = False  # the dictionary was trained by this pass
    scanned: int = 0
    recompressed: int = 0
    bytes_before: int = 0  # of the bodies rewritten
    bytes_after: int = 0
    stored_bytes: int = 0  # of the bodies scanned, as they are after the pass (the archive's, when all were)
    complete: bool = False  # no zlib body of the kind was left when the pass ended
    errors: list[str] = field(default_factory=list)  # the bodies that cannot be read, each naming tenant and day
    missing: set[int] = field(default_factory=set)  # ids of dictionaries that bodies name and the database lacks


# ------------------------------------------------------------------------------------------- dictionaries


async def _stored(conn: AsyncConnection, kind: str) -> Dictionary | None:
    row = (await conn.execute(sa.select(archive_dictionaries).where(archive_dictionaries.c.kind == kind))).first()
    return None if row is None else dictionary_of(row)


async def store_dictionary(engine: AsyncEngine, dictionary: Dictionary) -> Dictionary:
    """Keep `dictionary` unless its kind has one already; the kind's dictionary (the first stored) either way."""
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    async def work(conn: AsyncConnection) -> Dictionary:
        await conn.execute(
            insert(archive_dictionaries)
            .values(
                dict_id=dictionary.dict_id,
                kind=dictionary.kind,
                created_at=dictionary.created_at,
                samples=dictionary.samples,
                size=dictionary.size,
                dictionary=dictionary.data,
            )
            .on_conflict_do_nothing()
        )
        return await _stored(conn, dictionary.kind) or dictionary

    return await in_transaction(engine, work, f"storing the {dictionary.kind} archive dictionary")


async def _samples(
    conn: AsyncConnection, archive: Archive, want: int, budget: int
) -> tuple[list[bytes], int, set[int]]:
    """The JSON of objects to train on: of the first `want` objects, up to `budget` bytes, every third
    one first (so a budget reached early still spans all of them, not the first tenants alone); how many of
    the `want` could be read; and the ids of the dictionaries bodies among them were compressed with that
    the database does not hold. A body that cannot be read is left out (the pass that follows names it)."""
    rows = (await conn.execute(archive.rows().limit(want))).all()
    codec, texts, missing, readable, size = Codec(), [], set(), 0, 0
    for row in [*rows[0::3], *rows[1::3], *rows[2::3]]:
        try:
            text = read_row(codec, row)
        except MissingDictionary as error:
            missing.add(error.dict_id)
            continue
        except Unreadable:
            continue
        readable += 1
        if size + len(text) <= budget:
            texts.append(text)
            size += len(text)
    return texts, readable, missing


async def ensure_dictionary(
    engine: AsyncEngine,
    archive: Archive,
    now: datetime,
    *,
    samples: int = MAX_SAMPLES,
    sample_bytes: int = MAX_SAMPLE_BYTES,
) -> tuple[Dictionary | None, bool]:
    """The kind's dictionary, trained now if it has none and its archive holds `TRAIN_AFTER` objects (on at
    most `sample_bytes` of their JSON: zstd copies what it is given, so training holds twice that); and
    whether it was trained here. The memory freed after training is handed back to the system."""
    async with engine.connect() as conn:
        stored = await _stored(conn, archive.kind)
        if stored is not None:
            return stored, False
        texts, readable, missing = await _samples(conn, archive, samples, sample_bytes)
    if missing:
        # Its bodies name a dictionary that is gone: one trained now would take the kind's place
        # (`kind` is unique) and keep the lost one from being restored. The pass that follows names them.
        return None, False
    if readable < TRAIN_AFTER:
        return None, False
    try:
        trained = await asyncio.to_thread(train, archive.kind, texts, now)
    except zstandard.ZstdError as error:
        log.warning("archive: no %s dictionary trained on %d objects: %s", archive.kind, len(texts), error)
        return None, False
    finally:
        del texts
        release_freed_memory()
    kept = await store_dictionary(engine, trained)
    return kept, kept.dict_id == trained.dict_id


async def _set_complete(engine: AsyncEngine, kind: str, at: datetime | None) -> None:
    async def work(conn: AsyncConnection) -> None:
        await conn.execute(
            sa.update(archive_dictionaries).where(archive_dictionaries.c.kind == kind).values(recompressed_at=at)
        )

    await in_transaction(engine, work, f"marking the {kind} archive")


# ---------------------------------------------------------------------------------------------- rewrite


def _rewrite(
    archive: Archive, codec: Codec, rows: Sequence[Any], done: Compacted, *, verify: bool
) -> list[dict[str, Any]]:
    """The new bodies of a batch's zlib rows (each zstd one decoded too when `verify`); an unreadable body
    is kept as it is and named in `done.errors`."""
    changes = []
    for row in rows:
        body = bytes(row.body)
        done.stored_bytes += len(body)
        rewrite = not is_zstd(body) and codec.active(archive.kind)
        if not (rewrite or verify):
            continue
        try:
            text = read_row(codec, row)
        except Unreadable as error:
            if isinstance(error, MissingDictionary):
                done.missing.add(error.dict_id)
            done.errors.append(_unreadable(archive, row, error))
            continue
        if rewrite:
            new = codec.compress(archive.kind, text)
            changes.append({**{f"k_{c.name}": getattr(row, c.name) for c in archive.key}, "new_body": new})
            done.bytes_before, done.bytes_after = done.bytes_before + len(body), done.bytes_after + len(new)
            done.stored_bytes += len(new) - len(body)
    return changes


def read_row(codec: Codec, row: Any) -> bytes:
    """The JSON of a row of `Archive.rows`: a delta (its row names a base) is read with its base's body."""
    base = getattr(row, "base_body", None)
    delta = getattr(row, "base_sha256", None) is not None
    return codec.decompress(bytes(row.body), None if base is None else bytes(base), delta=delta)


def _unreadable(archive: Archive, row: Any, error: Unreadable) -> str:
    """A row that cannot be read, named: tenant, day (or sha256), and a delta's base."""
    day = f" of {row.score_date}" if "score_date" in row._fields else f" (sha256 {row.sha256[:12]})"
    base = base_named(row.base_date, row.base_sha256) if "base_sha256" in row._fields else ""
    return f"tenant {row.tenant_id}: the archived {archive.what}{day} cannot be read: {error}{base}"


async def _batch(
    engine: AsyncEngine, archive: Archive, codec: Codec, after: Any, done: Compacted, *, verify: bool
) -> Any:
    """One transaction: the next `BATCH` rows after the key `after`, their zlib bodies rewritten; the last key."""
    key, table = archive.key, archive.table
    query = archive.rows(*key).order_by(*key).limit(BATCH)
    if after is not None:
        query = query.where(sa.tuple_(*key) > sa.tuple_(*after))
    update = (
        sa.update(table)
        .where(*(c == sa.bindparam(f"k_{c.name}") for c in key))
        .values(body=sa.bindparam("new_body", type_=sa.LargeBinary))
    )

    async def work(conn: AsyncConnection) -> Any:
        rows = (await conn.execute(query)).all()
        changes = _rewrite(archive, codec, rows, done, verify=verify)
        if changes:
            await conn.execute(update, changes)
        done.scanned += len(rows)
        done.recompressed += len(changes)
        return tuple(getattr(rows[-1], c.name) for c in key) if len(rows) == BATCH else None

    return await in_transaction(engine, work, f"recompressing the {archive.kind} archive")


async def recompress(
    engine: AsyncEngine,
    archive: Archive,
    codec: Codec,
    done: Compacted,
    *,
    limit: int | None,
    progress: Progress,
    verify: bool = False,
) -> None:
    """Rewrite the archive's zlib bodies with the kind's dictionary, a batch a transaction, up to `limit`;
    with `verify`, decode its zstd bodies too, so that every body that cannot be read is named."""
    after: Any = None
    while limit is None or done.recompressed < limit:
        scanned = done.scanned
        after = await _batch(engine, archive, codec, after, done, verify=verify)
        progress(done.scanned - scanned)
        if after is None:
            done.complete = not done.errors
            return


# ------------------------------------------------------------------------------------------------ deltas


@dataclass
class Rebased:
    """What `rewrite_as_deltas` did to raw_payloads' whole bodies."""

    scanned: int = 0
    rewritten: int = 0  # whole bodies now deltas
    bytes_before: int = 0  # of the bodies rewritten
    bytes_after: int = 0


async def rewrite_as_deltas(engine: AsyncEngine, *, progress: Progress | None = None) -> Rebased:
    """Rewrite raw_payloads' whole bodies as deltas where the writer would have made them deltas (`fetcher
    archive compact` on a database archived before migration 0013), a batch of `BATCH` rows a transaction in
    primary-key order (a tenant's days in order). The base of each is chosen by the writer's rule
    (`fetcher.store.deltas.compress_one`) among the bases it can rely on: the whole bodies before it (decided by
    this pass, or a pass before) and those that deltas name already; a body a delta names, a delta, and one that
    cannot be read (the verifying pass names it) stay as they are. Each delta is decoded back against its
    base's stored body and must give the JSON it replaces, or the batch is rolled back (`ArchiveUnreadable`).

    Resumable: what is before a row decides its base, so a pass stopped anywhere and run again makes the same
    choices for the rows left. Not to run beside a writer (`fetcher archive compact` holds the run lock): a
    body rewritten as a delta could be chosen as a base meanwhile. `progress` is told after each commit."""
    done, after = Rebased(), None
    codec = await read_codec(engine)
    while True:
        scanned = done.scanned
        after = await _rebase_batch(engine, codec, after, done)
        (progress or _ignore)(done.scanned - scanned)
        if after is None:
            return done


async def _rebase_batch(engine: AsyncEngine, codec: Codec, after: Any, done: Rebased) -> Any:
    """One transaction of `rewrite_as_deltas`: the next `BATCH` rows after the key `after`; the last key."""
    r = raw_payloads.c
    key = [r.tenant_id, r.score_date, r.sha256]
    query = sa.select(*key).order_by(*key).limit(BATCH)
    if after is not None:
        query = query.where(sa.tuple_(*key) > sa.tuple_(*after))

    async def work(conn: AsyncConnection) -> Any:
        batch = (await conn.execute(query)).all()
        if not batch:
            return None
        changes = []
        for tenant, rows in (await _around(conn, batch)).items():
            mine = [_key(b) for b in batch if b.tenant_id == tenant]
            changes += _rebase_tenant(codec, tenant, rows, mine, done)
        if changes:
            await conn.execute(_TO_DELTA, changes)
        done.scanned += len(batch)
        done.rewritten += len(changes)
        return tuple(getattr(batch[-1], c.name) for c in key) if len(batch) == BATCH else None

    return await in_transaction(engine, work, "rewriting the secureScores archive as deltas")


def _key(row: Any) -> tuple[date, str]:
    """A raw_payloads row's (score_date, sha256)."""
    day = as_date(row.score_date)
    assert day is not None
    return day, row.sha256


_TO_DELTA = (
    sa.update(raw_payloads)
    .where(
        raw_payloads.c.tenant_id == sa.bindparam("k_tenant_id"),
        raw_payloads.c.score_date == sa.bindparam("k_score_date"),
        raw_payloads.c.sha256 == sa.bindparam("k_sha256"),
        raw_payloads.c.base_sha256.is_(None),
    )
    .values(
        body=sa.bindparam("new_body", type_=sa.LargeBinary),
        base_date=sa.bindparam("new_base_date"),
        base_sha256=sa.bindparam("new_base_sha256"),
    )
)


async def _around(conn: AsyncConnection, batch: Sequence[Any]) -> dict[str, list[Any]]:
    """The rows of the batch's tenants within `WINDOW` days of its days, by tenant, in key order: each with
    its body when it is whole, and a delta's base."""
    r = raw_payloads.c
    days = [as_date(b.score_date) for b in batch]
    first = min(d for d in days if d is not None) - timedelta(days=WINDOW)
    last = max(d for d in days if d is not None) + timedelta(days=WINDOW)
    whole = r.base_sha256.is_(None)
    query = (
        sa.select(
            r.tenant_id,
            r.score_date,
            r.sha256,
            r.size,
            r.base_date,
            r.base_sha256,
            sa.case((whole, body_as_bytes(raw_payloads)), else_=sa.null()).label("body"),
        )
        .where(r.tenant_id.in_(sorted({b.tenant_id for b in batch})), r.score_date.between(first, last))
        .order_by(r.tenant_id, r.score_date, r.sha256)
    )
    found: dict[str, list[Any]] = {}
    for row in await conn.execute(query):
        found.setdefault(row.tenant_id, []).append(row)
    return found


def _rebase_tenant(
    codec: Codec, tenant: str, rows: Sequence[Any], mine: Sequence[tuple[date, str]], done: Rebased
) -> list[dict[str, Any]]:
    """The deltas one tenant's rows of a batch (`mine`, in key order) become; `rows`: the tenant's rows
    around them (`_around`). The candidate bases: the whole rows before the batch's first, and those a delta
    names; each row of the batch that stays whole joins them, as in a save (`compress_one`). A base is never
    made a delta: a row a delta names is skipped, and one chosen here is named once the batch commits."""
    named = {(as_date(row.base_date), row.base_sha256) for row in rows if row.base_sha256 is not None}
    batch = set(mine)
    by_key = {_key(row): row for row in rows}
    near = Stored()
    for k, row in by_key.items():
        if row.body is not None and (k in named or (k < mine[0] and k not in batch)):
            near.bases.append(Base(k[0], row.sha256, row.size, len(row.body), bytes(row.body)))
            near.keys.add(k)
    changes = []
    for k in mine:
        row = by_key.get(k)
        if row is None or row.body is None or k in named:
            continue  # a delta, or a base a delta names
        change = _as_delta(codec, tenant, row, near, by_key)
        if change is not None:
            changes.append(change)
            done.bytes_before += len(row.body)
            done.bytes_after += len(change["new_body"])
    return changes


def _as_delta(
    codec: Codec, tenant: str, row: Any, near: Stored, by_key: dict[tuple[date, str], Any]
) -> dict[str, Any] | None:
    """`row`'s change into a delta (its parameters for `_TO_DELTA`), or None when it stays whole (then one
    of `near`'s bases) or cannot be read. The delta is decoded back against its base's stored body first."""
    body = bytes(row.body)
    try:
        text = codec.decompress(body, delta=False)  # its row names no base
    except Unreadable:
        return None  # `verify` names it; nothing is chosen against it
    day, _ = _key(row)
    pending = RawPayload(tenant, day, row.sha256, b"", len(text), _EPOCH, None, None, text=text)
    made = compress_one(pending, near, codec)
    if made.base_sha256 is None or made.base_date is None:
        return None
    base = by_key[(made.base_date, made.base_sha256)]
    try:
        same = codec.decompress(made.body, bytes(base.body), delta=True) == text
    except Unreadable as error:
        same, why = False, f": {error}"
    else:
        why = ""
    if not same:
        raise ArchiveUnreadable(
            f"tenant {tenant}: the archived secureScore of {day} (sha256 {row.sha256[:12]}), made a delta, did not "
            f"read back as its JSON{why}{base_named(made.base_date, made.base_sha256)}; its batch was not written"
        )
    return {
        "k_tenant_id": tenant,
        "k_score_date": row.score_date,
        "k_sha256": row.sha256,
        "new_body": made.body,
        "new_base_date": made.base_date,
        "new_base_sha256": made.base_sha256,
    }


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # a payload's fetched_at, unused by `compress_one`


async def body_bytes(engine: AsyncEngine, archive: Archive) -> int:
    """The bytes of the archive's bodies, all rows (the table's pages and indexes aside)."""
    async with engine.connect() as conn:
        query = sa.select(sa.func.coalesce(sa.func.sum(sa.func.length(archive.table.c.body)), 0))
        return int(await conn.scalar(query) or 0)


async def count_bodies(engine: AsyncEngine, archive: Archive) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(archive.table)) or 0)


async def compact(
    engine: AsyncEngine,
    archive: Archive,
    now: datetime,
    *,
    limit: int | None = None,
    wrote_zlib: bool = True,
    progress: Progress | None = None,
    verify: bool = False,
) -> Compacted:
    """Train the kind's dictionary if it is due, then rewrite its zlib bodies (see the module docstring).
    `verify` (`fetcher archive compact`): every body is decoded, zstd ones too (under 20 us each), and
    those that cannot be read are named, with or without a dictionary."""
    dictionary, trained = await ensure_dictionary(engine, archive, now)
    done = Compacted(archive.kind, dictionary, trained)
    if dictionary is None:
        if verify:
            await recompress(
                engine, archive, await read_codec(engine), done, limit=None, progress=progress or _ignore, verify=True
            )
            done.complete = False
        return done
    if wrote_zlib:
        await _set_complete(engine, archive.kind, None)
    elif dictionary.recompressed_at is not None:
        done.complete = True
        return done
    codec = await read_codec(engine) if verify else Codec([dictionary])
    await recompress(engine, archive, codec, done, limit=limit, progress=progress or _ignore, verify=verify)
    if done.complete:
        await _set_complete(engine, archive.kind, now)
    return done


async def compact_after_run(engine: AsyncEngine, kept: Collection[str], now: datetime) -> list[Compacted]:
    """After a run or backfill: each kind's dictionary if due, and up to `AFTER_RUN_LIMIT` bodies rewritten.
    `kept`: the kinds the run wrote with a dictionary from its start (the others it wrote, in part, as zlib)."""
    results = []
    for archive in ARCHIVES:
        done = await compact(engine, archive, now, limit=AFTER_RUN_LIMIT, wrote_zlib=archive.kind not in kept)
        results.append(done)
        _log(done)
    return results


class RunArchive:
    """A run's archive compression: the codec its bodies are written with, a dictionary trained as soon
    as the archive holds `TRAIN_AFTER` objects (so that a first backfill writes most of its bodies with it,
    not zlib to be rewritten), and the bounded pass after the run."""

    def __init__(self, engine: AsyncEngine, codec: Codec, *, train: bool) -> None:
        self.engine = engine
        self.codec = codec
        self.kept = frozenset(a.kind for a in ARCHIVES if codec.active(a.kind))  # from the run's start
        self._train = train and len(self.kept) < len(ARCHIVES)
        self._training: asyncio.Task[None] | None = None

    def saved(self, score_days: int) -> None:
        """A tenant is saved, `score_days` so far in the run: train once they reach `TRAIN_AFTER`."""
        if self._train and self._training is None and score_days >= TRAIN_AFTER:
            self._training = asyncio.get_running_loop().create_task(self._dictionaries())

    async def _dictionaries(self) -> None:
        for archive in ARCHIVES:
            if self.codec.active(archive.kind):
                continue
            try:
                dictionary, trained = await ensure_dictionary(self.engine, archive, now=_utcnow())
            except (FetcherError, DBAPIError) as error:
                log.warning("archive: no %s dictionary trained during the run: %s", archive.kind, error)
                continue
            if dictionary is not None:
                self.codec.add(dictionary)
                _log(Compacted(archive.kind, dictionary, trained))

    async def finish(self, *, compact: bool, stopped: bool = False) -> list[Compacted]:
        """The training under way, if any, then (when `compact`) the bounded pass over the zlib bodies.

        A run `stopped` by a signal does no pass: it should end promptly, and the pass can take seconds. It
        only marks each kind it may have written as zlib (one UPDATE), so that the next run's pass, or
        `fetcher archive compact`, scans for them, even if another shard completed a pass meanwhile (its
        `recompressed_at` would otherwise let the next run, which writes zstd from its start, skip the scan)."""
        if self._training is not None:
            await self._training
        if not compact:
            return []
        if stopped:
            for archive in ARCHIVES:
                if archive.kind not in self.kept:
                    await _set_complete(self.engine, archive.kind, None)
            return []
        return await compact_after_run(self.engine, self.kept, _utcnow())


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _log(done: Compacted) -> None:
    if done.trained and done.dictionary is not None:
        log.info(
            "archive: trained a %d-byte zstd dictionary (id %d) for %s on %d objects",
            done.dictionary.size,
            done.dictionary.dict_id,
            done.kind,
            done.dictionary.samples,
        )
    if done.recompressed:
        log.info(
            "archive: %d %s bodies recompressed with the dictionary, %d bytes -> %d%s",
            done.recompressed,
            done.kind,
            done.bytes_before,
            done.bytes_after,
            "" if done.complete else "; more are left for the next run (or `fetcher archive compact`)",
        )
    for error in done.errors:
        log.warning("archive: %s", error)


def unreadable(done: Compacted) -> ArchiveUnreadable | None:
    """The first body a pass could not read, as an error for the CLI."""
    if not done.errors:
        return None
    more = f" (and {len(done.errors) - 1} more)" if len(done.errors) > 1 else ""
    return ArchiveUnreadable(done.errors[0] + more)

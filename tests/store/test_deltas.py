"""Archived secureScores as deltas against a base of the same tenant, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
import zstandard
from sqlalchemy.ext.asyncio import AsyncEngine

from fetcher.errors import ArchiveUnreadable
from fetcher.store import codec as codec_module
from fetcher.store import deltas as deltas_module
from fetcher.store.archive import CODEC, RawPayload, codec_for, iter_raw_payloads, pack, save_raw_payloads
from fetcher.store.codec import Codec, delta_compressor, is_delta, train
from fetcher.store.compaction import ARCHIVES, compact, store_dictionary
from fetcher.store.deltas import WINDOW, compress_pending
from fetcher.store.engine import transaction
from fetcher.store.schema import raw_payloads
from tests.dbutil import rows
from tests.payloads import OTHER_TENANT, TENANT, many_controls_day
from tests.store.test_keys import statements
from tests.store.test_scores import driver_reads

NOW = datetime(2026, 11, 27, 6, tzinfo=UTC)
NEWEST = NOW.date()


def day(n: int, tenant: str = TENANT, *, full: bool = False) -> dict[str, Any]:
    """The tenant's object of `n` days before NEWEST: thin, or full (descriptions: twice the size)."""
    return many_controls_day(40, tenant, NEWEST - timedelta(days=n), newest=full)


def deferred(obj: dict[str, Any]) -> RawPayload:
    return pack(
        obj,
        tenant_id=str(obj["azureTenantId"]),
        score_date=datetime.fromisoformat(str(obj["createdDateTime"])).date(),
        fetched_at=NOW,
        run_id=None,
        warning=None,
        defer=True,
    )


async def save(engine: AsyncEngine, *groups: Sequence[dict[str, Any]], codec: Codec | None = None) -> None:
    """Archive each group (one tenant's objects) as a group commit does: compressed together, then saved."""
    payloads = [[deferred(o) for o in group] for group in groups]
    token = CODEC.set(codec)
    try:
        async with transaction(engine) as conn:
            await compress_pending(conn, payloads)
            for group in payloads:
                await save_raw_payloads(conn, group)
    finally:
        CODEC.reset(token)


async def layout(engine: AsyncEngine, tenant: str = TENANT) -> dict[date, date | None]:
    """Each archived day of the tenant -> the day of its base (None: a base). One object a day here."""
    return {
        as_day(r["score_date"]): None if r["base_date"] is None else as_day(r["base_date"])
        for r in await rows(engine, raw_payloads)
        if r["tenant_id"] == tenant
    }


def as_day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def ago(n: int) -> date:
    return NEWEST - timedelta(days=n)


async def replayed(engine: AsyncEngine, tenant: str = TENANT) -> dict[date, Any]:
    async with transaction(engine) as conn:
        codec = await codec_for(conn)
        return {raw.score_date: raw.payload(codec) async for raw in iter_raw_payloads(conn, tenant)}


async def test_a_tenants_days_are_bases_a_window_apart_and_deltas_against_them(engine: AsyncEngine) -> None:
    """The oldest day is a base; each later day within `WINDOW` days of it is a delta against it; then the
    next base. No delta's base is a delta."""
    await save(engine, [day(n) for n in range(19, -1, -1)])

    stored = await layout(engine)

    first, second = ago(19), ago(19 - WINDOW - 1)
    third = second + timedelta(days=WINDOW + 1)
    assert [d for d, base in sorted(stored.items()) if base is None] == [first, second, third]
    assert all(base is None or stored[base] is None for base in stored.values())
    assert all(base is None or abs((d - base).days) <= WINDOW for d, base in stored.items())


async def test_every_object_reads_back_as_received(engine: AsyncEngine) -> None:
    objects = [day(n) for n in range(10)] + [day(0, full=True) | {"createdDateTime": f"{ago(10)}T00:00:00Z"}]
    await save(engine, objects)

    back = await replayed(engine)

    assert sorted(back.values(), key=orjson.dumps) == sorted(objects, key=orjson.dumps)


async def test_a_full_day_is_a_delta_against_a_full_base_never_a_thin_one(engine: AsyncEngine) -> None:
    """A delta across shapes is larger than a base: the full newest day becomes a base of its own, and the
    next night's full day a delta against it, while the same day thin (sent again the next night) is a
    delta against the thin base."""
    await save(engine, [day(n) for n in range(5, 0, -1)])
    await save(engine, [day(0, full=True)])
    tomorrow = many_controls_day(40, TENANT, NEWEST + timedelta(days=1), newest=True)
    await save(engine, [day(0), tomorrow])

    thin = len(orjson.dumps(day(0)))
    stored = {
        (as_day(r["score_date"]), r["size"] > thin): None if r["base_date"] is None else as_day(r["base_date"])
        for r in await rows(engine, raw_payloads)
    }

    full = True
    assert stored == {
        (ago(5), not full): None,
        **{(ago(n), not full): ago(5) for n in range(5)},
        (NEWEST, full): None,
        (NEWEST + timedelta(days=1), full): NEWEST,
    }


async def test_a_save_reads_its_bases_from_the_archive_for_every_tenant_of_the_group(engine: AsyncEngine) -> None:
    await save(engine, [day(3), day(2)], [day(3, OTHER_TENANT)])

    await save(engine, [day(1), day(0)], [day(1, OTHER_TENANT)])

    assert await layout(engine) == {ago(3): None, ago(2): ago(3), ago(1): ago(3), ago(0): ago(3)}
    assert await layout(engine, OTHER_TENANT) == {ago(3): None, ago(1): ago(3)}
    assert sorted(await replayed(engine, OTHER_TENANT)) == [ago(3), ago(1)]


async def test_an_object_archived_already_keeps_its_form_and_is_no_base(engine: AsyncEngine) -> None:
    """Fetched again, a delta stays a delta (the upsert keeps its body); a new day is not compressed against
    the copy this save made of it."""
    await save(engine, [day(WINDOW + 2), day(WINDOW)])
    await save(engine, [day(WINDOW), day(0)])

    stored = await layout(engine)

    assert stored[ago(WINDOW)] == ago(WINDOW + 2)
    assert stored[ago(0)] is None  # ago(WINDOW + 2) is too far; ago(WINDOW) is a delta
    assert (await replayed(engine))[ago(0)] == day(0)


async def test_an_object_archived_already_is_not_compressed_again(engine: AsyncEngine) -> None:
    """A day fetched again unchanged (a second run the same day, a backfill run again) makes no body: the
    upsert would keep the stored one. A new day of the same save is compressed as before."""
    await save(engine, [day(2), day(1)])
    payloads = [deferred(day(2)), deferred(day(1)), deferred(day(0))]

    async with transaction(engine) as conn:
        await compress_pending(conn, [payloads])

    by_day = {p.score_date: p for p in payloads}
    assert [(by_day[ago(n)].archived, by_day[ago(n)].body) for n in (2, 1)] == [(True, b""), (True, b"")]
    assert not by_day[ago(0)].archived
    assert by_day[ago(0)].body
    assert by_day[ago(0)].base_date == ago(2)


async def test_an_object_archived_already_gets_only_its_fetch_updated(engine: AsyncEngine) -> None:
    """Saved again by a later run, an archived object keeps its body, size, first fetch and base, and takes
    the later fetch's time, run and warning, as the upsert's conflict gave it; a save tried again after its
    transaction failed does the same."""
    await save(engine, [day(2), day(1)])
    before = {r["score_date"]: r for r in await rows(engine, raw_payloads)}
    later = NOW + timedelta(days=1)
    again = [
        p._replace(fetched_at=later, run_id="run-2", warning="206 from a provider")
        for p in (deferred(day(2)), deferred(day(1)))
    ]

    with contextlib.suppress(RuntimeError):
        async with transaction(engine) as conn:
            await compress_pending(conn, [again])
            await save_raw_payloads(conn, again)
            raise RuntimeError("the group's transaction failed")
    async with transaction(engine) as conn:
        await compress_pending(conn, [again])  # the tenant's save alone: nothing left to compress
        await save_raw_payloads(conn, again)

    after = {r["score_date"]: r for r in await rows(engine, raw_payloads)}
    touched = {"last_fetched_at": later, "run_id": "run-2", "warning": "206 from a provider"}
    assert after == {key: row | touched for key, row in before.items()}


async def test_a_save_tried_again_compresses_nothing_twice(engine: AsyncEngine) -> None:
    payloads = [deferred(day(1)), deferred(day(0))]
    async with transaction(engine) as conn:
        await compress_pending(conn, [payloads])
        first = list(payloads)
        await compress_pending(conn, [payloads])

    assert payloads == first
    assert [p.text for p in payloads] == [None, None]
    assert [p.base_date for p in payloads] == [None, ago(1)]  # bases before deltas: the foreign key's order


async def test_a_base_is_kept_while_a_delta_needs_it(engine: AsyncEngine) -> None:
    await save(engine, [day(1), day(0)])

    with pytest.raises(sa.exc.IntegrityError):
        async with transaction(engine) as conn:
            await conn.execute(sa.delete(raw_payloads).where(raw_payloads.c.score_date == ago(1)))

    assert await layout(engine) == {ago(1): None, ago(0): ago(1)}


async def test_a_delta_is_stored_only_with_its_base(engine: AsyncEngine) -> None:
    """A row naming a base the archive does not hold is refused."""
    (payload,) = [deferred(day(0))]
    async with transaction(engine) as conn:
        await compress_pending(conn, [[payload]])
    orphan = payload._replace(text=None, base_date=ago(1), base_sha256="0" * 64)

    with pytest.raises(sa.exc.DBAPIError, match=r"(?i)foreign key"):  # PostgreSQL's: from COPY, not IntegrityError
        async with transaction(engine) as conn:
            await save_raw_payloads(conn, [orphan])


async def delete_unchecked(engine: AsyncEngine, score_date: date) -> None:
    """Delete the archive's rows of a day, skipping the foreign keys: a database damaged by hand or by
    another tool (SQLite checks them only when asked to; PostgreSQL's checks are triggers, off for replicas)."""
    if engine.dialect.name == "sqlite":
        assert engine.url.database is not None
        with contextlib.closing(sqlite3.connect(engine.url.database)) as conn:
            conn.execute("DELETE FROM raw_payloads WHERE score_date = ?", (score_date.isoformat(),))
            conn.commit()
        return
    async with transaction(engine) as conn:
        await conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        await conn.execute(sa.delete(raw_payloads).where(raw_payloads.c.score_date == score_date))


async def test_a_delta_whose_base_is_gone_names_tenant_day_and_base(engine: AsyncEngine) -> None:
    await save(engine, [day(1), day(0)])
    await delete_unchecked(engine, ago(1))
    (row,) = await rows(engine, raw_payloads)
    why = f"a delta whose base was not found (its base: {ago(1)}, sha256 {row['base_sha256'][:12]})"

    with pytest.raises(ArchiveUnreadable) as raised:
        await replayed(engine)
    done = await compact(engine, ARCHIVES[0], NOW, verify=True)

    assert str(raised.value) == (
        f"tenant {TENANT}: the archived secureScore of {ago(0)} (sha256 {row['sha256'][:12]}) cannot be read: {why}"
    )
    assert done.errors == [f"tenant {TENANT}: the archived secureScore of {ago(0)} cannot be read: {why}"]


async def test_a_delta_whose_base_is_damaged_is_named_with_it(engine: AsyncEngine) -> None:
    await save(engine, [day(1), day(0)])
    async with transaction(engine) as conn:
        await conn.execute(
            sa.update(raw_payloads).where(raw_payloads.c.score_date == ago(1)).values(body=b"\x78damaged")
        )

    done = await compact(engine, ARCHIVES[0], NOW, verify=True)

    assert len(done.errors) == 2
    assert f"the archived secureScore of {ago(0)}" in done.errors[1]
    assert "cannot be read: its base cannot be read: neither a zstd frame nor a zlib stream" in done.errors[1]
    assert f"(its base: {ago(1)}, sha256 " in done.errors[1]


async def test_recompressing_a_zlib_base_keeps_its_deltas_readable(engine: AsyncEngine) -> None:
    """Bases are named by content: `archive compact` rewriting a base with the dictionary breaks nothing."""
    objects = [day(n) for n in range(12, -1, -1)]
    await save(engine, objects)
    before = await replayed(engine)
    dictionary = train(ARCHIVES[0].kind, [orjson.dumps(day(n, OTHER_TENANT)) for n in range(220)], NOW)
    await store_dictionary(engine, dictionary)
    done = await compact(engine, ARCHIVES[0], NOW, verify=True)

    assert done.errors == []
    assert done.recompressed == 2  # the two bases; deltas are zstd frames already
    assert await replayed(engine) == before
    bodies = {as_day(r["score_date"]): bytes(r["body"]) for r in await rows(engine, raw_payloads)}
    assert sorted(d for d, body in bodies.items() if not is_delta(body)) == [ago(12), ago(12 - WINDOW - 1)]


async def set_body(engine: AsyncEngine, score_date: date, body: bytes) -> None:
    async with transaction(engine) as conn:
        await conn.execute(sa.update(raw_payloads).where(raw_payloads.c.score_date == score_date).values(body=body))


async def test_a_base_stored_as_a_plain_zstd_frame_reads_back_and_bases_its_deltas(engine: AsyncEngine) -> None:
    """A frame naming no dictionary (id 0) is a delta only when its row names a base: a base written by another
    tool with plain zstd is read as such, by `rebuild`'s replay, by `archive compact`, and by the next save."""
    await save(engine, [day(1)])
    await set_body(engine, ago(1), zstandard.ZstdCompressor().compress(orjson.dumps(day(1))))

    await save(engine, [day(0)])
    done = await compact(engine, ARCHIVES[0], NOW, verify=True)

    assert await layout(engine) == {ago(1): None, ago(0): ago(1)}
    assert await replayed(engine) == {ago(1): day(1), ago(0): day(0)}
    assert done.errors == []


async def test_a_base_whose_frame_needs_a_dictionary_it_does_not_name_is_named_as_such(engine: AsyncEngine) -> None:
    """A base whose body is a delta (a frame naming no dictionary that does not decode without one) is said as
    what it is, with tenant and day, not as a delta whose base was not found."""
    await save(engine, [day(1)])
    await set_body(engine, ago(1), delta_compressor(orjson.dumps(day(2))).compress(orjson.dumps(day(1))))
    (row,) = await rows(engine, raw_payloads)
    why = "a zstd frame naming no dictionary (id 0) that does not decode without one"

    with pytest.raises(ArchiveUnreadable, match=r"^tenant .+") as raised:
        await replayed(engine)
    done = await compact(engine, ARCHIVES[0], NOW, verify=True)

    head = f"tenant {TENANT}: the archived secureScore of {ago(1)}"
    assert str(raised.value).startswith(f"{head} (sha256 {row['sha256'][:12]}) cannot be read: {why} (")
    assert len(done.errors) == 1
    assert done.errors[0].startswith(f"{head} cannot be read: {why} (")


async def test_an_archive_is_the_same_bytes_with_bodies_copied_to_their_size(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bodies are copied out of python-zstandard's oversized buffer (`codec.compress`): the same objects saved
    as before the copy (its `compress` straight) give the same rows, bases and deltas, and replay alike."""
    dictionary = train(ARCHIVES[0].kind, [orjson.dumps(day(n, OTHER_TENANT)) for n in range(220)], NOW)
    objects = [day(n) for n in range(12, -1, -1)] + [day(0, full=True) | {"createdDateTime": f"{ago(13)}T00:00:00Z"}]
    await store_dictionary(engine, dictionary)  # the replay reads the dictionary frames with it

    async def archived() -> tuple[list[dict[str, Any]], dict[date, Any]]:
        await save(engine, objects, codec=Codec([dictionary]))
        stored, replay = await rows(engine, raw_payloads), await replayed(engine)
        async with transaction(engine) as conn:
            await conn.execute(sa.delete(raw_payloads).where(raw_payloads.c.base_sha256.is_not(None)))
            await conn.execute(sa.delete(raw_payloads))
        return [{k: bytes(v) if k == "body" else v for k, v in r.items()} for r in stored], replay

    after = await archived()
    with monkeypatch.context() as before_the_copy:
        for module in (codec_module, deltas_module):
            before_the_copy.setattr(module, "compress", lambda compressor, text: compressor.compress(text))
        before = await archived()

    assert after == before
    assert sum(r["base_sha256"] is not None for r in after[0]) >= 10  # deltas, and dictionary-frame bases
    assert sum(is_delta(r["body"]) for r in after[0]) < len(after[0])


async def test_on_sqlite_a_saves_bases_are_read_by_the_driver_in_one_call(engine: AsyncEngine) -> None:
    """No SQLAlchemy statement (four round trips to aiosqlite's thread): one `execute_fetchall`, with the
    same bases found (the group's other tenant's too)."""
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's read; PostgreSQL keeps SQLAlchemy's statement")
    await save(engine, [day(3), day(2)], [day(3, OTHER_TENANT)])
    payloads = [[deferred(day(1)), deferred(day(0))], [deferred(day(1, OTHER_TENANT))]]

    async with transaction(engine) as conn:
        with statements(engine) as sent, driver_reads() as direct:
            await compress_pending(conn, payloads)

    assert sent == []
    assert len(direct) == 1
    assert [[p.base_date for p in group] for group in payloads] == [[ago(3), ago(3)], [ago(3)]]

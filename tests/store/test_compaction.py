"""Training the archive's dictionary and recompressing its zlib bodies, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import zlib
from datetime import UTC, date, datetime, timedelta

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from fetcher.store.archive import CODEC, pack, read_codec, save_raw_payloads
from fetcher.store.codec import SECURE_SCORES, TRAIN_AFTER, Codec, is_zstd, train
from fetcher.store.compaction import (
    ARCHIVES,
    BATCH,
    RunArchive,
    compact,
    compact_after_run,
    ensure_dictionary,
    store_dictionary,
)
from fetcher.store.engine import transaction
from fetcher.store.schema import archive_dictionaries, raw_payloads
from tests.dbutil import count, rows
from tests.payloads import OTHER_TENANT, TENANT, many_controls_day

NOW = datetime(2026, 11, 27, 6, tzinfo=UTC)
SCORES = ARCHIVES[0]
THIRD_TENANT = "0f0e0d0c-0b0a-4099-8877-665544332211"


def day_objects(tenant: str, days: int) -> list[dict[str, object]]:
    newest = NOW.date()
    return [many_controls_day(40, tenant, newest - timedelta(days=n), newest=n == 0) for n in range(days)]


async def archive(engine: AsyncEngine, objects: list[dict[str, object]], codec: Codec | None = None) -> None:
    """Archive `objects` as a run would, with `codec` (zlib by default: a database without a dictionary)."""
    token = CODEC.set(codec)
    try:
        packed = [
            pack(
                o,
                tenant_id=str(o["azureTenantId"]),
                score_date=datetime.fromisoformat(str(o["createdDateTime"])).date(),
                fetched_at=NOW,
                run_id=None,
                warning=None,
            )
            for o in objects
        ]
    finally:
        CODEC.reset(token)
    async with transaction(engine) as conn:
        await save_raw_payloads(conn, packed)


async def bodies(engine: AsyncEngine) -> dict[tuple[str, str], bytes]:
    return {(r["tenant_id"], r["sha256"]): r["body"] for r in await rows(engine, raw_payloads)}


async def test_no_dictionary_until_the_archive_holds_enough_objects(engine: AsyncEngine) -> None:
    await archive(engine, day_objects(TENANT, TRAIN_AFTER - 1))

    below = await compact(engine, SCORES, NOW)
    await archive(engine, day_objects(OTHER_TENANT, 1))
    reached = await compact(engine, SCORES, NOW)

    assert below.dictionary is None
    assert below.recompressed == 0
    assert reached.trained
    assert reached.dictionary is not None
    assert reached.recompressed == reached.scanned == TRAIN_AFTER
    assert reached.complete
    assert all(is_zstd(b) for b in (await bodies(engine)).values())
    stored = await rows(engine, archive_dictionaries)
    assert [(r["kind"], r["dict_id"], r["samples"]) for r in stored] == [
        (SECURE_SCORES, reached.dictionary.dict_id, TRAIN_AFTER)
    ]


async def test_a_dictionary_is_trained_on_at_most_its_sample_budget(engine: AsyncEngine) -> None:
    """The archive holds enough objects, but only those that fit the budget are handed to zstd."""
    objects = day_objects(TENANT, 100) + day_objects(OTHER_TENANT, 50) + day_objects(THIRD_TENANT, 50)
    await archive(engine, objects)
    sizes = sorted(len(orjson.dumps(o)) for o in objects)

    dictionary, trained = await ensure_dictionary(engine, SCORES, NOW, sample_bytes=sum(sizes[-60:]))

    assert trained
    assert dictionary is not None
    assert 60 <= dictionary.samples < TRAIN_AFTER


async def test_no_dictionary_is_trained_on_a_budget_that_fits_too_few_objects(engine: AsyncEngine) -> None:
    """zstd refuses: the archive is left as it is, to be trained on another day."""
    await archive(engine, day_objects(TENANT, TRAIN_AFTER))

    dictionary, trained = await ensure_dictionary(engine, SCORES, NOW, sample_bytes=1)

    assert (dictionary, trained) == (None, False)
    assert await count(engine, archive_dictionaries) == 0


async def test_recompressed_bodies_give_back_the_same_bytes(engine: AsyncEngine) -> None:
    await archive(engine, day_objects(TENANT, 150) + day_objects(OTHER_TENANT, 150))
    before = {key: zlib.decompress(body) for key, body in (await bodies(engine)).items()}

    done = await compact(engine, SCORES, NOW)

    codec = await read_codec(engine)
    after = {key: codec.decompress(body) for key, body in (await bodies(engine)).items()}
    assert done.recompressed == 300
    assert after == before
    assert all(hashlib.sha256(text).hexdigest() == sha for (_, sha), text in after.items())
    assert done.bytes_after < done.bytes_before


async def test_a_bounded_pass_leaves_the_rest_for_the_next(engine: AsyncEngine) -> None:
    """A row is either zlib or zstd: a pass stopped anywhere is taken up by the next one."""
    await archive(engine, day_objects(TENANT, 250) + day_objects(OTHER_TENANT, BATCH))

    first = await compact(engine, SCORES, NOW, limit=1)
    second = await compact(engine, SCORES, NOW)

    assert first.recompressed == BATCH
    assert not first.complete
    assert second.recompressed == 250
    assert second.complete
    assert all(is_zstd(b) for b in (await bodies(engine)).values())


async def test_after_a_run_that_wrote_zstd_a_complete_archive_is_not_scanned_again(engine: AsyncEngine) -> None:
    await archive(engine, day_objects(TENANT, TRAIN_AFTER))
    [trained, _] = await compact_after_run(engine, (), NOW)
    await archive(engine, day_objects(OTHER_TENANT, 3), await read_codec(engine))

    [again, _] = await compact_after_run(engine, {SECURE_SCORES}, NOW)

    assert trained.recompressed == TRAIN_AFTER
    assert trained.complete
    assert again.scanned == 0
    assert again.complete
    assert all(is_zstd(b) for b in (await bodies(engine)).values())


async def test_after_a_run_that_wrote_zlib_the_archive_is_scanned_again(engine: AsyncEngine) -> None:
    """A shard that started before the dictionary existed wrote zlib bodies: its own pass rewrites them."""
    await archive(engine, day_objects(TENANT, TRAIN_AFTER))
    await compact_after_run(engine, (), NOW)
    await archive(engine, day_objects(OTHER_TENANT, 3))  # written as zlib, by a run without the dictionary

    [done, _] = await compact_after_run(engine, (), NOW)

    assert done.recompressed == 3
    assert done.complete
    assert all(is_zstd(b) for b in (await bodies(engine)).values())


async def test_the_run_after_a_stopped_one_rewrites_the_zlib_bodies_it_left(engine: AsyncEngine) -> None:
    """A run stopped by a signal does no pass; the next run's pass rewrites its zlib bodies, even when another
    shard completed a pass meanwhile (the next run writes zstd from its start, so only the mark tells it)."""
    await archive(engine, day_objects(TENANT, TRAIN_AFTER))
    stopped = RunArchive(engine, await read_codec(engine), train=False)  # started before the dictionary
    await compact_after_run(engine, (), NOW)  # another shard trained it and completed its pass
    await archive(engine, day_objects(OTHER_TENANT, 3))  # the stopped run's bodies, zlib

    assert await stopped.finish(compact=True, stopped=True) == []
    left = [b for b in (await bodies(engine)).values() if not is_zstd(b)]
    [done, _] = await RunArchive(engine, await read_codec(engine), train=True).finish(compact=True)

    assert len(left) == 3
    assert done.recompressed == 3
    assert done.complete
    assert all(is_zstd(b) for b in (await bodies(engine)).values())


async def test_two_trainers_at_once_end_with_one_dictionary(engine: AsyncEngine) -> None:
    """Shards that train at once: the first dictionary stored wins, and both go on with it."""
    texts = [orjson.dumps(o) for o in day_objects(TENANT, TRAIN_AFTER)]
    mine = train(SECURE_SCORES, texts[: TRAIN_AFTER // 2 + 50], NOW)
    theirs = train(SECURE_SCORES, texts[TRAIN_AFTER // 2 - 50 :], NOW + timedelta(seconds=1))
    assert mine.dict_id != theirs.dict_id

    kept = await asyncio.gather(store_dictionary(engine, mine), store_dictionary(engine, theirs))

    assert kept[0] == kept[1]
    assert await count(engine, archive_dictionaries) == 1
    async with engine.connect() as conn:
        stored = await conn.scalar(sa.select(archive_dictionaries.c.dict_id))
    assert stored == kept[0].dict_id


async def test_a_run_trains_its_dictionary_once_it_has_saved_enough_days(engine: AsyncEngine) -> None:
    """A first backfill writes zlib only until the archive holds `TRAIN_AFTER` objects, not to its end."""
    run = RunArchive(engine, Codec(), train=True)
    await archive(engine, day_objects(TENANT, TRAIN_AFTER - 1), run.codec)
    run.saved(TRAIN_AFTER - 1)
    untrained = not run.codec.active(SECURE_SCORES)
    await archive(engine, day_objects(OTHER_TENANT, 1), run.codec)
    run.saved(TRAIN_AFTER)
    await run.finish(compact=False)  # waits for the training
    await archive(engine, day_objects(THIRD_TENANT, 3), run.codec)

    [done, _] = await run.finish(compact=True)

    assert untrained
    assert [is_zstd(r["body"]) for r in await rows(engine, raw_payloads, tenant_id=THIRD_TENANT)] == [True] * 3
    assert (done.trained, done.scanned, done.recompressed, done.complete) == (False, TRAIN_AFTER + 3, TRAIN_AFTER, True)


async def damage(engine: AsyncEngine, tenant: str, day: date) -> None:
    """Four bytes of a body's zstd frame overwritten (past its header, so the frame still names its dictionary)."""
    async with transaction(engine) as conn:
        body = bytes(
            await conn.scalar(
                sa.select(raw_payloads.c.body).where(
                    raw_payloads.c.tenant_id == tenant, raw_payloads.c.score_date == day
                )
            )
        )
        damaged = body[:20] + b"\xff\xfe\xfd\xfc" + body[24:]
        await conn.execute(
            sa.update(raw_payloads)
            .where(raw_payloads.c.tenant_id == tenant, raw_payloads.c.score_date == day)
            .values(body=damaged)
        )


async def test_a_verifying_pass_names_a_damaged_zstd_body_and_a_bounded_one_does_not_decode_it(
    engine: AsyncEngine,
) -> None:
    await archive(engine, day_objects(TENANT, TRAIN_AFTER))
    assert (await compact(engine, SCORES, NOW)).complete
    day = NOW.date() - timedelta(days=7)
    await damage(engine, TENANT, day)

    quick = await compact(engine, SCORES, NOW)
    verified = await compact(engine, SCORES, NOW, verify=True)

    assert quick.errors == []
    assert verified.scanned == TRAIN_AFTER
    assert verified.recompressed == 0
    assert len(verified.errors) == 1
    assert verified.errors[0].startswith(f"tenant {TENANT}: the archived secureScore of {day} cannot be read: ")
    assert "damaged zstd frame" in verified.errors[0]
    assert not verified.complete


async def test_a_missing_dictionary_is_not_replaced_and_every_body_it_compressed_is_named(engine: AsyncEngine) -> None:
    """Training a new one would take the kind's place and keep the lost one from being restored from a backup."""
    await archive(engine, day_objects(TENANT, 150) + day_objects(OTHER_TENANT, 150))
    first = await compact(engine, SCORES, NOW)
    assert first.dictionary is not None
    async with transaction(engine) as conn:
        await conn.execute(sa.delete(archive_dictionaries).where(archive_dictionaries.c.kind == SECURE_SCORES))
    await archive(engine, day_objects(THIRD_TENANT, 3))  # zlib: readable, but not enough to train on

    done = await compact(engine, SCORES, NOW, verify=True)

    assert done.dictionary is None
    assert not done.trained
    assert done.missing == {first.dictionary.dict_id}
    assert done.scanned == 303
    assert len(done.errors) == 300
    assert all("which archive_dictionaries does not hold" in e for e in done.errors)
    assert await count(engine, archive_dictionaries) == 0
    assert sum(is_zstd(b) for b in (await bodies(engine)).values()) == 300

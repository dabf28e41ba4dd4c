"""`fetcher archive compact` rewriting whole secureScore bodies as deltas, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from fetcher.errors import ArchiveUnreadable
from fetcher.store import compaction, deltas
from fetcher.store.archive import codec_for
from fetcher.store.codec import delta_compressor, is_delta
from fetcher.store.compaction import ARCHIVES, compact, read_row, rewrite_as_deltas
from fetcher.store.engine import transaction
from fetcher.store.schema import raw_payloads
from tests.dbutil import rows
from tests.payloads import OTHER_TENANT, TENANT, many_controls_day
from tests.store.test_compaction import NOW, THIRD_TENANT, archive
from tests.store.test_deltas import as_day, layout, save

NEWEST = NOW.date()
DAYS = 30
LAST_TENANT = "f0e0d0c0-0b0a-4099-8877-665544332211"  # after TENANT and OTHER_TENANT in key order


def history(tenant: str, days: int = DAYS) -> list[dict[str, Any]]:
    """The tenant's last `days` days as a daily run leaves them: each day thin, the newest also full (its
    sha256 differs, so both are kept), as Graph sends the newest day in full."""
    thin = [many_controls_day(40, tenant, NEWEST - timedelta(days=n), newest=False) for n in range(days)]
    return [*thin, many_controls_day(40, tenant, NEWEST, newest=True)]


async def decoded(engine: AsyncEngine) -> dict[tuple[str, date, str], bytes]:
    """Every archived object's JSON, by (tenant, day, sha256), each delta read with its base."""
    async with transaction(engine) as conn:
        codec = await codec_for(conn)
        found = {}
        for row in await conn.execute(SCAN):
            found[(row.tenant_id, as_day(row.score_date), row.sha256)] = read_row(codec, row)
        return found


SCAN = ARCHIVES[0].rows(raw_payloads.c.tenant_id, raw_payloads.c.score_date, raw_payloads.c.sha256)


async def stored(engine: AsyncEngine, tenant: str) -> dict[tuple[date, str], dict[str, Any]]:
    return {(as_day(r["score_date"]), r["sha256"]): r for r in await rows(engine, raw_payloads, tenant_id=tenant)}


async def test_whole_bodies_become_the_deltas_the_writer_would_have_made(engine: AsyncEngine) -> None:
    """TENANT archived whole (before migration 0013) ends with the layout the writer gave OTHER_TENANT's same
    days; OTHER_TENANT's bodies (deltas and bases already) are not touched; every object reads back the same."""
    await archive(engine, history(TENANT))
    await save(engine, history(OTHER_TENANT))
    originals, written = await decoded(engine), await stored(engine, OTHER_TENANT)
    before = sum(len(r["body"]) for r in (await stored(engine, TENANT)).values())

    done = await rewrite_as_deltas(engine)

    assert await layout(engine, TENANT) == await layout(engine, OTHER_TENANT)
    assert await stored(engine, OTHER_TENANT) == written
    assert await decoded(engine) == originals
    mine = await stored(engine, TENANT)
    deltas = [r for r in mine.values() if r["base_sha256"] is not None]
    assert len(deltas) == done.rewritten > DAYS // 2
    assert all(is_delta(bytes(r["body"])) for r in deltas)
    assert done.scanned == 2 * (DAYS + 1)
    assert sum(len(r["body"]) for r in mine.values()) == before - done.bytes_before + done.bytes_after
    assert done.bytes_after < done.bytes_before / 3


async def test_a_second_pass_changes_nothing(engine: AsyncEngine) -> None:
    await archive(engine, history(TENANT))
    await rewrite_as_deltas(engine)
    first = await stored(engine, TENANT)

    again = await rewrite_as_deltas(engine)

    assert again.rewritten == 0
    assert again.scanned == DAYS + 1
    assert await stored(engine, TENANT) == first


class Stopped(Exception):
    """The pass stopped from outside (Ctrl-C, a kill, a lost connection), as the test injects it."""


def stop(_scanned: int) -> None:
    """Progress told of the first batch, committed: the pass stops there."""
    raise Stopped


async def test_a_pass_stopped_after_one_batch_is_finished_by_the_next(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each batch commits whole: after the stop every object reads back the same, and the rerun ends where one
    uninterrupted pass does (LAST_TENANT's same days, written by the writer) with every object the same."""
    monkeypatch.setattr(compaction, "BATCH", 7)
    for tenant in (TENANT, OTHER_TENANT):
        await archive(engine, history(tenant))
    await save(engine, history(LAST_TENANT))
    originals = await decoded(engine)

    with pytest.raises(Stopped):
        await rewrite_as_deltas(engine, progress=stop)
    stopped = {k for k, r in (await stored(engine, TENANT)).items() if r["base_sha256"] is not None}
    assert await decoded(engine) == originals
    assert len(stopped) == 6  # the first batch: TENANT's first 7 days, the oldest their base
    assert all(r["base_sha256"] is None for r in (await stored(engine, OTHER_TENANT)).values())

    finished = await rewrite_as_deltas(engine)

    assert await decoded(engine) == originals
    assert finished.scanned == 3 * (DAYS + 1)
    for tenant in (TENANT, OTHER_TENANT):
        assert await layout(engine, tenant) == await layout(engine, LAST_TENANT)


async def test_an_unreadable_body_stays_as_it_is_and_is_no_base(engine: AsyncEngine) -> None:
    await archive(engine, history(TENANT, 10))
    damaged = NEWEST - timedelta(days=9)  # the oldest day: the base of the days after it, were it readable
    async with transaction(engine) as conn:
        await conn.execute(
            sa.update(raw_payloads).where(raw_payloads.c.score_date == damaged).values(body=b"\x78\x00\x00\x00")
        )

    done = await rewrite_as_deltas(engine)

    after = await stored(engine, TENANT)
    [bad] = [r for (day, _), r in after.items() if day == damaged]
    assert bytes(bad["body"]) == b"\x78\x00\x00\x00"
    assert bad["base_sha256"] is None
    assert {as_day(r["base_date"]) for r in after.values() if r["base_date"]} == {damaged + timedelta(days=1)}
    assert done.rewritten == 10 - 2 - 1  # the full newest day stays whole too: no base of its shape


async def test_after_recompression_deltas_are_made_against_dictionary_frames(engine: AsyncEngine) -> None:
    """The order `archive compact` runs them in: zlib bodies recompressed (the dictionary trained), then deltas."""
    for tenant in (TENANT, OTHER_TENANT, THIRD_TENANT):
        await archive(engine, [*history(tenant, 70)])
    originals = await decoded(engine)
    recompressed = await compact(engine, ARCHIVES[0], NOW, verify=True)

    done = await rewrite_as_deltas(engine)

    assert recompressed.dictionary is not None
    assert recompressed.recompressed == 3 * 71
    assert await decoded(engine) == originals
    assert done.rewritten > 3 * 50
    bases = [r for r in await rows(engine, raw_payloads) if r["base_sha256"] is None]
    assert all(not is_delta(bytes(r["body"])) for r in bases)


async def test_a_delta_that_does_not_read_back_stops_the_pass_before_its_batch_is_written(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deltas made against other bytes than the base's (as a zstd fault would): nothing of the batch is written."""
    await archive(engine, history(TENANT, 10))
    before = await stored(engine, TENANT)
    other = bytes.maketrans(b"0123456789", b"1234567890")  # the base's shape, other figures
    monkeypatch.setattr(deltas, "delta_compressor", lambda base: delta_compressor(base.translate(other)))

    with pytest.raises(ArchiveUnreadable) as stopped:
        await rewrite_as_deltas(engine)

    assert await stored(engine, TENANT) == before
    message = str(stopped.value)
    assert message.startswith(f"tenant {TENANT}: the archived secureScore of {NEWEST - timedelta(days=8)} (sha256 ")
    assert ", made a delta, did not read back as its JSON" in message
    assert f"(its base: {NEWEST - timedelta(days=9)}, sha256 " in message
    assert message.endswith("; its batch was not written")

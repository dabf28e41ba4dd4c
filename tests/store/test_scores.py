"""Upserts of score-days: idempotent, replacing, null-keeping, tenant-isolated, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from fetcher.models import ControlScoreRow, FetchContext, ProviderWarning, ScoreDay
from fetcher.normalize import normalize_score
from fetcher.store import scores
from fetcher.store.engine import transaction
from fetcher.store.schema import comparative_scores, control_scores, controls, secure_scores, tenants
from fetcher.store.scores import (
    DayKeys,
    control_columns,
    newest_score_dates,
    resolve_group_keys,
    resolve_keys,
    save_controls,
    save_group_rows,
    save_score_days,
    save_tenants,
)
from tests.dbutil import count, rows
from tests.store.test_keys import statements

TENANT = "4b8c18bd-2f9f-4227-af55-0a0b0c0d0e0f"
OTHER = "9e0e6b7c-1111-4222-8333-444455556666"
FETCHED = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 28, 6, 1, tzinfo=UTC)
ALL_TABLES = (tenants, secure_scores, controls, control_scores, comparative_scores)


def control(name: str, score: float, *, thin: bool = False, **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "controlCategory": "Identity",
        "controlName": name,
        "description": None if thin else f"About {name}.",
        "score": score,
        "scoreInPercentage": score * 10,
        "implementationStatus": f"{name} status",
    }
    if not thin:
        item.update(lastSynced="2026-11-25T13:04:06Z", on="true", count="3", total="4")
    item.update(extra)
    return item


def payload(
    day: str,
    *,
    tenant: str = TENANT,
    controls: list[dict[str, Any]] | None = None,
    comparatives: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": f"{tenant}_{day}",
        "azureTenantId": tenant,
        "createdDateTime": f"{day}T03:14:09.5Z",
        "activeUserCount": 12,
        "licensedUserCount": 20,
        "currentScore": 13.0,
        "maxScore": 20.0,
        "enabledServices": ["HasAADP1", "HasMDEP2"],
        "averageComparativeScores": comparatives
        if comparatives is not None
        else [
            {"basis": "AllTenants", "averageScore": 52.86, "appsScore": 45.81},
            {
                "basis": "TotalSeats",
                "averageScore": 48.1,
                "SeatSizeRangeLowerValue": "1",
                "SeatSizeRangeUpperValue": "100",
            },
        ],
        "controlScores": controls
        if controls is not None
        else [control("MFARegistrationV2", 9.0), control("OneAdmin", 4.0)],
        "vendorInformation": {
            "provider": "SecureScore",
            "providerVersion": None,
            "subProvider": None,
            "vendor": "Microsoft",
        },
    }
    obj.update(fields)
    return obj


def days(*objects: dict[str, Any], context: FetchContext | None = None) -> list[ScoreDay]:
    ctx = context or FetchContext("run-1", FETCHED)
    return [normalize_score(o, ctx) for o in objects]


async def save(engine: AsyncEngine, batch: list[ScoreDay]) -> int:
    async with transaction(engine) as conn:
        return await save_score_days(conn, batch, NOW)


async def snapshot(engine: AsyncEngine) -> dict[str, list[dict[str, Any]]]:
    return {t.name: await rows(engine, t) for t in ALL_TABLES}


async def test_saving_a_day_stores_every_row_as_normalized(engine: AsyncEngine) -> None:
    await save(engine, days(payload("2026-11-27")))

    assert await rows(engine, secure_scores) == [
        {
            "tenant_id": TENANT,
            "score_date": date(2026, 11, 27),
            "id": f"{TENANT}_2026-11-27",
            "created_at": datetime(2026, 11, 27, 3, 14, 9, 500000, tzinfo=UTC),
            "current_score": 13.0,
            "max_score": 20.0,
            "active_user_count": 12,
            "licensed_user_count": 20,
            "enabled_services": ["HasAADP1", "HasMDEP2"],
            "vendor": "Microsoft",
            "provider": "SecureScore",
            "provider_version": None,
            "sub_provider": None,
            "partial": False,
            "warning": None,
            "extra": {},
            "fetched_at": FETCHED,
            "run_id": "run-1",
            "id_mismatch": False,
        }
    ]
    assert await rows(engine, control_scores) == [
        {
            "tenant_id": TENANT,
            "score_date": date(2026, 11, 27),
            "control_name": "MFARegistrationV2",
            "score": 9.0,
            "score_in_percentage": 90.0,
            "implementation_status": "MFARegistrationV2 status",
            "last_synced": datetime(2026, 11, 25, 13, 4, 6, tzinfo=UTC),
            "is_on": True,
            "count": 3,
            "total": 4,
            "extra": {},
        },
        {
            "tenant_id": TENANT,
            "score_date": date(2026, 11, 27),
            "control_name": "OneAdmin",
            "score": 4.0,
            "score_in_percentage": 40.0,
            "implementation_status": "OneAdmin status",
            "last_synced": datetime(2026, 11, 25, 13, 4, 6, tzinfo=UTC),
            "is_on": True,
            "count": 3,
            "total": 4,
            "extra": {},
        },
    ]
    assert await rows(engine, comparative_scores) == [
        {
            "tenant_id": TENANT,
            "score_date": date(2026, 11, 27),
            "basis": "AllTenants",
            "average_score": 52.86,
            "seat_size_lower": None,
            "seat_size_upper": None,
            "extra": {"appsScore": 45.81},
        },
        {
            "tenant_id": TENANT,
            "score_date": date(2026, 11, 27),
            "basis": "TotalSeats",
            "average_score": 48.1,
            "seat_size_lower": 1,
            "seat_size_upper": 100,
            "extra": {},
        },
    ]
    assert await rows(engine, controls) == [
        {
            "control_name": "MFARegistrationV2",
            "control_category": "Identity",
            "description": "About MFARegistrationV2.",
            "first_seen_date": date(2026, 11, 27),
            "last_seen_date": date(2026, 11, 27),
        },
        {
            "control_name": "OneAdmin",
            "control_category": "Identity",
            "description": "About OneAdmin.",
            "first_seen_date": date(2026, 11, 27),
            "last_seen_date": date(2026, 11, 27),
        },
    ]


async def test_saving_the_same_input_twice_changes_nothing(engine: AsyncEngine) -> None:
    batch = days(payload("2026-11-27"), payload("2026-11-26"))
    assert await save(engine, batch) == 2
    first = await snapshot(engine)

    assert await save(engine, batch) == 2

    assert await snapshot(engine) == first


async def test_a_control_missing_from_a_newer_fetch_of_the_day_is_deleted(engine: AsyncEngine) -> None:
    await save(engine, days(payload("2026-11-27")))

    await save(engine, days(payload("2026-11-27", controls=[control("OneAdmin", 4.0)])))

    assert [r["control_name"] for r in await rows(engine, control_scores)] == ["OneAdmin"]


async def test_a_comparative_basis_missing_from_a_newer_fetch_is_deleted(engine: AsyncEngine) -> None:
    await save(engine, days(payload("2026-11-27")))

    await save(engine, days(payload("2026-11-27", comparatives=[{"basis": "AllTenants", "averageScore": 50.0}])))

    assert [(r["basis"], r["average_score"]) for r in await rows(engine, comparative_scores)] == [("AllTenants", 50.0)]


async def test_a_thin_fetch_never_erases_detail_stored_from_a_fuller_one(engine: AsyncEngine) -> None:
    full = payload("2026-11-27", controls=[control("OneAdmin", 4.0, newField="kept")], extraTop={"a": 1})
    await save(engine, days(full))
    before = await snapshot(engine)
    thin = payload(
        "2026-11-27",
        controls=[control("OneAdmin", 5.0, thin=True)],
        comparatives=[],
        activeUserCount=None,
        enabledServices=None,
    )

    await save(engine, days(thin, context=FetchContext("run-2", NOW)))

    after = await snapshot(engine)
    score = after["secure_scores"][0]
    assert score == {**before["secure_scores"][0], "fetched_at": NOW, "run_id": "run-2"}
    assert after["control_scores"] == [{**before["control_scores"][0], "score": 5.0, "score_in_percentage": 50.0}]
    assert after["comparative_scores"] == before["comparative_scores"]
    assert after["controls"] == before["controls"]


async def test_extra_properties_merge_key_by_key_with_new_values_winning(engine: AsyncEngine) -> None:
    await save(engine, days(payload("2026-11-27", controls=[control("OneAdmin", 4.0, a=1, b={"x": 1})])))

    await save(engine, days(payload("2026-11-27", controls=[control("OneAdmin", 4.0, b={"y": 2}, c=None)])))

    assert (await rows(engine, control_scores))[0]["extra"] == {"a": 1, "b": {"y": 2}}


async def test_a_complete_fetch_clears_the_partial_flag_of_an_earlier_206(engine: AsyncEngine) -> None:
    warning = ProviderWarning("Microsoft", "SecureScore", 500, 1234, '199 - "Microsoft/SecureScore/500/1234"')
    await save(engine, days(payload("2026-11-27"), context=FetchContext("run-1", FETCHED, (warning,))))
    assert [(r["partial"], r["warning"]) for r in await rows(engine, secure_scores)] == [
        (True, '199 - "Microsoft/SecureScore/500/1234"')
    ]

    await save(engine, days(payload("2026-11-27"), context=FetchContext("run-2", NOW)))

    assert [(r["partial"], r["warning"]) for r in await rows(engine, secure_scores)] == [(False, None)]


async def test_two_tenants_with_the_same_days_are_stored_apart(engine: AsyncEngine) -> None:
    await save(engine, days(payload("2026-11-27")))
    mine = await snapshot(engine)

    await save(engine, days(payload("2026-11-27", tenant=OTHER, currentScore=1.0, controls=[control("X", 1.0)])))

    assert await rows(engine, secure_scores, tenant_id=TENANT) == mine["secure_scores"]
    assert await rows(engine, control_scores, tenant_id=TENANT) == mine["control_scores"]
    assert [r["control_name"] for r in await rows(engine, control_scores, tenant_id=OTHER)] == ["X"]
    assert await count(engine, secure_scores) == 2


async def test_controls_keep_their_widest_seen_range_and_latest_description(engine: AsyncEngine) -> None:
    await save(engine, days(payload("2026-11-20")))
    newest = payload("2026-11-27", controls=[control("OneAdmin", 4.0, description="Newest words.")])
    older = payload("2026-11-10", controls=[control("OneAdmin", 4.0, description="Old words.")])

    await save(engine, days(newest))
    await save(engine, days(older))

    one_admin = [r for r in await rows(engine, controls) if r["control_name"] == "OneAdmin"]
    assert one_admin == [
        {
            "control_name": "OneAdmin",
            "control_category": "Identity",
            "description": "Newest words.",
            "first_seen_date": date(2026, 11, 10),
            "last_seen_date": date(2026, 11, 27),
        }
    ]


async def test_the_same_day_twice_in_one_batch_applies_in_order(engine: AsyncEngine) -> None:
    batch = days(payload("2026-11-27", currentScore=1.0), payload("2026-11-27", currentScore=2.0))

    assert await save(engine, batch) == 1

    assert [r["current_score"] for r in await rows(engine, secure_scores)] == [2.0]


async def test_an_id_that_moved_to_another_day_never_blocks_the_tenant(engine: AsyncEngine) -> None:
    """Issue 12: one answer stored 2024-01-01 under the id ..._2024-01-02; the next, consistent answer
    stored the real 2024-01-02 with that id and failed on `UNIQUE constraint failed: secure_scores.id`."""
    await save(engine, days(payload("2024-01-01", id=f"{TENANT}_2024-01-02", currentScore=200.0, maxScore=274.0)))

    await save(engine, days(payload("2024-01-02"), payload("2024-01-01")))

    assert [
        (r["score_date"], r["id"], r["current_score"], r["id_mismatch"]) for r in await rows(engine, secure_scores)
    ] == [
        (date(2024, 1, 1), f"{TENANT}_2024-01-01", 13.0, False),
        (date(2024, 1, 2), f"{TENANT}_2024-01-02", 13.0, False),
    ]


async def test_a_day_whose_id_names_another_day_is_stored_under_its_date_and_flagged(engine: AsyncEngine) -> None:
    await save(engine, days(payload("2024-01-01", id=f"{TENANT}_2024-01-02")))

    assert [(r["score_date"], r["id"], r["id_mismatch"]) for r in await rows(engine, secure_scores)] == [
        (date(2024, 1, 1), f"{TENANT}_2024-01-02", True)
    ]


async def test_a_placeholder_average_keeps_the_real_one_stored_for_that_day(engine: AsyncEngine) -> None:
    """A placeholder is no value, and no value never erases a stored one."""
    real = [{"basis": "TotalSeats", "averageScore": 70.0}]
    placeholder = [{"basis": "TotalSeats", "averageScore": -1.0, "seatSizeRangeLowerValue": -1}]
    await save(engine, days(payload("2026-11-27", comparatives=real)))

    await save(engine, days(payload("2026-11-27", comparatives=placeholder)))

    assert [(r["basis"], r["average_score"], r["extra"]) for r in await rows(engine, comparative_scores)] == [
        ("TotalSeats", 70.0, {"averageScore": -1.0, "seatSizeRangeLowerValue": -1})
    ]


async def test_a_failure_inside_the_transaction_leaves_nothing_half_written(engine: AsyncEngine) -> None:
    await save(engine, days(payload("2026-11-26")))
    before = await snapshot(engine)

    with pytest.raises(RuntimeError, match="boom"):
        async with transaction(engine) as conn:
            await save_score_days(conn, days(payload("2026-11-27"), payload("2026-11-25")), NOW)
            raise RuntimeError("boom")

    assert await snapshot(engine) == before


async def test_days_of_two_tenants_in_one_call_are_refused(engine: AsyncEngine) -> None:
    with pytest.raises(ValueError, match="one tenant"):
        await save(engine, days(payload("2026-11-27"), payload("2026-11-27", tenant=OTHER)))


async def test_newest_score_dates_gives_each_tenants_latest_day(engine: AsyncEngine) -> None:
    await save(engine, days(payload("2026-11-27"), payload("2026-11-20")))
    await save(engine, days(payload("2026-10-01", tenant=OTHER)))

    async with transaction(engine, write=False) as conn:
        assert await newest_score_dates(conn) == {TENANT: date(2026, 11, 27), OTHER: date(2026, 10, 1)}
        assert await newest_score_dates(conn, [OTHER]) == {OTHER: date(2026, 10, 1)}


async def test_save_tenants_inserts_and_renames(engine: AsyncEngine) -> None:
    async with transaction(engine) as conn:
        await save_tenants(conn, [(TENANT, "Contoso"), (OTHER, "Fabrikam")], NOW)
        await save_tenants(conn, [(TENANT, "Contoso Ltd")], NOW)

    assert [(r["tenant_id"], r["name"]) for r in await rows(engine, tenants)] == [
        (TENANT, "Contoso Ltd"),
        (OTHER, "Fabrikam"),
    ]


async def test_stored_values_survive_a_round_trip_of_unusual_json(engine: AsyncEngine) -> None:
    odd = {"unicode": "Zürich ✓", "nested": {"deep": [1, {"x": None}]}, "big": 2**53}
    obj = payload("2026-11-27", oddity=copy.deepcopy(odd))

    await save(engine, days(obj))

    assert (await rows(engine, secure_scores))[0]["extra"] == {"oddity": odd}


async def test_a_new_description_of_the_same_newest_day_replaces_the_stored_one(engine: AsyncEngine) -> None:
    """The dimension takes the latest non-null words; a fetch of the same day counts as latest."""
    first = payload("2026-11-27", controls=[control("OneAdmin", 4.0, description="First words.")])
    again = payload("2026-11-27", tenant=OTHER, controls=[control("OneAdmin", 4.0, description="Reworded.")])

    await save(engine, days(first))
    await save(engine, days(again))

    [one_admin] = await rows(engine, controls, control_name="OneAdmin")
    assert (one_admin["description"], one_admin["first_seen_date"]) == ("Reworded.", date(2026, 11, 27))


@pytest.mark.postgres
async def test_a_tenant_whose_controls_are_already_current_locks_no_controls_row(postgres_engine: AsyncEngine) -> None:
    """Shards store tenants side by side: a tenant that changes nothing in the shared dimension must not hold
    its rows until it commits (PostgreSQL locks every row an ON CONFLICT DO UPDATE meets)."""
    engine = postgres_engine
    await save(engine, days(payload("2026-11-27")))
    async with transaction(engine) as writer:
        await save_score_days(writer, days(payload("2026-11-27", tenant=OTHER)), NOW)
        async with engine.connect() as other:  # NOWAIT: a row the writer holds fails this at once
            locked = (await other.execute(sa.text("SELECT control_name FROM controls FOR UPDATE NOWAIT"))).all()
            await other.rollback()

    assert len(locked) == len(payload("2026-11-27")["controlScores"])


# ------------------------------------------------------------------------------------------ the compact layout


def shown(day: ScoreDay) -> list[dict[str, Any]]:
    """A day's control scores as the control_scores view must show them: as normalized, `extra` {} for none."""
    fields = [name for name in ControlScoreRow._fields if name not in ("control_category", "description")]
    return sorted(({name: getattr(c, name) for name in fields} for c in day.controls), key=lambda r: r["control_name"])


UNUSUAL = [
    control("Fractional", 1.5, lastSynced="2026-11-25T13:04:06.123456Z", newProperty={"a": [1, None], "b": "ü"}),
    control("NoStatus", 0.0, implementationStatus=None, on="false"),
    control("Unicode", 2.0, implementationStatus="Activé pour « tous » ✓ 用户 \U0001f512"),
    control("Nothing", 0.0, thin=True, implementationStatus=None) | {"score": None, "scoreInPercentage": None},
]


async def test_the_view_gives_back_exactly_what_was_saved(engine: AsyncEngine) -> None:
    """NULLs, a fractional lastSynced, extra properties or none, statuses of any script, read back unchanged."""
    (day,) = days(payload("2026-11-27", controls=UNUSUAL))
    await save(engine, [day])

    assert await rows(engine, control_scores) == shown(day)
    assert {r["control_name"]: r["last_synced"] for r in shown(day)}["Fractional"] == datetime(
        2026, 11, 25, 13, 4, 6, 123456, tzinfo=UTC
    )


async def test_the_view_follows_a_day_through_later_fetches(engine: AsyncEngine) -> None:
    """A full day, a thin refetch that keeps its detail, then a full refetch without one control."""
    (full,) = days(payload("2026-11-27", controls=UNUSUAL))
    thin = days(payload("2026-11-27", controls=[control(c["controlName"], 7.0, thin=True) for c in UNUSUAL]))
    (fewer,) = days(payload("2026-11-27", controls=UNUSUAL[1:]))
    await save(engine, [full])
    await save(engine, thin)
    refetched = {"score": 7.0, "score_in_percentage": 70.0}
    kept = [r | refetched | {"implementation_status": f"{r['control_name']} status"} for r in shown(full)]
    assert await rows(engine, control_scores) == kept

    await save(engine, [fewer])

    before = {r["control_name"]: r for r in kept}  # a null never erases: each None is the stored value
    after = [{k: before[r["control_name"]][k] if v is None else v for k, v in r.items()} for r in shown(fewer)]
    assert await rows(engine, control_scores) == after
    assert [r["control_name"] for r in after] == ["NoStatus", "Nothing", "Unicode"]


async def test_sqlite_shows_last_synced_and_extra_as_the_table_stored_them(sqlite_engine: AsyncEngine) -> None:
    """The view's text is the old table's: 'YYYY-MM-DD HH:MM:SS.ffffff' and '{}' (for BI tools reading it raw)."""
    await save(sqlite_engine, days(payload("2026-11-27", controls=UNUSUAL)))

    async with sqlite_engine.connect() as conn:
        result = await conn.exec_driver_sql("SELECT control_name, last_synced, extra FROM control_scores")
        raw = sorted(tuple(r) for r in result.all())

    assert raw == [
        ("Fractional", "2026-11-25 13:04:06.123456", '{"newProperty":{"a":[1,null],"b":"ü"}}'),
        ("NoStatus", "2026-11-25 13:04:06.000000", "{}"),
        ("Nothing", None, "{}"),
        ("Unicode", "2026-11-25 13:04:06.000000", "{}"),
    ]


async def test_a_group_resolves_its_texts_once_and_each_tenant_then_costs_none(engine: AsyncEngine) -> None:
    both = days(payload("2026-11-27"), payload("2026-11-27", tenant=OTHER))
    async with transaction(engine) as conn:
        await resolve_keys(conn, both)
        with statements(engine) as sent:
            await resolve_keys(conn, both[:1])
            await resolve_keys(conn, both[1:])
    assert sent == []


async def test_a_groups_tenants_take_its_keys_and_store_what_they_would_alone(engine: AsyncEngine) -> None:
    both = days(payload("2026-11-27"), payload("2026-11-27", tenant=OTHER))
    async with transaction(engine) as conn:
        await save_controls(conn, both)
        await resolve_group_keys(conn, both)
        with statements(engine) as sent:
            for day in both:
                await save_score_days(conn, [day], NOW, controls_saved=True)
    grouped = await rows(engine, control_scores)
    assert not any("tenant_keys" in sql or "control_keys" in sql or "status_texts" in sql for sql in sent)

    await save(engine, both[:1])
    await save(engine, both[1:])
    assert await rows(engine, control_scores) == grouped
    assert len(grouped) == 2 * len(both[0].controls)


async def test_a_groups_keys_serve_only_the_transaction_that_resolved_them(engine: AsyncEngine) -> None:
    """A later transaction's save resolves its own texts: a status the group never saw is stored, not NULL."""
    async with transaction(engine) as conn:
        await resolve_group_keys(conn, days(payload("2026-11-27")))
    later = days(payload("2026-11-26", controls=[control("A", 1.0, implementationStatus="Brand new")]))
    async with transaction(engine) as conn:
        await save_controls(conn, later)
        await save_score_days(conn, later, NOW, controls_saved=True)

    assert [r["implementation_status"] for r in await rows(engine, control_scores)] == ["Brand new"]


class DriverReads(logging.Handler):
    """The SQL of the reads sent to the driver directly (`bulk.fetch_sqlite` logs each, then its marker line)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    @property
    def sent(self) -> list[str]:
        pairs = zip(self.messages, self.messages[1:], strict=False)
        return [sql for sql, marker in pairs if marker.startswith("[read by the driver directly")]


@contextlib.contextmanager
def driver_reads() -> Iterator[list[str]]:
    """The reads sent to the driver directly meanwhile, as `statements` gives SQLAlchemy's."""
    logger, handler = logging.getLogger("sqlalchemy.engine.Engine"), DriverReads()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    sent: list[str] = []
    try:
        yield sent
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        sent += handler.sent


async def save_group(engine: AsyncEngine, batch: list[ScoreDay]) -> list[str]:
    """Save `batch` as a group does (its tenants' rows deferred, then sent for the group), each tenant's days
    in order; returns the statements that read members (SQLAlchemy's and those sent to the driver directly)."""
    async with transaction(engine) as conn:
        with statements(engine) as sent, driver_reads() as direct:
            await resolve_group_keys(conn, batch, defer_rows=True)
            for tenant_id in dict.fromkeys(d.tenant_id for d in batch):
                await save_score_days(conn, [d for d in batch if d.tenant_id == tenant_id], NOW, controls_saved=True)
            await save_group_rows(conn)
            await save_controls(conn, batch)
    return [
        sql for sql in sent + direct if sql.lstrip().upper().startswith("SELECT") and "FROM comparative_scores" in sql
    ]


async def members(engine: AsyncEngine) -> list[tuple[str, str, str]]:
    """Every stored (tenant, day, control name or basis)."""
    found = [(r["tenant_id"], str(r["score_date"]), r["control_name"]) for r in await rows(engine, control_scores)]
    found += [(r["tenant_id"], str(r["score_date"]), r["basis"]) for r in await rows(engine, comparative_scores)]
    return sorted(found)


def listing(day: str, names: str, *, tenant: str = TENANT, bases: str = "AllTenants") -> dict[str, Any]:
    """A day that lists the controls and comparative bases named (one letter a control)."""
    comparatives = [{"basis": basis, "averageScore": 1.0} for basis in bases.split()]
    return payload(day, tenant=tenant, controls=[control(n, 1.0) for n in names], comparatives=comparatives)


async def test_a_group_reads_its_members_in_one_statement_and_deletes_what_each_tenant_no_longer_lists(
    engine: AsyncEngine,
) -> None:
    """TENANT's 26th, which only OTHER lists in the group, is read with the group's members and kept."""
    await save(engine, days(listing("2026-11-26", "AB"), listing("2026-11-27", "ABC", bases="AllTenants TotalSeats")))
    await save(engine, days(listing("2026-11-27", "ABC", tenant=OTHER)))

    read = await save_group(
        engine,
        days(
            listing("2026-11-27", "AB"),
            listing("2026-11-26", "A", tenant=OTHER),
            listing("2026-11-27", "BC", tenant=OTHER, bases="TotalSeats"),
        ),
    )

    assert len(read) == 1
    t, o = TENANT, OTHER
    assert await members(engine) == sorted(
        [(t, "2026-11-26", m) for m in ("A", "B", "AllTenants")]
        + [(t, "2026-11-27", m) for m in ("A", "B", "AllTenants")]
        + [(o, "2026-11-26", m) for m in ("A", "AllTenants")]
        + [(o, "2026-11-27", m) for m in ("B", "C", "TotalSeats")]
    )


async def test_stored_members_that_come_days_interleaved_are_compared_by_their_own_day(engine: AsyncEngine) -> None:
    """The members read comes a day at a time, each table in its key order; rows of two days interleaved
    (another order, the same rows) delete the same leftovers."""
    await save(engine, days(listing("2026-11-26", "ABC"), listing("2026-11-27", "ABC")))
    later = days(listing("2026-11-26", "A"), listing("2026-11-27", "BC"))

    async with transaction(engine) as conn:
        day_keys = await scores.resolve_keys(conn, later)
        key = {name: str(day_keys.controls[name]) for name in "ABC"}
        first, second = date(2026, 11, 26), date(2026, 11, 27)
        stored = [("control", day, key[name]) for name in "ABC" for day in (first, second)]
        stored += [("basis", day, "AllTenants") for day in (first, second)]
        await scores._delete_replaced(conn, TENANT, day_keys.tenants[TENANT], day_keys, later, stored)

    assert await members(engine) == sorted(
        [(TENANT, "2026-11-26", m) for m in ("A", "AllTenants")]
        + [(TENANT, "2026-11-27", m) for m in ("B", "C", "AllTenants")]
    )


async def test_a_tenant_whose_days_repeat_reads_its_members_again_for_each_later_batch(engine: AsyncEngine) -> None:
    """The 27th twice splits into two batches: the second must see the B the first stored, and delete it."""
    await save(engine, days(listing("2026-11-27", "A")))
    await save(engine, days(listing("2026-11-27", "A", tenant=OTHER)))

    read = await save_group(
        engine,
        days(listing("2026-11-27", "AB"), listing("2026-11-27", "A"), listing("2026-11-27", "AC", tenant=OTHER)),
    )

    assert len(read) == 2  # the group's, then TENANT's second batch's own
    assert await members(engine) == sorted(
        [(TENANT, "2026-11-27", m) for m in ("A", "AllTenants")]
        + [(OTHER, "2026-11-27", m) for m in ("A", "C", "AllTenants")]
    )


async def test_a_group_beyond_the_cap_reads_each_tenants_members_alone(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backfill's group (32 tenants x 90 days) would read too many rows at once: each tenant reads its own."""
    monkeypatch.setattr(scores, "GROUP_MEMBERS_CAP", 3)
    await save(engine, days(listing("2026-11-27", "AB")))
    await save(engine, days(listing("2026-11-27", "AB", tenant=OTHER)))

    read = await save_group(
        engine,
        days(
            listing("2026-11-26", "A"),
            listing("2026-11-27", "A"),
            listing("2026-11-27", "B", tenant=OTHER),
        ),
    )

    assert len(read) == 2
    assert await members(engine) == sorted(
        [(TENANT, day, m) for day in ("2026-11-26", "2026-11-27") for m in ("A", "AllTenants")]
        + [(OTHER, "2026-11-27", m) for m in ("B", "AllTenants")]
    )


async def test_a_group_beyond_the_cap_reads_a_few_tenants_at_a_time_and_still_sends_its_rows_together(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Four tenants of one listed day with room for two tenant-days a read: two reads, not four, and each
    kind of row in one statement for the group; what is stored is what each tenant's own save would store."""
    monkeypatch.setattr(scores, "GROUP_MEMBERS_CAP", 2)
    tenants = [TENANT, OTHER, "cccccccc-0000-4000-8000-000000000003", "dddddddd-0000-4000-8000-000000000004"]
    for tenant in tenants:
        await save(engine, days(listing("2026-11-27", "AB", tenant=tenant)))
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine.Engine")

    read = await save_group(engine, days(*(listing("2026-11-27", "BC", tenant=tenant) for tenant in tenants)))
    sent = [r.getMessage() for r in caplog.records if r.name == "sqlalchemy.engine.Engine"]

    assert len(read) == 2
    for table in ("secure_scores", "control_score_rows", "comparative_scores"):
        assert sum(f"INSERT INTO {table} " in message for message in sent) == 1, table
    assert await members(engine) == sorted(
        (tenant, "2026-11-27", m) for tenant in tenants for m in ("B", "C", "AllTenants")
    )


async def test_a_group_of_more_control_rows_than_it_defers_sends_each_tenants_rows_as_they_come(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A backfill's group would hold its rows twice until its end: past `GROUP_DEFER_ROWS` they go a tenant at
    a time, and what is stored is the same."""
    monkeypatch.setattr(scores, "GROUP_DEFER_ROWS", 3)
    batch = days(listing("2026-11-27", "AB"), listing("2026-11-27", "BC", tenant=OTHER))
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine.Engine")

    await save_group(engine, batch)
    sent = [r.getMessage() for r in caplog.records if r.name == "sqlalchemy.engine.Engine"]

    assert sum("INSERT INTO control_score_rows " in message for message in sent) == 2
    assert await members(engine) == sorted(
        [(TENANT, "2026-11-27", m) for m in ("A", "B", "AllTenants")]
        + [(OTHER, "2026-11-27", m) for m in ("B", "C", "AllTenants")]
    )


async def test_a_group_sends_its_tenants_rows_in_one_statement_a_kind_and_stores_what_they_would_alone(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """Three tenants' scores, control rows and comparatives (one tenant replacing a stored day) go to the driver
    in one statement a kind (`bulk.log_statement` logs each); saving each tenant alone again changes nothing."""
    third = "cccccccc-0000-4000-8000-000000000003"
    batch = days(
        listing("2026-11-27", "AB"),
        listing("2026-11-26", "A", tenant=OTHER),
        listing("2026-11-27", "BC", tenant=OTHER, bases="TotalSeats"),
        listing("2026-11-27", "C", tenant=third),
    )
    await save(engine, days(listing("2026-11-27", "ABC")))
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine.Engine")
    await save_group(engine, batch)
    sent = [r.getMessage() for r in caplog.records if r.name == "sqlalchemy.engine.Engine"]
    grouped = await snapshot(engine)
    for tenant_id in (TENANT, OTHER, third):
        await save(engine, [d for d in batch if d.tenant_id == tenant_id])

    for table in ("secure_scores", "control_score_rows", "comparative_scores"):
        assert sum(f"INSERT INTO {table} " in message for message in sent) == 1, table
    assert await snapshot(engine) == grouped
    assert len(grouped["control_scores"]) == 2 + 1 + 2 + 1


def test_a_status_without_a_key_is_refused_rather_than_stored_as_null() -> None:
    """The statuses' column reads keys with `.get` (a row may have no status): a status the save did not
    resolve must stop the save, not become NULL."""
    day = date(2026, 11, 28)
    row = ControlScoreRow("t", day, "OneAdmin", 1.0, 100.0, "On", None, None, None, None, {}, None, None)
    bare = row._replace(implementation_status=None)
    known = DayKeys(tenants={"t": 1}, controls={"OneAdmin": 7}, statuses={"On": 3})

    columns = [list(column) for column in control_columns(1, known, [row, bare])]
    assert columns[3] == [3, None]
    with pytest.raises(ValueError, match="1 status"):
        control_columns(1, DayKeys(tenants={"t": 1}, controls={"OneAdmin": 7}, statuses={}), [row])


def _dimension_by_loop(days: list[ScoreDay]) -> list[list[Any]]:
    """The `controls` rows by the plain rule: every row read oldest day first, the later row winning."""
    found: dict[str, list[Any]] = {}
    for day in sorted(days, key=lambda d: d.score_date):
        for c in day.controls:
            row = found.setdefault(c.control_name, [c.control_name, None, None, day.score_date, day.score_date])
            row[4] = day.score_date
            row[1] = row[1] if c.control_category is None else c.control_category
            row[2] = row[2] if c.description is None else c.description
    return [found[name] for name in sorted(found)]


_DIMENSION_SCORES = {day: days(payload(f"2026-11-{day:02d}"))[0].score for day in range(1, 5)}
_DIMENSION_ROW = st.tuples(
    st.sampled_from(["A", "B", "C", "D"]),
    st.sampled_from([None, "", "Identity", "Apps"]),
    st.sampled_from([None, "", "Old words.", "New words."]),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4), st.lists(_DIMENSION_ROW, max_size=6)), max_size=6))
def test_the_controls_dimension_is_what_reading_every_row_in_order_gives(
    listed: list[tuple[int, list[tuple[str, str | None, str | None]]]],
) -> None:
    """`_control_dimension` skips the rows that cannot change the answer (from DIMENSION_SKIP_DAYS days): both
    ways give what reading every row does, with days out of order, days repeated (the later in the list is the
    newer), names repeated in a day, and categories or descriptions missing."""
    built = [
        ScoreDay(
            score=_DIMENSION_SCORES[day],
            comparatives=(),
            controls=tuple(
                ControlScoreRow("t", date(2026, 11, day), n, None, None, None, None, None, None, None, {}, cat, desc)
                for n, cat, desc in items
            ),
        )
        for day, items in listed
    ]
    expected = _dimension_by_loop(built)
    assert scores._dimension_of_open_rows(built) == expected  # a backfill's batch
    assert scores._dimension_of_every_row(built) == expected  # a nightly tenant's
    assert scores._control_dimension(built) == expected


def test_a_save_that_resolves_its_own_keys_skips_the_status_check_and_stores_the_same_columns() -> None:
    """`checked`: the keys were resolved from these very rows; the columns are the same as with the check."""
    day = date(2026, 11, 28)
    row = ControlScoreRow("t", day, "OneAdmin", 1.0, 100.0, "On", None, None, None, None, {}, None, None)
    known = DayKeys(tenants={"t": 1}, controls={"OneAdmin": 7}, statuses={"On": 3})
    rows_ = [row, row._replace(implementation_status=None)]

    assert [list(c) for c in control_columns(1, known, rows_, checked=True)] == [
        list(c) for c in control_columns(1, known, rows_)
    ]

"""Upserts of control profiles and state updates: idempotent, null-keeping, history-keeping, both databases."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from fetcher.models import ControlProfile
from fetcher.normalize import normalize_profile
from fetcher.store.engine import transaction
from fetcher.store.profiles import delete_profiles, profiles_fetched_at, save_control_profiles
from fetcher.store.schema import control_profiles, control_state_updates
from tests.dbutil import rows

SAMPLE = Path(__file__).parent.parent / "data" / "list-control-profiles-page1.json"
TENANT = "0b7c1e2a-1111-4222-8333-444455556666"
OTHER = "9e0e6b7c-1111-4222-8333-444455556666"
FETCHED = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
LATER = FETCHED + timedelta(days=1)
VENDOR = {"provider": "SecureScore", "providerVersion": None, "subProvider": None, "vendor": "Microsoft"}


def sample(tenant: str = TENANT) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = json.loads(SAMPLE.read_text(encoding="utf-8"))["value"]
    return [{**o, "azureTenantId": tenant} for o in objects]


def normalized(objects: list[dict[str, Any]], fetched: datetime = FETCHED) -> list[ControlProfile]:
    return [normalize_profile(o, fetched) for o in objects]


async def save(engine: AsyncEngine, profiles: list[ControlProfile], tenant: str = TENANT) -> int:
    async with transaction(engine) as conn:
        return await save_control_profiles(conn, tenant, profiles)


async def test_profiles_and_updates_are_stored_as_whole_rows(engine: AsyncEngine) -> None:
    assert await save(engine, normalized(sample())) == 2

    stored = await rows(engine, control_profiles)
    assert stored[0] == {
        "tenant_id": TENANT,
        "control_name": "AdminMFAV2",
        "title": "Ensure multifactor authentication is enabled for all users in administrative roles",
        "max_score": 10.0,
        "rank": 1,
        "tier": "Core",
        "action_type": "Config",
        "service": "AzureAD",
        "user_impact": "Low",
        "implementation_cost": "Low",
        "threats": ["AccountBreach", "ElevationOfPrivilege"],
        "remediation": sample()[0]["remediation"],
        "remediation_impact": "Administrators are asked for a second factor when they sign in.",
        "action_url": "https://security.microsoft.com/securescore?actionId=AdminMFAV2",
        "deprecated": False,
        "control_category": "Identity",
        "last_modified_at": datetime(2026, 11, 20, tzinfo=UTC),
        "extra": {"vendorInformation": VENDOR},
        "fetched_at": FETCHED,
    }
    assert [r["control_name"] for r in stored] == ["AdminMFAV2", "scid_2000"]
    assert await rows(engine, control_state_updates) == [
        {
            "tenant_id": TENANT,
            "control_name": "AdminMFAV2",
            "updated_at": datetime(2026, 10, 2, 9, 30, tzinfo=UTC),
            "state": "ThirdParty",
            "assigned_to": "",
            "comment": "Covered by the MFA provider we use",
            "updated_by": "admin@contoso.example",
        },
        {
            "tenant_id": TENANT,
            "control_name": "AdminMFAV2",
            "updated_at": datetime(2026, 10, 20, 14, 5, tzinfo=UTC),
            "state": "Default",
            "assigned_to": "",
            "comment": "",
            "updated_by": "admin@contoso.example",
        },
    ]


async def test_saving_the_same_answer_twice_changes_nothing(engine: AsyncEngine) -> None:
    await save(engine, normalized(sample()))
    first = (await rows(engine, control_profiles), await rows(engine, control_state_updates))

    await save(engine, normalized(sample()))

    assert (await rows(engine, control_profiles), await rows(engine, control_state_updates)) == first


async def test_a_null_never_erases_a_stored_value_and_extra_is_merged(engine: AsyncEngine) -> None:
    await save(engine, normalized(sample()))
    thin = {**sample()[1], "title": None, "maxScore": None, "remediation": None, "newProperty": 1}
    del thin["vendorInformation"]

    await save(engine, normalized([thin], LATER))

    [_, row] = await rows(engine, control_profiles)
    assert (row["title"], row["max_score"], row["remediation"]) == (
        sample()[1]["title"],
        8.0,
        sample()[1]["remediation"],
    )
    assert row["extra"] == {"vendorInformation": VENDOR, "newProperty": 1}
    assert row["fetched_at"] == LATER


async def test_a_changed_value_replaces_the_stored_one(engine: AsyncEngine) -> None:
    await save(engine, normalized(sample()))

    await save(engine, normalized([{**sample()[1], "maxScore": 9.5, "deprecated": True}], LATER))

    [_, row] = await rows(engine, control_profiles)
    assert (row["max_score"], row["deprecated"]) == (9.5, True)


async def test_state_updates_are_kept_when_a_later_answer_no_longer_lists_them(engine: AsyncEngine) -> None:
    await save(engine, normalized(sample()))
    newer = {"state": "Ignored", "updatedBy": "ops@contoso.example", "updatedDateTime": "2026-11-25T08:00:00Z"}

    await save(engine, normalized([{**sample()[0], "controlStateUpdates": [newer]}], LATER))

    got = [(r["updated_at"], r["state"]) for r in await rows(engine, control_state_updates)]
    assert got == [
        (datetime(2026, 10, 2, 9, 30, tzinfo=UTC), "ThirdParty"),
        (datetime(2026, 10, 20, 14, 5, tzinfo=UTC), "Default"),
        (datetime(2026, 11, 25, 8, 0, tzinfo=UTC), "Ignored"),
    ]


async def test_a_profile_missing_from_a_later_answer_is_kept(engine: AsyncEngine) -> None:
    await save(engine, normalized(sample()))

    await save(engine, normalized(sample()[:1], LATER))

    assert [(r["control_name"], r["fetched_at"]) for r in await rows(engine, control_profiles)] == [
        ("AdminMFAV2", LATER),
        ("scid_2000", FETCHED),
    ]


async def test_tenants_are_kept_apart_and_their_fetch_times_read_back(engine: AsyncEngine) -> None:
    await save(engine, normalized(sample()))
    await save(engine, normalized(sample(OTHER), LATER), OTHER)

    async with transaction(engine, write=False) as conn:
        assert await profiles_fetched_at(conn) == {TENANT: FETCHED, OTHER: LATER}
        assert await profiles_fetched_at(conn, [OTHER]) == {OTHER: LATER}
    assert len(await rows(engine, control_profiles, tenant_id=OTHER)) == 2


async def test_delete_profiles_keeps_the_state_history(engine: AsyncEngine) -> None:
    await save(engine, normalized(sample()))

    async with transaction(engine) as conn:
        await delete_profiles(conn, TENANT)

    assert (len(await rows(engine, control_profiles)), len(await rows(engine, control_state_updates))) == (0, 2)


async def test_another_tenants_profile_is_refused(engine: AsyncEngine) -> None:
    with pytest.raises(ValueError, match=OTHER):
        await save(engine, normalized(sample(OTHER)))

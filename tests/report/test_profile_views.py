"""The control profile views (migration 0005) on scripted days, asserted on whole rows, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from fetcher.config import DatabaseConfig
from fetcher.normalize import normalize_profile
from fetcher.store.engine import create_engine, downgrade, migrate, transaction
from fetcher.store.profiles import save_control_profiles
from fetcher.store.schema import category_scores, control_changes, control_status, improvement_actions, views
from tests.report import reference
from tests.report.conftest import FETCHED, days_ago, score_day, store

A = "aaaaaaaa-0000-4000-8000-00000000000a"
B = "bbbbbbbb-0000-4000-8000-00000000000b"
NAMES = {A: "Alpha", B: "Beta"}
TITLES = {"mfa": "Require MFA for admins", "legacy": "Block legacy authentication", "new": "Label documents"}
MAX = {"mfa": 10.0, "legacy": 8.0, "new": 4.0, "old": 5.0}
CATEGORY = {"mfa": "Identity", "legacy": "Identity", "new": "Data", "old": "Apps"}
IGNORED_LONG_AGO = datetime.combine(days_ago(40), time(9), UTC)
THIRD_PARTY_ON_D1 = datetime.combine(days_ago(1), time(10, 30), UTC)


def update(state: str, when: datetime, by: str, comment: str = "") -> dict[str, Any]:
    return {"state": state, "updatedBy": by, "assignedTo": "", "comment": comment, "updatedDateTime": when.isoformat()}


def profile(tenant: str, name: str, *updates: dict[str, Any], deprecated: bool = False) -> dict[str, Any]:
    return {
        "id": name,
        "azureTenantId": tenant,
        "title": TITLES.get(name, f"Retired {name}"),
        "maxScore": MAX[name],
        "rank": len(name),
        "tier": "Core",
        "actionType": "Config",
        "service": "AzureAD",
        "userImpact": "Low",
        "implementationCost": "Moderate",
        "actionUrl": f"https://security.microsoft.com/securescore?actionId={name}",
        "deprecated": deprecated,
        "controlCategory": CATEGORY[name],
        "controlStateUpdates": list(updates),
    }


async def store_profiles(engine: AsyncEngine, *objects: dict[str, Any]) -> None:
    by_tenant: dict[str, list[Any]] = {}
    for obj in objects:
        by_tenant.setdefault(obj["azureTenantId"], []).append(normalize_profile(obj, FETCHED))
    async with transaction(engine) as conn:
        for tenant, profiles in by_tenant.items():
            await save_control_profiles(conn, tenant, profiles)


async def portfolio(engine: AsyncEngine) -> None:
    """A: two days, `gone` without a profile, `old` deprecated; B: one day."""
    await store(
        engine,
        score_day(A, days_ago(2), {"mfa": 2.0, "legacy": 0.0, "gone": 3.0}),
        score_day(A, days_ago(1), {"mfa": 10.0, "legacy": 8.0, "new": 4.0, "old": 0.0}),
        score_day(B, days_ago(1), {"mfa": 4.0, "legacy": 0.0, "new": 0.0}),
        names=NAMES,
    )
    await store_profiles(
        engine,
        profile(A, "mfa", update("Ignored", IGNORED_LONG_AGO, "ann@alpha.example", "pilot")),
        profile(A, "legacy", update("ThirdParty", THIRD_PARTY_ON_D1, "bob@alpha.example", "Okta does it")),
        profile(A, "new"),
        profile(A, "old", deprecated=True),
        profile(B, "mfa"),
        profile(B, "legacy"),
        profile(B, "new", update("Ignored", IGNORED_LONG_AGO, "cy@beta.example")),
    )


def status_row(tenant: str, name: str, score: float, points: float, **state: Any) -> dict[str, Any]:
    return {
        "tenant_id": tenant,
        "tenant_name": NAMES[tenant],
        "score_date": days_ago(1),
        "control_name": name,
        "title": TITLES.get(name, f"Retired {name}"),
        "control_category": CATEGORY[name],
        "score": score,
        "max_score": MAX[name],
        "points_available": points,
        "state": None,
        "state_updated_by": None,
        "state_updated_at": None,
        "state_comment": None,
        "rank": len(name),
        "tier": "Core",
        "action_type": "Config",
        "service": "AzureAD",
        "user_impact": "Low",
        "implementation_cost": "Moderate",
        "action_url": f"https://security.microsoft.com/securescore?actionId={name}",
        "deprecated": name == "old",
        **state,
    }


async def test_control_status_is_each_control_on_the_newest_day_with_its_profile_and_state(
    engine: AsyncEngine,
) -> None:
    await portfolio(engine)

    got = sorted(await reference.view(engine, control_status), key=lambda r: (r["tenant_id"], r["control_name"]))

    ignored = {"state": "Ignored", "state_updated_by": "ann@alpha.example", "state_comment": "pilot"}
    assert got == [
        status_row(
            A,
            "legacy",
            8.0,
            0.0,
            state="ThirdParty",
            state_updated_by="bob@alpha.example",
            state_updated_at=THIRD_PARTY_ON_D1,
            state_comment="Okta does it",
        ),
        status_row(A, "mfa", 10.0, 0.0, **ignored, state_updated_at=IGNORED_LONG_AGO),
        status_row(A, "new", 4.0, 0.0),
        status_row(A, "old", 0.0, 5.0),
        status_row(B, "legacy", 0.0, 8.0),
        status_row(B, "mfa", 4.0, 6.0),
        status_row(
            B,
            "new",
            0.0,
            4.0,
            state="Ignored",
            state_updated_by="cy@beta.example",
            state_updated_at=IGNORED_LONG_AGO,
            state_comment="",
        ),
    ]


async def test_a_control_without_a_profile_is_named_by_its_id_and_has_no_points_available(
    engine: AsyncEngine,
) -> None:
    await store(engine, score_day(A, days_ago(0), {"scid_1": 1.0}), names=NAMES)

    [row] = await reference.view(engine, control_status)

    assert (row["title"], row["control_category"], row["max_score"], row["points_available"]) == (
        "scid_1",
        "Identity",
        None,
        None,
    )


async def test_points_available_are_never_negative(engine: AsyncEngine) -> None:
    await store(engine, score_day(A, days_ago(0), {"mfa": 12.0}), names=NAMES)
    await store_profiles(engine, profile(A, "mfa"))

    [row] = await reference.view(engine, control_status)

    assert (row["score"], row["max_score"], row["points_available"]) == (12.0, 10.0, 0.0)


async def test_category_scores_sum_each_days_controls_by_category(engine: AsyncEngine) -> None:
    await portfolio(engine)

    got = sorted(await reference.view(engine, category_scores, tenant_id=A), key=lambda r: str(r["score_date"]))

    def row(day: int, category: str, score: float, maximum: float, controls: int, with_max: int) -> dict[str, Any]:
        return {
            "tenant_id": A,
            "score_date": days_ago(day),
            "control_category": category,
            "score": score,
            "max_score": maximum,
            "percent": 100.0 * score / maximum,
            "controls": controls,
            "controls_with_max": with_max,
        }

    assert sorted(got, key=lambda r: (str(r["score_date"]), r["control_category"])) == [
        row(2, "Identity", 5.0, 18.0, 3, 2),
        row(1, "Apps", 0.0, 5.0, 1, 1),
        row(1, "Data", 4.0, 4.0, 1, 1),
        row(1, "Identity", 18.0, 18.0, 2, 2),
    ]


async def test_improvement_actions_rank_controls_across_tenants(engine: AsyncEngine) -> None:
    await portfolio(engine)

    got = sorted(await reference.view(engine, improvement_actions), key=lambda r: r["control_name"])

    def row(name: str, points: float, ignored: int, third_party: int) -> dict[str, Any]:
        return {
            "control_name": name,
            "title": TITLES[name],
            "control_category": CATEGORY[name],
            "action_type": "Config",
            "user_impact": "Low",
            "implementation_cost": "Moderate",
            "action_url": f"https://security.microsoft.com/securescore?actionId={name}",
            "tenants": 2,
            "tenants_with_points": 1,
            "points_available_total": points,
            "points_available_average": points,
            "percent_gain_average": points,  # every maxScore is 100
            "tenants_ignored": ignored,
            "tenants_third_party": third_party,
        }

    # `old` is deprecated: it has points available in A, but no action can earn them.
    assert got == [row("legacy", 8.0, 0, 1), row("mfa", 6.0, 1, 0), row("new", 4.0, 1, 0)]


def change_row(name: str, previous: float | None, score: float | None, kind: str, **more: Any) -> dict[str, Any]:
    return {
        "tenant_id": A,
        "score_date": days_ago(1),
        "previous_date": days_ago(2),
        "control_name": name,
        "control_category": "Identity",
        "previous_score": previous,
        "score": score,
        "change": (score or 0.0) - (previous or 0.0),
        "kind": kind,
        "title": TITLES.get(name, name if name == "gone" else f"Retired {name}"),
        "state": None,
        "state_updated_by": None,
        "state_updated_at": None,
        "cause": "microsoft" if kind != "changed" else "tenant",
        **more,
    }


async def test_control_changes_carry_the_title_the_state_update_between_the_days_and_the_cause(
    engine: AsyncEngine,
) -> None:
    await portfolio(engine)

    got = sorted(await reference.view(engine, control_changes), key=lambda r: r["control_name"])

    assert got == [
        change_row("gone", 3.0, None, "disappeared"),
        change_row(
            "legacy",
            0.0,
            8.0,
            "changed",
            state="ThirdParty",
            state_updated_by="bob@alpha.example",
            state_updated_at=THIRD_PARTY_ON_D1,
        ),
        change_row("mfa", 2.0, 10.0, "changed"),  # its Ignored update is older than the previous day
        change_row("new", None, 4.0, "appeared"),
        change_row("old", None, 0.0, "appeared"),
    ]


async def test_a_score_that_moves_with_an_unchanged_percentage_is_a_new_max_score_from_microsoft(
    engine: AsyncEngine,
) -> None:
    older, newer = score_day(A, days_ago(2), {"x": 5.0, "y": 1.0}), score_day(A, days_ago(1), {"x": 6.0, "y": 2.0})
    older["controlScores"][0]["scoreInPercentage"] = newer["controlScores"][0]["scoreInPercentage"] = 50.0
    older["controlScores"][1]["scoreInPercentage"], newer["controlScores"][1]["scoreInPercentage"] = 10.0, 20.0
    await store(engine, older, newer)

    got = {r["control_name"]: r["cause"] for r in await reference.view(engine, control_changes)}

    assert got == {"x": "microsoft", "y": "tenant"}


async def test_downgrade_to_0004_drops_the_profile_views_and_upgrade_restores_them(tmp_path: Path) -> None:
    engine = create_engine(DatabaseConfig(url=f"sqlite+aiosqlite:///{tmp_path / 'views.db'}"))
    await migrate(engine)

    await downgrade(engine, "0004")
    async with engine.connect() as conn:
        down = await conn.run_sync(
            lambda c: (set(sa.inspect(c).get_view_names()), set(sa.inspect(c).get_table_names()))
        )
        old_columns = await conn.run_sync(lambda c: [x["name"] for x in sa.inspect(c).get_columns("control_changes")])
    await migrate(engine)
    async with engine.connect() as conn:
        up = await conn.run_sync(lambda c: set(sa.inspect(c).get_view_names()))
    await engine.dispose()

    assert down[0] == {"control_changes", "latest_scores", "score_history"}
    assert not down[1] & {"control_profiles", "control_state_updates"}
    assert "cause" not in old_columns
    assert up == set(views.tables)

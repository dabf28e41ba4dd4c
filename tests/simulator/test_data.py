"""The generated history: full newest day, thin older days, determinism, drift, and realistic variety."""

from __future__ import annotations

import datetime
import itertools
import re
from typing import Any

import aiohttp
import pytest

from fetcher.simulator import RunningSimulator, SimTenant, Simulator, generate_tenants
from fetcher.simulator.catalog import CATEGORIES
from tests.simulator.conftest import NEWEST, SEED
from tests.simulator.helpers import access_token, get, list_pages

NEWEST_ONLY = {"lastSynced", "on", "count", "total"}
STANDARD = {"controlCategory", "controlName", "description", "score", "scoreInPercentage", "implementationStatus"}


@pytest.fixture(scope="module")
def big() -> Simulator:
    """A real-sized simulator: ten tenants of about 230 controls a day."""
    return Simulator(generate_tenants(10, seed=SEED), seed=SEED, newest_day=NEWEST)


def _first(sim: Simulator) -> str:
    return next(iter(sim.tenants.values())).tenant_id


def _days(sim: Simulator, tenant_id: str, count: int) -> list[dict[str, Any]]:
    return sim.expected_objects(tenant_id, days=count)


def test_newest_day_is_full(big: Simulator) -> None:
    newest = big.score_object(_first(big), NEWEST, newest=True)
    assert all(control["description"] for control in newest["controlScores"])
    assert all("lastSynced" in control for control in newest["controlScores"])
    assert {basis["basis"] for basis in newest["averageComparativeScores"]} == {"AllTenants", "TotalSeats"}


def test_older_day_is_thin(big: Simulator) -> None:
    older = big.score_object(_first(big), NEWEST - datetime.timedelta(days=1), newest=False)
    assert all(control["description"] is None for control in older["controlScores"])
    assert not any(NEWEST_ONLY & set(control) for control in older["controlScores"])


def _without_newest_only(obj: dict[str, Any]) -> dict[str, Any]:
    controls = [
        {key: (None if key == "description" else value) for key, value in control.items() if key not in NEWEST_ONLY}
        for control in obj["controlScores"]
    ]
    return {**obj, "controlScores": controls, "averageComparativeScores": None}


def test_a_day_as_newest_and_as_older_differs_only_where_graph_thins_it(big: Simulator) -> None:
    tenant_id = _first(big)
    full = big.score_object(tenant_id, NEWEST, newest=True)
    thin = big.score_object(tenant_id, NEWEST, newest=False)
    assert _without_newest_only(full) == _without_newest_only(thin)


async def test_yesterdays_newest_is_thin_once_a_new_day_appears(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    url = f"{running.graph_base_url}/security/secureScores/{tenant.tenant_id}_{NEWEST.isoformat()}"
    token = await access_token(session, running, tenant.tenant_id)
    before = (await get(session, url, token)).json()
    running.simulator.newest_day += datetime.timedelta(days=1)
    after = (await get(session, url, token)).json()
    assert before["controlScores"][0]["description"] is not None
    assert after["controlScores"][0]["description"] is None
    assert _without_newest_only(before) == _without_newest_only(after)


async def test_advancing_newest_day_adds_exactly_one_day(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    url = f"{running.graph_base_url}/security/secureScores"
    token = await access_token(session, running, tenant.tenant_id)
    before = [obj["id"] for page in await list_pages(session, url, token) for obj in page["value"]]
    running.simulator.newest_day += datetime.timedelta(days=1)
    after = [obj["id"] for page in await list_pages(session, url, token) for obj in page["value"]]
    new_day = NEWEST + datetime.timedelta(days=1)
    assert after == [f"{tenant.tenant_id}_{new_day}", *before[:-1]]


def test_same_seed_gives_identical_bytes(tenants: list[SimTenant]) -> None:
    first = Simulator(tenants, seed=5, newest_day=NEWEST)
    second = Simulator(tenants, seed=5, newest_day=NEWEST)
    days = [NEWEST - datetime.timedelta(days=n) for n in range(90)]
    tenant_id = tenants[0].tenant_id
    assert [first.day_bytes(tenant_id, day) for day in days] == [second.day_bytes(tenant_id, day) for day in days]


def test_another_seed_gives_other_scores(tenants: list[SimTenant]) -> None:
    tenant_id = tenants[0].tenant_id
    first = Simulator(tenants, seed=5, newest_day=NEWEST).score_object(tenant_id, NEWEST, newest=True)
    second = Simulator(tenants, seed=6, newest_day=NEWEST).score_object(tenant_id, NEWEST, newest=True)
    assert first["controlScores"] != second["controlScores"]


def test_a_day_does_not_depend_on_what_was_generated_before(big: Simulator) -> None:
    """The per-tenant memo of serialized controls never leaks one day's state into another."""
    fresh = Simulator(list(big.tenants.values()), seed=SEED, newest_day=NEWEST)
    tenant_id, day = _first(big), NEWEST - datetime.timedelta(days=40)
    _days(big, tenant_id, 90)
    assert big.day_bytes(tenant_id, day) == fresh.day_bytes(tenant_id, day)


def test_scores_add_up(big: Simulator) -> None:
    for obj in _days(big, _first(big), 5):
        controls = obj["controlScores"]
        assert obj["currentScore"] == round(sum(control["score"] for control in controls), 2)
        assert obj["maxScore"] > obj["currentScore"]


def test_day_has_about_the_asked_number_of_controls_in_all_categories(big: Simulator) -> None:
    controls = big.score_object(_first(big), NEWEST, newest=True)["controlScores"]
    assert 226 <= len(controls) <= 234
    assert {control["controlCategory"] for control in controls} == set(CATEGORIES)


def test_created_time_is_on_its_day_but_not_at_midnight(big: Simulator) -> None:
    stamps = [obj["createdDateTime"] for obj in _days(big, _first(big), 30)]
    pattern = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?Z$")
    assert all(pattern.match(stamp) for stamp in stamps)
    assert [stamp[:10] for stamp in stamps] == [str(NEWEST - datetime.timedelta(days=n)) for n in range(30)]
    assert not any(stamp[11:19] == "00:00:00" for stamp in stamps)
    assert len({len(stamp) for stamp in stamps}) > 1  # fractional seconds of varying length


def _changes(objects: list[dict[str, Any]]) -> list[int]:
    scores = [{control["controlName"]: control["score"] for control in obj["controlScores"]} for obj in objects]
    return [sum(1 for name in new if name in old and old[name] != new[name]) for new, old in itertools.pairwise(scores)]


def test_a_few_controls_change_each_day(big: Simulator) -> None:
    changes = _changes(_days(big, _first(big), 60))
    assert 1 <= sum(changes) / len(changes) <= 10


def test_some_controls_come_and_go_over_ninety_days(big: Simulator) -> None:
    def name_sets(tenant_id: str) -> set[frozenset[str]]:
        objects = _days(big, tenant_id, 90)
        return {frozenset(control["controlName"] for control in obj["controlScores"]) for obj in objects}

    assert any(len(name_sets(tenant_id)) > 1 for tenant_id in big.tenants)


def test_tenants_differ_in_size(big: Simulator) -> None:
    users = [big.score_object(tenant_id, NEWEST, newest=True)["activeUserCount"] for tenant_id in big.tenants]
    assert max(users) >= 10 * min(users)


def test_string_typed_properties_look_like_real_ones(big: Simulator) -> None:
    controls = big.score_object(_first(big), NEWEST, newest=True)["controlScores"]
    assert {control["on"] for control in controls if "on" in control} == {"true", "false"}
    assert all(control[key].isdigit() for control in controls for key in ("count", "total") if key in control)


def test_an_unknown_property_turns_up_now_and_then(big: Simulator) -> None:
    extras = {
        key
        for tenant_id in big.tenants
        for control in big.score_object(tenant_id, NEWEST, newest=True)["controlScores"]
        for key in control
        if key not in STANDARD | NEWEST_ONLY
    }
    assert extras


def test_older_days_sometimes_lose_comparative_scores(big: Simulator) -> None:
    averages = [obj["averageComparativeScores"] for obj in _days(big, _first(big), 30)[1:]]
    assert [] in averages
    assert any(averages)


def test_seat_range_bounds_are_strings(big: Simulator) -> None:
    seats = big.score_object(_first(big), NEWEST, newest=True)["averageComparativeScores"][1]
    assert seats["SeatSizeRangeLowerValue"].isdigit()
    assert seats["SeatSizeRangeUpperValue"].isdigit()


def _synced(sim: Simulator, tenant_id: str, day: datetime.date) -> list[str]:
    return [control["lastSynced"] for control in sim.score_object(tenant_id, day, newest=True)["controlScores"]]


def test_each_control_has_its_own_last_synced_by_default(big: Simulator) -> None:
    synced = _synced(big, _first(big), NEWEST)
    assert len(set(synced)) > len(synced) / 2


def test_synced_groups_share_a_few_last_synced_values_a_day_before_it(tenants: list[SimTenant]) -> None:
    sim = Simulator(tenants, seed=SEED, newest_day=NEWEST, synced_groups=6)
    for tenant in tenants:
        synced = _synced(sim, tenant.tenant_id, NEWEST)
        assert 2 <= len(set(synced)) <= 6
        assert all(value.endswith("Z") and value[:10] < NEWEST.isoformat() for value in synced)


def test_synced_groups_move_as_the_days_pass(tenants: list[SimTenant]) -> None:
    sim = Simulator(tenants, seed=SEED, newest_day=NEWEST, synced_groups=6)
    tenant_id = tenants[0].tenant_id
    week = [set(_synced(sim, tenant_id, NEWEST + datetime.timedelta(days=n))) for n in range(7)]
    assert len(set.union(*week)) > len(week[0])


def test_synced_groups_change_nothing_but_last_synced(tenants: list[SimTenant]) -> None:
    grouped = Simulator(tenants, seed=SEED, newest_day=NEWEST, synced_groups=6)
    plain = Simulator(tenants, seed=SEED, newest_day=NEWEST)
    tenant_id = tenants[0].tenant_id
    assert _without_newest_only(grouped.score_object(tenant_id, NEWEST, newest=True)) == _without_newest_only(
        plain.score_object(tenant_id, NEWEST, newest=True)
    )
    older = NEWEST - datetime.timedelta(days=3)
    assert grouped.day_bytes(tenant_id, older) == plain.day_bytes(tenant_id, older)

"""secureScoreControlProfiles in the simulator: consistent with its secureScores, paged, with history and faults."""

from __future__ import annotations

import aiohttp
import pytest

from fetcher.simulator import RunningSimulator, SimTenant, Simulator
from fetcher.simulator.faults import Fault
from fetcher.simulator.profiles import MIN_PROFILES
from tests.simulator.conftest import NEWEST, SEED
from tests.simulator.helpers import access_token, get


@pytest.fixture
def sim(tenants: list[SimTenant]) -> Simulator:
    return Simulator(tenants, seed=SEED, newest_day=NEWEST, controls_per_day=230)


def _url(running: RunningSimulator) -> str:
    return f"{running.graph_base_url}/security/secureScoreControlProfiles"


async def _all_pages(session: aiohttp.ClientSession, url: str, token: str) -> tuple[list[dict], int]:
    objects: list[dict] = []
    pages = 0
    next_url: str | None = url
    while next_url is not None:
        answer = await get(session, next_url, token)
        assert answer.status == 200, answer.body
        body = answer.json()
        objects += body["value"]
        next_url = body.get("@odata.nextLink")
        pages += 1
    return objects, pages


async def test_profiles_come_in_two_pages_and_follow_the_list_to_its_end(
    running: RunningSimulator, session: aiohttp.ClientSession, sim: Simulator, tenant: SimTenant
) -> None:
    token = await access_token(session, running, tenant.tenant_id)

    objects, pages = await _all_pages(session, _url(running), token)

    assert pages == 2
    assert len(objects) > 250
    assert objects == sim.expected_profiles(tenant.tenant_id)
    assert len({o["id"] for o in objects}) == len(objects)


async def test_every_scored_control_has_a_profile_with_its_category_and_max_score(
    sim: Simulator, tenant: SimTenant
) -> None:
    profiles = {p["id"]: p for p in sim.expected_profiles(tenant.tenant_id)}
    day = sim.score_object(tenant.tenant_id, NEWEST, newest=True)

    for control in day["controlScores"]:
        profile = profiles[control["controlName"]]
        assert profile["controlCategory"] == control["controlCategory"]
        assert profile["deprecated"] is False
        assert control["score"] <= profile["maxScore"]
    assert day["maxScore"] == sum(profiles[c["controlName"]]["maxScore"] for c in day["controlScores"])


def test_profiles_include_deprecated_controls_state_histories_and_html_remediation(
    sim: Simulator, tenant: SimTenant
) -> None:
    profiles = sim.expected_profiles(tenant.tenant_id)
    scored = {c["controlName"] for c in sim.score_object(tenant.tenant_id, NEWEST, newest=True)["controlScores"]}

    deprecated = [p["id"] for p in profiles if p["deprecated"]]
    histories = [p["controlStateUpdates"] for p in profiles if p["controlStateUpdates"]]
    assert len(profiles) >= MIN_PROFILES
    assert deprecated
    assert not set(deprecated) & scored
    assert len(histories) >= 5
    assert {u["state"] for h in histories for u in h} >= {"ThirdParty", "Ignored"}
    assert all(u["updatedBy"].endswith(".example") for h in histories for u in h)
    assert all(p["remediation"].startswith("<p>") for p in profiles)
    assert [p["rank"] for p in profiles] == list(range(1, len(profiles) + 1))


def test_profiles_are_the_same_whenever_they_are_asked_for(sim: Simulator, tenants: list[SimTenant]) -> None:
    again = Simulator(tenants, seed=SEED, newest_day=NEWEST, controls_per_day=230)

    assert sim.expected_profiles(tenants[1].tenant_id) == again.expected_profiles(tenants[1].tenant_id)
    assert sim.expected_profiles(tenants[1].tenant_id) != sim.expected_profiles(tenants[0].tenant_id)


async def test_top_makes_smaller_pages_and_a_foreign_skiptoken_is_refused(
    running: RunningSimulator, session: aiohttp.ClientSession, sim: Simulator, tenants: list[SimTenant]
) -> None:
    token = await access_token(session, running, tenants[0].tenant_id)
    objects, pages = await _all_pages(session, _url(running) + "?$top=100", token)
    first = (await get(session, _url(running), token)).json()["@odata.nextLink"]

    other = await access_token(session, running, tenants[1].tenant_id)
    refused = await get(session, first, other)

    assert (len(objects), pages) == (len(sim.expected_profiles(tenants[0].tenant_id)), 3)
    assert refused.status == 400
    assert refused.json()["error"]["code"] == "BadRequest"


async def test_a_profiles_fault_leaves_secure_scores_alone_and_a_graph_fault_leaves_profiles_alone(
    running: RunningSimulator, session: aiohttp.ClientSession, sim: Simulator, tenants: list[SimTenant]
) -> None:
    first, second = tenants[0].tenant_id, tenants[1].tenant_id
    sim.add_fault(first, Fault.status(503, endpoint="profiles"))
    sim.add_fault(second, Fault.status(503))
    scores = f"{running.graph_base_url}/security/secureScores?$top=1"

    token_first = await access_token(session, running, first)
    token_second = await access_token(session, running, second)

    assert (await get(session, _url(running), token_first)).status == 503
    assert (await get(session, scores, token_first)).status == 200
    assert (await get(session, _url(running), token_second)).status == 200
    assert (await get(session, scores, token_second)).status == 503
    assert [r.endpoint for r in sim.requests if r.status == 503] == ["profiles", "list"]

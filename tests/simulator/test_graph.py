"""Graph's side: the access token decides whose data comes back, and errors read as Graph's."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from pathlib import Path

import aiohttp
import pytest

from fetcher.simulator import RunningSimulator, SimTenant, Simulator, generate_tenants
from fetcher.simulator.graph import CONTENT_TYPE
from tests.simulator.conftest import NEWEST, SEED
from tests.simulator.helpers import access_token, get, serve


@pytest.fixture
def tenants() -> list[SimTenant]:
    """Two healthy tenants, one without consent, one without data."""
    first, second, unconsented, empty = generate_tenants(4, seed=SEED)
    return [first, second, dataclasses.replace(unconsented, consent=False), dataclasses.replace(empty, empty=True)]


def _list_url(running: RunningSimulator) -> str:
    return f"{running.graph_base_url}/security/secureScores"


def _item_url(running: RunningSimulator, tenant_id: str, day: datetime.date) -> str:
    return f"{_list_url(running)}/{tenant_id}_{day.isoformat()}"


async def test_token_decides_whose_scores_are_listed(
    running: RunningSimulator, session: aiohttp.ClientSession, tenants: list[SimTenant]
) -> None:
    for tenant in tenants[:2]:
        token = await access_token(session, running, tenant.tenant_id)
        body = (await get(session, _list_url(running) + "?$top=3", token)).json()
        assert {obj["azureTenantId"] for obj in body["value"]} == {tenant.tenant_id}


async def test_missing_token_is_unauthorized_with_a_challenge(
    running: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    answer = await get(session, _list_url(running))
    assert answer.status == 401
    assert answer.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert answer.headers["WWW-Authenticate"].startswith("Bearer ")


async def test_forged_token_is_unauthorized(
    running: RunningSimulator, session: aiohttp.ClientSession, tenants: list[SimTenant]
) -> None:
    head, payload, _ = (await access_token(session, running, tenants[0].tenant_id)).split(".")
    answer = await get(session, _list_url(running), f"{head}.{payload}.AAAA")
    assert (answer.status, answer.json()["error"]["code"]) == (401, "InvalidAuthenticationToken")


async def test_expired_token_is_unauthorized(tenants: list[SimTenant], tmp_path: Path) -> None:
    sim = Simulator(tenants, seed=SEED, newest_day=NEWEST, controls_per_day=10, token_lifetime_seconds=1)
    async with serve(sim, tmp_path) as (running, session):
        token = await access_token(session, running, tenants[0].tenant_id)
        await asyncio.sleep(1.1)
        answer = await get(session, _list_url(running), token)
    assert answer.status == 401
    assert "expired" in answer.json()["error"]["message"]


async def test_token_without_roles_is_forbidden(
    running: RunningSimulator, session: aiohttp.ClientSession, tenants: list[SimTenant]
) -> None:
    token = await access_token(session, running, tenants[2].tenant_id)
    answer = await get(session, _list_url(running), token)
    assert (answer.status, answer.json()["error"]["code"]) == (403, "Forbidden")
    assert "SecurityEvents.Read.All" in answer.json()["error"]["message"]


async def test_empty_tenant_lists_nothing(
    running: RunningSimulator, session: aiohttp.ClientSession, tenants: list[SimTenant]
) -> None:
    token = await access_token(session, running, tenants[3].tenant_id)
    body = (await get(session, _list_url(running), token)).json()
    assert (body["value"], "@odata.nextLink" in body) == ([], False)


async def test_one_score_is_returned_by_id(
    running: RunningSimulator, session: aiohttp.ClientSession, tenants: list[SimTenant]
) -> None:
    tenant, day = tenants[0], NEWEST - datetime.timedelta(days=3)
    token = await access_token(session, running, tenant.tenant_id)
    body = (await get(session, _item_url(running, tenant.tenant_id, day), token)).json()
    context = body.pop("@odata.context")
    assert context.endswith("$metadata#security/secureScores/$entity")
    assert body == running.simulator.score_object(tenant.tenant_id, day, newest=False)


@pytest.mark.parametrize(("which", "offset"), [("other-tenant", 0), ("future", -1), ("too-old", 90)], ids=str)
async def test_score_outside_the_tokens_reach_is_not_found(
    running: RunningSimulator, session: aiohttp.ClientSession, tenants: list[SimTenant], which: str, offset: int
) -> None:
    owner = tenants[1] if which == "other-tenant" else tenants[0]
    token = await access_token(session, running, tenants[0].tenant_id)
    answer = await get(session, _item_url(running, owner.tenant_id, NEWEST - datetime.timedelta(days=offset)), token)
    assert (answer.status, answer.json()["error"]["code"]) == (404, "ResourceNotFound")


async def test_answers_carry_graph_headers(
    running: RunningSimulator, session: aiohttp.ClientSession, tenants: list[SimTenant]
) -> None:
    token = await access_token(session, running, tenants[0].tenant_id)
    answer = await get(session, _list_url(running) + "?$top=1", token, **{"client-request-id": "abc-123"})
    assert answer.headers["Content-Type"] == CONTENT_TYPE
    assert answer.headers["client-request-id"] == "abc-123"
    assert len(answer.headers["request-id"]) == 36


async def test_unknown_graph_segment_is_a_bad_request(
    running: RunningSimulator, session: aiohttp.ClientSession, tenants: list[SimTenant]
) -> None:
    token = await access_token(session, running, tenants[0].tenant_id)
    answer = await get(session, f"{running.graph_base_url}/security/alerts_v2", token)
    assert (answer.status, answer.json()["error"]["code"]) == (400, "BadRequest")


async def test_path_case_does_not_matter(
    running: RunningSimulator, session: aiohttp.ClientSession, tenants: list[SimTenant]
) -> None:
    token = await access_token(session, running, tenants[0].tenant_id)
    answer = await get(session, f"{running.graph_base_url}/Security/SecureScores?$top=1", token)
    assert answer.status == 200

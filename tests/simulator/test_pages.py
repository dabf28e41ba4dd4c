"""Paging of the secureScores list: $top, page size, nextLink beyond $top, opaque skiptokens."""

from __future__ import annotations

import datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from fetcher.simulator import RunningSimulator, SimTenant, Simulator
from fetcher.simulator.pages import BadQuery, decode_skiptoken, encode_skiptoken
from tests.simulator.conftest import NEWEST, SEED
from tests.simulator.helpers import access_token, get, list_pages, serve

KEY = b"0123456789abcdef"


def _list_url(running: RunningSimulator, query: str = "") -> str:
    return f"{running.graph_base_url}/security/secureScores{query}"


def _ids(pages: list[dict[str, object]]) -> list[str]:
    return [obj["id"] for page in pages for obj in page["value"]]  # type: ignore[attr-defined]


async def test_page_holds_at_most_top_objects(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    token = await access_token(session, running, tenant.tenant_id)
    body = (await get(session, _list_url(running, "?$top=3"), token)).json()
    assert len(body["value"]) == 3


async def test_page_holds_at_most_page_size_objects(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    token = await access_token(session, running, tenant.tenant_id)
    body = (await get(session, _list_url(running, "?$top=60"), token)).json()
    assert len(body["value"]) == running.simulator.page_size


async def test_next_link_is_offered_even_after_top_is_met(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    token = await access_token(session, running, tenant.tenant_id)
    body = (await get(session, _list_url(running, "?$top=2"), token)).json()
    link = urlsplit(body["@odata.nextLink"])
    assert f"{link.scheme}://{link.netloc}{link.path}" == _list_url(running)
    assert parse_qs(link.query)["$top"] == ["2"]
    assert "$skiptoken" in parse_qs(link.query)


async def test_following_next_links_returns_every_day_once_newest_first(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    token = await access_token(session, running, tenant.tenant_id)
    pages = await list_pages(session, _list_url(running, "?$top=7"), token)
    expected = [f"{tenant.tenant_id}_{NEWEST - datetime.timedelta(days=n)}" for n in range(tenant.days)]
    assert _ids(pages) == expected
    assert "@odata.nextLink" not in pages[-1]


async def test_full_list_equals_expected_objects(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    token = await access_token(session, running, tenant.tenant_id)
    pages = await list_pages(session, _list_url(running), token)
    listed = [obj for page in pages for obj in page["value"]]
    assert listed == running.simulator.expected_objects(tenant.tenant_id)


async def test_expected_objects_can_be_capped(running: RunningSimulator, tenant: SimTenant) -> None:
    objects = running.simulator.expected_objects(tenant.tenant_id, days=5)
    assert [obj["id"][-10:] for obj in objects] == [str(NEWEST - datetime.timedelta(days=n)) for n in range(5)]


async def test_percent_encoded_top_is_understood(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    token = await access_token(session, running, tenant.tenant_id)
    body = (await get(session, _list_url(running, "?%24top=4"), token)).json()
    assert len(body["value"]) == 4


async def test_context_names_the_entity_set(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    token = await access_token(session, running, tenant.tenant_id)
    body = (await get(session, _list_url(running, "?$top=1"), token)).json()
    assert body["@odata.context"] == f"{running.graph_base_url}/$metadata#security/secureScores"
    assert list(body) == ["@odata.context", "@odata.nextLink", "value"]


@pytest.mark.parametrize("query", ["?$top=abc", "?$top=0", "?$skiptoken=not-a-token"])
async def test_bad_query_is_a_bad_request(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant, query: str
) -> None:
    token = await access_token(session, running, tenant.tenant_id)
    answer = await get(session, _list_url(running, query), token)
    assert (answer.status, answer.json()["error"]["code"]) == (400, "BadRequest")


async def test_skiptoken_of_another_tenant_is_refused(
    running: RunningSimulator, session: aiohttp.ClientSession, tenants: list[SimTenant]
) -> None:
    first, second = tenants[0], tenants[1]
    link = await get(session, _list_url(running, "?$top=2"), await access_token(session, running, first.tenant_id))
    answer = await get(session, link.json()["@odata.nextLink"], await access_token(session, running, second.tenant_id))
    assert answer.status == 400


async def test_day_appearing_between_pages_neither_repeats_nor_hides_a_day(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    token = await access_token(session, running, tenant.tenant_id)
    first = (await get(session, _list_url(running, "?$top=5"), token)).json()
    running.simulator.newest_day += datetime.timedelta(days=1)
    second = (await get(session, first["@odata.nextLink"], token)).json()
    days = [obj["id"][-10:] for obj in first["value"] + second["value"]]
    assert days == [str(NEWEST - datetime.timedelta(days=n)) for n in range(10)]


async def test_next_link_carries_top_even_when_none_was_asked(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    token = await access_token(session, running, tenant.tenant_id)
    body = (await get(session, _list_url(running), token)).json()
    assert parse_qs(urlsplit(body["@odata.nextLink"]).query)["$top"] == [str(running.simulator.page_size)]


async def test_same_seed_serves_identical_pages(tenants: list[SimTenant], tmp_path: Path) -> None:
    bodies = []
    for name in ("first", "second"):
        sim = Simulator(tenants, seed=SEED, newest_day=NEWEST, controls_per_day=40)
        async with serve(sim, tmp_path / name) as (running, session):
            token = await access_token(session, running, tenants[0].tenant_id)
            answer = await get(session, _list_url(running, "?$top=5"), token)
            bodies.append(answer.body.replace(running.origin.encode(), b"ORIGIN"))
    assert bodies[0] == bodies[1]


def test_skiptoken_round_trips_and_looks_opaque() -> None:
    token = encode_skiptoken(datetime.date(2026, 11, 20), "tenant-a", KEY)
    assert decode_skiptoken(token, "tenant-a", KEY) == datetime.date(2026, 11, 20)
    assert "2026" not in token
    assert len(token) == 36


def test_skiptoken_is_bound_to_its_tenant() -> None:
    token = encode_skiptoken(datetime.date(2026, 11, 20), "tenant-a", KEY)
    with pytest.raises(BadQuery):
        decode_skiptoken(token, "tenant-b", KEY)

"""What the simulator records: every request, the peaks of requests in flight, and never a secret."""

from __future__ import annotations

import asyncio

import aiohttp

from fetcher.simulator import Fault, RunningSimulator, SimTenant
from tests.simulator.helpers import access_token, get, post_token, secret_form


def _list_url(running: RunningSimulator) -> str:
    return f"{running.graph_base_url}/security/secureScores?$top=1"


async def test_peaks_count_concurrent_graph_requests_overall_and_per_tenant(
    running: RunningSimulator, session: aiohttp.ClientSession, tenants: list[SimTenant]
) -> None:
    first, second = tenants[0], tenants[1]
    tokens = {tenant.tenant_id: await access_token(session, running, tenant.tenant_id) for tenant in (first, second)}
    for tenant in (first, second):
        running.simulator.add_fault(tenant.tenant_id, Fault.latency(300))
    calls = [get(session, _list_url(running), tokens[first.tenant_id]) for _ in range(6)]
    calls += [get(session, _list_url(running), tokens[second.tenant_id]) for _ in range(3)]
    await asyncio.gather(*calls)
    sim = running.simulator
    assert sim.peak_in_flight == 9
    assert sim.peak_in_flight_by_tenant == {first.tenant_id: 6, second.tenant_id: 3}


async def test_token_requests_are_counted_apart(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    running.simulator.add_fault(tenant.tenant_id, Fault.latency(300, endpoint="token"))
    await asyncio.gather(*(post_token(session, running, tenant.tenant_id, secret_form(running)) for _ in range(4)))
    assert (running.simulator.peak_token_in_flight, running.simulator.peak_in_flight) == (4, 0)


async def test_every_request_is_recorded_with_its_tenant_and_endpoint(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    token = await access_token(session, running, tenant.tenant_id)
    await get(session, _list_url(running), token)
    await get(session, f"{running.graph_base_url}/security/secureScores/{tenant.tenant_id}_2026-11-27", token)
    await get(session, f"{running.graph_base_url}/me", token)
    records = running.simulator.requests
    assert [(r.endpoint, r.tenant_id, r.method, r.status) for r in records] == [
        ("token", tenant.tenant_id, "POST", 200),
        ("list", tenant.tenant_id, "GET", 200),
        ("get", tenant.tenant_id, "GET", 200),
        ("other", None, "GET", 400),
    ]
    assert records[1].query == {"$top": "1"}
    assert all(r.time <= r.finished for r in records)


async def test_records_never_hold_a_token_or_secret(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    token = await access_token(session, running, tenant.tenant_id)
    await get(session, _list_url(running), token)
    text = repr(running.simulator.requests)
    assert token not in text
    assert running.simulator.client_secret not in text
    assert [record.authorization for record in running.simulator.requests] == [False, True]


async def test_clearing_forgets_records_and_peaks(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    token = await access_token(session, running, tenant.tenant_id)
    await get(session, _list_url(running), token)
    running.simulator.clear_requests()
    sim = running.simulator
    assert (sim.requests, sim.peak_in_flight, sim.peak_token_in_flight, sim.peak_in_flight_by_tenant) == ([], 0, 0, {})

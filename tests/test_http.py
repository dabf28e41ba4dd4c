"""The Graph client over real HTTPS against the simulator: paging, statuses, retries, limits, hostile answers."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import socket
import ssl
import time
from pathlib import Path

import aiohttp
import pytest

from fetcher.config import FetchConfig, GraphConfig
from fetcher.errors import (
    AuthenticationError,
    BadRequest,
    ConnectionFailed,
    GraphError,
    InvalidResponse,
    NotFound,
    PermissionDenied,
    ProviderRefused,
    ProviderUnavailable,
    RequestTimedOut,
    RetryWaitTooLong,
    ServerError,
    Throttled,
    UnsafeResponse,
)
from fetcher.graph import list_url
from fetcher.http import KEEPALIVE_SECONDS, USER_AGENT, create_session, ssl_context
from fetcher.models import RequestStats
from fetcher.simulator import Fault, Hostile, SimTenant, generate_tenants
from fetcher.simulator.tls import ca_pem
from tests.graph_fixtures import FETCH, SEED, Stack, small_simulator, stack


@pytest.fixture
def tenant() -> SimTenant:
    return generate_tenants(1, seed=SEED)[0]


def with_faults(tenant: SimTenant, *faults: Fault) -> SimTenant:
    return dataclasses.replace(tenant, faults=faults)


def gaps(s: Stack, tenant_id: str) -> list[float]:
    """Seconds between the end of each list request and the arrival of the next, from the simulator's log."""
    records = s.requests("list", tenant_id)
    return [later.time - earlier.finished for earlier, later in itertools.pairwise(records)]


# ------------------------------------------------------------------------------------------------ session


def test_the_ssl_context_adds_the_bundle_to_the_system_cas(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(ca_pem())
    system, extended = ssl_context(None), ssl_context(bundle)
    assert extended.cert_store_stats()["x509_ca"] == system.cert_store_stats()["x509_ca"] + 1
    assert extended.minimum_version == ssl.TLSVersion.TLSv1_2
    assert extended.verify_mode == ssl.CERT_REQUIRED
    assert extended.check_hostname


async def test_the_session_is_sized_and_timed_from_the_configuration() -> None:
    graph = GraphConfig(timeout_seconds=12.0)
    async with create_session(graph, FetchConfig(concurrency=7)) as session:
        assert session.headers["User-Agent"] == USER_AGENT == "securescore-fetcher/0.1.0"
        assert (session.timeout.total, session.timeout.sock_read, session.timeout.sock_connect) == (12.0, 12.0, 12.0)
        assert session.connector is not None
        assert session.connector.limit >= 7


async def test_idle_connections_outlast_a_stretch_of_saving() -> None:
    """Pooled connections are kept idle for a minute, not aiohttp's 15 s (issue 17: under callgrind, a nightly
    run of 40 tenants lost its 16 to the pool's expiry while its workers saved, and opened 8 more)."""
    async with create_session(GraphConfig(), FetchConfig()) as session:
        assert isinstance(session.connector, aiohttp.TCPConnector)
        # aiohttp has no public reader for it; what the connector's idle sweep uses
        assert session.connector._keepalive_timeout == KEEPALIVE_SECONDS == 60.0


# ------------------------------------------------------------------------------------------------- paging


async def test_a_tenants_history_arrives_whole_and_in_order(tenant: SimTenant, tmp_path: Path) -> None:
    async with stack(small_simulator([tenant]), tmp_path) as s:
        stats = RequestStats()
        pages = await s.list_pages(s.tenant(tenant), 90, stats)
        assert [obj for page in pages for obj in page.objects] == s.sim.expected_objects(tenant.tenant_id, 90)
        assert [len(page.objects) for page in pages] == [20, 20, 20, 20, 10]
        assert (stats.requests, stats.retries, stats.throttled) == (5, 0, 0)


@pytest.mark.parametrize(("days", "requests"), [(1, 1), (20, 1), (21, 2), (40, 2), (41, 3), (90, 5)])
async def test_paging_stops_at_days_although_next_links_keep_coming(
    tenant: SimTenant, tmp_path: Path, days: int, requests: int
) -> None:
    async with stack(small_simulator([tenant]), tmp_path) as s:
        objects = await s.list_all(s.tenant(tenant), days)
        assert objects == s.sim.expected_objects(tenant.tenant_id, days)
        assert len(s.requests("list", tenant.tenant_id)) == requests


async def test_a_tenant_with_no_history_gives_one_empty_page(tenant: SimTenant, tmp_path: Path) -> None:
    async with stack(small_simulator([dataclasses.replace(tenant, empty=True)]), tmp_path) as s:
        assert [p.objects for p in await s.list_pages(s.tenant(tenant))] == [[]]


async def test_pages_stream_before_the_listing_ends(tenant: SimTenant, tmp_path: Path) -> None:
    async with stack(small_simulator([tenant]), tmp_path) as s:
        stream = s.client.list_secure_scores(s.tenant(tenant), 90, RequestStats())
        first = await anext(stream)
        assert (len(first.objects), len(s.requests("list"))) == (20, 1)


async def test_a_206_page_carries_its_warnings(tenant: SimTenant, tmp_path: Path) -> None:
    warnings = ('199 - "Microsoft/SecureScore/504/10000"', '199 - "Microsoft/Intune/500/25"')
    async with stack(small_simulator([with_faults(tenant, Fault.partial(warnings, times=1))]), tmp_path) as s:
        pages = await s.list_pages(s.tenant(tenant), 40)
        first, second = pages
        assert (first.status, second.status) == (206, 200)
        assert [(w.provider, w.status_code, w.latency_ms) for w in first.warnings] == [
            ("SecureScore", 504, 10000),
            ("Intune", 500, 25),
        ]
        assert second.warnings == ()


async def test_one_score_by_id(tenant: SimTenant, tmp_path: Path) -> None:
    async with stack(small_simulator([tenant]), tmp_path) as s:
        expected = s.sim.expected_objects(tenant.tenant_id, 3)[2]
        page = await s.client.get_secure_score(s.tenant(tenant), expected["id"], RequestStats())
        assert (page.objects, page.next_link, page.status) == ([expected], None, 200)


async def test_an_unknown_score_is_not_found_and_not_retried(tenant: SimTenant, tmp_path: Path) -> None:
    async with stack(small_simulator([tenant]), tmp_path) as s:
        with pytest.raises(NotFound) as caught:
            await s.client.get_secure_score(s.tenant(tenant), f"{tenant.tenant_id}_1999-01-01", RequestStats())
        assert caught.value.status == 404
        assert caught.value.url == f"{s.graph.base_url}/security/secureScores/{tenant.tenant_id}_1999-01-01"
        assert len(s.requests("get")) == 1


# ----------------------------------------------------------------------------------------------- statuses


@pytest.mark.parametrize(
    ("status", "kind", "requests"),
    [
        (400, BadRequest, 1),
        (404, NotFound, 1),
        (409, GraphError, 1),
        (429, Throttled, 3),
        (500, ServerError, 3),
        (502, ServerError, 3),
        (503, ServerError, 3),
        (504, ServerError, 3),
    ],
)
async def test_each_status_is_handled_as_stated(
    tenant: SimTenant, tmp_path: Path, status: int, kind: type[GraphError], requests: int
) -> None:
    """Client errors fail at once; throttling and server errors are retried until attempts (3) run out.

    A 504 (Graph's gateway timing out) also narrows the window: 90 days, then 30, then 10.
    """
    async with stack(small_simulator([with_faults(tenant, Fault.status(status))]), tmp_path) as s:
        stats = RequestStats()
        with pytest.raises(kind) as caught:
            await s.list_all(s.tenant(tenant), stats=stats)
        error = caught.value
        assert type(error) is kind
        last = list_url(s.graph.base_url, 10 if status == 504 else 90)
        assert (error.tenant_id, error.status, error.url) == (tenant.tenant_id, status, last)
        assert str(error).startswith(f"tenant {s.tenant(tenant).label}: ")
        assert len(s.requests("list")) == stats.requests == requests
        assert stats.retries == requests - 1
        assert stats.throttled == (requests if status == 429 else 0)


async def test_a_tenant_without_consent_is_denied_with_the_missing_permission(
    tenant: SimTenant, tmp_path: Path
) -> None:
    async with stack(small_simulator([dataclasses.replace(tenant, consent=False)]), tmp_path) as s:
        with pytest.raises(PermissionDenied) as caught:
            await s.list_all(s.tenant(tenant))
        assert (
            "the app lacks the application permission SecurityEvents.Read.All with admin consent in tenant "
            f"{tenant.tenant_id}" in str(caught.value)
        )
        assert "Missing application roles" in str(caught.value)
        assert f"{s.graph.authority_host}/{tenant.tenant_id}/adminconsent?client_id=" in str(caught.value)
        assert len(s.requests("list")) == 1


async def test_a_206_without_data_is_retried_then_fails_with_the_providers_warning(
    tenant: SimTenant, tmp_path: Path
) -> None:
    """Issue 12: a 206 with `{"value": []}` and a provider status of 504 was a success with 0 days."""
    async with stack(small_simulator([with_faults(tenant, Fault.empty_partial())]), tmp_path) as s:
        stats = RequestStats()
        with pytest.raises(ProviderUnavailable) as caught:
            await s.list_all(s.tenant(tenant), 10, stats)
        assert "Warning: Microsoft/SecureScore/504/10000" in str(caught.value)
        assert (stats.requests, stats.retries) == (3, 2)


async def test_a_206_without_data_that_passes_is_retried_away(tenant: SimTenant, tmp_path: Path) -> None:
    async with stack(small_simulator([with_faults(tenant, Fault.empty_partial(times=1))]), tmp_path) as s:
        stats = RequestStats()
        assert await s.list_all(s.tenant(tenant), 10, stats) == s.sim.expected_objects(tenant.tenant_id, 10)
        assert (stats.requests, stats.retries) == (2, 1)


async def test_a_206_without_data_refused_by_the_provider_is_not_retried(tenant: SimTenant, tmp_path: Path) -> None:
    fault = Fault.empty_partial(['199 - "Microsoft/SecureScore/403/10"'])
    async with stack(small_simulator([with_faults(tenant, fault)]), tmp_path) as s:
        stats = RequestStats()
        with pytest.raises(ProviderRefused, match="denied access to this tenant's Secure Score"):
            await s.list_all(s.tenant(tenant), 10, stats)
        assert (stats.requests, stats.retries) == (1, 0)


async def test_a_tenant_of_another_cloud_is_told_to_set_the_cloud(tenant: SimTenant, tmp_path: Path) -> None:
    async with stack(small_simulator([with_faults(tenant, Fault.other_cloud())]), tmp_path) as s:
        with pytest.raises(AuthenticationError) as caught:
            await s.list_all(s.tenant(tenant))
        assert f"(Graph {s.graph.base_url}, Entra ID {s.graph.authority_host})" in str(caught.value)
        assert "[graph] cloud" in str(caught.value)


async def test_passing_server_errors_are_retried_away(tenant: SimTenant, tmp_path: Path) -> None:
    faults = (Fault.status(503, times=1), Fault.status(502, skip=1, times=1))
    async with stack(small_simulator([with_faults(tenant, *faults)]), tmp_path) as s:
        stats = RequestStats()
        assert len(await s.list_all(s.tenant(tenant), 10, stats)) == 10
        assert (stats.requests, stats.retries) == (3, 2)


async def test_a_401_gets_exactly_one_fresh_token_then_fails(tenant: SimTenant, tmp_path: Path) -> None:
    async with stack(small_simulator([with_faults(tenant, Fault.status(401))]), tmp_path) as s:
        with pytest.raises(AuthenticationError) as caught:
            await s.list_all(s.tenant(tenant))
        assert (caught.value.status, caught.value.code) == (401, "InvalidAuthenticationToken")
        assert [r.endpoint for r in s.sim.requests] == ["token", "list", "token", "list"]


async def test_a_single_401_is_cured_by_a_fresh_token(tenant: SimTenant, tmp_path: Path) -> None:
    async with stack(small_simulator([with_faults(tenant, Fault.status(401, times=1))]), tmp_path) as s:
        assert len(await s.list_all(s.tenant(tenant), 5)) == 5
        assert [r.endpoint for r in s.sim.requests] == ["token", "list", "token", "list"]


# ----------------------------------------------------------------------------------------------- Retry-After


@pytest.mark.parametrize("as_date", [False, True], ids=["seconds", "http-date"])
async def test_retry_after_is_honoured(tenant: SimTenant, tmp_path: Path, as_date: bool) -> None:
    """The retry waits (for real) at least as long as Retry-After says; an HTTP-date has whole-second precision."""
    fault = Fault.status(429, retry_after=2, retry_after_as_date=as_date, times=1)
    async with stack(small_simulator([with_faults(tenant, fault)]), tmp_path) as s:
        stats = RequestStats()
        await s.list_all(s.tenant(tenant), 5, stats)
        (gap,) = gaps(s, tenant.tenant_id)
        assert gap >= (1.0 if as_date else 2.0)
        assert gap < 2.5
        assert (stats.throttled, stats.retries) == (1, 1)


async def test_a_server_errors_retry_after_is_honoured_too(tenant: SimTenant, tmp_path: Path) -> None:
    async with stack(small_simulator([with_faults(tenant, Fault.status(503, retry_after=1, times=1))]), tmp_path) as s:
        await s.list_all(s.tenant(tenant), 5)
        assert 1.0 <= gaps(s, tenant.tenant_id)[0] < 2.0


async def test_a_retry_after_beyond_the_maximum_fails_the_tenant_promptly(tenant: SimTenant, tmp_path: Path) -> None:
    async with stack(small_simulator([with_faults(tenant, Fault.status(429, retry_after=3600))]), tmp_path) as s:
        started = time.monotonic()
        with pytest.raises(RetryWaitTooLong) as caught:
            await s.list_all(s.tenant(tenant))
        assert time.monotonic() - started < 1.0
        assert (caught.value.retry_after, caught.value.status) == (3600, 429)
        assert len(s.requests("list")) == 1


# ------------------------------------------------------------------------------------------ broken answers


async def test_malformed_json_is_retried(tenant: SimTenant, tmp_path: Path) -> None:
    async with stack(small_simulator([with_faults(tenant, Fault.malformed_json(times=1))]), tmp_path) as s:
        stats = RequestStats()
        assert len(await s.list_all(s.tenant(tenant), 5, stats)) == 5
        assert stats.retries == 1


@pytest.mark.parametrize(
    ("fault", "kind", "requests"),
    [
        (Fault.malformed_json(), InvalidResponse, 3),
        (Fault.hostile(Hostile.DEEP), InvalidResponse, 3),
        (Fault.hostile(Hostile.NAN), InvalidResponse, 3),
        (Fault.hostile(Hostile.HUGE, megabytes=2), UnsafeResponse, 1),
        (Fault.hostile(Hostile.FOREIGN_NEXT_LINK), UnsafeResponse, 1),
    ],
    ids=["malformed", "deep", "nan", "huge", "foreign-next-link"],
)
async def test_hostile_answers_are_refused(
    tenant: SimTenant, tmp_path: Path, fault: Fault, kind: type[GraphError], requests: int
) -> None:
    graph = {"max_response_bytes": 1024 * 1024}
    async with stack(small_simulator([with_faults(tenant, fault)]), tmp_path, graph=graph) as s:
        with pytest.raises(kind) as caught:
            await s.list_all(s.tenant(tenant))
        assert caught.value.tenant_id == tenant.tenant_id
        assert len(s.requests("list")) == requests
        assert [r.endpoint for r in s.sim.requests if r.endpoint not in ("list", "token")] == []


async def test_objects_that_are_no_objects_are_left_for_normalization(tenant: SimTenant, tmp_path: Path) -> None:
    """The Graph layer checks the page's shape; what each object holds is `fetcher.normalize`'s to judge."""
    async with stack(small_simulator([with_faults(tenant, Fault.hostile(Hostile.NOT_OBJECT))]), tmp_path) as s:
        (page,) = await s.list_pages(s.tenant(tenant), 20)
        assert page.objects[0] == "unexpected string where an object belongs"


async def test_an_entity_that_is_no_object_is_invalid(tenant: SimTenant, tmp_path: Path) -> None:
    fault = Fault.hostile(Hostile.NOT_OBJECT, endpoint="get")
    async with stack(small_simulator([with_faults(tenant, fault)]), tmp_path) as s:
        score_id = s.sim.expected_objects(tenant.tenant_id, 1)[0]["id"]
        with pytest.raises(InvalidResponse, match="is not a secureScore object"):
            await s.client.get_secure_score(s.tenant(tenant), score_id, RequestStats())
        assert len(s.requests("get")) == 3


async def test_a_foreign_next_link_is_never_sent_a_token(tenant: SimTenant, tmp_path: Path) -> None:
    async with stack(small_simulator([with_faults(tenant, Fault.hostile(Hostile.FOREIGN_NEXT_LINK))]), tmp_path) as s:
        stream = s.client.list_secure_scores(s.tenant(tenant), 90, RequestStats())
        with pytest.raises(UnsafeResponse, match="no token was sent") as caught:
            await anext(stream)
        assert caught.value.url is not None
        assert caught.value.url.startswith("https://evil.example.invalid/")


async def test_an_answer_that_does_not_come_in_time_is_retried(tenant: SimTenant, tmp_path: Path) -> None:
    fault = Fault.timeout(3.0, times=1)
    async with stack(small_simulator([with_faults(tenant, fault)]), tmp_path, graph={"timeout_seconds": 0.3}) as s:
        stats = RequestStats()
        assert len(await s.list_all(s.tenant(tenant), 5, stats)) == 5
        assert stats.retries == 1


async def test_a_window_too_slow_to_answer_is_fetched_in_narrower_pages(tenant: SimTenant, tmp_path: Path) -> None:
    """Issue 12: 90 days take 5.4 s, 30 take 1.8 s, 10 take 0.6 s, against a 1.2 s timeout: 90, 30, then 10 at a
    time. (Scaled down from 100 ms a day and 2 s, which waited 13 s; the 10-day pages keep half the timeout.)"""
    sim = small_simulator([with_faults(tenant, Fault.slow_window(ms_per_day=60))], page_size=100)
    async with stack(sim, tmp_path, graph={"timeout_seconds": 1.2}) as s:
        stats = RequestStats()
        objects = await s.list_all(s.tenant(tenant), 90, stats)
        assert objects == s.sim.expected_objects(tenant.tenant_id, 90)
        asked = [(r.query.get("$top"), "$skiptoken" in r.query, r.status) for r in s.requests("list")]
        assert asked == [("90", False, 499), ("30", False, 499), *[("10", i > 0, 200) for i in range(9)]]
        assert (stats.requests, stats.retries) == (11, 2)


async def test_a_504_on_a_wide_window_narrows_it_too(tenant: SimTenant, tmp_path: Path) -> None:
    sim = small_simulator([with_faults(tenant, Fault.status(504, times=1))], page_size=100)
    async with stack(sim, tmp_path) as s:
        assert len(await s.list_all(s.tenant(tenant), 90)) == 90
        assert [r.query.get("$top") for r in s.requests("list")] == ["90", "30", "30", "30"]


async def test_an_answer_that_never_comes_times_out(tenant: SimTenant, tmp_path: Path) -> None:
    async with stack(
        small_simulator([with_faults(tenant, Fault.timeout(3.0))]), tmp_path, graph={"timeout_seconds": 0.3}
    ) as s:
        with pytest.raises(RequestTimedOut, match=r"did not answer within 0\.3 s"):
            await s.list_all(s.tenant(tenant), 5)


async def test_a_refused_connection_fails_after_the_attempts(tenant: SimTenant, tmp_path: Path) -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        closed_port = placeholder.getsockname()[1]
    base_url = f"https://127.0.0.1:{closed_port}/v1.0"
    async with stack(small_simulator([tenant]), tmp_path, base_url=base_url) as s:
        stats = RequestStats()
        with pytest.raises(ConnectionFailed, match="cannot connect to Graph"):
            await s.list_all(s.tenant(tenant), stats=stats)
        assert (stats.requests, stats.retries) == (3, 2)


async def test_an_untrusted_certificate_fails_the_connection(tenant: SimTenant, tmp_path: Path) -> None:
    async with stack(small_simulator([tenant]), tmp_path, graph={"ca_bundle": None}) as s:
        with pytest.raises(ConnectionFailed, match="Entra ID"):
            await s.list_all(s.tenant(tenant))
        assert s.sim.requests == [] or all(r.status == 499 for r in s.sim.requests)


# ------------------------------------------------------------------------------------------------- limits


async def test_limits_hold_under_load(tmp_path: Path) -> None:
    """50 tenants, each listing 20 days while fetching six days by id, then one of them again alone: never more
    than 8 in flight, 4 a tenant."""
    tenants = generate_tenants(50, seed=SEED)
    # A rate above Graph's 150 a minute: the per-tenant buckets are tested in test_limits, here the slots are.
    fetch = dataclasses.replace(FETCH, concurrency=8, per_tenant_concurrency=4, per_tenant_rate=6000)
    # Enough latency that requests overlap even on a loaded machine, so the peaks reach the limits.
    sim = small_simulator(tenants, latency_ms=100, controls_per_day=10)
    async with stack(sim, tmp_path, fetch=fetch) as s:

        async def one(sim_tenant: SimTenant) -> int:
            tenant = s.tenant(sim_tenant)
            ids = [obj["id"] for obj in s.sim.expected_objects(sim_tenant.tenant_id, 6)]
            gets = [s.client.get_secure_score(tenant, score_id, RequestStats()) for score_id in ids]
            listed, *got = await asyncio.gather(s.list_all(tenant, 20), *gets)
            return len(listed) + len(got)

        assert await asyncio.gather(*(one(t) for t in tenants)) == [26] * 50
        # Then one tenant alone (its token cached): no other tenant competes for the global slots, so its own
        # limit is what binds, whatever order the slots were handed out in above (token requests go first).
        assert await one(tenants[0]) == 26
        assert len(s.requests("list")) + len(s.requests("get")) == 51 * 7
        assert s.sim.peak_in_flight <= 8
        assert max(s.sim.peak_in_flight_by_tenant.values()) <= 4
        assert s.limits.peaks.in_flight <= 8
        assert s.limits.peaks.tenant_in_flight <= 4
        assert s.sim.peak_in_flight >= 6, "the test should push against the global limit"
        assert max(s.sim.peak_in_flight_by_tenant.values()) >= 3, "the test should push against the tenant limit"


async def test_forgetting_a_done_tenant_drops_its_limits_and_credential(tenant: SimTenant, tmp_path: Path) -> None:
    async with stack(small_simulator([tenant]), tmp_path) as s:
        await s.list_all(s.tenant(tenant), 5)
        assert s.limits.tenants_tracked == 1
        assert "credentials=1" in repr(s.tokens)
        await s.client.forget(tenant.tenant_id)
        assert s.limits.tenants_tracked == 0
        assert "credentials=0" in repr(s.tokens)


async def test_a_throttled_tenant_does_not_slow_the_others(tmp_path: Path) -> None:
    """With a single global slot, 20 tenants finish while the throttled one still waits out its Retry-After."""
    throttled, *others = generate_tenants(21, seed=SEED)
    throttled = with_faults(throttled, Fault.status(429, retry_after=1, times=1))
    waits: list[float] = []
    waiting, released = asyncio.Event(), asyncio.Event()

    async def held_sleep(seconds: float) -> None:  # the retry's wait lasts until the test releases it
        waits.append(seconds)
        waiting.set()
        await released.wait()

    fetch = dataclasses.replace(FETCH, concurrency=1)
    sim = small_simulator([throttled, *others])
    async with stack(sim, tmp_path, fetch=fetch, retry={"sleep": held_sleep}) as s:
        slowed = asyncio.create_task(s.list_all(s.tenant(throttled), 20))
        await waiting.wait()  # its first request was answered 429; it now waits out the Retry-After

        done = await asyncio.gather(*(s.list_all(s.tenant(t), 20) for t in others))

        assert [len(objects) for objects in done] == [20] * 20
        assert not slowed.done()
        released.set()
        assert len(await slowed) == 20
        assert waits == [1.0]  # the Retry-After, honoured
        assert [r.status for r in s.requests("list", throttled.tenant_id)][:2] == [429, 200]

"""Scripted trouble: each fault kind, when it fires (skip/times/endpoint), and what it looks like on the wire."""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import json
import math
import time
from pathlib import Path

import aiohttp
import orjson
import pytest

from fetcher.simulator import Fault, Hostile, RunningSimulator, SimTenant, Simulator, TokenRefusal
from fetcher.simulator.faults import FaultBook, FaultKind, FaultOption, parse_fault_option
from tests.simulator.conftest import NEWEST, SEED
from tests.simulator.helpers import access_token, get, post_token, secret_form, serve


def _list_url(running: RunningSimulator, top: int = 3) -> str:
    return f"{running.graph_base_url}/security/secureScores?$top={top}"


def _item_url(running: RunningSimulator, tenant: SimTenant) -> str:
    return f"{running.graph_base_url}/security/secureScores/{tenant.tenant_id}_{NEWEST.isoformat()}"


async def _list_with(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant, fault: Fault, top: int = 3
) -> tuple[int, dict[str, str], bytes]:
    token = await access_token(session, running, tenant.tenant_id)
    running.simulator.add_fault(tenant.tenant_id, fault)
    answer = await get(session, _list_url(running, top), token)
    return answer.status, answer.headers, answer.body


async def test_throttling_answers_429_with_retry_after_seconds(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    status, headers, body = await _list_with(running, session, tenant, Fault.status(429, retry_after=2))
    assert (status, headers["Retry-After"]) == (429, "2")
    assert orjson.loads(body)["error"]["code"] == "TooManyRequests"


async def test_retry_after_can_be_an_http_date(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    fault = Fault.status(503, retry_after=2, retry_after_as_date=True)
    _, headers, _ = await _list_with(running, session, tenant, fault)
    moment = email.utils.parsedate_to_datetime(headers["Retry-After"])
    assert 0 <= (moment - datetime.datetime.now(datetime.UTC)).total_seconds() <= 2


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "BadRequest"), (404, "ResourceNotFound"), (500, "InternalServerError"), (502, "BadGateway"),
     (503, "ServiceNotAvailable"), (504, "GatewayTimeout")],
)  # fmt: skip
async def test_status_fault_answers_graphs_error(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant, status: int, code: int
) -> None:
    answered, _, body = await _list_with(running, session, tenant, Fault.status(status))
    assert (answered, orjson.loads(body)["error"]["code"]) == (status, code)


async def test_scripted_401_carries_a_challenge(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    status, headers, body = await _list_with(running, session, tenant, Fault.status(401))
    assert (status, orjson.loads(body)["error"]["code"]) == (401, "InvalidAuthenticationToken")
    assert "WWW-Authenticate" in headers


async def test_status_fault_sends_given_headers_and_body(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    fault = Fault.status(500, headers=[("x-ms-throttle-information", "CPULimitation")], body=b"<html>oops</html>")
    _, headers, body = await _list_with(running, session, tenant, fault)
    assert (headers["x-ms-throttle-information"], body) == ("CPULimitation", b"<html>oops</html>")


async def test_skip_lets_requests_through_and_times_bounds_the_fault(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    token = await access_token(session, running, tenant.tenant_id)
    running.simulator.add_fault(tenant.tenant_id, Fault.status(503, skip=1, times=2))
    statuses = [(await get(session, _list_url(running), token)).status for _ in range(4)]
    assert statuses == [200, 503, 503, 200]


async def test_fault_applies_only_to_its_endpoint(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    token = await access_token(session, running, tenant.tenant_id)
    running.simulator.add_fault(tenant.tenant_id, Fault.status(500, endpoint="get"))
    listed = await get(session, _list_url(running), token)
    fetched = await get(session, _item_url(running, tenant), token)
    assert (listed.status, fetched.status) == (200, 500)


async def test_fault_applies_only_to_its_tenant(
    running: RunningSimulator, session: aiohttp.ClientSession, tenants: list[SimTenant]
) -> None:
    running.simulator.add_fault(tenants[0].tenant_id, Fault.status(500))
    answer = await get(session, _list_url(running), await access_token(session, running, tenants[1].tenant_id))
    assert answer.status == 200


async def test_latency_fault_delays_the_answer(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    token = await access_token(session, running, tenant.tenant_id)
    running.simulator.add_fault(tenant.tenant_id, Fault.latency(300))
    started = time.monotonic()
    answer = await get(session, _list_url(running), token)
    assert answer.status == 200
    assert time.monotonic() - started >= 0.3


async def test_global_latency_delays_every_answer(tenants: list[SimTenant], tmp_path: Path) -> None:
    sim = Simulator(tenants, seed=SEED, newest_day=NEWEST, controls_per_day=10, latency_ms=150)
    async with serve(sim, tmp_path) as (running, session):
        started = time.monotonic()
        token = await access_token(session, running, tenants[0].tenant_id)
        await get(session, _list_url(running), token)
    assert time.monotonic() - started >= 0.3


async def test_timeout_fault_outlasts_the_client_and_is_recorded_as_gone(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    token = await access_token(session, running, tenant.tenant_id)
    running.simulator.add_fault(tenant.tenant_id, Fault.timeout(30))
    with pytest.raises(asyncio.TimeoutError):
        async with session.get(
            _list_url(running), headers={"Authorization": f"Bearer {token}"}, timeout=aiohttp.ClientTimeout(total=0.3)
        ):
            pass
    for _ in range(50):  # the server notices the disconnect a moment later
        if any(record.status == 499 for record in running.simulator.requests):
            break
        await asyncio.sleep(0.02)
    assert [record.status for record in running.simulator.requests if record.endpoint == "list"] == [499]


async def test_malformed_json_is_a_truncated_200(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    status, _, body = await _list_with(running, session, tenant, Fault.malformed_json())
    assert status == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(body)


async def test_partial_answers_206_with_data_and_warnings(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    warnings = ['199 - "Microsoft/SecureScore/500/1234"', '199 - "Microsoft/SecureScore/503/77"']
    status, headers, body = await _list_with(running, session, tenant, Fault.partial(warnings))
    assert (status, headers["Warning"]) == (206, ", ".join(warnings))
    assert len(orjson.loads(body)["value"]) == 3


async def test_placeholder_comparatives_set_every_number_of_two_bases_to_minus_one(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    _, _, body = await _list_with(running, session, tenant, Fault.placeholder_comparatives())
    for obj in orjson.loads(body)["value"]:
        comparatives = {c["basis"]: c for c in obj["averageComparativeScores"]}
        assert {b: comparatives[b] for b in ("TotalSeats", "IndustryTypes")} == {
            b: {
                "basis": b,
                "averageScore": -1.0,
                "seatSizeRangeLowerValue": -1,
                "seatSizeRangeUpperValue": -1,
                "categoryValue": -1,
            }
            for b in ("TotalSeats", "IndustryTypes")
        }
        assert comparatives.get("AllTenants", {"averageScore": 50})["averageScore"] > 0


async def test_inconsistent_ids_give_a_page_one_day_under_several_ids(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    _, _, body = await _list_with(running, session, tenant, Fault.inconsistent_ids())
    objects = orjson.loads(body)["value"]
    assert [o["id"] for o in objects] == [f"{tenant.tenant_id}_{NEWEST - datetime.timedelta(days=n)}" for n in range(3)]
    assert {o["createdDateTime"] for o in objects} == {objects[0]["createdDateTime"]}


async def test_shifted_inconsistent_ids_put_each_object_a_day_before_its_id(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    _, _, body = await _list_with(running, session, tenant, Fault.inconsistent_ids(same_day=False))
    objects = orjson.loads(body)["value"]
    assert [(o["id"][-10:], o["createdDateTime"][:10]) for o in objects] == [
        (str(NEWEST - datetime.timedelta(days=n)), str(NEWEST - datetime.timedelta(days=n + 1))) for n in range(3)
    ]


async def test_empty_partial_answers_206_without_data_and_the_providers_warning(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    status, headers, body = await _list_with(running, session, tenant, Fault.empty_partial())
    assert (status, headers["Warning"]) == (206, '199 - "Microsoft/SecureScore/504/10000"')
    assert orjson.loads(body)["value"] == []
    assert "@odata.nextLink" not in orjson.loads(body)


async def test_a_slow_window_takes_longer_the_more_days_are_asked(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    token = await access_token(session, running, tenant.tenant_id)
    running.simulator.add_fault(tenant.tenant_id, Fault.slow_window(ms_per_day=250))

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await get(session, _list_url(running, top=5), token)  # 1.25 s
    answer = await get(session, _list_url(running, top=1), token)  # 0.25 s: the small window gets its answer

    assert answer.status == 200


def test_a_slow_window_delays_by_the_days_asked() -> None:
    book = FaultBook()
    book.add("t", Fault.slow_window(ms_per_day=100))
    book.add("t", Fault.latency(50))

    assert book.plan("t", "list").delay(30) == pytest.approx(3.05)


async def test_other_cloud_answers_401_invalid_cloud_instance(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    status, _, body = await _list_with(running, session, tenant, Fault.other_cloud())
    assert (status, orjson.loads(body)["error"]["message"]) == (401, "InvalidCloudInstance")


async def test_wrong_tenant_answers_another_tenants_ids(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    other = "0badc0de-0000-4000-8000-000000000000"
    _, _, body = await _list_with(running, session, tenant, Fault.wrong_tenant(other))
    objects = orjson.loads(body)["value"]
    assert {obj["azureTenantId"] for obj in objects} == {other}
    assert all(obj["id"].startswith(f"{other}_") for obj in objects)


async def test_huge_body_is_as_large_as_asked_and_valid(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    _, _, body = await _list_with(running, session, tenant, Fault.hostile(Hostile.HUGE, megabytes=3))
    assert len(body) >= 3 * 1024 * 1024
    assert len(orjson.loads(body)["value"]) == 3


async def test_deep_body_nests_a_hundred_thousand_levels(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    _, _, body = await _list_with(running, session, tenant, Fault.hostile(Hostile.DEEP))
    assert body.count(b"[") >= 100_000
    with pytest.raises(RecursionError):
        json.loads(body)


async def test_nan_body_carries_raw_non_numbers(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    _, _, body = await _list_with(running, session, tenant, Fault.hostile(Hostile.NAN))
    first, second = json.loads(body)["value"][:2]  # the standard library reads NaN and 1e309 leniently
    assert math.isnan(first["currentScore"])
    assert math.isinf(first["maxScore"])
    assert (first["controlScores"][0]["score"], second["currentScore"]) == ("high", "high")


async def test_foreign_next_link_points_off_site(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    _, _, body = await _list_with(running, session, tenant, Fault.hostile(Hostile.FOREIGN_NEXT_LINK))
    assert orjson.loads(body)["@odata.nextLink"].startswith("https://evil.example.invalid/")


async def test_missing_fields_drops_the_keys_of_an_object(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    _, _, body = await _list_with(running, session, tenant, Fault.hostile(Hostile.MISSING_FIELDS))
    first, second = orjson.loads(body)["value"][:2]
    assert not {"id", "azureTenantId", "createdDateTime"} & set(first)
    assert {"id", "azureTenantId", "createdDateTime"} <= set(second)


async def test_not_object_puts_a_string_in_value(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    _, _, body = await _list_with(running, session, tenant, Fault.hostile(Hostile.NOT_OBJECT))
    assert isinstance(orjson.loads(body)["value"][0], str)


async def test_hostile_single_entity_is_shaped_too(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    token = await access_token(session, running, tenant.tenant_id)
    running.simulator.add_fault(tenant.tenant_id, Fault.hostile(Hostile.MISSING_FIELDS, endpoint="get"))
    body = (await get(session, _item_url(running, tenant), token)).json()
    assert "id" not in body
    assert "controlScores" in body


async def test_token_endpoint_status_fault_reads_like_entra(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    running.simulator.add_fault(tenant.tenant_id, Fault.status(503, endpoint="token", retry_after=1, times=1))
    failed = await post_token(session, running, tenant.tenant_id, secret_form(running))
    recovered = await post_token(session, running, tenant.tenant_id, secret_form(running))
    assert (failed.status, failed.headers["Retry-After"], failed.json()["error"]) == (
        503,
        "1",
        "temporarily_unavailable",
    )
    assert recovered.status == 200


async def test_token_endpoint_can_answer_truncated_json(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    running.simulator.add_fault(tenant.tenant_id, Fault.malformed_json(endpoint="token"))
    answer = await post_token(session, running, tenant.tenant_id, secret_form(running))
    assert answer.status == 200
    with pytest.raises(orjson.JSONDecodeError):
        answer.json()


@pytest.mark.parametrize(
    "build",
    [
        lambda: Fault.status(429, endpoint="everything"),
        lambda: Fault.status(42),
        lambda: Fault.status(500, skip=-1),
        lambda: Fault.partial(endpoint="token"),
        lambda: Fault(kind=FaultKind.TOKEN_REFUSAL, endpoint="list", refusal=TokenRefusal.INVALID_SECRET),
        lambda: Fault(kind=FaultKind.HOSTILE),
        lambda: Fault(kind=FaultKind.STATUS, status_code=429, rate=0),
        lambda: Fault(kind=FaultKind.STATUS, status_code=429, rate=1.5),
    ],
    ids=[
        "endpoint",
        "status",
        "skip",
        "partial-on-token",
        "refusal-on-graph",
        "hostile-without-body",
        "rate-0",
        "rate-above-1",
    ],
)
def test_nonsense_fault_is_refused_when_built(build: object) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        build()  # type: ignore[operator]


def test_delays_add_up_and_first_shaping_fault_wins() -> None:
    book = FaultBook()
    for fault in (Fault.latency(100), Fault.status(500), Fault.timeout(2), Fault.status(503)):
        book.add("T", fault)
    plan = book.plan("t", "list")
    assert (plan.delay_seconds, plan.answer) == (2.1, Fault.status(500))


def test_graph_fault_does_not_match_token_requests() -> None:
    book = FaultBook()
    book.add("T", Fault.status(500))
    assert book.plan("T", "token").answer is None


@pytest.mark.parametrize(("rate", "fired"), [(1.0, "1111111111"), (0.5, "0101010101"), (0.25, "0001000100"),
                                             (0.3, "0001001001")])  # fmt: skip
def test_a_rate_applies_a_fault_to_that_share_of_its_window_spread_evenly(rate: float, fired: str) -> None:
    book = FaultBook()
    book.add("T", Fault(kind=FaultKind.STATUS, status_code=429, skip=2, times=10, rate=rate))
    seen = "".join("0" if book.plan("T", "list").answer is None else "1" for _ in range(14))
    assert seen == f"00{fired}00"


@pytest.mark.parametrize(
    ("text", "fault", "tenant"),
    [
        ("throttle", Fault.status(429, retry_after=1), None),
        ("bad_json:*", Fault.malformed_json(), None),
        ("type_change", Fault.type_change(), None),
        ("partial:0B7C1E2A-1111-4222-8333-444455556666:0.25", Fault(kind=FaultKind.PARTIAL, endpoint="list",
         warnings=('199 - "Microsoft/SecureScore/500/1234"',), rate=0.25), "0b7c1e2a-1111-4222-8333-444455556666"),
        ("unavailable::0.5", Fault(kind=FaultKind.STATUS, status_code=503, rate=0.5), None),
        ("empty_partial:*:1", Fault.empty_partial(), None),
    ],
)  # fmt: skip
def test_a_simulate_fault_option_names_a_kind_a_tenant_or_every_customer_and_a_rate(
    text: str, fault: Fault, tenant: str | None
) -> None:
    assert parse_fault_option(text) == FaultOption(fault, tenant)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            "throttled",
            "KIND must be one of throttle, unavailable, partial, empty_partial, bad_json, type_change, not 'throttled'",
        ),
        ("throttle:contoso", "TENANT must be a tenant id (a GUID) or *, not 'contoso'"),
        ("throttle:*:half", "RATE must be a number above 0 and at most 1, not 'half'"),
        ("throttle:*:0", "RATE must be above 0 and at most 1, not 0"),
        ("throttle:*:nan", "RATE must be above 0 and at most 1, not nan"),
    ],
)
def test_a_simulate_fault_option_that_is_wrong_says_which_part(text: str, said: str) -> None:
    with pytest.raises(ValueError) as refused:  # noqa: PT011 - the whole message is compared below
        parse_fault_option(text)
    assert str(refused.value) == f"{text!r}: {said}"

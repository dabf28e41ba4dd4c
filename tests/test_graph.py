"""Graph's protocol as plain data: URLs, headers, page parsing, paging and status → error."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from fetcher.config import GraphConfig
from fetcher.errors import (
    AuthenticationError,
    BadRequest,
    GraphError,
    InvalidResponse,
    NotFound,
    PermissionDenied,
    ProviderRefused,
    ProviderUnavailable,
    ServerError,
    Throttled,
    TransientError,
    UnsafeResponse,
)
from fetcher.graph import (
    Pager,
    Response,
    Setup,
    error_for_status,
    item_url,
    list_url,
    parse_claims_challenge,
    parse_warnings,
    read_item,
    read_page,
    same_origin,
    split_header_list,
)
from fetcher.models import ProviderWarning, ScorePage, TenantRef

BASE = "https://graph.example.test/v1.0"
TENANT = TenantRef("4b8c18bd-2f9f-4227-af55-0a0b0c0d0e0f", "Contoso")
URL = f"{BASE}/security/secureScores?$top=3"
GRAPH = GraphConfig("global", "https://graph.microsoft.com/v1.0", "https://login.microsoftonline.com")


def body(document: Any) -> bytes:
    return orjson.dumps(document)


def page(n: int, link: str | None = None, start: int = 0) -> ScorePage:
    return ScorePage([{"id": f"day{i}"} for i in range(start, start + n)], (), link, 200, URL)


# ------------------------------------------------------------------------------------------------ URLs


def test_list_url_asks_for_the_newest_days() -> None:
    assert list_url(BASE + "/", 90) == f"{BASE}/security/secureScores?$top=90"


@pytest.mark.parametrize(
    ("score_id", "path"),
    [
        ("tid_2026-11-27", "tid_2026-11-27"),
        ("a/b", "a%2Fb"),
        ("a?$top=1#x", "a%3F%24top%3D1%23x"),
        ("with space", "with%20space"),
        ("../../me", "..%2F..%2Fme"),
    ],
)
def test_item_url_quotes_the_whole_id(score_id: str, path: str) -> None:
    assert item_url(BASE, score_id) == f"{BASE}/security/secureScores/{path}"


@pytest.mark.parametrize(
    ("url", "same"),
    [
        (f"{BASE}/security/secureScores?$skiptoken=x", True),
        ("https://GRAPH.example.test:443/v1.0/x", True),
        ("http://graph.example.test/v1.0/x", False),
        ("https://evil.example.test/v1.0/x", False),
        ("https://graph.example.test:8443/v1.0/x", False),
        ("https://graph.example.test@evil.example.test/v1.0/x", False),
        ("https://user:pw@graph.example.test/v1.0/x", False),
        ("https://graph.example.test:notaport/x", False),
        ("/v1.0/security/secureScores", False),
    ],
)
def test_same_origin_compares_scheme_host_and_port(url: str, same: bool) -> None:
    assert same_origin(url, BASE) is same


# --------------------------------------------------------------------------------------------- headers


def test_one_206_warning_is_parsed() -> None:
    assert parse_warnings(['199 - "Microsoft/SecureScore/504/10023"']) == (
        ProviderWarning("Microsoft", "SecureScore", 504, 10023, "Microsoft/SecureScore/504/10023"),
    )


def test_several_comma_separated_warnings_are_all_parsed() -> None:
    header = '199 - "Microsoft/Intune/504/10000", 199 - "Microsoft/Defender, ATP/500/12" , 199 - "A/B/C/D"'
    assert parse_warnings([header]) == (
        ProviderWarning("Microsoft", "Intune", 504, 10000, "Microsoft/Intune/504/10000"),
        ProviderWarning("Microsoft", "Defender, ATP", 500, 12, "Microsoft/Defender, ATP/500/12"),
        ProviderWarning("A", "B", None, None, "A/B/C/D"),
    )


def test_warnings_from_repeated_headers_are_joined() -> None:
    warnings = parse_warnings(['199 - "V/P/504/1"', '199 - "V/Q/503/2"'])
    assert [w.provider for w in warnings] == ["P", "Q"]


def test_a_warning_date_with_a_comma_stays_in_its_warning() -> None:
    header = '199 - "V/P/504/1" "Wed, 21 Oct 2015 07:28:00 GMT", 199 - "V/Q/503/2"'
    assert [w.provider for w in parse_warnings([header])] == ["P", "Q"]


def test_escaped_quotes_do_not_end_a_warning() -> None:
    (warning,) = parse_warnings([r'199 - "V/say \"hi, there\"/504/1"'])
    assert warning.provider == 'say "hi, there"'


def test_an_unparsable_warning_is_kept_as_text() -> None:
    assert parse_warnings(["something odd\x1b[31m"]) == (ProviderWarning("", "", None, None, "something odd [31m"),)


def test_split_header_list_ignores_commas_inside_quotes() -> None:
    assert split_header_list('a, "b, c", d,,') == ["a", '"b, c"', "d"]


def _challenge(claims: bytes) -> str:
    encoded = base64.b64encode(claims).decode()
    return f'Bearer realm="", error="insufficient_claims", claims="{encoded}"'


def test_the_claims_challenge_of_a_401_is_decoded() -> None:
    claims = b'{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}'
    assert parse_claims_challenge([_challenge(claims)]) == claims.decode()


@pytest.mark.parametrize("header", ['Bearer realm=""', 'Bearer claims="!!!notbase64"', _challenge(b"[1, 2]")])
def test_no_usable_claims_challenge_gives_none(header: str) -> None:
    assert parse_claims_challenge([header]) is None


# ------------------------------------------------------------------------------------------------ pages


def test_a_200_page_gives_objects_and_next_link() -> None:
    document = {"value": [{"id": "a"}, {"id": "b"}], "@odata.nextLink": f"{BASE}/next"}
    assert read_page(Response(200, body(document)), tenant=TENANT, url=URL) == ScorePage(
        [{"id": "a"}, {"id": "b"}], (), f"{BASE}/next", 200, URL, nul_free=True
    )


@pytest.mark.parametrize(
    ("text", "nul_free"),
    [
        (b'{"value": [{"id": "a"}]}', True),
        (b'{"value": [{"id": "a\\u0000"}]}', False),
        (b'{"value": [{"id\\u0000": "a"}]}', False),
        (b'{"value": [{"id": "a\\\\u0000"}]}', False),  # an escaped backslash, then "u0000": a false alarm
        (b'{"value": [{"id": "a\\u0001"}]}', True),
    ],
)
def test_a_page_says_whether_its_body_can_hold_a_nul(text: bytes, nul_free: bool) -> None:
    """Only a body without the escape `\\u0000` is said to hold no NUL; a false alarm costs time, never a miss."""
    assert read_page(Response(200, text), tenant=TENANT, url=URL).nul_free is nul_free
    item = text.replace(b'{"value": [', b"").removesuffix(b"]}")
    assert read_item(Response(200, item), tenant=TENANT, url=URL).nul_free is nul_free


def test_a_206_page_gives_objects_and_warnings() -> None:
    response = Response(206, body({"value": [{"id": "a"}]}), {"warning": ['199 - "M/SecureScore/504/9"']})
    result = read_page(response, tenant=TENANT, url=URL)
    assert (result.status, result.objects, result.warnings[0].status_code) == (206, [{"id": "a"}], 504)


def test_an_item_answer_is_a_page_of_one() -> None:
    result = read_item(Response(200, body({"id": "a"})), tenant=TENANT, url=URL)
    assert (result.objects, result.next_link) == ([{"id": "a"}], None)


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b'{"value": [NaN]}', b'{"value": [1e309]}', b"[" * 1025 + b"]" * 1025, b"\xff\xfe", b"<html>"],
    ids=["empty", "truncated", "nan", "infinite", "too-deep", "not-utf8", "html"],
)
def test_a_2xx_body_that_is_not_json_is_invalid(raw: bytes) -> None:
    with pytest.raises(InvalidResponse) as caught:
        read_page(Response(200, raw), tenant=TENANT, url=URL)
    assert (caught.value.tenant_id, caught.value.status, caught.value.url) == (TENANT.tenant_id, 200, URL)


@pytest.mark.parametrize(
    "document",
    [[], {"value": {}}, {"value": "x"}, {}, {"value": [], "@odata.nextLink": 5}],
    ids=["array", "value-object", "value-string", "no-value", "link-number"],
)
def test_json_that_is_no_collection_is_invalid(document: Any) -> None:
    with pytest.raises(InvalidResponse, match="not a secureScores collection"):
        read_page(Response(200, body(document)), tenant=TENANT, url=URL)


# --------------------------------------------------------------------------------------- status → error


def graph_body(code: str, message: str) -> bytes:
    return body({"error": {"code": code, "message": message, "innerError": {"request-id": "r"}}})


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, BadRequest),
        (401, AuthenticationError),
        (403, PermissionDenied),
        (404, NotFound),
        (429, Throttled),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
        (409, GraphError),
        (501, GraphError),
        (302, GraphError),
        (204, GraphError),
    ],
)
def test_each_status_maps_to_its_error(status: int, kind: type[GraphError]) -> None:
    error = error_for_status(Response(status, graph_body("Code", "Message")), tenant=TENANT, url=URL)
    assert type(error) is kind
    assert (error.tenant_id, error.status, error.url) == (TENANT.tenant_id, status, URL)
    assert TENANT.tenant_id in str(error)
    assert "\n" not in str(error)


def test_a_206_with_data_is_a_partial_page() -> None:
    warning = '199 - "Microsoft/SecureScore/504/10000"'
    result = read_page(Response(206, body({"value": [{"id": "a"}]}), {"warning": [warning]}), tenant=TENANT, url=URL)
    assert (result.objects, result.status, [w.text for w in result.warnings]) == (
        [{"id": "a"}],
        206,
        ["Microsoft/SecureScore/504/10000"],
    )


@pytest.mark.parametrize(
    "warning",
    [
        '199 - "Microsoft/SecureScore/504/10000"',
        '199 - "Microsoft/SecureScore/500/12"',
        '199 - "Microsoft/SecureScore/408/60000"',
        '199 - "Microsoft/SecureScore/Timeout/60000"',
        None,
    ],
)
def test_a_206_without_data_is_the_provider_failing_and_is_retried(warning: str | None) -> None:
    """Issue 12: Graph's 206 with `{"value": []}` when Secure Score's provider fails was stored as success."""
    headers = {"warning": [warning]} if warning else {}
    with pytest.raises(ProviderUnavailable) as raised:
        read_page(Response(206, body({"value": []}), headers), tenant=TENANT, url=URL)
    said = warning.split('"')[1] if warning else "no Warning header"
    assert str(raised.value) == (
        f"tenant {TENANT.label}: Graph answered 206 Partial Content without data (Warning: {said}): "
        "Secure Score's provider failed or timed out"
    )
    assert isinstance(raised.value, TransientError)
    assert (raised.value.kind, raised.value.status, raised.value.url) == ("provider_unavailable", 206, URL)


@pytest.mark.parametrize(
    ("status", "what"),
    [
        ("403/10", "denied access to this tenant's Secure Score"),
        ("404/7", "has no Secure Score for this tenant"),
        ("400/3", "refused the request (400)"),
    ],
)
def test_a_206_without_data_and_a_4xx_provider_status_is_a_refusal_not_retried(status: str, what: str) -> None:
    warning = f'199 - "Microsoft/SecureScore/{status}"'
    with pytest.raises(ProviderRefused) as raised:
        read_page(Response(206, body({"value": []}), {"warning": [warning]}), tenant=TENANT, url=URL)
    assert not isinstance(raised.value, TransientError)
    assert raised.value.kind == "provider_refused"
    assert str(raised.value).startswith(
        f"tenant {TENANT.label}: Graph answered 206 Partial Content without data "
        f"(Warning: Microsoft/SecureScore/{status}): provider SecureScore {what}"
    )


def test_a_200_without_data_is_a_tenant_without_days() -> None:
    assert read_page(Response(200, body({"value": []})), tenant=TENANT, url=URL).objects == []


def test_403_says_which_permission_is_missing() -> None:
    error = error_for_status(Response(403, graph_body("Forbidden", "Insufficient privileges")), tenant=TENANT, url=URL)
    said = "Graph denied access (403: Forbidden: Insufficient privileges)"
    assert str(error).startswith(f"tenant {TENANT.label}: {said}")
    assert (
        f"the app lacks the application permission SecurityEvents.Read.All with admin consent in tenant "
        f"{TENANT.tenant_id}" in str(error)
    )


def test_403_gives_the_admin_consent_link() -> None:
    """Every "consent is missing" answer gets the link, Graph's own 403 included."""
    answer = Response(403, graph_body("Forbidden", "Missing roles"))
    error = error_for_status(answer, tenant=TENANT, url=URL, setup=Setup(GRAPH, "cccccccc"))
    assert str(error).endswith(
        f"have an admin of {TENANT.tenant_id} grant consent "
        f"(https://login.microsoftonline.com/{TENANT.tenant_id}/adminconsent?client_id=cccccccc)"
    )


@pytest.mark.parametrize(
    "answer",
    [
        graph_body("InvalidAuthenticationToken", "InvalidCloudInstance"),
        graph_body("InvalidAuthenticationToken", "Access token validation failure. Invalid cloud instance."),
    ],
)
def test_a_401_for_another_cloud_names_the_cloud_setting_and_the_endpoints(answer: bytes) -> None:
    """Issue 12: a GCC High or DoD tenant reached through the global cloud was told to check Conditional Access."""
    error = error_for_status(Response(401, answer), tenant=TENANT, url=URL, setup=Setup(GRAPH))
    assert isinstance(error, AuthenticationError)
    text = str(error)
    assert text.startswith(f"tenant {TENANT.label}: Graph refused the token as issued by another cloud (401: ")
    assert (
        '[graph] cloud = "global" (Graph https://graph.microsoft.com/v1.0, Entra ID https://login.microsoftonline.com)'
        in text
    )
    assert '"usgov" for GCC High, "dod" for DoD' in text
    assert "Conditional Access" not in text


@pytest.mark.parametrize(("status", "kind"), [(429, Throttled), (503, ServerError)])
def test_retry_after_travels_with_transient_errors(status: int, kind: type[Throttled | ServerError]) -> None:
    error = error_for_status(Response(status, b"", {"retry-after": ["7"]}), tenant=TENANT, url=URL)
    assert isinstance(error, kind)
    assert error.retry_after == 7.0


def test_a_401_carries_graphs_error_code() -> None:
    error = error_for_status(Response(401, graph_body("InvalidAuthenticationToken", "expired")), tenant=TENANT, url=URL)
    assert isinstance(error, AuthenticationError)
    assert error.code == "InvalidAuthenticationToken"


def test_graphs_error_message_is_one_short_line_without_tokens() -> None:
    message = "line one\nline two\r\n\t" + "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl " + "x" * 500
    error = error_for_status(Response(400, graph_body("BadRequest", message)), tenant=TENANT, url=URL)
    text = str(error)
    assert "line one line two [redacted] x" in text
    assert "eyJ" not in text
    assert not set(text) & {"\n", "\r", "\t"}
    assert len(text) < 400


def test_a_non_json_error_body_is_shown_briefly() -> None:
    error = error_for_status(Response(502, b"<html><body>Bad gateway</body></html>" * 50), tenant=TENANT, url=URL)
    assert "502: <html><body>Bad gateway" in str(error)
    assert len(str(error)) < 200


# ----------------------------------------------------------------------------------------------- paging


def test_paging_follows_the_link_while_days_are_missing() -> None:
    pager = Pager(TENANT, BASE, days=5)
    assert pager.first_url == f"{BASE}/security/secureScores?$top=5"
    got, nxt = pager.advance(page(2, f"{BASE}/security/secureScores?$top=5&$skiptoken=a"))
    assert (len(got.objects), nxt) == (2, f"{BASE}/security/secureScores?$top=5&$skiptoken=a")


def test_a_timed_out_window_is_asked_again_a_third_as_wide() -> None:
    """Issue 12: a window too slow to answer was asked for again, whole, forever."""
    pager = Pager(TENANT, BASE, days=90)
    first = pager.first_url
    assert [pager.narrow(first), pager.page_size] == [f"{BASE}/security/secureScores?$top=30", 30]
    assert pager.narrow(f"{BASE}/security/secureScores?$top=30") == f"{BASE}/security/secureScores?$top=10"
    assert pager.narrow(f"{BASE}/security/secureScores?$top=2") == f"{BASE}/security/secureScores?$top=1"
    assert pager.narrow(f"{BASE}/security/secureScores?$top=1") is None
    assert pager.narrow(f"{BASE}/security/secureScores") is None


def test_after_narrowing_every_next_link_asks_for_the_narrower_window() -> None:
    pager = Pager(TENANT, BASE, days=90)
    narrower = pager.narrow(pager.first_url)
    assert narrower is not None

    _, nxt = pager.advance(page(30, f"{BASE}/security/secureScores?$top=90&$skiptoken=k%2F1"))
    _, after = pager.advance(page(30, f"{BASE}/security/secureScores?%24top=20&$skiptoken=k2", start=30))

    assert nxt == f"{BASE}/security/secureScores?$top=30&$skiptoken=k%2F1"
    assert after == f"{BASE}/security/secureScores?%24top=20&$skiptoken=k2"


def test_paging_stops_at_days_although_a_link_keeps_coming() -> None:
    pager = Pager(TENANT, BASE, days=3)
    pager.advance(page(2, f"{BASE}/p2"))
    got, nxt = pager.advance(page(2, f"{BASE}/p3", start=2))
    assert ([o["id"] for o in got.objects], nxt, pager.received) == (["day2"], None, 3)


def test_a_first_page_with_more_than_days_is_trimmed() -> None:
    got, nxt = Pager(TENANT, BASE, days=1).advance(page(20, f"{BASE}/p2"))
    assert (len(got.objects), nxt) == (1, None)


def test_paging_stops_when_there_is_no_link() -> None:
    got, nxt = Pager(TENANT, BASE, days=90).advance(page(30))
    assert (len(got.objects), nxt) == (30, None)


@pytest.mark.parametrize(
    "link",
    [
        "https://evil.example.test/v1.0/security/secureScores?$skiptoken=a",
        "http://graph.example.test/v1.0/security/secureScores?$skiptoken=a",
        "https://graph.example.test:444/v1.0/security/secureScores?$skiptoken=a",
        "https://graph.example.test@evil.example.test/v1.0/security/secureScores",
    ],
    ids=["host", "scheme", "port", "userinfo"],
)
def test_a_foreign_next_link_is_refused(link: str) -> None:
    pager = Pager(TENANT, BASE, days=5)
    with pytest.raises(UnsafeResponse, match="no token was sent") as caught:
        pager.advance(page(1, link))
    assert (caught.value.tenant_id, caught.value.url) == (TENANT.tenant_id, link)


def test_a_foreign_link_after_the_last_wanted_day_is_simply_not_followed() -> None:
    assert Pager(TENANT, BASE, days=1).advance(page(1, "https://evil.example.test/x"))[1] is None


def test_a_next_link_that_loops_is_refused() -> None:
    pager = Pager(TENANT, BASE, days=5)
    pager.advance(page(1, f"{BASE}/p2"))
    with pytest.raises(UnsafeResponse, match="repeats"):
        pager.advance(page(1, f"{BASE}/p2"))


def test_endless_empty_pages_are_refused() -> None:
    pager = Pager(TENANT, BASE, days=5)
    for i in range(3):
        pager.advance(page(0, f"{BASE}/p{i}"))
    with pytest.raises(UnsafeResponse, match="4 empty pages"):
        pager.advance(page(0, f"{BASE}/p3"))

"""The tenant check's verdicts: pure functions over Entra ID's refusals, Graph's answers and a probe's errors."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError

from fetcher.auth import authentication_error
from fetcher.check import (
    Advice,
    Health,
    TenantCheck,
    Verdict,
    check_line,
    checks_json,
    checks_summary,
    classify_answer,
    classify_failure,
    classify_token_refusal,
)
from fetcher.config import CLOUDS, GraphConfig
from fetcher.errors import ConnectionFailed, RetryWaitTooLong, ServerError, Throttled
from fetcher.graph import Response
from fetcher.models import TenantRef
from fetcher.simulator import generate_tenants
from fetcher.simulator.consent import CONSENT_STATES, consent_tenants
from tests.e2e import world

TID = "0d0c0b0a-1111-4222-8333-444455556666"
CLIENT = "3f5c9a27-6b1e-4d8a-9c2f-7e4b1a0d6c53"
AUTHORITY = "https://login.microsoftonline.com"
CONSENT = f"{AUTHORITY}/{TID}/adminconsent?client_id={CLIENT}"
SAMPLE = Path(__file__).parent / "data" / "list-secure-scores-top2.json"
GRAPH = GraphConfig(base_url=CLOUDS["global"].graph, authority_host=AUTHORITY)
ADVICE = Advice(TenantRef(TID, "Contoso"), CLIENT, GRAPH)
TRACE = "\r\nTrace ID: 0000aaaa-11bb-cccc-dd22-eeeeee333333\r\nCorrelation ID: aaaa0000-bb11-2222-33cc-444444dddddd"

# Entra ID's descriptions as it words them (learn.microsoft.com/entra/identity-platform/reference-error-codes and
# the token endpoint's answers), each with the state it means.
ENTRA = [
    (
        "AADSTS700016: Application with identifier '{c}' was not found in the directory 'Contoso'. This can happen "
        "if the application has not been installed by the administrator of the tenant or consented to by any user "
        "in the tenant. You may have sent your authentication request to the wrong tenant.",
        Health.NO_CONSENT,
    ),
    (
        "AADSTS65001: The user or administrator has not consented to use the application with ID '{c}' named "
        "'securescore-fetcher'. Send an interactive authorization request for this user and resource.",
        Health.NO_CONSENT,
    ),
    (
        "AADSTS7000229: The client application {c} is missing service principal in the tenant {t}. See "
        "instructions here: https://go.microsoft.com/fwlink/?linkid=2225119",
        Health.NO_CONSENT,
    ),
    (
        "AADSTS650056: Misconfigured application. This could be due to one of the following: the client has not "
        "listed any permissions for 'Microsoft Graph' in the requested permissions in the client's application "
        "registration, or the admin has not consented in the tenant.",
        Health.PERMISSION_MISSING,
    ),
    ("AADSTS7000112: Application '{c}'(securescore-fetcher) is disabled.", Health.APP_DISABLED),
    (
        "AADSTS53003: Access has been blocked by Conditional Access policies. The access policy does not allow "
        "token issuance.",
        Health.APP_DISABLED,
    ),
    (
        "AADSTS90002: Tenant '{t}' not found. Check to make sure you have the correct tenant ID and are signing "
        "into the correct cloud. Check with your subscription administrator, this may happen if there are no "
        "active subscriptions for the tenant.",
        Health.TENANT_NOT_FOUND,
    ),
    (
        "AADSTS90038: Tenant '{t}' is not present in this cloud instance. The specified tenant belongs to the "
        "National Cloud 'USGov'. Current cloud instance 'Prod' does not federate with 'USGov'.",
        Health.TENANT_NOT_FOUND,
    ),
    (
        "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client "
        "secret value, not the client secret ID, for a secret added to app '{c}'.",
        Health.CREDENTIAL_REFUSED,
    ),
    ("AADSTS700027: Client assertion failed signature validation.", Health.CREDENTIAL_REFUSED),
    ("AADSTS50000: There was an error issuing a token.", Health.FAILED),
]


def entra_error(description: str) -> ClientAuthenticationError:
    """What azure-identity raises for a refused client-credentials request."""
    text = description.format(c=CLIENT, t=TID)
    return ClientAuthenticationError(message=f"ClientSecretCredential.get_token failed: {text}{TRACE}")


@pytest.mark.parametrize(("description", "health"), ENTRA, ids=[d.split(":")[0] for d, _ in ENTRA])
def test_a_token_refusal_is_classified_by_its_aadsts_code(description: str, health: Health) -> None:
    error = authentication_error(entra_error(description), tenant=ADVICE.tenant, authority_host=AUTHORITY)

    verdict = classify_failure(error, ADVICE)

    assert verdict.health is health
    assert verdict.fix
    if health in (Health.NO_CONSENT, Health.PERMISSION_MISSING):
        assert verdict.consent_url == CONSENT


def test_no_consent_gives_the_admin_consent_link_for_this_tenant_and_app() -> None:
    verdict = classify_token_refusal("AADSTS700016", "", ADVICE)

    assert verdict == Verdict(
        Health.NO_CONSENT,
        "AADSTS700016: the app is not in the tenant's directory (never consented there)",
        f"have an admin of {TID} grant admin consent: {CONSENT}",
        consent_url=CONSENT,
    )


def test_the_code_is_read_from_the_message_when_not_given() -> None:
    assert classify_token_refusal(None, "AADSTS7000112: Application is disabled.", ADVICE).health is Health.APP_DISABLED


def test_a_wrong_secret_names_the_fix_without_the_secret() -> None:
    verdict = classify_token_refusal("AADSTS7000215", "Invalid client secret provided.", ADVICE)

    assert verdict.health is Health.CREDENTIAL_REFUSED
    assert verdict.detail == "AADSTS7000215"
    assert "client_secret" in verdict.fix


def graph_body(code: str, message: str) -> bytes:
    inner = {"date": "2026-11-29T00:00:00", "request-id": "r", "client-request-id": "c"}
    return orjson.dumps({"error": {"code": code, "message": message, "innerError": inner}})


def test_a_403_is_a_missing_permission_with_the_roles_the_token_carries() -> None:
    body = graph_body(
        "Forbidden",
        "Missing application roles. API required roles: SecurityEvents.Read.All, SecurityEvents.ReadWrite.All. "
        "Application roles: .",
    )

    verdict = classify_answer(Response(403, body), ADVICE)

    assert verdict == Verdict(
        Health.PERMISSION_MISSING,
        "Graph answered 403 Forbidden: the token carries no roles",
        f"add the application permission SecurityEvents.Read.All to app {CLIENT} under API permissions, then have "
        f"an admin of {TID} grant admin consent again: {CONSENT}",
        consent_url=CONSENT,
        permission="SecurityEvents.Read.All",
    )


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("Authorization_RequestDenied", "Insufficient privileges to complete the operation."),
        # secureScores' own 403, as a partner's tool logged it (microsoft/Partner-Smart-Office issue 4)
        ("AccessDenied", "Your account does not have access to this data. Please contact your global administrator "
         "to request access."),
    ],
)  # fmt: skip
def test_a_403_in_another_wording_is_still_a_missing_permission(code: str, message: str) -> None:
    verdict = classify_answer(Response(403, graph_body(code, message)), ADVICE)

    assert (verdict.health, verdict.permission) == (Health.PERMISSION_MISSING, "SecurityEvents.Read.All")
    assert verdict.detail.endswith("no SecurityEvents.Read.All role")


def test_a_401_invalid_cloud_instance_is_the_wrong_cloud() -> None:
    body = graph_body("InvalidAuthenticationToken", "InvalidCloudInstance")

    verdict = classify_answer(Response(401, body), ADVICE)

    assert verdict.health is Health.TENANT_NOT_FOUND
    assert "[graph] cloud" in verdict.fix


@pytest.mark.parametrize(
    ("status", "health"),
    [(429, Health.THROTTLED), (503, Health.UNREACHABLE), (504, Health.UNREACHABLE), (404, Health.FAILED)],
)
def test_other_statuses(status: int, health: Health) -> None:
    assert classify_answer(Response(status, graph_body("X", "y")), ADVICE).health is health


def test_a_page_with_a_score_is_ok_and_names_its_day() -> None:
    verdict = classify_answer(Response(200, SAMPLE.read_bytes()), ADVICE)

    assert verdict == Verdict(Health.OK, "newest day 2026-11-27")


def test_an_empty_list_is_no_data_yet() -> None:
    body = b'{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#security/secureScores","value":[]}'

    verdict = classify_answer(Response(200, body), ADVICE)

    assert verdict.health is Health.NO_DATA
    assert "tomorrow" in verdict.fix


def test_an_empty_partial_answer_is_the_provider_failing_or_refusing() -> None:
    timeout = Response(206, b'{"value":[]}', {"warning": ['199 - "Microsoft/SecureScore/504/10000"']})
    refused = Response(206, b'{"value":[]}', {"warning": ['199 - "Microsoft/SecureScore/403/12"']})

    assert classify_answer(timeout, ADVICE).health is Health.UNREACHABLE
    assert classify_answer(refused, ADVICE).health is Health.FAILED


def test_a_body_that_is_not_a_list_fails_with_what_was_wrong() -> None:
    assert classify_answer(Response(200, b"<html>"), ADVICE).health is Health.FAILED
    assert classify_answer(Response(200, b'{"value": "x"}'), ADVICE).detail == "Graph answered 200"


@pytest.mark.parametrize(
    ("error", "health"),
    [
        (Throttled("tenant x: Graph throttled the request (429)", status=429), Health.THROTTLED),
        (RetryWaitTooLong("tenant x: asked to wait 900 s", retry_after=900), Health.THROTTLED),
        (ServerError("tenant x: Graph failed (503)", status=503), Health.UNREACHABLE),
        (ConnectionFailed("tenant x: cannot connect to Graph"), Health.UNREACHABLE),
    ],
)
def test_retries_that_ran_out(error: Exception, health: Health) -> None:
    assert classify_failure(error, ADVICE).health is health  # type: ignore[arg-type]


def test_entra_id_out_of_reach_is_unreachable() -> None:
    error = authentication_error(ServiceRequestError("refused"), tenant=ADVICE.tenant, authority_host=AUTHORITY)

    assert classify_failure(error, ADVICE).health is Health.UNREACHABLE


def test_a_line_per_tenant_and_a_summary() -> None:
    checks = [
        TenantCheck(TID, "Contoso", classify_token_refusal("AADSTS700016", "", ADVICE)),
        TenantCheck("11111111-1111-1111-1111-111111111111", "", Verdict(Health.OK, "newest day 2026-11-27")),
    ]

    assert check_line(checks[0]) == (
        f"no consent                      {TID}  Contoso: AADSTS700016: the app is not in the tenant's directory "
        f"(never consented there); have an admin of {TID} grant admin consent: {CONSENT}"
    )
    assert check_line(checks[1]) == (
        "ok                              11111111-1111-1111-1111-111111111111  newest day 2026-11-27"
    )
    assert checks_summary(checks) == "2 tenant(s): 1 ok, 1 no consent"
    assert orjson.loads(checks_json(checks))[0] == {
        "tenant_id": TID,
        "name": "Contoso",
        "state": "no consent",
        "detail": "AADSTS700016: the app is not in the tenant's directory (never consented there)",
        "fix": f"have an admin of {TID} grant admin consent: {CONSENT}",
        "consent_url": CONSENT,
        "permission": None,
    }


# ------------------------------------------------------------------------------- against the simulator


def test_tenants_check_gives_each_consent_state_its_line(tmp_path: Path) -> None:
    """One customer in each state the simulator plays; each line names the state and the fix."""
    cast = consent_tenants()
    with world(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}", list(cast.values())) as w:
        table = w.fetcher("tenants", "check")
        as_json = w.fetcher("tenants", "check", "--format", "json")
        healthy = w.fetcher("tenants", "check", "--tenant", cast["ok"].tenant_id)
        consent = f"{w.running.authority_host}/{{}}/adminconsent?client_id={w.sim.client_id}"

    assert (table.returncode, as_json.returncode, healthy.returncode) == (1, 1, 0), table.stderr
    lines = {_tenant_of(line): line for line in table.stdout.splitlines()}
    assert {tid: _state_of(line) for tid, line in lines.items()} == {
        t.tenant_id: CONSENT_STATES[scenario] for scenario, t in cast.items()
    }
    for scenario in ("no consent", "consent required", "permission missing"):
        tenant_id = cast[scenario].tenant_id
        assert lines[tenant_id].endswith(consent.format(tenant_id))
    assert "SecurityEvents.Read.All" in lines[cast["permission missing"].tenant_id]
    assert "AADSTS7000112" in lines[cast["app disabled"].tenant_id]
    assert table.stderr.splitlines()[-1] == (
        "10 tenant(s): 1 ok, 2 no consent, 1 permission missing, 1 app disabled, 2 tenant not found / wrong cloud, "
        "1 no data yet, 1 throttled, 1 unreachable"
    )
    states = {row["tenant_id"]: (row["state"], row["consent_url"]) for row in orjson.loads(as_json.stdout)}
    assert states[cast["no consent"].tenant_id] == ("no consent", consent.format(cast["no consent"].tenant_id))
    assert states[cast["ok"].tenant_id] == ("ok", None)
    assert healthy.stdout.startswith(f"ok{' ' * 30}{cast['ok'].tenant_id}")


def _tenant_of(line: str) -> str:
    return line[32:68]


def _state_of(line: str) -> str:
    return line[:30].rstrip()


def test_tenants_check_keeps_to_the_run_s_concurrency(tmp_path: Path) -> None:
    """`[fetch] concurrency` bounds the check's requests as it bounds a run's."""
    tenants = generate_tenants(8, seed=29)
    with world(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}", tenants, latency_ms=150) as w:
        w.write_config(fetch={"concurrency": 2})
        done = w.fetcher("tenants", "check")
        peak = w.sim.peak_in_flight

    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 8
    assert peak == 2


def test_a_message_loses_only_its_own_tenant_tag_even_when_the_name_holds_a_colon() -> None:
    advice = Advice(TenantRef(TID, "throttled: Contoso"), CLIENT, GRAPH)
    error = Throttled(f"tenant {TID} (throttled: Contoso): Graph throttled the request (429)", status=429)

    assert classify_failure(error, advice).detail == "Graph throttled the request (429)"

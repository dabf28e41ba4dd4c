"""Credentials against the simulator's Entra ID with real azure-identity: tokens, refusals, and no leaks."""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import orjson
import pytest
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError, ServiceResponseTimeoutError

import fetcher.auth
from fetcher.auth import TokenProvider, authentication_error, fresh_token_claims
from fetcher.config import AuthConfig, FetchConfig, GraphConfig, Secret
from fetcher.errors import (
    AuthenticationError,
    ConnectionFailed,
    GraphError,
    RequestTimedOut,
    RetryWaitTooLong,
    ServerError,
)
from fetcher.http import create_session
from fetcher.models import RequestStats, TenantRef
from fetcher.simulator import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    ClientCertificate,
    Fault,
    SimTenant,
    TokenRefusal,
    generate_client_certificate,
    generate_tenants,
)
from fetcher.simulator.tokens import decode
from tests.graph_fixtures import SEED, Stack, secret_auth, small_simulator, stack

JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.")
AUTHORITY = "https://login.example.test"
WRONG_SECRET = "Wr0ng~secret-value-that-must-never-be-shown"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> ClientCertificate:
    return generate_client_certificate(tmp_path_factory.mktemp("client-cert"))


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> ClientCertificate:
    """A certificate the app registration does not know."""
    return generate_client_certificate(tmp_path_factory.mktemp("stranger"), common_name="not-registered")


@pytest.fixture
def tenants() -> list[SimTenant]:
    """Healthy, healthy, not registered, app not installed."""
    healthy, other, unregistered, uninstalled = generate_tenants(4, seed=SEED)
    return [
        healthy,
        other,
        dataclasses.replace(unregistered, registered=False),
        dataclasses.replace(uninstalled, app_installed=False),
    ]


def certificate_auth(path: Path, password: str | None = None) -> AuthConfig:
    secret = Secret("env:CERT_PASSWORD", password) if password else None
    return AuthConfig(
        method="certificate", client_id=DEFAULT_CLIENT_ID, certificate_path=path, certificate_password=secret
    )


def token_requests(s: Stack, tenant_id: str) -> int:
    return len(s.requests("token", tenant_id))


# ------------------------------------------------------------------------------------------------ tokens


async def test_a_client_secret_gets_a_token_that_graph_accepts(tenants: list[SimTenant], tmp_path: Path) -> None:
    async with stack(small_simulator(tenants), tmp_path) as s:
        tenant = s.tenant(tenants[0])
        token = await s.tokens.token(tenant)
        assert decode(token).claims["tid"] == tenant.tenant_id
        assert len(await s.list_all(tenant, days=3)) == 3


async def test_tokens_are_cached_for_the_run(tenants: list[SimTenant], tmp_path: Path) -> None:
    async with stack(small_simulator(tenants), tmp_path) as s:
        tenant = s.tenant(tenants[0])
        first = await s.tokens.token(tenant)
        assert await s.tokens.token(tenant) == first
        await s.list_all(tenant)
        assert token_requests(s, tenant.tenant_id) == 1


async def test_a_kept_token_takes_no_slot_and_one_near_expiry_is_asked_for_again(
    tenants: list[SimTenant], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Graph request whose tenant's token is good for a while takes no `concurrency` slot to learn it."""
    entered: list[str] = []

    @asynccontextmanager
    async def gate() -> AsyncIterator[None]:
        entered.append("slot")
        yield

    async with stack(small_simulator(tenants), tmp_path) as s:
        tenant = s.tenant(tenants[0])
        tokens = TokenProvider(s.session, s.graph, s.auth_for, gate=gate)
        try:
            first = await tokens.token(tenant)
            assert [await tokens.token(tenant), len(entered)] == [first, 1]
            monkeypatch.setattr(fetcher.auth, "TOKEN_REUSE_MARGIN", 10**9)  # every token now "near expiry"
            await tokens.token(tenant)  # asked of Entra ID again: azure-identity keeps no copy (UnkeptTokens)
            assert len(entered) == 2
        finally:
            await tokens.close()
        assert token_requests(s, tenant.tenant_id) == 2


@pytest.mark.parametrize("azure_level", [logging.ERROR, logging.INFO])
async def test_token_requests_log_through_azure_core_only_when_its_loggers_are_verbose(
    tenants: list[SimTenant], tmp_path: Path, caplog: pytest.LogCaptureFixture, azure_level: int
) -> None:
    """The trimmed pipeline (no logging policies) unless `-vv` asked for azure's own request lines."""
    logging.getLogger("azure").setLevel(azure_level)
    try:
        async with stack(small_simulator(tenants), tmp_path) as s:
            with caplog.at_level(logging.DEBUG, logger="fetcher"):
                await s.tokens.token(s.tenant(tenants[0]))
    finally:
        logging.getLogger("azure").setLevel(logging.NOTSET)
    http_lines = [r for r in caplog.records if r.name.startswith("azure.core.pipeline.policies.http_logging")]
    assert bool(http_lines) == (azure_level <= logging.INFO)
    assert not any(DEFAULT_CLIENT_SECRET in r.getMessage() or JWT.search(r.getMessage()) for r in caplog.records)


@pytest.mark.parametrize("form", ["pem", "pfx", "password_pfx"])
async def test_a_certificate_gets_a_token(
    tenants: list[SimTenant], tmp_path: Path, certificate: ClientCertificate, form: str
) -> None:
    auth = {
        "pem": certificate_auth(certificate.pem_file),
        "pfx": certificate_auth(certificate.pfx_file),
        "password_pfx": certificate_auth(certificate.password_pfx_file, certificate.password),
    }[form]
    sim = small_simulator(tenants, client_certificate_pem=certificate.certificate_pem)
    async with stack(sim, tmp_path) as s:
        token = await s.tokens.token(s.tenant(tenants[0], auth))
        assert decode(token).claims["appidacr"] == "2"


async def test_a_wrong_pfx_password_fails_without_showing_it(
    tenants: list[SimTenant], tmp_path: Path, certificate: ClientCertificate
) -> None:
    auth = certificate_auth(certificate.password_pfx_file, "not-the-password-4711")
    async with stack(small_simulator(tenants), tmp_path) as s:
        with pytest.raises(AuthenticationError, match="is the certificate_password right") as caught:
            await s.tokens.token(s.tenant(tenants[0], auth))
    assert "4711" not in str(caught.value)
    assert str(certificate.password_pfx_file) in str(caught.value)


@pytest.mark.parametrize("via", ["token_file", "environment"])
async def test_workload_identity_gets_a_token(tenants: list[SimTenant], tmp_path: Path, via: str) -> None:
    sim = small_simulator(tenants)
    token_file = tmp_path / "federated-token"
    token_file.write_text(sim.issue_federated_token(sim.client_id, tenants[0].tenant_id))
    auth = AuthConfig(
        method="workload_identity", client_id=DEFAULT_CLIENT_ID, token_file=token_file if via == "token_file" else None
    )
    environ = {"AZURE_FEDERATED_TOKEN_FILE": str(token_file)} if via == "environment" else {}
    async with stack(sim, tmp_path) as s:
        provider = TokenProvider(s.session, s.graph, s.auth_for, environ=environ)
        token = await provider.token(s.tenant(tenants[0], auth))
        await provider.close()
        assert decode(token).claims["tid"] == tenants[0].tenant_id


@pytest.mark.parametrize(
    ("auth", "why"),
    [
        (
            AuthConfig(method="workload_identity", client_id=DEFAULT_CLIENT_ID),
            "token_file (or $AZURE_FEDERATED_TOKEN_FILE)",
        ),
        (
            AuthConfig(method="certificate", client_id=DEFAULT_CLIENT_ID, certificate_path=Path("/nonexistent/c.pem")),
            "cannot read certificate_path /nonexistent/c.pem",
        ),
        (AuthConfig(method="client_secret", client_id=DEFAULT_CLIENT_ID), "needs client_id and client_secret"),
        (AuthConfig(method="kerberos"), "unknown auth method 'kerberos'"),
    ],
    ids=["workload-without-token-file", "unreadable-certificate", "no-secret", "unknown-method"],
)
async def test_an_unusable_auth_configuration_fails_its_tenant(auth: AuthConfig, why: str) -> None:
    tenant = TenantRef("4b8c18bd-2f9f-4227-af55-0a0b0c0d0e0f", "Contoso")
    async with create_session(GraphConfig(), FetchConfig()) as session:
        graph = GraphConfig(authority_host=AUTHORITY, scope="https://g/.default")
        provider = TokenProvider(session, graph, lambda _tenant: auth, environ={})
        with pytest.raises(AuthenticationError) as caught:
            await provider.token(tenant)
    assert str(caught.value).startswith(f"tenant {tenant.label}: cannot build a credential: ")
    assert why in str(caught.value)


async def test_refresh_forces_a_new_token(tenants: list[SimTenant], tmp_path: Path) -> None:
    async with stack(small_simulator(tenants), tmp_path) as s:
        tenant = s.tenant(tenants[0])
        first = await s.tokens.token(tenant)
        fresh = await s.tokens.token(tenant, refresh=True)
        assert fresh != first
        assert await s.tokens.token(tenant) == fresh  # the fresh one replaced the old in the cache
        assert token_requests(s, tenant.tenant_id) == 2


def test_the_forcing_claims_ask_for_a_token_issued_from_now_on() -> None:
    assert orjson.loads(fresh_token_claims(1700000000.9)) == {
        "access_token": {"nbf": {"essential": True, "value": "1700000000"}}
    }


async def test_close_closes_the_credentials_but_not_the_shared_session(
    tenants: list[SimTenant], tmp_path: Path
) -> None:
    async with stack(small_simulator(tenants), tmp_path) as s:
        await s.tokens.token(s.tenant(tenants[0]))
        await s.tokens.close()
        assert not s.session.closed
        assert "credentials=0" in repr(s.tokens)


# ----------------------------------------------------------------------------------------------- refusals


def entra_refusal(code: int, message: str) -> bytes:
    trailer = "Trace ID: 0000\r\nCorrelation ID: 1111\r\nTimestamp: 2026-11-27 10:00:00Z"
    description = f"AADSTS{code}: {message}\r\n{trailer}"
    return orjson.dumps({"error": "invalid_client", "error_description": description, "error_codes": [code]})


REFUSALS = {
    "invalid-secret": ("AADSTS7000215", "AADSTS7000215: the client secret is wrong or expired: create a new one"),
    "expired-secret": ("AADSTS7000222", "AADSTS7000222: the client secret has expired: create a new one"),
    "app-not-found": (
        "AADSTS700016",
        "AADSTS700016: the app registration {client_id} is not in tenant "
        "{tenant_id}: have an admin of {tenant_id} grant admin consent "
        "({authority}/{tenant_id}/adminconsent?client_id={client_id})",
    ),
    "tenant-not-found": ("AADSTS90002", "AADSTS90002: Entra ID knows no tenant {tenant_id}: check tenant_id"),
    "consent": (
        "AADSTS65001",
        "AADSTS65001: the app {client_id} has no admin consent in tenant {tenant_id}: "
        "have an admin of {tenant_id} grant it ({authority}/{tenant_id}/adminconsent?client_id=",
    ),
    "bad-certificate": (
        "AADSTS700027",
        "AADSTS700027: Entra ID refused the certificate assertion: the "
        "certificate is not registered on app {client_id}",
    ),
    "other": ("AADSTS50034", "Entra ID refused a token (AADSTS50034: The user account does not exist.)"),
    "missing-service-principal": (
        "AADSTS7000229",
        "AADSTS7000229: the app {client_id} has no service principal in tenant {tenant_id} (it was never "
        "consented there): have an admin of {tenant_id} grant admin consent "
        "({authority}/{tenant_id}/adminconsent?client_id={client_id})",
    ),
    "other-cloud": (
        "AADSTS90038",
        "AADSTS90038: tenant {tenant_id} belongs to another national cloud (NationalCloudTenantRedirection): the "
        'tenant lives in another national cloud than [graph] cloud = "global" (Graph {base_url}, Entra ID '
        '{authority}): set [graph] cloud to its cloud ("usgov" for GCC High, "dod" for DoD',
    ),
    "cross-cloud-client": (
        "AADSTS900382",
        "AADSTS900382: Entra ID does not serve a confidential client across clouds: the tenant lives in another "
        'national cloud than [graph] cloud = "global"',
    ),
}
SCRIPTED = {
    "consent": TokenRefusal.CONSENT_REQUIRED,
    "missing-service-principal": TokenRefusal.MISSING_SERVICE_PRINCIPAL,
    "other-cloud": TokenRefusal.OTHER_CLOUD,
    "cross-cloud-client": TokenRefusal.CROSS_CLOUD_CLIENT,
}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_each_refusal_is_one_line_naming_the_tenant_and_the_fix(
    tenants: list[SimTenant], tmp_path: Path, stranger: ClientCertificate, case: str
) -> None:
    healthy, _, unregistered, uninstalled = tenants
    target, auth = healthy, secret_auth()
    if case == "invalid-secret":
        auth = secret_auth(WRONG_SECRET)
    elif case == "app-not-found":
        target = uninstalled
    elif case == "tenant-not-found":
        target = unregistered
    elif case in SCRIPTED:
        target = dataclasses.replace(healthy, faults=(Fault.token_refusal(SCRIPTED[case]),))
    elif case == "bad-certificate":
        auth = certificate_auth(stranger.pem_file)
    elif case == "expired-secret":
        body = entra_refusal(7000222, "The provided client secret keys for app are expired.")
        target = dataclasses.replace(healthy, faults=(Fault.status(401, endpoint="token", body=body),))
    else:
        body = entra_refusal(50034, "The user account does not exist.")
        target = dataclasses.replace(healthy, faults=(Fault.status(400, endpoint="token", body=body),))
    sim = small_simulator([target, *(t for t in tenants if t.tenant_id != target.tenant_id)])
    async with stack(sim, tmp_path) as s:
        tenant = s.tenant(target, auth)
        with pytest.raises(AuthenticationError) as caught:
            await s.list_all(tenant)
        code, advice = REFUSALS[case]
        error = caught.value
        expected = advice.format(
            client_id=DEFAULT_CLIENT_ID,
            tenant_id=tenant.tenant_id,
            authority=s.graph.authority_host,
            base_url=s.graph.base_url,
        )
        assert (error.code, error.tenant_id) == (code, tenant.tenant_id)
        assert str(error).startswith(f"tenant {tenant.label}: ")
        assert expected in str(error)
        assert "\n" not in str(error)
        assert "Trace ID" not in str(error)
        assert token_requests(s, tenant.tenant_id) == 1, "a refusal is never retried"
        assert s.requests("list") == []


def test_entra_refusals_map_without_a_server() -> None:
    tenant = TenantRef("4b8c18bd-2f9f-4227-af55-0a0b0c0d0e0f", "Contoso")
    raised = ClientAuthenticationError(
        message="Microsoft Entra ID error '(invalid_client) AADSTS7000215: Invalid client secret provided.\r\n"
        "Trace ID: x\r\nCorrelation ID: y'"
    )
    error = authentication_error(raised, tenant=tenant, authority_host=AUTHORITY, client_id=DEFAULT_CLIENT_ID)
    assert isinstance(error, AuthenticationError)
    assert error.code == "AADSTS7000215"
    assert error.url == f"{AUTHORITY}/{tenant.tenant_id}/oauth2/v2.0/token"


@pytest.mark.parametrize(
    ("raised", "kind"),
    [
        (ServiceRequestError("Cannot connect to host"), ConnectionFailed),
        (ServiceResponseTimeoutError("read timeout"), RequestTimedOut),
        (ClientAuthenticationError(message="ManagedIdentityCredential unavailable"), AuthenticationError),
        (ValueError("could not deserialize key data"), AuthenticationError),
    ],
    ids=["connection", "timeout", "unavailable", "bad-input"],
)
def test_failures_to_reach_entra_are_transient_and_the_rest_are_not(raised: Exception, kind: type[GraphError]) -> None:
    tenant = TenantRef("4b8c18bd-2f9f-4227-af55-0a0b0c0d0e0f", "Contoso")
    error = authentication_error(raised, tenant=tenant, authority_host=AUTHORITY)
    assert type(error) is kind
    assert error.tenant_id == tenant.tenant_id


# --------------------------------------------------------------------------------------- transient Entra


async def test_azure_core_does_not_retry_a_token_request_itself(tenants: list[SimTenant], tmp_path: Path) -> None:
    """A token request is one attempt: whether to try again is fetcher.retry's decision alone."""
    target = dataclasses.replace(tenants[0], faults=(Fault.status(503, endpoint="token", times=1),))
    async with stack(small_simulator([target]), tmp_path) as s:
        with pytest.raises(ServerError, match="Entra ID failed to issue a token"):
            await s.tokens.token(s.tenant(target))
        assert token_requests(s, target.tenant_id) == 1


async def test_a_passing_entra_outage_is_retried_by_fetcher_retry(tenants: list[SimTenant], tmp_path: Path) -> None:
    target = dataclasses.replace(tenants[0], faults=(Fault.status(503, endpoint="token", times=1),))
    async with stack(small_simulator([target]), tmp_path) as s:
        stats = RequestStats()
        assert len(await s.list_all(s.tenant(target), days=3, stats=stats)) == 3
        assert (token_requests(s, target.tenant_id), stats.retries) == (2, 1)


async def test_a_lasting_entra_outage_is_bounded(tenants: list[SimTenant], tmp_path: Path) -> None:
    """fetcher.retry makes three attempts (max_attempts), each one token request: three requests at most."""
    target = dataclasses.replace(tenants[0], faults=(Fault.status(503, endpoint="token"),))
    async with stack(small_simulator([target]), tmp_path) as s:
        stats = RequestStats()
        with pytest.raises(ServerError, match="Entra ID failed to issue a token"):
            await s.list_all(s.tenant(target), stats=stats)
        assert token_requests(s, target.tenant_id) == 3
        assert stats.retries == 2


async def test_a_long_retry_after_from_entra_fails_the_tenant_promptly(
    tenants: list[SimTenant], tmp_path: Path
) -> None:
    target = dataclasses.replace(tenants[0], faults=(Fault.status(429, endpoint="token", retry_after=120),))
    async with stack(small_simulator([target]), tmp_path) as s:
        with pytest.raises(RetryWaitTooLong) as caught:
            await s.list_all(s.tenant(target))
        assert caught.value.retry_after == 120
        assert token_requests(s, target.tenant_id) == 1


# -------------------------------------------------------------------------------------------------- leaks


async def test_no_token_or_secret_reaches_logs_errors_or_reprs(
    tenants: list[SimTenant], tmp_path: Path, certificate: ClientCertificate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="azure")  # whatever an earlier in-process command set it to
    healthy, other, unregistered, _ = tenants
    by_certificate, wrong_secret = generate_tenants(2, seed=SEED + 1)
    refused_graph = dataclasses.replace(other, faults=(Fault.status(401),))
    sim = small_simulator(
        [healthy, refused_graph, unregistered, by_certificate, wrong_secret],
        client_certificate_pem=certificate.certificate_pem,
    )
    errors: list[Exception] = []
    async with stack(sim, tmp_path) as s:
        await s.list_all(s.tenant(healthy))
        pfx = certificate_auth(certificate.password_pfx_file, certificate.password)
        await s.tokens.token(s.tenant(by_certificate, pfx), refresh=True)
        failing = (s.tenant(refused_graph), s.tenant(unregistered), s.tenant(wrong_secret, secret_auth(WRONG_SECRET)))
        for tenant in failing:
            try:
                await s.list_all(tenant)
            except GraphError as error:
                errors.append(error)
        reprs = " ".join(repr(x) for x in (s.tokens, s.client, s.tenant(healthy), s.limits, s.retry))
    assert [type(e) for e in errors] == [AuthenticationError] * 3
    texts = {"logs": caplog.text, "errors": " ".join(str(e) for e in errors), "reprs": reprs}
    assert any(r.name.startswith("azure") for r in caplog.records), "azure-identity's logging was captured"
    for where, text in texts.items():
        assert not JWT.search(text), f"a token in the {where}"
        for secret in (DEFAULT_CLIENT_SECRET, WRONG_SECRET, certificate.password):
            assert secret not in text, f"a secret in the {where}"

"""The token endpoint: real azure-identity credentials get tokens, and every refusal reads as Entra ID's."""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from pathlib import Path

import aiohttp
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.core.pipeline.transport import AioHttpTransport
from azure.identity._internal.aadclient_certificate import AadClientCertificate
from azure.identity.aio import CertificateCredential, ClientSecretCredential, WorkloadIdentityCredential

from fetcher.simulator import (
    ClientCertificate,
    Fault,
    RunningSimulator,
    SimTenant,
    Simulator,
    TokenRefusal,
    generate_client_certificate,
    generate_tenants,
)
from fetcher.simulator.tokens import decode
from tests.simulator.conftest import NEWEST, SEED
from tests.simulator.helpers import post_token, secret_form


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> ClientCertificate:
    return generate_client_certificate(tmp_path_factory.mktemp("client-cert"))


@pytest.fixture
def tenants() -> list[SimTenant]:
    """A healthy tenant, then one without consent, one not registered, one without the app installed."""
    healthy, unconsented, unregistered, uninstalled = generate_tenants(4, seed=SEED)
    return [
        healthy,
        dataclasses.replace(unconsented, consent=False),
        dataclasses.replace(unregistered, registered=False),
        dataclasses.replace(uninstalled, app_installed=False),
    ]


@pytest.fixture
def sim(tenants: list[SimTenant], certificate: ClientCertificate) -> Simulator:
    return Simulator(
        tenants, seed=SEED, newest_day=NEWEST, controls_per_day=40, client_certificate_pem=certificate.certificate_pem
    )


def _transport(session: aiohttp.ClientSession) -> AioHttpTransport:
    return AioHttpTransport(session=session, session_owner=False)


def _claims(token: str) -> dict[str, object]:
    return decode(token).claims


async def test_client_secret_credential_gets_a_token(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    sim = running.simulator
    credential = ClientSecretCredential(
        tenant.tenant_id, sim.client_id, sim.client_secret, authority=running.authority_host,
        transport=_transport(session),
    )  # fmt: skip
    async with credential:
        token = await credential.get_token(running.scope)
    claims = _claims(token.token)
    assert claims["tid"] == tenant.tenant_id
    assert claims["aud"] == running.origin
    assert claims["iss"] == f"https://sts.windows.net/{tenant.tenant_id}/"
    assert claims["roles"] == ["SecurityEvents.Read.All"]
    assert 3500 < token.expires_on - time.time() <= 3600


@pytest.mark.parametrize("form", ["pem", "pfx", "password_pfx"])
async def test_certificate_credential_gets_a_token(
    running: RunningSimulator,
    session: aiohttp.ClientSession,
    tenant: SimTenant,
    certificate: ClientCertificate,
    form: str,
) -> None:
    path = {"pem": certificate.pem_file, "pfx": certificate.pfx_file, "password_pfx": certificate.password_pfx_file}
    password = certificate.password if form == "password_pfx" else None
    credential = CertificateCredential(
        tenant.tenant_id, running.simulator.client_id, str(path[form]), password=password,
        authority=running.authority_host, transport=_transport(session),
    )  # fmt: skip
    async with credential:
        token = await credential.get_token(running.scope)
    assert _claims(token.token)["appidacr"] == "2"


async def test_workload_identity_credential_gets_a_token_with_a_federated_token(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant, tmp_path: Path
) -> None:
    sim = running.simulator
    token_file = tmp_path / "federated-token"
    token_file.write_text(sim.issue_federated_token(sim.client_id, tenant.tenant_id))
    credential = WorkloadIdentityCredential(
        tenant_id=tenant.tenant_id, client_id=sim.client_id, token_file_path=str(token_file),
        authority=running.authority_host, transport=_transport(session),
    )  # fmt: skip
    async with credential:
        token = await credential.get_token(running.scope)
    assert _claims(token.token)["tid"] == tenant.tenant_id


async def test_token_answer_has_entra_shape(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    answer = await post_token(session, running, tenant.tenant_id, secret_form(running))
    body = answer.json()
    assert answer.status == 200
    assert {key: body[key] for key in ("token_type", "expires_in", "ext_expires_in")} == {
        "token_type": "Bearer",
        "expires_in": 3599,
        "ext_expires_in": 3599,
    }
    assert decode(body["access_token"]).header["alg"] == "RS256"


async def test_claims_parameter_is_accepted_and_ignored(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    form = secret_form(running, claims=json.dumps({"access_token": {"nbf": {"essential": True}}}))
    answer = await post_token(session, running, tenant.tenant_id, form)
    assert answer.status == 200


async def test_token_without_consent_carries_no_roles(
    running: RunningSimulator, session: aiohttp.ClientSession, tenants: list[SimTenant]
) -> None:
    answer = await post_token(session, running, tenants[1].tenant_id, secret_form(running))
    assert answer.status == 200
    assert "roles" not in _claims(answer.json()["access_token"])


def _refusal_code(answer_body: dict[str, object]) -> int:
    codes = answer_body["error_codes"]
    assert isinstance(codes, list)
    return int(codes[0])


@pytest.mark.parametrize(
    ("override", "status", "error", "code"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client", 7000215),
        ({"client_id": "00000000-0000-0000-0000-000000000001"}, 400, "unauthorized_client", 700016),
        ({"scope": "https://graph.microsoft.com/.default"}, 400, "invalid_scope", 70011),
        ({"grant_type": "password"}, 400, "unsupported_grant_type", 70003),
        ({"grant_type": ""}, 400, "invalid_request", 900144),
        ({"client_secret": ""}, 401, "invalid_client", 7000218),
    ],
)
async def test_bad_request_is_refused_with_its_aadsts_code(
    running: RunningSimulator,
    session: aiohttp.ClientSession,
    tenant: SimTenant,
    override: dict[str, str],
    status: int,
    error: str,
    code: int,
) -> None:
    answer = await post_token(session, running, tenant.tenant_id, secret_form(running, **override))
    body = answer.json()
    assert (answer.status, body["error"], _refusal_code(body)) == (status, error, code)


async def test_refusal_body_reads_like_entra_id(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    answer = await post_token(session, running, tenant.tenant_id, secret_form(running, client_secret="wrong"))
    body = answer.json()
    lines = body["error_description"].split("\r\n")
    assert lines[0].startswith("AADSTS7000215: Invalid client secret provided.")
    assert [line.split(":")[0] for line in lines[1:]] == ["Trace ID", "Correlation ID", "Timestamp"]
    assert set(body) == {
        "error", "error_description", "error_codes", "timestamp", "trace_id", "correlation_id", "error_uri",
    }  # fmt: skip
    assert body["error_uri"].endswith("?code=7000215")


async def test_unknown_tenant_is_not_found(running: RunningSimulator, session: aiohttp.ClientSession) -> None:
    answer = await post_token(session, running, "9e3f0c55-0000-4000-8000-000000000000", secret_form(running))
    assert (answer.status, _refusal_code(answer.json())) == (400, 90002)


@pytest.mark.parametrize(("index", "code"), [(2, 90002), (3, 700016)], ids=["unregistered", "app-not-installed"])
async def test_tenant_standing_decides_refusal(
    running: RunningSimulator, session: aiohttp.ClientSession, tenants: list[SimTenant], index: int, code: int
) -> None:
    answer = await post_token(session, running, tenants[index].tenant_id, secret_form(running))
    assert _refusal_code(answer.json()) == code


async def test_tenant_name_that_is_no_domain_is_refused(
    running: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    answer = await post_token(session, running, "not a tenant", secret_form(running))
    assert _refusal_code(answer.json()) == 900023


async def test_get_on_token_endpoint_is_refused(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    async with session.get(running.token_url(tenant.tenant_id)) as response:
        body = await response.json()
    assert (response.status, body["error_codes"]) == (400, [900561])


@pytest.mark.parametrize(
    ("refusal", "status", "code"),
    [
        (TokenRefusal.INVALID_SECRET, 401, 7000215),
        (TokenRefusal.APP_NOT_FOUND, 400, 700016),
        (TokenRefusal.TENANT_NOT_FOUND, 400, 90002),
        (TokenRefusal.CONSENT_REQUIRED, 400, 65001),
        (TokenRefusal.INVALID_ASSERTION, 401, 700027),
        (TokenRefusal.APP_DISABLED, 400, 7000112),
    ],
)
async def test_scripted_refusal_is_answered(
    running: RunningSimulator,
    session: aiohttp.ClientSession,
    tenant: SimTenant,
    refusal: TokenRefusal,
    status: int,
    code: int,
) -> None:
    running.simulator.add_fault(tenant.tenant_id, Fault.token_refusal(refusal, times=1))
    refused = await post_token(session, running, tenant.tenant_id, secret_form(running))
    after = await post_token(session, running, tenant.tenant_id, secret_form(running))
    assert (refused.status, _refusal_code(refused.json()), after.status) == (status, code, 200)


async def test_azure_identity_reports_the_aadsts_code(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    credential = ClientSecretCredential(
        tenant.tenant_id, running.simulator.client_id, "wrong-secret", authority=running.authority_host,
        transport=_transport(session),
    )  # fmt: skip
    async with credential:
        with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
            await credential.get_token(running.scope)


@pytest.fixture
def stranger(tmp_path: Path) -> ClientCertificate:
    return generate_client_certificate(tmp_path, common_name="not-registered")


async def test_unregistered_certificate_is_refused(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant, stranger: ClientCertificate
) -> None:
    credential = CertificateCredential(
        tenant.tenant_id, running.simulator.client_id, str(stranger.pem_file), authority=running.authority_host,
        transport=_transport(session),
    )  # fmt: skip
    async with credential:
        with pytest.raises(ClientAuthenticationError, match="AADSTS700027"):
            await credential.get_token(running.scope)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


def _assertion(
    certificate: ClientCertificate, running: RunningSimulator, tenant_id: str, *, rs256: bool, **claims: object
) -> str:
    """An assertion signed the way azure-identity does (padded base64url), PS256 or the ADFS RS256 form."""
    signer = AadClientCertificate(certificate.pem_file.read_bytes())
    now = int(time.time())
    header = {"typ": "JWT", "alg": "RS256", "x5t": signer.thumbprint} if rs256 else {
        "typ": "JWT", "alg": "PS256", "x5t#S256": signer.sha256_thumbprint,
    }  # fmt: skip
    client_id = running.simulator.client_id
    payload = {"aud": running.token_url(tenant_id), "iss": client_id, "sub": client_id, "nbf": now, "exp": now + 600}
    payload.update(claims)
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}".encode()
    signature = signer.sign_rs256(signing_input) if rs256 else signer.sign_ps256(signing_input)
    return f"{signing_input.decode()}.{_b64(signature)}"


def _assertion_form(running: RunningSimulator, assertion: str) -> dict[str, str]:
    return {
        "client_id": running.simulator.client_id,
        "client_assertion": assertion,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "grant_type": "client_credentials",
        "scope": running.scope,
    }


async def test_rs256_assertion_with_sha1_thumbprint_is_accepted(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant, certificate: ClientCertificate
) -> None:
    assertion = _assertion(certificate, running, tenant.tenant_id, rs256=True)
    answer = await post_token(session, running, tenant.tenant_id, _assertion_form(running, assertion))
    assert answer.status == 200


@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({"exp": 1_000_000}, 700024),
        ({"aud": "https://login.microsoftonline.com/x/oauth2/v2.0/token"}, 700027),
        ({"iss": "someone-else"}, 700027),
    ],
)
async def test_bad_certificate_assertion_is_refused(
    running: RunningSimulator,
    session: aiohttp.ClientSession,
    tenant: SimTenant,
    certificate: ClientCertificate,
    claims: dict[str, object],
    code: int,
) -> None:
    assertion = _assertion(certificate, running, tenant.tenant_id, rs256=False, **claims)
    answer = await post_token(session, running, tenant.tenant_id, _assertion_form(running, assertion))
    assert _refusal_code(answer.json()) == code


async def test_tampered_assertion_is_refused(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant, certificate: ClientCertificate
) -> None:
    head, _payload, signature = _assertion(certificate, running, tenant.tenant_id, rs256=False).split(".")
    forged = _b64(json.dumps({"iss": "x", "sub": "x", "aud": "x", "exp": 9_999_999_999}).encode())
    answer = await post_token(
        session, running, tenant.tenant_id, _assertion_form(running, f"{head}.{forged}.{signature}")
    )
    assert _refusal_code(answer.json()) == 700027


async def test_federated_token_for_another_app_is_refused(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    federated = running.simulator.issue_federated_token("11111111-2222-3333-4444-555555555555", tenant.tenant_id)
    answer = await post_token(session, running, tenant.tenant_id, _assertion_form(running, federated))
    assert _refusal_code(answer.json()) == 700213


async def test_opening_the_admin_consent_link_consents_the_app(
    running: RunningSimulator, session: aiohttp.ClientSession, tenant: SimTenant
) -> None:
    sim = running.simulator
    sim.tenants[tenant.tenant_id] = dataclasses.replace(tenant, app_installed=False, consent=False)
    link = f"{running.authority_host}/{{}}/adminconsent?client_id={{}}"
    unknown = "99999999-9999-4999-8999-999999999999"

    async with session.get(link.format(unknown, sim.client_id)) as no_tenant:
        no_tenant_code = _refusal_code(await no_tenant.json())
    async with session.get(link.format(tenant.tenant_id, unknown)) as other_app:
        other_app_code = _refusal_code(await other_app.json())
    refused = sim.tenant(tenant.tenant_id)
    async with session.get(link.format(tenant.tenant_id, sim.client_id)) as granted:
        text = await granted.text()

    assert (no_tenant.status, no_tenant_code, other_app.status, other_app_code) == (400, 90002, 400, 700016)
    assert refused == dataclasses.replace(tenant, app_installed=False, consent=False)
    assert granted.status == 200
    assert text == f"Admin consent granted: app {sim.client_id} in tenant {tenant.tenant_id}.\n"
    assert sim.tenant(tenant.tenant_id) == dataclasses.replace(tenant, app_installed=True, consent=True)

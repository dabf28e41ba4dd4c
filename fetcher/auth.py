"""Credentials: one azure-identity credential per tenant, made on first use, kept for the run, closed at its end.

`TokenProvider.token(tenant)` returns a Graph access token (the provider keeps the tenant's last one and hands
it out again until it is near expiry, without a slot or a call into azure-identity, whose credentials keep no
copy: `UnkeptTokens`); `refresh=True` forces a new one after Graph refused the old one. Entra ID's refusals become one
`AuthenticationError` line naming the tenant, the AADSTS code and what to do; a token, a secret or a
certificate password never appears in a message, a log line written here, or a `repr`.

All credentials speak through the run's one aiohttp session (see `fetcher.http.create_session`), so TLS
trust and connection pooling are configured in one place.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiohttp
import orjson
from azure.core.credentials import AccessToken
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)
from azure.core.pipeline.policies import UserAgentPolicy
from azure.core.pipeline.transport import AioHttpTransport
from azure.identity import __version__ as IDENTITY_VERSION
from azure.identity.aio import (
    CertificateCredential,
    ClientSecretCredential,
    ManagedIdentityCredential,
    WorkloadIdentityCredential,
)
from msal import TokenCache

from fetcher.config import AuthConfig, GraphConfig
from fetcher.errors import (
    AuthenticationError,
    ConnectionFailed,
    GraphError,
    RequestTimedOut,
    ServerError,
    Throttled,
    UnsafeResponse,
)
from fetcher.graph import PERMISSION, consent_url, other_cloud_advice
from fetcher.limits import exhausted_resource, local_resource_error
from fetcher.models import TenantRef
from fetcher.retry import SERVER_ERROR_STATUSES, parse_retry_after
from fetcher.signin import (
    AccountRecords,
    AzureCliSignIn,
    DeviceCodeSignIn,
    Prompt,
    account_records,
    print_prompt,
    signin_refusal,
)
from fetcher.text import one_line

log = logging.getLogger("fetcher.auth")

FEDERATED_TOKEN_ENV = "AZURE_FEDERATED_TOKEN_FILE"
DEFAULT_MAX_CONCURRENT = 8
# No retries inside azure-core: a token request is one attempt, and `fetcher.retry` decides whether and
# when to try again, as for any Graph request (same attempts, same backoff, same Retry-After rules).
TOKEN_RETRY_TOTAL = 0

# A token answer is a few KB (a JWT and a handful of fields); this caps what Entra ID, or whatever
# answers in its place, can make a run hold, counted after decompression. [graph] max_response_bytes
# applies when it is smaller.
TOKEN_RESPONSE_MAX_BYTES = 1024 * 1024
# A token is handed out again without asking its credential until this many seconds before it expires:
# azure-identity's own margin (`DEFAULT_REFRESH_OFFSET`), after which it would ask Entra ID for a new one.
TOKEN_REUSE_MARGIN = 300
TOKEN_CHUNK_SIZE = 64 * 1024
# What azure-identity passes its pipeline for a retry policy to take (`retry_on_methods`, for the token POST);
# aiohttp refuses any keyword it does not know, so the transport drops them when no retry policy is in the way.
RETRY_OPTIONS = ("retry_on_methods",)

_AADSTS = re.compile(r"AADSTS(\d+)")

AuthLookup = Callable[[TenantRef], AuthConfig]


class EntraAnswerRefused(Exception):
    """A token endpoint's answer that the fetcher will not hand to azure-identity (too large, no token).

    Not an `AzureError`, so that azure-core's retry policy does not ask again; `TokenProvider.token`
    turns it into a one-line error naming the tenant.
    """

    def __init__(self, reason: str, *, unsafe: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unsafe = unsafe


def token_answer_problem(method: str, url: str, status: int, body: bytes) -> str | None:
    """Why a 2xx answer to a token request cannot be a token, or None: azure-identity reads
    `access_token` and `expires_in` (or `expires_on`) without checking that they are there."""
    if method != "POST" or not url.split("?", 1)[0].endswith("/token") or not 200 <= status < 300:
        return None
    try:
        content = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None  # azure-identity reports a body that is not JSON itself
    if not isinstance(content, dict):
        return f"its answer (HTTP {status}) is JSON but not an object"
    token = content.get("access_token")
    if not isinstance(token, str) or not token:
        return f"its answer (HTTP {status}) has no access_token"
    expiry = content.get("expires_in", content.get("expires_on"))
    if isinstance(expiry, bool) or not isinstance(expiry, int | str) or not str(expiry).isdigit():
        return f"its answer (HTTP {status}) has no usable expires_in"
    return None


class EntraTransport(AioHttpTransport):  # type: ignore[misc]  # azure-core loads it lazily: typed Any
    """azure-core's aiohttp transport, each request to Entra ID bounded like a Graph request.

    azure-core gives aiohttp only per-connect and per-read timeouts, so an endpoint that trickles a
    byte now and then never times out; here the whole exchange, answer included, must end within
    `timeout_seconds`. The answer is read here, in chunks as aiohttp decompresses them, and refused
    as soon as it passes `max_bytes`, before azure-identity parses it.
    """

    def __init__(self, session: aiohttp.ClientSession, *, timeout_seconds: float, max_bytes: int) -> None:
        super().__init__(
            session=session, session_owner=False, connection_timeout=timeout_seconds, read_timeout=timeout_seconds
        )
        self.timeout_seconds = timeout_seconds
        self.max_bytes = max_bytes

    async def send(self, request: Any, *, stream: bool = False, **config: Any) -> Any:  # noqa: ARG002 (always read whole)
        for option in RETRY_OPTIONS:  # azure-core's retry policy takes them; the trimmed pipeline has none
            config.pop(option, None)
        try:
            async with asyncio.timeout(self.timeout_seconds):
                response = await super().send(request, stream=True, **config)
                try:
                    body = await self._read(response.internal_response)
                finally:
                    response.internal_response.release()
        except TimeoutError:
            raise ServiceResponseTimeoutError(
                f"no complete answer within [graph] timeout_seconds = {self.timeout_seconds:g} s"
            ) from None
        problem = token_answer_problem(request.method, request.url, response.status_code, body)
        if problem is not None:
            raise EntraAnswerRefused(problem, unsafe=False)
        # azure-core's own read would take the body again from aiohttp, without a cap; it takes ours.
        response._content = body
        return response

    async def _read(self, answer: aiohttp.ClientResponse) -> bytes:
        declared = answer.content_length
        if declared is not None and declared > self.max_bytes:
            raise self._too_large(f"Content-Length {declared}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in answer.content.iter_chunked(TOKEN_CHUNK_SIZE):
            size += len(chunk)
            if size > self.max_bytes:
                raise self._too_large(f"{size} bytes read so far, after decompression")
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, what: str) -> EntraAnswerRefused:
        return EntraAnswerRefused(f"its answer ({what}) exceeds the cap of {self.max_bytes} bytes", unsafe=True)


class UnkeptTokens(TokenCache):  # type: ignore[misc]  # msal is untyped
    """msal's token cache for an azure-identity credential, keeping nothing.

    `TokenProvider` keeps each tenant's last token itself and hands it out until `TOKEN_REUSE_MARGIN` before it
    expires, the margin at which azure-identity would ask Entra ID for a new one anyway; a forced token skips the
    cache (claims). So azure-identity's copy was never read, and writing it cost each token a rendering of the
    whole answer as indented JSON for msal's debug line (`TokenCache.add`), whether or not debug was on.
    """

    def add(self, event: dict[str, Any], now: int | None = None) -> None:
        """Keep nothing."""


def fresh_token_claims(now: float) -> str:
    """A claims challenge that only a token issued from now on satisfies.

    azure-identity's aio `get_token` skips its token cache only when `claims` is given (see
    `GetTokenMixin._get_token_base` and `AadClientBase.get_cached_access_token`), so this is how a
    new token is forced after Graph refused a cached one that had not yet expired.
    """
    return orjson.dumps({"access_token": {"nbf": {"essential": True, "value": str(int(now))}}}).decode()


class TokenProvider:
    """The run's credentials, one per tenant; `close()` at the end of the run."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        graph: GraphConfig,
        auth: AuthLookup,
        *,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        gate: Callable[[], AbstractAsyncContextManager[None]] | None = None,
        environ: Mapping[str, str] = os.environ,
        prompt: Prompt = print_prompt,
    ) -> None:
        # The credentials share the run's session: its SSL context trusts the system CAs plus
        # [graph] ca_bundle. azure-core's `connection_verify=<path>` is not used because it would build
        # a context from the bundle alone, replacing the system CAs instead of adding to them.
        self._transport = EntraTransport(
            session,
            timeout_seconds=graph.timeout_seconds,
            max_bytes=min(TOKEN_RESPONSE_MAX_BYTES, graph.max_response_bytes),
        )
        self._graph = graph
        self._auth = auth
        self._environ = environ
        self._prompt = prompt  # where a device-code sign-in shows its URL and code
        self._records: dict[str | None, AccountRecords] = {}  # device_code's accounts, by token cache
        self._credentials: dict[str, AsyncTokenCredential] = {}
        self._tokens: dict[str, AccessToken] = {}  # each tenant's last token, handed out until near its expiry
        self._locks: dict[str, asyncio.Lock] = {}
        # Token requests are HTTP requests too: with a `gate` (the run's global limit) they share the
        # `concurrency` slots with Graph's; without one, at most `max_concurrent` go at once.
        semaphore = asyncio.Semaphore(max_concurrent)
        self._gate = gate or (lambda: semaphore)

    def __repr__(self) -> str:
        return f"TokenProvider(authority={self._graph.authority_host!r}, credentials={len(self._credentials)})"

    async def token(self, tenant: TenantRef, *, refresh: bool = False, claims: str | None = None) -> str:
        """A Graph access token for `tenant`; `refresh` (or `claims`) forces a new one from Entra ID."""
        forced = refresh or claims is not None
        kept = None if forced else self._kept(tenant.tenant_id)
        if kept is not None:
            return kept
        credential = self.credential(tenant)
        auth = self._auth(tenant)
        if refresh and isinstance(credential, AzureCliSignIn):
            credential.forget()  # `az` has no claims trick to skip its cache (device_code's MSAL has: below)
        elif refresh and not claims:
            claims = fresh_token_claims(time.time())
        # One token request per tenant at a time: its concurrent requests then share what the first got.
        async with self._lock(tenant.tenant_id):
            kept = None if forced else self._kept(tenant.tenant_id)
            if kept is not None:
                return kept
            async with self._gate():
                access = await self._get_token(credential, tenant, auth, claims)
        self._tokens[tenant.tenant_id] = access
        log.debug("tenant %s: access token ready (%s)", tenant.label, "new" if claims else "cached or new")
        return access.token

    def _kept(self, tenant_id: str) -> str | None:
        """The tenant's last token while it is good for more than `TOKEN_REUSE_MARGIN` seconds: a Graph
        request then takes neither a slot nor a pass through azure-identity's cache to learn it."""
        access = self._tokens.get(tenant_id)
        if access is None or access.expires_on - time.time() <= TOKEN_REUSE_MARGIN:
            return None
        return access.token

    async def _get_token(
        self, credential: AsyncTokenCredential, tenant: TenantRef, auth: AuthConfig, claims: str | None
    ) -> AccessToken:
        """The credential's token for Graph; its failures as the fetcher's errors, naming the tenant."""
        try:
            access = await credential.get_token(self._graph.scope, claims=claims)
        except EntraAnswerRefused as refused:
            raise refused_answer(refused, tenant=tenant, authority_host=self._graph.authority_host) from None
        except (AzureError, ValueError, OSError) as error:
            refusal = signin_refusal(error, tenant, auth) if auth.delegated else None
            if refusal is not None:
                raise refusal from None
            exhausted = exhausted_resource(error)
            if exhausted is not None:
                doing = f"tenant {tenant.label}: asking Entra ID for a token"
                raise local_resource_error(exhausted, doing=doing, tenant_id=tenant.tenant_id) from None
            raise authentication_error(
                error,
                tenant=tenant,
                authority_host=self._graph.authority_host,
                client_id=self.client_id(tenant),
                graph=self._graph,
            ) from None
        return access

    def client_id(self, tenant: TenantRef) -> str | None:
        """The app's client id for `tenant` (its `[tenants.auth]` or the shared `[auth]`), for advice."""
        return self._auth(tenant).client_id

    def method(self, tenant: TenantRef) -> str:
        """The tenant's [auth] method, for advice."""
        return self._auth(tenant).method

    def credential(self, tenant: TenantRef) -> AsyncTokenCredential:
        """The tenant's credential, made on first use."""
        credential = self._credentials.get(tenant.tenant_id)
        if credential is None:
            auth = self._auth(tenant)
            if auth.method == "device_code":
                records = self._records.setdefault(auth.token_cache, account_records(auth))
                credential = DeviceCodeSignIn(tenant, auth, self._graph, records, self._prompt)
            else:
                credential = build_credential(tenant, auth, self._graph, self._transport, self._environ)
            self._credentials[tenant.tenant_id] = credential
        return credential

    async def release(self, tenant_id: str) -> None:
        """The run is done with this tenant: close its credential, so memory does not grow with tenants."""
        credential = self._credentials.pop(tenant_id, None)
        self._tokens.pop(tenant_id, None)
        lock = self._locks.get(tenant_id)
        if lock is not None and not lock.locked():
            del self._locks[tenant_id]
        if credential is not None:
            await credential.close()

    async def close(self) -> None:
        """Close every credential (the shared session stays open: the run owns it)."""
        credentials, self._credentials = list(self._credentials.values()), {}
        self._tokens.clear()
        for credential in credentials:
            await credential.close()

    def _lock(self, tenant_id: str) -> asyncio.Lock:
        return self._locks.setdefault(tenant_id, asyncio.Lock())


# ------------------------------------------------------------------------------------------ credentials


def build_credential(
    tenant: TenantRef,
    auth: AuthConfig,
    graph: GraphConfig,
    transport: AioHttpTransport,
    environ: Mapping[str, str] = os.environ,
) -> AsyncTokenCredential:
    """The azure-identity credential for a tenant's effective `AuthConfig`."""
    common: dict[str, Any] = {
        "authority": graph.authority_host,
        "transport": transport,
        "retry_total": TOKEN_RETRY_TOTAL,
        "cache": UnkeptTokens(),
        **token_pipeline(),
    }
    if auth.method == "client_secret":
        if auth.client_secret is None or auth.client_id is None:
            raise _unusable(tenant, "method client_secret needs client_id and client_secret")
        return ClientSecretCredential(tenant.tenant_id, auth.client_id, auth.client_secret.reveal(), **common)
    if auth.method == "certificate":
        return _certificate_credential(tenant, auth, common)
    if auth.method == "workload_identity":
        token_file = auth.token_file or environ.get(FEDERATED_TOKEN_ENV)
        if not token_file or auth.client_id is None:
            why = f"method workload_identity needs client_id and token_file (or ${FEDERATED_TOKEN_ENV})"
            raise _unusable(tenant, why)
        return WorkloadIdentityCredential(
            tenant_id=tenant.tenant_id, client_id=auth.client_id, token_file_path=str(token_file), **common
        )
    if auth.method == "managed_identity":
        # Managed identity talks to the local identity endpoint, not to the authority, and keeps
        # azure-identity's own retries for it (see README, "Retries"); its failures then reach fetcher.retry.
        return ManagedIdentityCredential(client_id=auth.client_id, transport=transport)
    if auth.method == "azure_cli":
        return AzureCliSignIn(tenant)
    raise _unusable(tenant, f"unknown auth method {auth.method!r}")


def token_pipeline() -> dict[str, Any]:
    """The azure-core policies a token request goes through: azure-identity's user agent, and nothing else.

    azure-identity's default pipeline adds request ids, headers, proxying, content decoding, retries, custom
    hooks, tracing and two logging policies. A run uses none of them for its token requests but paid for each
    on every request: retries are `fetcher.retry`'s (`retry_total = 0` switched azure-core's off, and
    `EntraTransport` drops the options azure-identity passes for it), proxying is the session's, and
    azure-identity decodes the answer's JSON itself when no policy did (`AadClientBase._process_response`).
    A tenant's token cost 3.3 M instructions with the default pipeline and 2.8 M with three policies; this one
    takes about 0.16 M more off (docs/benchmarks.md). With azure's loggers at INFO or more verbose (`-vv`), the default
    pipeline stays, so that its request and response lines (secrets redacted) still show.
    """
    if logging.getLogger("azure").isEnabledFor(logging.INFO):
        return {}
    return {"policies": [UserAgentPolicy(sdk_moniker=f"identity/{IDENTITY_VERSION}")]}  # azure-identity's own


def _certificate_credential(tenant: TenantRef, auth: AuthConfig, common: dict[str, Any]) -> AsyncTokenCredential:
    path = auth.certificate_path
    if path is None or auth.client_id is None:
        raise _unusable(tenant, "method certificate needs client_id and certificate_path")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise _unusable(tenant, f"cannot read certificate_path {path}: {error.strerror}") from None
    password = auth.certificate_password.reveal() if auth.certificate_password else None
    try:
        # azure-identity tells PEM from PKCS#12 by content; we only name the form in our own errors.
        return CertificateCredential(
            tenant.tenant_id, auth.client_id, certificate_data=data, password=password, **common
        )
    except (ValueError, TypeError):
        form = "PEM" if b"-----BEGIN" in data else "PFX (PKCS#12)"
        hint = "is the certificate_password right?" if password or form != "PEM" else "is the private key in it?"
        raise _unusable(
            tenant, f"cannot load {path} as a {form} certificate with an RSA private key ({hint})"
        ) from None


def _unusable(tenant: TenantRef, why: str) -> AuthenticationError:
    return AuthenticationError(f"tenant {tenant.label}: cannot build a credential: {why}", tenant_id=tenant.tenant_id)


# ------------------------------------------------------------------------------------ Entra ID refusals


def token_url(authority_host: str, tenant_id: str) -> str:
    return f"{authority_host.rstrip('/')}/{tenant_id}/oauth2/v2.0/token"


def refused_answer(refused: EntraAnswerRefused, *, tenant: TenantRef, authority_host: str) -> GraphError:
    """A token answer the fetcher would not use: too large (`UnsafeResponse`), or without a token."""
    url = token_url(authority_host, tenant.tenant_id)
    message = f"tenant {tenant.label}: Entra ID's token endpoint at {authority_host}: {refused.reason}"
    if refused.unsafe:
        return UnsafeResponse(f"{message}; refused", tenant_id=tenant.tenant_id, url=url)
    return AuthenticationError(
        f"{message}, so no token was issued; if a proxy or gateway answers for Entra ID, check [graph] authority_host",
        tenant_id=tenant.tenant_id,
        url=url,
    )


def authentication_error(
    error: Exception,
    *,
    tenant: TenantRef,
    authority_host: str,
    client_id: str | None = None,
    graph: GraphConfig | None = None,
) -> GraphError:
    """What a failed token request means for the fetcher: a refusal, or a transient failure to retry.

    `graph`: the endpoints in use, named in the advice for a tenant of another cloud.
    """
    tid, label = tenant.tenant_id, tenant.label
    url = token_url(authority_host, tid)
    if isinstance(error, ServiceRequestTimeoutError | ServiceResponseTimeoutError):
        why = one_line(_reason(error), limit=120)
        return RequestTimedOut(f"tenant {label}: Entra ID did not answer in time ({why})", tenant_id=tid, url=url)
    if isinstance(error, ServiceRequestError | ServiceResponseError):
        return ConnectionFailed(
            f"tenant {label}: cannot reach Entra ID at {authority_host} ({one_line(_reason(error), limit=120)})",
            tenant_id=tid,
            url=url,
        )
    status = error.status_code if isinstance(error, HttpResponseError) else None
    if status == 429 or status in SERVER_ERROR_STATUSES:
        headers = getattr(getattr(error, "response", None), "headers", None) or {}
        retry_after = parse_retry_after(headers.get("Retry-After"))
        kind = Throttled if status == 429 else ServerError
        return kind(
            f"tenant {label}: Entra ID failed to issue a token ({status})",
            tenant_id=tid,
            status=status,
            url=url,
            retry_after=retry_after,
        )
    message = _reason(error)
    match = _AADSTS.search(message)
    code = f"AADSTS{match.group(1)}" if match else None
    return AuthenticationError(
        f"tenant {label}: {refusal_advice(code, message, tenant, authority_host, client_id, graph)}",
        tenant_id=tid,
        status=status,
        url=url,
        code=code,
    )


# Entra ID's codes for "this tenant, app or resource lives in another national cloud" (Microsoft Entra
# authentication and authorization error codes, learn.microsoft.com/entra/identity-platform/reference-error-codes).
OTHER_CLOUD_CODES = {
    "AADSTS90038": "tenant {tid} belongs to another national cloud (NationalCloudTenantRedirection)",
    "AADSTS900382": "Entra ID does not serve a confidential client across clouds",
    "AADSTS90051": "Entra ID does not know the national cloud asked for (InvalidNationalCloudId)",
    "AADSTS50049": "Entra ID does not know this instance (NoSuchInstanceForDiscovery)",
    "AADSTS500011": "Entra ID of tenant {tid} does not know the resource of [graph] scope {scope}",
}


def _consent_advice(tid: str, client_id: str | None, consent: str) -> dict[str, str]:
    """Every refusal that means "consent is missing", each with the admin-consent link."""
    grant = f"have an admin of {tid} grant admin consent ({consent})"
    return {
        "AADSTS65001": f"the app {client_id} has no admin consent in tenant {tid}: have an admin of {tid} grant it "
        f"({consent})",
        "AADSTS700016": f"the app registration {client_id} is not in tenant {tid}: {grant}",
        "AADSTS7000229": f"the app {client_id} has no service principal in tenant {tid} (it was never consented "
        f"there): {grant}",
        "AADSTS90094": f"the app's permissions need an administrator's consent in tenant {tid}: {grant}",
        "AADSTS90099": f"the app {client_id} has not been authorized in tenant {tid}: {grant}",
        "AADSTS65004": f"consent for the app {client_id} was declined in tenant {tid}: {grant}",
        "AADSTS650056": f"the app {client_id} does not request {PERMISSION}, or it has no consent in tenant {tid}: "
        f"add it under the app registration's API permissions and {grant}",
        "AADSTS650057": f"the app {client_id} does not request the resource it asked a token for: add {PERMISSION} "
        f"under the app registration's API permissions and {grant}",
    }


def refusal_advice(
    code: str | None,
    message: str,
    tenant: TenantRef,
    authority_host: str,
    client_id: str | None = None,
    graph: GraphConfig | None = None,
) -> str:
    """What Entra ID's refusal means and what to do about it, for the codes people meet."""
    tid = tenant.tenant_id
    consent = consent_url(authority_host, tid, client_id)
    secret_fix = "create a new one under the app registration's Certificates & secrets and update client_secret"
    advice = {
        "AADSTS7000215": f"the client secret is wrong or expired: {secret_fix}",
        "AADSTS7000222": f"the client secret has expired: {secret_fix}",
        "AADSTS90002": f"Entra ID knows no tenant {tid}: check tenant_id; if the tenant is in a national cloud, "
        f"{other_cloud_advice(graph)}",
        "AADSTS7000112": f"the app {client_id} is disabled in tenant {tid}: an admin of {tid} enables it under "
        "Enterprise applications, Properties, 'Enabled for users to sign in' (or in your own tenant, if it is "
        "disabled there)",
        "AADSTS700027": f"Entra ID refused the certificate assertion: the certificate is not registered on app "
        f"{client_id} or has expired: upload its public part under the app registration's "
        "Certificates & secrets, or fix certificate_path",
        **_consent_advice(tid, client_id, consent),
    }
    if code in advice:
        return f"{code}: {advice[code]}"
    if code in OTHER_CLOUD_CODES:
        what = OTHER_CLOUD_CODES[code].format(tid=tid, scope=graph.scope if graph else "")
        return f"{code}: {what}: {other_cloud_advice(graph)}"
    said = _entra_description(message)
    if code:
        return f"Entra ID refused a token ({code}: {said}); see https://login.microsoftonline.com/error?code={code[6:]}"
    return f"could not get a token: {said}"


def _reason(error: BaseException) -> str:
    message = getattr(error, "message", None)
    return message if isinstance(message, str) and message else str(error) or type(error).__name__


def _entra_description(message: str) -> str:
    """Entra ID's description without the trace and correlation ids, on one short line."""
    text = re.split(r"\s*(?:Trace ID|Correlation ID|Timestamp):", message, maxsplit=1)[0]
    text = re.sub(r"^Microsoft Entra ID error '\((\w+)\)\s*", "", text).rstrip("'")
    return one_line(re.sub(r"^AADSTS\d+:\s*", "", text), limit=160)

"""Microsoft Entra ID's token endpoint, sans I/O: checking a client-credentials request and shaping the
answer, including every refusal the way Entra ID words it (AADSTS code, Trace ID, Correlation ID, ...).

`authorize` takes the parsed form and returns a `Grant` or a `Refusal`; the web layer only sends it.
"""

from __future__ import annotations

import datetime
import hmac
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from fetcher.simulator import tokens
from fetcher.simulator.partner import PARTNER_ROLES
from fetcher.simulator.tokens import RegisteredCertificate, SigningKey, TokenRejected

if TYPE_CHECKING:
    from fetcher.simulator.tenants import SimTenant

_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_DOMAIN = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


class TokenRefusal(StrEnum):
    """The token endpoint's refusals; each maps to one AADSTS code, OAuth error and HTTP status."""

    INVALID_SECRET = "invalid_secret"  # AADSTS7000215
    APP_NOT_FOUND = "app_not_found"  # AADSTS700016
    TENANT_NOT_FOUND = "tenant_not_found"  # AADSTS90002
    CONSENT_REQUIRED = "consent_required"  # AADSTS65001
    INVALID_ASSERTION = "invalid_assertion"  # AADSTS700027
    EXPIRED_ASSERTION = "expired_assertion"  # AADSTS700024
    FEDERATION_MISMATCH = "federation_mismatch"  # AADSTS700213
    INVALID_SCOPE = "invalid_scope"  # AADSTS70011
    MISSING_CREDENTIAL = "missing_credential"  # AADSTS7000218
    MISSING_PARAMETER = "missing_parameter"  # AADSTS900144
    UNSUPPORTED_GRANT = "unsupported_grant"  # AADSTS70003
    INVALID_TENANT_NAME = "invalid_tenant_name"  # AADSTS900023
    METHOD_NOT_ALLOWED = "method_not_allowed"  # AADSTS900561
    OTHER_CLOUD = "other_cloud"  # AADSTS90038: the tenant belongs to another national cloud
    CROSS_CLOUD_CLIENT = "cross_cloud_client"  # AADSTS900382
    MISSING_SERVICE_PRINCIPAL = "missing_service_principal"  # AADSTS7000229
    APP_DISABLED = "app_disabled"  # AADSTS7000112: the app's service principal is disabled in the tenant


# kind -> (AADSTS code, OAuth error, HTTP status, message template)
_REFUSALS: dict[TokenRefusal, tuple[int, str, int, str]] = {
    TokenRefusal.INVALID_SECRET: (
        7000215, "invalid_client", 401,
        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret "
        "value, not the client secret ID, for a secret added to app '{client_id}'.",
    ),
    TokenRefusal.APP_NOT_FOUND: (
        700016, "unauthorized_client", 400,
        "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen "
        "if the application has not been installed by the administrator of the tenant or consented to by any "
        "user in the tenant. You may have sent your authentication request to the wrong tenant.",
    ),
    TokenRefusal.TENANT_NOT_FOUND: (
        90002, "invalid_request", 400,
        "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into "
        "the correct cloud. Check with your subscription administrator, this may happen if there are no active "
        "subscriptions for the tenant.",
    ),
    TokenRefusal.CONSENT_REQUIRED: (
        65001, "invalid_grant", 400,
        "The user or administrator has not consented to use the application with ID '{client_id}' named "
        "'securescore-fetcher'. Send an interactive authorization request for this user and resource.",
    ),
    TokenRefusal.INVALID_ASSERTION: (
        700027, "invalid_client", 401, "Client assertion failed signature validation. {detail}"
    ),
    TokenRefusal.EXPIRED_ASSERTION: (
        700024, "invalid_client", 401, "Client assertion is not within its valid time range. {detail}"
    ),
    TokenRefusal.FEDERATION_MISMATCH: (
        700213, "invalid_client", 401,
        "No matching federated identity record found for presented assertion subject. {detail}",
    ),
    TokenRefusal.INVALID_SCOPE: (
        70011, "invalid_scope", 400,
        "The provided request must include a 'scope' input parameter. The provided value for the input "
        "parameter 'scope' is not valid. The scope {scope} is not valid.",
    ),
    TokenRefusal.MISSING_CREDENTIAL: (
        7000218, "invalid_client", 401,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    ),
    TokenRefusal.MISSING_PARAMETER: (
        900144, "invalid_request", 400, "The request body must contain the following parameter: '{detail}'."
    ),
    TokenRefusal.UNSUPPORTED_GRANT: (
        70003, "unsupported_grant_type", 400, "The app requested an unsupported grant type '{detail}'."
    ),
    TokenRefusal.INVALID_TENANT_NAME: (
        900023, "invalid_request", 400,
        "Specified tenant identifier '{tenant}' is neither a valid DNS name, nor a valid external domain.",
    ),
    TokenRefusal.METHOD_NOT_ALLOWED: (
        900561, "invalid_request", 400,
        "The endpoint only accepts POST, OPTIONS requests. Received a {detail} request.",
    ),
    TokenRefusal.OTHER_CLOUD: (
        90038, "invalid_request", 400,
        "Tenant '{tenant}' is not present in this cloud instance. The specified tenant belongs to the National "
        "Cloud 'USGov'. Current cloud instance 'Prod' does not federate with 'USGov'. A cloud redirect error is "
        "returned.",
    ),
    TokenRefusal.CROSS_CLOUD_CLIENT: (
        900382, "invalid_client", 400, "Confidential Client is not supported in Cross Cloud request.",
    ),
    TokenRefusal.MISSING_SERVICE_PRINCIPAL: (
        7000229, "invalid_client", 401,
        "The client application {client_id} is missing service principal in the tenant {tenant}. See "
        "instructions here: https://go.microsoft.com/fwlink/?linkid=2225119",
    ),
    TokenRefusal.APP_DISABLED: (
        7000112, "unauthorized_client", 400, "Application '{client_id}'(securescore-fetcher) is disabled.",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Refusal:
    kind: TokenRefusal
    code: int
    error: str
    status: int
    message: str


@dataclass(frozen=True)
class AppRegistration:
    """The one multi-tenant application the simulator knows, and how it may authenticate."""

    client_id: str
    client_secret: str
    certificate: RegisteredCertificate | None


@dataclass(frozen=True)
class Grant:
    """A successful client-credentials exchange: whom to issue a token to, and with which roles."""

    tenant_id: str
    client_id: str
    audience: str
    roles: tuple[str, ...]
    certificate_auth: bool


def refusal(kind: TokenRefusal, *, client_id: str = "", tenant: str = "", scope: str = "", detail: str = "") -> Refusal:
    code, error, status, template = _REFUSALS[kind]
    message = template.format(client_id=client_id, tenant=tenant, scope=scope, detail=detail).rstrip()
    return Refusal(kind, code, error, status, message)


def refusal_body(refused: Refusal, *, now: datetime.datetime, correlation_id: str | None = None) -> dict[str, Any]:
    """The JSON Entra ID sends with a refusal, Trace ID and Correlation ID lines included."""
    trace_id = str(uuid.uuid4())
    correlation_id = correlation_id or str(uuid.uuid4())
    stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
    description = (
        f"AADSTS{refused.code}: {refused.message}\r\nTrace ID: {trace_id}\r\n"
        f"Correlation ID: {correlation_id}\r\nTimestamp: {stamp}"
    )
    return {
        "error": refused.error,
        "error_description": description,
        "error_codes": [refused.code],
        "timestamp": stamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={refused.code}",
    }


def token_response(access_token: str, lifetime: int) -> dict[str, Any]:
    # Entra ID reports one second less than the token's lifetime.
    expires_in = max(lifetime - 1, 0)
    return {
        "token_type": "Bearer",
        "expires_in": expires_in,
        "ext_expires_in": expires_in,
        "access_token": access_token,
    }


@dataclass(frozen=True)
class TokenContext:
    """Everything about the server side of one token request that `authorize` needs."""

    tenant_segment: str
    tenant: SimTenant | None
    app: AppRegistration
    token_url: str
    resources: frozenset[str]  # origins whose `/.default` scope this server accepts
    key: SigningKey
    now: int


def authorize(form: Mapping[str, str], context: TokenContext) -> Grant | Refusal:
    """Check a client-credentials request in the order Entra ID does."""
    refused = _check_grant_type(form)
    if refused is not None:
        return refused
    tenant = _tenant(context)
    if isinstance(tenant, Refusal):
        return tenant
    for check in (_check_client, _check_credential, _check_scope):
        refused = check(form, context, tenant)
        if refused is not None:
            return refused
    scope = form["scope"]
    return Grant(
        tenant_id=tenant.tenant_id,
        client_id=context.app.client_id,
        audience=scope.removesuffix("/.default"),
        roles=((tokens.GRAPH_ROLE, *(PARTNER_ROLES if tenant.partner else ())) if tenant.consent else ()),
        certificate_auth="client_assertion" in form,
    )


def _check_grant_type(form: Mapping[str, str]) -> Refusal | None:
    grant_type = form.get("grant_type")
    if not grant_type:
        return refusal(TokenRefusal.MISSING_PARAMETER, detail="grant_type")
    if grant_type != "client_credentials":
        return refusal(TokenRefusal.UNSUPPORTED_GRANT, detail=grant_type)
    return None


def _tenant(context: TokenContext) -> SimTenant | Refusal:
    segment = context.tenant_segment
    if not _GUID.match(segment) and not _DOMAIN.match(segment):
        return refusal(TokenRefusal.INVALID_TENANT_NAME, tenant=segment)
    if context.tenant is None or not context.tenant.registered:
        return refusal(TokenRefusal.TENANT_NOT_FOUND, tenant=segment)
    return context.tenant


def _check_client(form: Mapping[str, str], context: TokenContext, tenant: SimTenant) -> Refusal | None:
    client_id = form.get("client_id")
    if not client_id:
        return refusal(TokenRefusal.MISSING_PARAMETER, detail="client_id")
    if client_id.lower() != context.app.client_id.lower() or not tenant.app_installed:
        return refusal(TokenRefusal.APP_NOT_FOUND, client_id=client_id, tenant=tenant.tenant_id)
    return None


def _check_credential(form: Mapping[str, str], context: TokenContext, tenant: SimTenant) -> Refusal | None:  # noqa: ARG001 (every check takes the same arguments)
    client_id = context.app.client_id
    secret = form.get("client_secret")
    if secret is not None:
        if hmac.compare_digest(secret.encode(), context.app.client_secret.encode()):
            return None
        return refusal(TokenRefusal.INVALID_SECRET, client_id=client_id)
    assertion = form.get("client_assertion")
    if assertion is None:
        return refusal(TokenRefusal.MISSING_CREDENTIAL)
    if form.get("client_assertion_type") != tokens.ASSERTION_TYPE:
        return refusal(TokenRefusal.INVALID_ASSERTION, detail="The client_assertion_type is not supported.")
    return _check_assertion(assertion, context)


def _check_assertion(assertion: str, context: TokenContext) -> Refusal | None:
    client_id = context.app.client_id
    try:
        if tokens.assertion_issuer(assertion) == tokens.FEDERATION_ISSUER:
            tokens.verify_federated_assertion(assertion, context.key, client_id=client_id, now=context.now)
        elif context.app.certificate is None:
            raise TokenRejected("No certificate is registered on the application.")
        else:
            tokens.verify_certificate_assertion(
                assertion,
                context.app.certificate,
                client_id=client_id,
                token_url=context.token_url,
                now=context.now,
            )
    except TokenRejected as rejected:
        return refusal(_assertion_refusal(rejected), client_id=client_id, detail=rejected.reason)
    return None


def _assertion_refusal(rejected: TokenRejected) -> TokenRefusal:
    if rejected.expired:
        return TokenRefusal.EXPIRED_ASSERTION
    if "federated identity record" in rejected.reason:
        return TokenRefusal.FEDERATION_MISMATCH
    return TokenRefusal.INVALID_ASSERTION


def _check_scope(form: Mapping[str, str], context: TokenContext, tenant: SimTenant) -> Refusal | None:  # noqa: ARG001 (every check takes the same arguments)
    scope = form.get("scope")
    if not scope:
        return refusal(TokenRefusal.MISSING_PARAMETER, detail="scope")
    if scope.removesuffix("/.default") not in context.resources or not scope.endswith("/.default"):
        return refusal(TokenRefusal.INVALID_SCOPE, scope=scope)
    return None

"""Is each tenant ready to be fetched? One probe per tenant and the state its answer means, with the fix.

A probe is what a run does first, made as small as it gets: a token from Entra ID, then one day of
secureScores (`GET /security/secureScores?$top=1`), through the run's `GraphClient` (the same limits,
concurrency and retries). What came back is classified by pure functions, tested on real AADSTS codes
and Graph error bodies:

    classify_token_refusal(code, message, advice)   Entra ID refused a token (an AADSTS code)
    classify_answer(response, advice)                Graph answered (any status)
    classify_failure(error, advice)                  the probe raised (a refusal, or retries ran out)

into a `Health`: `ok`, `no consent`, `permission missing`, `app disabled`, `tenant not found / wrong
cloud`, `no data yet`, `throttled`, `unreachable`; and two that are not a customer's doing: `credential
refused` (the app's own secret or certificate: every tenant shows it) and `failed` (anything else, said
as it is). `fetcher tenants check` and `fetcher config check --online` share it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from fetcher.auth import OTHER_CLOUD_CODES, refusal_advice
from fetcher.config import DELEGATED_METHODS, Config, GraphConfig, TenantConfig
from fetcher.errors import (
    AuthenticationError,
    FetcherError,
    GraphError,
    ProviderUnavailable,
    RetryWaitTooLong,
    Throttled,
    TransientError,
)
from fetcher.graph import (
    PERMISSION,
    Response,
    Setup,
    consent_url,
    decode_json,
    empty_partial_error,
    error_for_status,
    graph_error,
    list_url,
    other_cloud_advice,
    parse_warnings,
    signed_in_user_advice,
)
from fetcher.http import GraphClient, auth_lookup, open_graph
from fetcher.models import RequestStats, TenantRef
from fetcher.retry import SERVER_ERROR_STATUSES
from fetcher.signin import SignInGates
from fetcher.text import one_line


class Health(StrEnum):
    """What a tenant's probe found; every state but `ok` comes with a fix."""

    OK = "ok"
    NO_CONSENT = "no consent"
    PERMISSION_MISSING = "permission missing"
    APP_DISABLED = "app disabled"
    TENANT_NOT_FOUND = "tenant not found / wrong cloud"
    NO_DATA = "no data yet"
    THROTTLED = "throttled"
    UNREACHABLE = "unreachable"
    CREDENTIAL_REFUSED = "credential refused"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Advice:
    """What a fix names: the tenant, the app's client id and the endpoints in use."""

    tenant: TenantRef
    client_id: str | None
    graph: GraphConfig
    method: str = "client_secret"  # the tenant's [auth] method: a person's sign-in gets a person's fix

    @property
    def consent_url(self) -> str:
        return consent_url(self.graph.authority_host, self.tenant.tenant_id, self.client_id)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A probe's outcome: the state, what was said (one line), what to do (one line; empty when ok), and
    the admin-consent link and missing permission where they apply."""

    health: Health
    detail: str
    fix: str = ""
    consent_url: str | None = None
    permission: str | None = None


@dataclass(frozen=True, slots=True)
class TenantCheck:
    """One tenant's verdict."""

    tenant_id: str
    name: str
    verdict: Verdict

    @property
    def ok(self) -> bool:
        return self.verdict.health is Health.OK


# ------------------------------------------------------------------------------------------- Entra ID

# Entra ID's codes (learn.microsoft.com/entra/identity-platform/reference-error-codes) by what they mean here.
_NO_CONSENT = {
    "AADSTS65001": "the app has no admin consent in the tenant",
    "AADSTS65004": "consent for the app was declined in the tenant",
    "AADSTS700016": "the app is not in the tenant's directory (never consented there)",
    "AADSTS7000229": "the app has no service principal in the tenant (never consented there)",
    "AADSTS90094": "the app's permissions need an administrator's consent",
    "AADSTS90099": "the app has not been authorized in the tenant",
}
_PERMISSION_MISSING = {
    "AADSTS650056": f"the app does not request {PERMISSION}, or it has no consent",
    "AADSTS650057": "the app does not request the resource it asked a token for",
}
_APP_DISABLED = {
    "AADSTS7000112": "the app is disabled in the tenant",
    "AADSTS53003": "a Conditional Access policy blocks the app",
    "AADSTS500014": "the Microsoft Graph service principal is disabled in the tenant",
}
_TENANT_NOT_FOUND = {
    "AADSTS90002": "Entra ID knows no such tenant",
    "AADSTS900023": "the tenant id is neither a GUID nor a domain",
    **{code: "the tenant or its resource is in another national cloud" for code in OTHER_CLOUD_CODES},
}
_CREDENTIAL = ("AADSTS7000215", "AADSTS7000222", "AADSTS700027", "AADSTS700024", "AADSTS700213", "AADSTS7000218")
_AADSTS = re.compile(r"AADSTS\d+")


def classify_token_refusal(code: str | None, message: str, advice: Advice) -> Verdict:
    """Entra ID's refusal of a token (`code` like "AADSTS65001", `message` its text or ours) as a verdict."""
    if code is None:
        match = _AADSTS.search(message)
        code = match.group(0) if match else None
    tid = advice.tenant.tenant_id
    if code in _NO_CONSENT:
        return _consent(Health.NO_CONSENT, f"{code}: {_NO_CONSENT[code]}", advice)
    if code in _PERMISSION_MISSING:
        return _permission(f"{code}: {_PERMISSION_MISSING[code]}", advice)
    if code in _APP_DISABLED:
        return Verdict(Health.APP_DISABLED, f"{code}: {_APP_DISABLED[code]}", _enable_fix(code, tid))
    if code in OTHER_CLOUD_CODES:
        return Verdict(Health.TENANT_NOT_FOUND, f"{code}: {_TENANT_NOT_FOUND[code]}", other_cloud_advice(advice.graph))
    if code in _TENANT_NOT_FOUND:
        return Verdict(Health.TENANT_NOT_FOUND, f"{code}: {_TENANT_NOT_FOUND[code]}", _cloud_fix(advice))
    said = refusal_advice(code, message, advice.tenant, advice.graph.authority_host, advice.client_id, advice.graph)
    health = Health.CREDENTIAL_REFUSED if code in _CREDENTIAL else Health.FAILED
    what, _, fix = said.partition(": ") if code in _CREDENTIAL else (code or "no token", "", said)
    return Verdict(health, what, fix)


def _consent(health: Health, detail: str, advice: Advice) -> Verdict:
    fix = f"have an admin of {advice.tenant.tenant_id} grant admin consent: {advice.consent_url}"
    return Verdict(health, detail, fix, consent_url=advice.consent_url)


def _permission(detail: str, advice: Advice) -> Verdict:
    fix = (
        f"add the application permission {PERMISSION} to app {advice.client_id or '<client id>'} under API "
        f"permissions, then have an admin of {advice.tenant.tenant_id} grant admin consent again: {advice.consent_url}"
    )
    return Verdict(Health.PERMISSION_MISSING, detail, fix, consent_url=advice.consent_url, permission=PERMISSION)


def _enable_fix(code: str, tid: str) -> str:
    if code == "AADSTS53003":
        return f"an admin of {tid} excludes the app from the Conditional Access policy for workload identities"
    if code == "AADSTS500014":
        return f"an admin of {tid} enables the Microsoft Graph service principal (Enterprise applications)"
    return (
        f"an admin of {tid} enables the app: Entra admin center, Enterprise applications, the app, Properties, "
        "'Enabled for users to sign in' = Yes (if it is disabled in your own tenant, enable it there)"
    )


def _cloud_fix(advice: Advice) -> str:
    return f"check tenant_id {advice.tenant.tenant_id}; if it is right, {other_cloud_advice(advice.graph)}"


# ---------------------------------------------------------------------------------------------- Graph

THROTTLED_FIX = "Graph or Entra ID asks the app to slow down in this tenant: check again later (a run waits as asked)"
UNREACHABLE_FIX = (
    "Graph or Entra ID failed or could not be reached for this tenant: check again later; if every tenant "
    "shows it, check the network, [graph] proxy and the endpoints"
)
_APP_ROLES = re.compile(r"Application roles:\s*(?P<roles>[^.]*)\.?", re.IGNORECASE)
_OTHER_CLOUD = re.compile(r"InvalidCloudInstance|cloud instance", re.IGNORECASE)


def classify_answer(response: Response, advice: Advice) -> Verdict:
    """Graph's answer to `GET /security/secureScores?$top=1` (any status) as a verdict."""
    status = response.status
    if status in (200, 206):
        return _data_answer(response, advice)
    code, said = graph_error(response.body)
    detail = f"Graph answered {status}{f' {code}' if code else ''}"
    if status == 403 and advice.method in DELEGATED_METHODS:
        setup = Setup(advice.graph, advice.client_id, advice.method)
        fix = signed_in_user_advice(said, advice.tenant.tenant_id, setup)
        return Verdict(Health.PERMISSION_MISSING, f"{detail}: {one_line(said, limit=160)}", fix, permission=PERMISSION)
    if status == 403:
        return _permission(f"{detail}: the token carries {_roles(said)}", advice)
    if status == 401 and _OTHER_CLOUD.search(said):
        return Verdict(Health.TENANT_NOT_FOUND, f"{detail}: a token of another cloud", other_cloud_advice(advice.graph))
    if status == 429:
        return Verdict(Health.THROTTLED, detail, THROTTLED_FIX)
    if status in SERVER_ERROR_STATUSES:
        return Verdict(Health.UNREACHABLE, detail, UNREACHABLE_FIX)
    url = list_url(advice.graph.base_url, 1)
    said = str(error_for_status(response, tenant=advice.tenant, url=url))
    return Verdict(Health.FAILED, detail, _untagged(said, advice))


def _data_answer(response: Response, advice: Advice) -> Verdict:
    url = list_url(advice.graph.base_url, 1)
    try:
        document = decode_json(response.body, tenant=advice.tenant, status=response.status, url=url)
    except FetcherError as error:
        return Verdict(Health.FAILED, f"Graph answered {response.status}", _untagged(str(error), advice))
    value = document.get("value") if isinstance(document, dict) else None
    if not isinstance(value, list):
        return Verdict(Health.FAILED, f"Graph answered {response.status}", "the answer is not a secureScores list")
    if value:
        return Verdict(Health.OK, _newest(value[0]))
    if response.status == 206:
        empty = empty_partial_error(parse_warnings(response.header_values("Warning")), tenant=advice.tenant, url=url)
        health = Health.UNREACHABLE if isinstance(empty, ProviderUnavailable) else Health.FAILED
        return Verdict(health, "Graph answered 206 without data", _untagged(str(empty), advice))
    return Verdict(
        Health.NO_DATA,
        "Graph answered 200 with no secureScore yet",
        "Secure Score computes a tenant's first score within a day or two of it being set up: check again "
        "tomorrow; if it stays empty, open Secure Score once in the tenant's Microsoft Defender portal",
    )


def _newest(score: Any) -> str:
    created = score.get("createdDateTime") if isinstance(score, dict) else None
    return f"newest day {one_line(created[:10])}" if isinstance(created, str) else "a secureScore answered"


def _roles(said: str) -> str:
    match = _APP_ROLES.search(said)
    roles = match.group("roles").strip() if match else None
    if roles is None:
        return f"no {PERMISSION} role"
    return f"roles {roles}" if roles else "no roles"


def _untagged(message: str, advice: Advice) -> str:
    """A fetcher error's message without its leading "tenant ID (name): " (the line names the tenant already)."""
    for tag in (f"tenant {advice.tenant.label}: ", f"tenant {advice.tenant.tenant_id}: "):
        if message.startswith(tag):
            return message[len(tag) :]
    return message


# --------------------------------------------------------------------------------------------- errors


def classify_failure(error: FetcherError, advice: Advice) -> Verdict:
    """A probe that raised: Entra ID's refusal, or a transient failure that outlasted the retries."""
    if isinstance(error, AuthenticationError) and error.url is not None and "/oauth2/" in error.url:
        return classify_token_refusal(error.code, str(error), advice)
    if isinstance(error, AuthenticationError) and error.status is None:
        return Verdict(Health.CREDENTIAL_REFUSED, "no credential", _untagged(str(error), advice))
    if isinstance(error, Throttled | RetryWaitTooLong):
        return Verdict(Health.THROTTLED, _untagged(str(error), advice), THROTTLED_FIX)
    if isinstance(error, TransientError):
        return Verdict(Health.UNREACHABLE, _untagged(str(error), advice), UNREACHABLE_FIX)
    if isinstance(error, GraphError):
        return Verdict(Health.FAILED, error.kind, _untagged(str(error), advice))
    return Verdict(Health.FAILED, error.kind, str(error))


# ---------------------------------------------------------------------------------------------- probes


async def probe(client: GraphClient, advice: Advice) -> Verdict:
    """One tenant's probe: a token, then one day of secureScores, classified."""
    url = list_url(advice.graph.base_url, 1)
    try:
        response = await client.probe(advice.tenant, url, RequestStats())
    except FetcherError as error:
        return classify_failure(error, advice)
    return classify_answer(response, advice)


async def check_tenants(config: Config, tenants: Sequence[TenantConfig]) -> list[TenantCheck]:
    """Every tenant's verdict, in the order given, probed with the run's limits and concurrency."""
    slots = asyncio.Semaphore(config.fetch.concurrency)
    sign_ins = SignInGates(auth_lookup(config), config.fetch.per_sign_in_concurrency)
    async with open_graph(config) as client:

        async def one(tenant: TenantConfig) -> TenantCheck:
            ref = TenantRef(tenant.tenant_id, tenant.name)
            async with sign_ins.gate(ref), slots:
                try:
                    advice = Advice(ref, tenant.auth.client_id, config.graph, tenant.auth.method)
                    verdict = await probe(client, advice)
                finally:
                    await client.forget(tenant.tenant_id)
            return TenantCheck(tenant.tenant_id, tenant.name, verdict)

        return list(await asyncio.gather(*(one(tenant) for tenant in tenants)))


# -------------------------------------------------------------------------------------------- showing


def check_line(check: TenantCheck) -> str:
    """`STATE  TENANT_ID  NAME: DETAIL; FIX` on one line, never wrapped."""
    verdict = check.verdict
    what = verdict.detail + (f"; {verdict.fix}" if verdict.fix else "")
    name = one_line(check.name, limit=60) if check.name else ""
    return f"{verdict.health.value:<30}  {check.tenant_id}  {name}{': ' if name else ''}{what}"


def checks_json(checks: Sequence[TenantCheck]) -> bytes:
    """The verdicts as a JSON list of objects, one per tenant."""
    return orjson.dumps(
        [
            {
                "tenant_id": c.tenant_id,
                "name": c.name,
                "state": c.verdict.health.value,
                "detail": c.verdict.detail,
                "fix": c.verdict.fix or None,
                "consent_url": c.verdict.consent_url,
                "permission": c.verdict.permission,
            }
            for c in checks
        ],
        option=orjson.OPT_INDENT_2,
    )


def checks_summary(checks: Sequence[TenantCheck]) -> str:
    """`9 tenants: 7 ok, 1 no consent, 1 throttled`."""
    counts: dict[Health, int] = {}
    for check in checks:
        counts[check.verdict.health] = counts.get(check.verdict.health, 0) + 1
    parts = [f"{counts[h]} {h.value}" for h in Health if h in counts]
    return f"{len(checks)} tenant(s): {', '.join(parts) if parts else 'none checked'}"

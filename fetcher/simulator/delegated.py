"""The HTTP side of delegated sign-in: a tenant's OpenID Connect discovery document (MSAL reads its
endpoints from it), the device authorization endpoint, the `device_code` and `refresh_token` grants of
the token endpoint, and the sign-in page (`/devicelogin`) where a person, or a test, enters the code.

The rules live in `devicecode` (flows, users) and `tokens` (JWTs); this module reads forms and answers.
"""

from __future__ import annotations

import dataclasses
import datetime
import html
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

import orjson
from aiohttp import web

from fetcher.simulator import entra, tokens
from fetcher.simulator.devicecode import (
    DEVICE_CODE_GRANT,
    REFRESH_TOKEN_GRANT,
    RESERVED_SCOPES,
    DeviceFlow,
    PollResult,
    RefreshGrant,
    poll_error_body,
    resource_scopes,
)
from fetcher.simulator.records import DEVICE_CODE, OPENID

if TYPE_CHECKING:
    from fetcher.simulator.app import Exchange
    from fetcher.simulator.simulator import Simulator

USER_GRANTS = frozenset({DEVICE_CODE_GRANT, REFRESH_TOKEN_GRANT})
# What an admin consent to the public client covers in a tenant with `consent`; without it, only User.Read.
CONSENTED = ("SecurityEvents.Read.All", "User.Read")
UNCONSENTED = ("User.Read",)


async def handle(sim: Simulator, exchange: Exchange) -> web.Response:
    """The discovery document, the device authorization endpoint, or the sign-in page."""
    if exchange.route.endpoint == OPENID:
        return _openid_configuration(sim, exchange)
    if exchange.route.endpoint == DEVICE_CODE:
        return await _device_code(sim, exchange)
    return await _sign_in_page(sim, exchange)


def _openid_configuration(sim: Simulator, exchange: Exchange) -> web.Response:
    from fetcher.simulator.app import _entra_json, _entra_refusal

    segment = exchange.route.argument
    tenant = sim.tenant(segment)
    if tenant is None or not tenant.registered:
        return _entra_refusal(exchange, entra.refusal(entra.TokenRefusal.TENANT_NOT_FOUND, tenant=segment))
    base = f"{exchange.origin}/{tenant.tenant_id}"
    document = {
        "issuer": f"{base}/v2.0",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        "jwks_uri": f"{exchange.origin}/{tenant.tenant_id}/discovery/v2.0/keys",
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "tenant_region_scope": "EU",
    }
    return _entra_json(exchange, 200, orjson.dumps(document))


async def _device_code(sim: Simulator, exchange: Exchange) -> web.Response:
    from fetcher.simulator.app import _entra_json, _entra_refusal

    segment = exchange.route.argument
    exchange.tenant_id = segment
    tenant = sim.tenant(segment)
    if exchange.request.method != "POST":
        refused = entra.refusal(entra.TokenRefusal.METHOD_NOT_ALLOWED, detail=exchange.request.method)
        return _entra_refusal(exchange, refused)
    if tenant is None or not tenant.registered:
        return _entra_refusal(exchange, entra.refusal(entra.TokenRefusal.TENANT_NOT_FOUND, tenant=segment))
    form = await _form(exchange)
    client_id = form.get("client_id", "")
    if not client_id:
        return _entra_refusal(exchange, entra.refusal(entra.TokenRefusal.MISSING_PARAMETER, detail="client_id"))
    scoped = resource_scopes(form.get("scope", ""), exchange.origins)
    if scoped is None or not scoped[0]:
        refused = entra.refusal(entra.TokenRefusal.INVALID_SCOPE, scope=form.get("scope", ""))
        return _entra_refusal(exchange, refused)
    flow = sim.device_flows.start(tenant.tenant_id, client_id, scoped[0])
    uri = f"{exchange.origin}/devicelogin"
    minutes = sim.device_flows.lifetime_seconds // 60
    body = {
        "user_code": flow.user_code,
        "device_code": flow.device_code,
        "verification_uri": uri,
        "expires_in": sim.device_flows.lifetime_seconds,
        "interval": sim.device_flows.interval_seconds,
        "message": f"To sign in, use a web browser to open the page {uri} and enter the code {flow.user_code} "
        f"to authenticate.{f' The code expires in {minutes} minutes.' if minutes else ''}",
    }
    return _entra_json(exchange, 200, orjson.dumps(body))


def token(sim: Simulator, exchange: Exchange, form: Mapping[str, str]) -> web.Response:
    """The token endpoint's answer to a `device_code` or `refresh_token` grant."""
    from fetcher.simulator.app import _entra_json, _entra_refusal

    tenant = sim.tenant(exchange.route.argument)
    if tenant is None or not tenant.registered:
        refused = entra.refusal(entra.TokenRefusal.TENANT_NOT_FOUND, tenant=exchange.route.argument)
        return _entra_refusal(exchange, refused)
    client_id = form.get("client_id", "")
    if form.get("grant_type") == REFRESH_TOKEN_GRANT:
        grant = sim.device_flows.redeem_refresh_token(form.get("refresh_token", ""), client_id)
        # A user's refresh token is good in every tenant the user belongs to (a guest, a GDAP admin).
        if grant is None or not sim.device_flows.user(grant.username).member_of(tenant.tenant_id):
            body = poll_error_body(PollResult.BAD_CODE, _stamp()) | {"error": "invalid_grant"}
            return _entra_json(exchange, 400, orjson.dumps(body))
        if not tenant.consent and any(s.rpartition("/")[2] in tokens.GRAPH_SCOPES for s in grant.scopes):
            refused = entra.refusal(entra.TokenRefusal.CONSENT_REQUIRED, client_id=client_id)
            return _entra_refusal(exchange, refused)
        grant = dataclasses.replace(grant, tenant_id=tenant.tenant_id)
        return _entra_json(exchange, 200, orjson.dumps(_user_tokens(sim, exchange, grant)))
    result, flow = sim.device_flows.poll(form.get("device_code", ""), client_id, time.time())
    if result is not PollResult.GRANTED or flow is None:
        status = 401 if result is PollResult.BAD_CODE else 400
        return _entra_json(exchange, status, orjson.dumps(poll_error_body(result, _stamp())))
    scopes = _granted(flow, tenant.consent)
    if scopes is None:
        refused = entra.refusal(entra.TokenRefusal.CONSENT_REQUIRED, client_id=client_id)
        return _entra_refusal(exchange, refused)
    assert flow.username is not None  # granted flows are approved by a user
    if not sim.device_flows.user(flow.username).member_of(tenant.tenant_id):
        body = poll_error_body(PollResult.DECLINED, _stamp())
        return _entra_json(exchange, 400, orjson.dumps(body))
    grant = RefreshGrant(tenant.tenant_id, flow.client_id, flow.username, scopes)
    return _entra_json(exchange, 200, orjson.dumps(_user_tokens(sim, exchange, grant)))


def _granted(flow: DeviceFlow, consent: bool) -> tuple[str, ...] | None:
    """The resource-qualified scopes granted; None when a Secure Score permission needs a consent not given.

    `/.default` gets what was consented; a named permission needs consent (AADSTS65001 otherwise).
    """
    granted: list[str] = []
    for scope in flow.scopes:
        resource, _, name = scope.rpartition("/")
        if name == ".default":
            granted += [f"{resource}/{n}" for n in (CONSENTED if consent else UNCONSENTED)]
        elif name in tokens.GRAPH_SCOPES and not consent:
            return None
        else:
            granted.append(scope)
    return tuple(dict.fromkeys(granted))


def _user_tokens(sim: Simulator, exchange: Exchange, grant: RefreshGrant) -> dict[str, object]:
    user = sim.device_flows.user(grant.username)
    audience = grant.scopes[0].rpartition("/")[0] if grant.scopes else exchange.origin
    user_grant = tokens.UserGrant(
        tenant_id=grant.tenant_id,
        client_id=grant.client_id,
        username=user.username,
        audience=audience,
        scopes=tuple(scope.rpartition("/")[2] for scope in grant.scopes),
        role_ids=tokens.SECURITY_ROLE_IDS[:1] if user.security_reader else (),
    )
    now, lifetime = int(time.time()), sim.token_lifetime_seconds
    issuer = f"{exchange.origin}/{grant.tenant_id}/v2.0"
    answer: dict[str, object] = entra.token_response(
        tokens.issue_user_token(sim.signing_key, user_grant, now=now, lifetime=lifetime), lifetime
    )
    answer |= {
        "scope": " ".join([*grant.scopes, *sorted(RESERVED_SCOPES - {"email"})]),
        "refresh_token": sim.device_flows.issue_refresh_token(grant),
        "id_token": tokens.issue_id_token(sim.signing_key, user_grant, issuer=issuer, now=now, lifetime=lifetime),
        "client_info": tokens.client_info(user_grant),
    }
    return answer


async def _sign_in_page(sim: Simulator, exchange: Exchange) -> web.Response:
    """GET: a form; POST `user_code`, `action` (approve, decline, expire, slow_down) and `username`."""
    if exchange.request.method != "POST":
        page = (
            "<!doctype html><title>Sign in</title><form method=post>Code: <input name=user_code> "
            "User: <input name=username value=secadmin@simulator.example> "
            "<button name=action value=approve>Sign in</button> <button name=action value=decline>Cancel</button>"
            "</form>"
        )
        return web.Response(status=200, text=page, content_type="text/html")
    form = await _form(exchange)
    action = form.get("action", "approve")
    flow = sim.device_flows.decide(form.get("user_code", ""), action, form.get("username") or None)
    if flow is None:
        return web.Response(status=404, text="No sign-in is waiting for that code.\n", content_type="text/plain")
    exchange.tenant_id = flow.tenant_id
    what = {"approve": f"Signed in as {html.escape(flow.username or '')}", "decline": "Sign-in declined"}
    return web.Response(status=200, text=f"{what.get(action, action)}.\n", content_type="text/plain")


async def _form(exchange: Exchange) -> dict[str, str]:
    return {key: value for key, value in (await exchange.request.post()).items() if isinstance(value, str)}


def _stamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")

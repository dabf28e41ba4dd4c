"""The aiohttp application: one catch-all route that classifies each request, records it, applies the
tenant's fault plan, and answers as Entra ID's token endpoint or Graph's secureScores API.

The protocol decisions live in the sans-I/O modules (`entra`, `pages`, `graph`, `hostile`); this module
reads requests, sleeps where latency is scripted, and writes answers.
"""

from __future__ import annotations

import asyncio
import datetime
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson
from aiohttp import web

from fetcher.simulator import delegated, entra, graph, hostile, pages, partner, quirks, tokens
from fetcher.simulator.faults import Fault, FaultKind, Plan
from fetcher.simulator.records import (
    CONSENT,
    DEVICE_CODE,
    DEVICE_LOGIN,
    GET,
    LIST,
    OPENID,
    OTHER,
    PARTNER,
    PROFILES,
    TOKEN,
    RequestRecord,
)
from fetcher.simulator.tokens import AccessClaims, TokenRejected

if TYPE_CHECKING:
    from fetcher.simulator.simulator import Simulator

_TOKEN_PATH = re.compile(r"^/([^/]+)/oauth2/v2\.0/token/?$", re.IGNORECASE)
_CONSENT_PATH = re.compile(r"^/([^/]+)/adminconsent/?$", re.IGNORECASE)
_DEVICE_CODE_PATH = re.compile(r"^/([^/]+)/oauth2/v2\.0/devicecode/?$", re.IGNORECASE)
_OPENID_PATH = re.compile(r"^/([^/]+)/v2\.0/\.well-known/openid-configuration/?$", re.IGNORECASE)
_DEVICE_LOGIN_PATH = re.compile(r"^/devicelogin/?$", re.IGNORECASE)
_LIST_PATH = re.compile(r"^/v1\.0/security/securescores/?$", re.IGNORECASE)
_PROFILES_PATH = re.compile(r"^/v1\.0/security/securescorecontrolprofiles/?$", re.IGNORECASE)
_GET_PATH = re.compile(r"^/v1\.0/security/securescores/([^/]+)/?$", re.IGNORECASE)
_SCORE_ID = re.compile(r"^(?P<tenant>[0-9a-fA-F-]{36})_(?P<day>\d{4}-\d{2}-\d{2})$")
_ENTRA_CONTENT_TYPE = "application/json; charset=utf-8"
_VERIFIED_TOKENS_MAX = 100_000
_CLIENT_GONE = 499
# Faults that change the objects of an answer, which is otherwise a plain 200.
_REWRITES = frozenset(
    {FaultKind.WRONG_TENANT, FaultKind.PLACEHOLDER_COMPARATIVES, FaultKind.INCONSISTENT_IDS, FaultKind.TYPE_CHANGE}
)


@dataclass(frozen=True)
class Route:
    endpoint: str  # TOKEN | LIST | GET | PROFILES | OTHER
    argument: str = ""  # the tenant segment of a token URL, or the id of a single score


def classify(path: str) -> Route:
    """Which endpoint a path names (Graph matches path segments case-insensitively)."""
    for pattern, endpoint in _ROUTES:
        if match := pattern.match(path):
            return Route(endpoint, match.group(1) if pattern.groups else "")
    for partner_path in (partner.RELATIONSHIPS_PATH, partner.CONTRACTS_PATH):
        if path.rstrip("/").lower() == partner_path.lower():
            return Route(PARTNER, partner_path)
    return Route(OTHER)


# In order: a pattern's one group, if it has one, is the route's argument (a tenant segment or a score id).
_ROUTES = (
    (_TOKEN_PATH, TOKEN),
    (_CONSENT_PATH, CONSENT),
    (_DEVICE_CODE_PATH, DEVICE_CODE),
    (_OPENID_PATH, OPENID),
    (_DEVICE_LOGIN_PATH, DEVICE_LOGIN),
    (_LIST_PATH, LIST),
    (_PROFILES_PATH, PROFILES),
    (_GET_PATH, GET),
)


@dataclass
class Exchange:
    """One request on its way through: what is known about it so far."""

    request: web.Request
    route: Route
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    tenant_id: str | None = None

    @property
    def client_request_id(self) -> str:
        return self.request.headers.get("client-request-id", self.request_id)

    @property
    def origin(self) -> str:
        return f"{self.request.scheme}://{self.request.host}"

    @property
    def origins(self) -> frozenset[str]:
        """Origins that name this server: the one asked for, and its loopback aliases."""
        port = self.request.url.port
        return frozenset({self.origin, f"https://127.0.0.1:{port}", f"https://localhost:{port}"})


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Service:
    """The request handlers of one simulator."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self._verified: dict[str, AccessClaims] = {}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        arrival = time.monotonic()
        exchange = Exchange(request, classify(request.path))
        status = _CLIENT_GONE
        try:
            response = await self._dispatch(exchange)
            status = response.status
            return response
        except asyncio.CancelledError:
            raise  # the client went away (a scripted hang usually); recorded as 499
        except Exception:
            status = 500
            raise
        finally:
            self.sim.recorder.add(_record(exchange, arrival, status))

    async def _dispatch(self, exchange: Exchange) -> web.StreamResponse:
        if exchange.route.endpoint == TOKEN:
            return await self._token(exchange)
        if exchange.route.endpoint in (LIST, GET, PROFILES):
            return await self._graph(exchange)
        if exchange.route.endpoint == PARTNER:
            return await self._partner(exchange)
        if exchange.route.endpoint == CONSENT:
            return self._admin_consent(exchange)
        if exchange.route.endpoint in (DEVICE_CODE, OPENID, DEVICE_LOGIN):
            return await delegated.handle(self.sim, exchange)
        return _unknown_path(exchange)

    async def _sleep(self, plan: Plan, top: int | None = None) -> None:
        delay = self.sim.latency_ms / 1000 + plan.delay(top)
        if delay > 0:
            await asyncio.sleep(delay)

    # -- Entra ID -----------------------------------------------------------------------------------------

    async def _token(self, exchange: Exchange) -> web.StreamResponse:
        segment = exchange.route.argument
        exchange.tenant_id = segment
        tenant = self.sim.tenant(segment)
        with self.sim.recorder.in_flight(TOKEN, segment):
            plan = self.sim.faults.plan(tenant.tenant_id if tenant else None, TOKEN)
            await self._sleep(plan)
            if exchange.request.method != "POST":
                refused = entra.refusal(entra.TokenRefusal.METHOD_NOT_ALLOWED, detail=exchange.request.method)
                return _entra_refusal(exchange, refused)
            form = {key: value for key, value in (await exchange.request.post()).items() if isinstance(value, str)}
            if plan.answer is not None:
                return self._token_fault(exchange, plan.answer, form)
            if form.get("grant_type") in delegated.USER_GRANTS:
                return delegated.token(self.sim, exchange, form)
            return self._token_answer(exchange, form)

    def _token_context(self, exchange: Exchange) -> entra.TokenContext:
        segment = exchange.route.argument
        return entra.TokenContext(
            tenant_segment=segment,
            tenant=self.sim.tenant(segment),
            app=self.sim.registration,
            token_url=exchange.origin + exchange.request.path,
            resources=exchange.origins,
            key=self.sim.signing_key,
            now=int(time.time()),
        )

    def _token_answer(self, exchange: Exchange, form: dict[str, str]) -> web.Response:
        outcome = entra.authorize(form, self._token_context(exchange))
        if isinstance(outcome, entra.Refusal):
            return _entra_refusal(exchange, outcome)
        return _entra_json(exchange, 200, orjson.dumps(self._token_body(outcome)))

    def _token_body(self, grant: entra.Grant) -> dict[str, object]:
        lifetime = self.sim.token_lifetime_seconds
        access_token = tokens.issue_access_token(
            self.sim.signing_key,
            audience=grant.audience,
            tenant_id=grant.tenant_id,
            client_id=grant.client_id,
            roles=grant.roles,
            certificate_auth=grant.certificate_auth,
            now=int(time.time()),
            lifetime=lifetime,
        )
        return entra.token_response(access_token, lifetime)

    def _token_fault(self, exchange: Exchange, fault: Fault, form: dict[str, str]) -> web.Response:
        if fault.kind is FaultKind.TOKEN_REFUSAL and fault.refusal is not None:
            refused = entra.refusal(
                fault.refusal,
                client_id=form.get("client_id", ""),
                tenant=exchange.route.argument,
                scope=form.get("scope", ""),
                detail="(scripted)",
            )
            return _entra_refusal(exchange, refused)
        if fault.kind is FaultKind.MALFORMED_JSON:
            outcome = entra.authorize(form, self._token_context(exchange))
            body = self._token_body(outcome) if isinstance(outcome, entra.Grant) else {"error": "invalid_request"}
            return _entra_json(exchange, 200, hostile.truncated(orjson.dumps(body)))
        return _status_fault(exchange, fault, _entra_status_body(fault.status_code))

    def _admin_consent(self, exchange: Exchange) -> web.Response:
        """An admin of the tenant opened the admin-consent link and accepted: the app is consented there.

        Entra ID shows a sign-in and a consent prompt first, then redirects; the simulator takes the
        admin's yes as given and answers with a line of text. An unknown tenant or app is refused as the
        token endpoint refuses it.
        """
        segment = exchange.route.argument
        exchange.tenant_id = segment
        tenant = self.sim.tenant(segment)
        client_id = exchange.request.query.get("client_id", "")
        if tenant is None or not tenant.registered:
            return _entra_refusal(exchange, entra.refusal(entra.TokenRefusal.TENANT_NOT_FOUND, tenant=segment))
        if client_id.lower() != self.sim.registration.client_id.lower():
            refused = entra.refusal(entra.TokenRefusal.APP_NOT_FOUND, client_id=client_id, tenant=tenant.tenant_id)
            return _entra_refusal(exchange, refused)
        self.sim.grant_consent(tenant.tenant_id)
        text = f"Admin consent granted: app {client_id} in tenant {tenant.tenant_id}.\n"
        return web.Response(status=200, text=text, content_type="text/plain")

    # -- Graph --------------------------------------------------------------------------------------------

    async def _graph(self, exchange: Exchange) -> web.StreamResponse:
        claims, rejection = self._authenticate(exchange)
        exchange.tenant_id = claims.tenant_id if claims else None
        with self.sim.recorder.in_flight(exchange.route.endpoint, exchange.tenant_id):
            if claims is None:
                return _unauthenticated(exchange, rejection)
            plan = self.sim.faults.plan(claims.tenant_id, exchange.route.endpoint)
            await self._sleep(plan, _asked_top(exchange.request.query))
            denied = _denied(claims)
            if denied is not None:
                return _graph_error(exchange, 403, "Forbidden", denied)
            if exchange.request.method not in ("GET", "HEAD"):
                return _graph_error(exchange, 405, *graph.default_error(405))
            if plan.answer is not None and plan.answer.kind is FaultKind.STATUS:
                return _graph_status(exchange, plan.answer)  # no data needed: skip building it
            if exchange.route.endpoint == LIST:
                return self._list(exchange, claims.tenant_id, plan.answer)
            if exchange.route.endpoint == PROFILES:
                return self._profiles(exchange, claims.tenant_id, plan.answer)
            return self._get(exchange, claims.tenant_id, plan.answer)

    async def _partner(self, exchange: Exchange) -> web.Response:
        """The partner's GDAP relationships or contracts; a customer tenant's token gets 403. Its scripted
        faults: a status, and latency (so that two discoveries can be made to overlap)."""
        claims, rejection = self._authenticate(exchange)
        exchange.tenant_id = claims.tenant_id if claims else None
        if claims is None:
            return _unauthenticated(exchange, rejection)
        path = exchange.route.argument
        role = partner.RELATIONSHIPS_ROLE if path == partner.RELATIONSHIPS_PATH else partner.CONTRACTS_ROLE
        if role not in claims.roles:
            return _graph_error(exchange, 403, "Forbidden", f"Missing application roles. API required roles: {role}.")
        plan = self.sim.faults.plan(claims.tenant_id, PARTNER)
        await self._sleep(plan)
        if plan.answer is not None and plan.answer.kind is FaultKind.STATUS:
            return _graph_status(exchange, plan.answer)
        items: list[partner.SimRelationship] | list[partner.SimContract] = (
            list(self.sim.relationships) if path == partner.RELATIONSHIPS_PATH else list(self.sim.contracts)
        )
        try:
            body = partner.page_of(items, exchange.request.query, origin=exchange.origin, path=path)
        except partner.BadPartnerQuery as bad:
            return _graph_error(exchange, 400, "BadRequest", str(bad))
        return _graph_ok(exchange, 200, body)

    def _authenticate(self, exchange: Exchange) -> tuple[AccessClaims | None, str]:
        token = _bearer(exchange.request)
        if token is None:
            return None, "Access token is empty."
        now = int(time.time())
        claims = self._verified.get(token)
        if claims is None:
            try:
                claims = tokens.verify_access_token(token, self.sim.signing_key, audiences=exchange.origins, now=now)
            except TokenRejected as rejected:
                return None, rejected.reason
            if len(self._verified) >= _VERIFIED_TOKENS_MAX:
                self._verified.clear()  # a crude bound; re-verifying costs microseconds
            self._verified[token] = claims
        if claims.expires <= now:
            return None, "Lifetime validation failed, the token is expired."
        if self.sim.tenant(claims.tenant_id) is None:
            return None, "Access token validation failure. Invalid tenant."
        return claims, ""

    def _list(self, exchange: Exchange, tenant_id: str, fault: Fault | None) -> web.Response:
        sim = self.sim
        newest = sim.newest_day  # read once: tests may move time forward while a page is being built
        try:
            query = pages.parse_query(exchange.request.query, tenant_id, sim.skiptoken_key)
        except pages.BadQuery as bad:
            return _graph_error(exchange, 400, "BadRequest", str(bad))
        page = pages.select_page(sim.available_days(tenant_id, newest), query, sim.page_size)
        objects = [sim.day_bytes(tenant_id, day, newest) for day in page.days]
        next_link = None
        if page.next_day is not None:
            skiptoken = pages.encode_skiptoken(page.next_day, tenant_id, sim.skiptoken_key)
            # The link always carries $top: the one asked for, else the page size the server chose.
            next_link = pages.list_url(exchange.origin, query.top or sim.page_size, skiptoken)
        context = pages.context_url(exchange.origin)
        if fault is None:
            return _graph_ok(exchange, 200, pages.page_body(context, next_link, objects))
        return self._faulty_list(exchange, fault, context, next_link, objects)

    def _profiles(self, exchange: Exchange, tenant_id: str, fault: Fault | None) -> web.Response:
        """A page of the tenant's secureScoreControlProfiles; `$skiptoken` continues at a position."""
        sim = self.sim
        try:
            top, start = pages.parse_profiles_query(exchange.request.query, tenant_id, sim.skiptoken_key)
        except pages.BadQuery as bad:
            return _graph_error(exchange, 400, "BadRequest", str(bad))
        everything = sim.profile_bytes(tenant_id)
        size = min(top, sim.profile_page_size) if top is not None else sim.profile_page_size
        objects = everything[start : start + size]
        next_link = None
        if start + size < len(everything):
            skiptoken = pages.encode_position(start + size, tenant_id, sim.skiptoken_key)
            next_link = pages.profiles_url(exchange.origin, top or sim.profile_page_size, skiptoken)
        context = pages.context_url(exchange.origin, profiles=True)
        if fault is None:
            return _graph_ok(exchange, 200, pages.page_body(context, next_link, objects))
        return self._faulty_list(exchange, fault, context, next_link, objects)

    def _faulty_list(
        self, exchange: Exchange, fault: Fault, context: str, next_link: str | None, objects: list[bytes]
    ) -> web.Response:
        if fault.kind is FaultKind.HOSTILE and fault.hostile_body is not None:
            body = hostile.hostile_page(
                fault.hostile_body,
                context=context,
                objects=objects,
                next_link=next_link,
                megabytes=fault.megabytes,
            )
            return _graph_ok(exchange, 200, body)
        if fault.kind is FaultKind.EMPTY_PARTIAL:
            response = _graph_ok(exchange, 206, pages.page_body(context, None, []))
            response.headers["Warning"] = ", ".join(fault.warnings)
            return response
        if fault.kind is FaultKind.WRONG_TENANT:
            objects = [_retenant(obj, exchange.tenant_id or "", fault) for obj in objects]
        elif fault.kind is FaultKind.PLACEHOLDER_COMPARATIVES:
            objects = [quirks.placeholder_comparatives(obj) for obj in objects]
        elif fault.kind is FaultKind.INCONSISTENT_IDS:
            objects = quirks.inconsistent_ids(objects) if fault.same_day else quirks.shifted_days(objects)
        elif fault.kind is FaultKind.TYPE_CHANGE:
            objects = [quirks.type_changed(obj) for obj in objects]
        return _shaped(exchange, fault, pages.page_body(context, next_link, objects))

    def _get(self, exchange: Exchange, tenant_id: str, fault: Fault | None) -> web.Response:
        newest = self.sim.newest_day
        day = _requested_day(exchange.route.argument, tenant_id)
        if day is None or day not in self.sim.available_days(tenant_id, newest):
            return _graph_error(exchange, 404, "ResourceNotFound", graph.not_found_message(exchange.route.argument))
        obj = self.sim.day_bytes(tenant_id, day, newest)
        context = pages.context_url(exchange.origin, entity=True)
        if fault is not None and fault.kind is FaultKind.HOSTILE and fault.hostile_body is not None:
            body = hostile.hostile_entity(fault.hostile_body, context=context, obj=obj, megabytes=fault.megabytes)
            return _graph_ok(exchange, 200, body)
        if fault is not None and fault.kind is FaultKind.WRONG_TENANT:
            obj = _retenant(obj, tenant_id, fault)
        elif fault is not None and fault.kind is FaultKind.PLACEHOLDER_COMPARATIVES:
            obj = quirks.placeholder_comparatives(obj)
        elif fault is not None and fault.kind is FaultKind.TYPE_CHANGE:
            obj = quirks.type_changed(obj)
        return _shaped(exchange, fault, pages.entity_body(context, obj))


# -- answers --------------------------------------------------------------------------------------------------


def _denied(claims: AccessClaims) -> str | None:
    """Why Graph refuses this token the secureScores (its 403 message), or None.

    App-only: the application role. Delegated: the `scp` permission, then the user's directory role.
    """
    if claims.user is None:
        return None if tokens.GRAPH_ROLE in claims.roles else graph.MISSING_ROLE_MESSAGE
    if not any(scope in tokens.GRAPH_SCOPES for scope in claims.scopes):
        return graph.missing_scope_message(claims.scopes)
    return None if claims.may_read_secure_score else graph.USER_ROLE_MESSAGE


def _record(exchange: Exchange, arrival: float, status: int) -> RequestRecord:
    request = exchange.request
    return RequestRecord(
        time=arrival,
        finished=time.monotonic(),
        tenant_id=exchange.tenant_id,
        endpoint=exchange.route.endpoint,
        method=request.method,
        path=request.path,
        query=dict(request.query),
        status=status,
        authorization=_bearer(request) is not None,
    )


def _graph_ok(exchange: Exchange, status: int, body: bytes) -> web.Response:
    return web.Response(
        status=status, body=body, headers=graph.headers(exchange.request_id, exchange.client_request_id)
    )


def _graph_error(exchange: Exchange, status: int, code: str, message: str) -> web.Response:
    body = graph.error_body(
        code, message, request_id=exchange.request_id, client_request_id=exchange.client_request_id, now=_now()
    )
    return _graph_ok(exchange, status, body)


def _unauthenticated(exchange: Exchange, reason: str) -> web.Response:
    response = _graph_error(exchange, 401, "InvalidAuthenticationToken", reason)
    response.headers["WWW-Authenticate"] = graph.www_authenticate(exchange.origin)
    return response


def _unknown_path(exchange: Exchange) -> web.Response:
    path = exchange.request.path
    if path.lower().startswith("/v1.0/"):
        segment = path.rstrip("/").rsplit("/", 1)[-1]
        return _graph_error(exchange, 400, "BadRequest", f"Resource not found for the segment '{segment}'.")
    return _graph_error(exchange, 404, "ResourceNotFound", f"No endpoint at '{path}'.")


def _entra_json(exchange: Exchange, status: int, body: bytes) -> web.Response:
    headers = {
        "Content-Type": _ENTRA_CONTENT_TYPE,
        "Cache-Control": "no-store, no-cache",
        "Pragma": "no-cache",
        "x-ms-request-id": exchange.request_id,
        "client-request-id": exchange.client_request_id,
        "x-ms-ests-server": "2.1.19000.0 - SIM ProdSlices",
    }
    return web.Response(status=status, body=body, headers=headers)


def _entra_refusal(exchange: Exchange, refused: entra.Refusal) -> web.Response:
    body = entra.refusal_body(refused, now=_now(), correlation_id=exchange.request.headers.get("client-request-id"))
    return _entra_json(exchange, refused.status, orjson.dumps(body))


def _entra_status_body(status: int) -> bytes:
    error = "temporarily_unavailable" if status == 429 or status >= 500 else "invalid_request"
    return orjson.dumps({"error": error, "error_description": f"AADSTS50000: The service answered {status}."})


def _status_fault(exchange: Exchange, fault: Fault, default_body: bytes) -> web.Response:
    """A scripted status, with the fault's own body and headers or the service's usual ones."""
    body = fault.body if fault.body is not None else default_body
    if exchange.route.endpoint == TOKEN:
        response = _entra_json(exchange, fault.status_code, body)
    else:
        response = _graph_ok(exchange, fault.status_code, body)
    if fault.retry_after is not None:
        response.headers["Retry-After"] = graph.retry_after(
            fault.retry_after, as_date=fault.retry_after_as_date, now=_now()
        )
    if fault.status_code == 401 and exchange.route.endpoint != TOKEN:
        response.headers["WWW-Authenticate"] = graph.www_authenticate(exchange.origin)
    for name, value in fault.headers:
        response.headers[name] = value
    return response


def _shaped(exchange: Exchange, fault: Fault | None, body: bytes) -> web.Response:
    """A Graph answer whose body is right but whose delivery a fault may change."""
    if fault is None or fault.kind in _REWRITES:
        return _graph_ok(exchange, 200, body)
    if fault.kind is FaultKind.MALFORMED_JSON:
        return _graph_ok(exchange, 200, hostile.truncated(body))
    if fault.kind is FaultKind.PARTIAL:
        response = _graph_ok(exchange, 206, body)
        response.headers["Warning"] = ", ".join(fault.warnings)
        return response
    return _graph_status(exchange, fault)


def _graph_status(exchange: Exchange, fault: Fault) -> web.Response:
    code, message = graph.default_error(fault.status_code)
    default_body = graph.error_body(
        code, message, request_id=exchange.request_id, client_request_id=exchange.client_request_id, now=_now()
    )
    return _status_fault(exchange, fault, default_body)


def _retenant(obj: bytes, tenant_id: str, fault: Fault) -> bytes:
    """The same object claiming to belong to another tenant (id prefix and azureTenantId)."""
    other = fault.other_tenant_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"not-{tenant_id.lower()}"))
    return obj.replace(tenant_id.encode(), other.encode())


def _asked_top(query: Mapping[str, str]) -> int | None:
    """The `$top` a list request asked for, if it is a number (a slow window's delay follows it)."""
    raw = query.get("$top") or query.get("top")
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _requested_day(score_id: str, tenant_id: str) -> datetime.date | None:
    """The day a `{tenantId}_{yyyy-mm-dd}` id names, if it names one of this tenant's days."""
    match = _SCORE_ID.match(score_id)
    if match is None or match.group("tenant").lower() != tenant_id.lower():
        return None
    try:
        return datetime.date.fromisoformat(match.group("day"))
    except ValueError:
        return None


def make_app(sim: Simulator) -> web.Application:
    """An application answering every path: unknown ones the way Graph does."""
    service = Service(sim)
    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", service.handle)
    return app

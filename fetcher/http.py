"""The HTTP side: the run's one aiohttp session and the Graph client that sends through it.

`create_session` is called once per run by whoever runs it; the session, the `TokenProvider`, the
`Limits` and the `RetryPolicy` are handed to `GraphClient`, which never makes its own. The client only
sends and receives: what to ask and what an answer means is `fetcher.graph`, when to try again is
`fetcher.retry`, how many at once is `fetcher.limits`.
"""

from __future__ import annotations

import functools
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from fetcher import __version__
from fetcher.auth import TokenProvider
from fetcher.config import AuthConfig, Config, FetchConfig, GraphConfig
from fetcher.errors import ConnectionFailed, RequestTimedOut, ServerError, UnsafeResponse
from fetcher.graph import (
    SECURE_SCORES_PATH,
    Pager,
    Response,
    Setup,
    error_for_status,
    item_url,
    parse_claims_challenge,
    query_top,
    read_item,
    read_page,
)
from fetcher.limits import Limits, exhausted_resource, fit_open_files, local_resource_error
from fetcher.models import RequestStats, ScorePage, TenantRef
from fetcher.retry import SERVER_ERROR_STATUSES, RetryPolicy, parse_retry_after
from fetcher.signin import Prompt, print_prompt
from fetcher.text import one_line

log = logging.getLogger("fetcher.http")

USER_AGENT = f"securescore-fetcher/{__version__}"
CHUNK_SIZE = 64 * 1024
CONNECT_TIMEOUT_MAX = 30.0
# Token requests to Entra ID share the session's pool with Graph requests, which `Limits` bounds.
TOKEN_CONNECTIONS = 8
# Seconds an idle pooled connection is kept (aiohttp's default: 15). When every worker is saving rather than
# fetching for longer than that (a slow database; valgrind's 65-fold slowdown), the pool was emptied and the
# next requests paid fresh TLS handshakes. Below the 4 minutes after which NATs and load balancers commonly
# drop an idle flow without telling either end (a dead pooled socket would wait out a read timeout).
KEEPALIVE_SECONDS = 60.0


def ssl_context(ca_bundle: Path | None = None) -> ssl.SSLContext:
    """The system's trusted CAs, plus those in `ca_bundle` (a TLS-inspecting proxy, the simulator); TLS 1.2+."""
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_bundle is not None:
        context.load_verify_locations(cafile=str(ca_bundle))
    return context


def create_session(graph: GraphConfig, fetch: FetchConfig) -> aiohttp.ClientSession:
    """The run's session, for Graph and (through azure-core) Entra ID alike; the caller closes it."""
    connector = aiohttp.TCPConnector(
        ssl=ssl_context(graph.ca_bundle),
        limit=fetch.concurrency + TOKEN_CONNECTIONS,
        limit_per_host=0,
        keepalive_timeout=KEEPALIVE_SECONDS,
        ttl_dns_cache=300,
    )
    timeout = aiohttp.ClientTimeout(
        total=graph.timeout_seconds,
        sock_read=graph.timeout_seconds,
        sock_connect=min(graph.timeout_seconds, CONNECT_TIMEOUT_MAX),
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        headers={"User-Agent": USER_AGENT},
        # No cookies: one tenant's answers must not shape another tenant's requests.
        cookie_jar=aiohttp.DummyCookieJar(),
        raise_for_status=False,
        # [graph] proxy, for Graph and (azure-core sends through this session) Entra ID alike.
        proxy=graph.proxy.reveal() if graph.proxy and graph.proxy.reveal() else None,
    )


@asynccontextmanager
async def open_graph(config: Config, *, prompt: Prompt = print_prompt) -> AsyncIterator[GraphClient]:
    """The run's one session, credentials, limits and retry policy, closed at the end.

    Token requests to Entra ID take the same global slots as Graph requests: `concurrency` bounds
    every HTTP request of the run.
    """
    fetch = fit_open_files(config.fetch)  # concurrency as `ulimit -n` allows, with a warning if lowered
    session = create_session(config.graph, fetch)
    limits = Limits.from_config(fetch)
    tokens = TokenProvider(session, config.graph, auth_lookup(config), gate=limits.global_slot, prompt=prompt)
    try:
        yield GraphClient(session, config.graph, fetch, tokens, limits, RetryPolicy.from_config(fetch))
    finally:
        await tokens.close()
        await session.close()


def auth_lookup(config: Config) -> Callable[[TenantRef], AuthConfig]:
    """A tenant's effective `[auth]` (its `[tenants.auth]` over the shared one), by reference."""
    by_tenant = {t.tenant_id: t.auth for t in config.tenants}
    return lambda tenant: by_tenant.get(tenant.tenant_id, config.auth)


class GraphClient:
    """Fetches Graph collections and entities for any tenant; one per run, shared by all tenants."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        graph: GraphConfig,
        fetch: FetchConfig,
        tokens: TokenProvider,
        limits: Limits,
        retry: RetryPolicy,
    ) -> None:
        self._session = session
        self._graph = graph
        self._fetch = fetch
        self._tokens = tokens
        self._limits = limits
        self._retry = retry

    def __repr__(self) -> str:
        return f"GraphClient(base_url={self._graph.base_url!r})"

    async def list_pages(
        self, tenant: TenantRef, path: str, top: int | None, stats: RequestStats
    ) -> AsyncIterator[ScorePage]:
        """A collection (`path`, e.g. `/security/secureScores`) page by page as the pages arrive, the newest
        `top` objects (all with None); each page is retried on its own, after a time-out for a narrower
        window (`Pager.narrow`)."""
        pager = Pager(tenant, self._graph.base_url, top, path=path)
        url: str | None = pager.first_url
        while url is not None:
            attempt = functools.partial(self._narrowing_page, tenant, _Request(url), pager, stats)
            page, url = pager.advance(await self._retry.call(attempt, tenant=tenant, stats=stats))
            yield page

    async def _narrowing_page(
        self, tenant: TenantRef, request: _Request, pager: Pager, stats: RequestStats
    ) -> ScorePage:
        """One attempt at a page; after a time-out (ours, or Graph's 504), the next attempt asks for less."""
        try:
            return await self._page(tenant, request.url, stats)
        except (RequestTimedOut, ServerError) as error:
            narrower = pager.narrow(request.url) if _timed_out(error) else None
            if narrower is not None:
                log.info(
                    "tenant %s: a window of %s timed out; asking for %s at a time",
                    tenant.label,
                    query_top(request.url),
                    pager.page_size,
                )
                request.url = narrower
            raise

    async def get_item(self, tenant: TenantRef, path: str, item_id: str, stats: RequestStats) -> ScorePage:
        """One entity of a collection by id (a page of one object); `NotFound` when Graph has none."""
        attempt = functools.partial(self._item, tenant, item_url(self._graph.base_url, item_id, path=path), stats)
        return await self._retry.call(attempt, tenant=tenant, stats=stats)

    async def probe(self, tenant: TenantRef, url: str, stats: RequestStats) -> Response:
        """One GET's answer as it came, whatever its status (`fetcher.check` classifies it).

        Throttling, server errors, time-outs and connection failures are retried as a run retries them;
        when attempts run out, their `TransientError` is raised, as is Entra ID's refusal of a token.
        """

        async def attempt() -> Response:
            response = await self._exchange(tenant, url, stats)
            if response.status == 429 or response.status in SERVER_ERROR_STATUSES:
                raise error_for_status(response, tenant=tenant, url=url, setup=self._setup(tenant))
            return response

        return await self._retry.call(attempt, tenant=tenant, stats=stats)

    def list_secure_scores(self, tenant: TenantRef, days: int, stats: RequestStats) -> AsyncIterator[ScorePage]:
        """The newest `days` secureScores, page by page."""
        return self.list_pages(tenant, SECURE_SCORES_PATH, days, stats)

    async def get_secure_score(self, tenant: TenantRef, score_id: str, stats: RequestStats) -> ScorePage:
        """One secureScore by id; `NotFound` when Graph has none."""
        return await self.get_item(tenant, SECURE_SCORES_PATH, score_id, stats)

    async def forget(self, tenant_id: str) -> None:
        """The caller is done with this tenant: drop its rate-limit state and close its credential."""
        self._limits.forget(tenant_id)
        await self._tokens.release(tenant_id)

    async def _page(self, tenant: TenantRef, url: str, stats: RequestStats) -> ScorePage:
        return read_page(await self._exchange(tenant, url, stats), tenant=tenant, url=url, setup=self._setup(tenant))

    async def _item(self, tenant: TenantRef, url: str, stats: RequestStats) -> ScorePage:
        return read_item(await self._exchange(tenant, url, stats), tenant=tenant, url=url, setup=self._setup(tenant))

    def _setup(self, tenant: TenantRef) -> Setup:
        """What an error's advice names: the endpoints in use and the tenant's app."""
        return Setup(self._graph, self._tokens.client_id(tenant), self._tokens.method(tenant))

    async def _exchange(self, tenant: TenantRef, url: str, stats: RequestStats) -> Response:
        """One GET with the tenant's token; after a 401, once more with a token fresh from Entra ID."""
        response = await self._send(tenant, url, await self._tokens.token(tenant), stats)
        if response.status == 401:
            claims = parse_claims_challenge(response.header_values("WWW-Authenticate"))
            token = await self._tokens.token(tenant, refresh=True, claims=claims)
            response = await self._send(tenant, url, token, stats)
        return response

    async def _send(self, tenant: TenantRef, url: str, token: str, stats: RequestStats) -> Response:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        async with self._limits.slot(tenant.tenant_id):
            stats.requests += 1
            started = time.monotonic()
            status: int | str = "failed"
            try:
                async with self._session.get(url, headers=headers, allow_redirects=False) as answer:
                    status = answer.status
                    body = await self._read(answer, tenant, url)
                    response = Response(answer.status, body, _headers(answer))
            except TimeoutError:  # aiohttp's timeouts are asyncio.TimeoutError, which is TimeoutError
                raise RequestTimedOut(
                    f"tenant {tenant.label}: Graph did not answer within {self._graph.timeout_seconds:g} s",
                    tenant_id=tenant.tenant_id,
                    url=url,
                ) from None
            except (aiohttp.ClientError, OSError) as error:
                exhausted = exhausted_resource(error)
                if exhausted is not None:
                    doing = f"tenant {tenant.label}: requesting {url}"
                    raise local_resource_error(exhausted, doing=doing, tenant_id=tenant.tenant_id) from None
                if not isinstance(error, aiohttp.ClientError):
                    raise
                raise _connection_failed(error, tenant, url) from None
            finally:
                log.debug("GET %s -> %s in %.0f ms", url, status, (time.monotonic() - started) * 1000)
        self._observe(tenant, response, stats)
        return response

    def _observe(self, tenant: TenantRef, response: Response, stats: RequestStats) -> None:
        if response.status == 429:
            stats.throttled += 1
            self._limits.throttled(tenant.tenant_id, parse_retry_after(response.header("Retry-After")))
        elif 200 <= response.status < 300:
            self._limits.succeeded(tenant.tenant_id)

    async def _read(self, answer: aiohttp.ClientResponse, tenant: TenantRef, url: str) -> bytes:
        """The body, refused as soon as it is known to exceed `max_response_bytes` (declared or read)."""
        limit = self._graph.max_response_bytes
        if answer.content_length is not None and answer.content_length > limit:
            raise _too_large(tenant, url, answer.status, limit, f"Content-Length {answer.content_length}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in answer.content.iter_chunked(CHUNK_SIZE):
            size += len(chunk)
            if size > limit:
                raise _too_large(tenant, url, answer.status, limit, f"{size} bytes read so far")
            chunks.append(chunk)
        return b"".join(chunks)


@dataclass(slots=True)
class _Request:
    """The URL a page's next attempt asks for (narrower after a time-out)."""

    url: str


def _timed_out(error: RequestTimedOut | ServerError) -> bool:
    """Our own time-out, or Graph's gateway giving up on the backend (504 Gateway Timeout)."""
    return isinstance(error, RequestTimedOut) or error.status == 504


def _headers(answer: aiohttp.ClientResponse) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in answer.headers.items():
        headers.setdefault(name.lower(), []).append(value)
    return headers


def _too_large(tenant: TenantRef, url: str, status: int, limit: int, what: str) -> UnsafeResponse:
    return UnsafeResponse(
        f"tenant {tenant.label}: Graph's answer ({what}) exceeds [graph] max_response_bytes = {limit}; refused",
        tenant_id=tenant.tenant_id,
        status=status,
        url=url,
    )


def _connection_failed(error: aiohttp.ClientError, tenant: TenantRef, url: str) -> ConnectionFailed:
    if isinstance(error, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        what = "the TLS handshake with Graph failed; if a proxy inspects TLS, set [graph] ca_bundle to its CA"
    elif isinstance(error, aiohttp.ClientConnectorError):
        what = "cannot connect to Graph"
    elif isinstance(error, aiohttp.ServerDisconnectedError):
        what = "Graph closed the connection before answering"
    elif isinstance(error, aiohttp.ClientPayloadError):
        what = "Graph's answer broke off"
    else:
        what = "the connection to Graph failed"
    return ConnectionFailed(
        f"tenant {tenant.label}: {what} ({type(error).__name__}: {one_line(str(error), limit=120)})",
        tenant_id=tenant.tenant_id,
        url=url,
    )

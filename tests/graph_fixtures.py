"""The HTTP stack of a run (session, credentials, limits, retries, Graph client) wired to a simulator
served over HTTPS in the test's event loop, as `fetcher` would wire it against Graph and Entra ID."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp

from fetcher.auth import TokenProvider
from fetcher.config import AuthConfig, FetchConfig, GraphConfig, Secret
from fetcher.http import GraphClient, create_session
from fetcher.limits import Limits
from fetcher.models import RequestStats, ScorePage, TenantRef
from fetcher.retry import RetryPolicy
from fetcher.signin import print_prompt
from fetcher.simulator import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    RequestRecord,
    RunningSimulator,
    SimTenant,
    Simulator,
    serving_simulator,
)

NEWEST = datetime.date(2026, 11, 27)
SEED = 5
# Backoff of a few milliseconds: tests of retries wait for real, but only as long as a Retry-After says.
FAST_RETRY = {"base": 0.01, "cap": 0.05}
FETCH = FetchConfig(
    concurrency=8, per_tenant_concurrency=4, per_tenant_rate=150, max_attempts=3, max_retry_wait_seconds=30.0
)


def secret_auth(secret: str = DEFAULT_CLIENT_SECRET, client_id: str = DEFAULT_CLIENT_ID) -> AuthConfig:
    return AuthConfig(method="client_secret", client_id=client_id, client_secret=Secret("env:TEST_SECRET", secret))


def small_simulator(tenants: Sequence[SimTenant], **options: Any) -> Simulator:
    """A simulator with light days (40 controls), so tests move little data unless they ask for more."""
    return Simulator(tenants, **{"seed": SEED, "newest_day": NEWEST, "controls_per_day": 40, **options})


@dataclass
class Stack:
    """A simulator and the fetcher's HTTP stack pointed at it."""

    running: RunningSimulator
    graph: GraphConfig
    fetch: FetchConfig
    session: aiohttp.ClientSession
    tokens: TokenProvider
    limits: Limits
    retry: RetryPolicy
    client: GraphClient
    auth: AuthConfig = field(default_factory=secret_auth)
    auths: dict[str, AuthConfig] = field(default_factory=dict)

    @property
    def sim(self) -> Simulator:
        return self.running.simulator

    def tenant(self, sim_tenant: SimTenant, auth: AuthConfig | None = None) -> TenantRef:
        """The tenant's reference; its credentials (from now on) come from `auth`, else the stack's."""
        self.auths[sim_tenant.tenant_id] = auth or self.auth
        return TenantRef(sim_tenant.tenant_id, sim_tenant.name)

    def auth_for(self, tenant: TenantRef) -> AuthConfig:
        return self.auths.get(tenant.tenant_id, self.auth)

    async def list_all(self, tenant: TenantRef, days: int = 90, stats: RequestStats | None = None) -> list[Any]:
        pages = await self.list_pages(tenant, days, stats)
        return [obj for page in pages for obj in page.objects]

    async def list_pages(self, tenant: TenantRef, days: int = 90, stats: RequestStats | None = None) -> list[ScorePage]:
        stats = stats if stats is not None else RequestStats()
        return [page async for page in self.client.list_secure_scores(tenant, days, stats)]

    def requests(self, endpoint: str, tenant_id: str | None = None) -> list[RequestRecord]:
        wanted = (lambda _r: True) if tenant_id is None else (lambda r: r.tenant_id == tenant_id)
        return [r for r in self.sim.requests if r.endpoint == endpoint and wanted(r)]


@asynccontextmanager
async def stack(
    sim: Simulator,
    tmp_path: Path,
    *,
    fetch: FetchConfig = FETCH,
    retry: dict[str, Any] | None = None,
    graph: dict[str, Any] | None = None,
    base_url: str | None = None,
    prompt: Callable[[str], None] | None = None,
) -> AsyncIterator[Stack]:
    """Serve `sim` and build the stack a run would build, closed in the order a run closes it."""
    async with serving_simulator(sim, tls_dir=tmp_path / "tls") as running:
        config = GraphConfig(
            base_url=base_url or running.graph_base_url,
            authority_host=running.authority_host,
            scope=running.scope,
            ca_bundle=running.ca_file,
            timeout_seconds=5.0,
        )
        config = replace(config, **(graph or {}))
        async with create_session(config, fetch) as session:
            auths: dict[str, AuthConfig] = {}
            default = secret_auth()
            tokens = TokenProvider(
                session, config, lambda t: auths.get(t.tenant_id, default), prompt=prompt or print_prompt
            )
            limits = Limits.from_config(fetch)
            policy = RetryPolicy.from_config(fetch, **{**FAST_RETRY, **(retry or {})})
            client = GraphClient(session, config, fetch, tokens, limits, policy)
            try:
                yield Stack(running, config, fetch, session, tokens, limits, policy, client, default, auths)
            finally:
                await tokens.close()

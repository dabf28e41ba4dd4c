"""How many Graph requests may be in flight, overall and per tenant, and how fast each tenant may go.

`Limits.slot(tenant_id)` is held around each HTTP exchange. It takes the tenant's own things first (one of
its `per_tenant_concurrency` places, then a token from its bucket) and the global slot last, so a tenant
waiting on its bucket or a `Retry-After` holds none of the `concurrency` slots and the other tenants go on.

The bucket allows a small burst, then `per_tenant_rate` requests a minute. A 429 (`throttled`) drains
the tenant's bucket to one request, pauses it until the `Retry-After` passes, and halves its rate, which then recovers a
little with each success. Per-tenant state is made on first use and dropped once it is idle and holds
nothing a fresh state would not (or at once by `forget`, when the caller is done with the tenant), so a
run over thousands of tenants keeps only the busy ones.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fetcher.config import FetchConfig

DEFAULT_BURST = 5
DEFAULT_PAUSE = 1.0  # seconds a 429 without Retry-After pauses the tenant
MIN_RATE_FRACTION = 1 / 16  # throttling never slows a tenant below this share of its configured rate
RECOVERY_FRACTION = 1 / 8  # each success gives back this share of the configured rate


@dataclass(slots=True)
class _Tenant:
    """One tenant's limits: its concurrency places, its token bucket and its current rate."""

    places: asyncio.Semaphore
    tokens: float
    updated: float
    rate: float  # requests per second, now
    paused_until: float = 0.0
    users: int = 0  # tasks inside `slot` (waiting or in flight)
    in_flight: int = 0


@dataclass(slots=True)
class Peaks:
    """The highest in-flight counts seen so far."""

    in_flight: int = 0
    tenant_in_flight: int = 0
    tenants_tracked: int = 0


@dataclass(eq=False)
class Limits:
    """The run's request limits; one instance is shared by every tenant of a run."""

    concurrency: int
    per_tenant_concurrency: int
    per_tenant_rate: float  # requests a minute
    burst: int = DEFAULT_BURST
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    in_flight: int = field(default=0, init=False)
    peaks: Peaks = field(default_factory=Peaks, init=False)
    _global: asyncio.Semaphore = field(init=False, repr=False)
    _tenants: dict[str, _Tenant] = field(default_factory=dict, init=False, repr=False)
    _sweep_at: int = field(default=64, init=False, repr=False)

    def __post_init__(self) -> None:
        self._global = asyncio.Semaphore(self.concurrency)

    @classmethod
    def from_config(cls, fetch: FetchConfig, **options: Any) -> Limits:
        return cls(fetch.concurrency, fetch.per_tenant_concurrency, fetch.per_tenant_rate, **options)

    @property
    def base_rate(self) -> float:
        return self.per_tenant_rate / 60.0

    @property
    def tenants_tracked(self) -> int:
        return len(self._tenants)

    @asynccontextmanager
    async def global_slot(self) -> AsyncIterator[None]:
        """One of the `concurrency` slots alone, for a request that is not to Graph (a token from Entra ID)."""
        async with self._global:
            self.in_flight += 1
            self.peaks.in_flight = max(self.peaks.in_flight, self.in_flight)
            try:
                yield
            finally:
                self.in_flight -= 1

    @asynccontextmanager
    async def slot(self, tenant_id: str) -> AsyncIterator[None]:
        """Wait for the tenant's place and token, then a global slot; hold them around one exchange."""
        state = self._state(tenant_id)
        state.users += 1
        try:
            async with state.places:
                await self._take_token(state)
                async with self.global_slot():
                    state.in_flight += 1
                    self.peaks.tenant_in_flight = max(self.peaks.tenant_in_flight, state.in_flight)
                    try:
                        yield
                    finally:
                        state.in_flight -= 1
        finally:
            state.users -= 1
            if state.users == 0 and self._pristine(state):
                self._drop(tenant_id, state)

    def throttled(self, tenant_id: str, retry_after: float | None) -> None:
        """A 429: pause the tenant's bucket for `retry_after` (or a second), drain it, halve its rate."""
        state = self._state(tenant_id)
        now = self.clock()
        pause = DEFAULT_PAUSE if retry_after is None else retry_after
        state.paused_until = max(state.paused_until, now + pause)
        # One request may go when the pause ends (the retry), then the bucket refills at the lowered rate:
        # the tenant resumes steadily, not in a burst.
        state.tokens, state.updated = 1.0, state.paused_until
        state.rate = max(self.base_rate * MIN_RATE_FRACTION, state.rate / 2)

    def succeeded(self, tenant_id: str) -> None:
        """A data answer: give back some of the rate a 429 took away."""
        state = self._tenants.get(tenant_id)
        if state is not None:
            state.rate = min(self.base_rate, state.rate + self.base_rate * RECOVERY_FRACTION)

    def forget(self, tenant_id: str) -> None:
        """The caller is done with this tenant: drop its state unless a request of it is still waiting."""
        state = self._tenants.get(tenant_id)
        if state is not None and state.users == 0:
            self._drop(tenant_id, state)

    # -- internals

    def _state(self, tenant_id: str) -> _Tenant:
        state = self._tenants.get(tenant_id)
        if state is None:
            if len(self._tenants) >= self._sweep_at:
                self._sweep()
            state = _Tenant(
                asyncio.Semaphore(self.per_tenant_concurrency), float(self.burst), self.clock(), self.base_rate
            )
            self._tenants[tenant_id] = state
            self.peaks.tenants_tracked = max(self.peaks.tenants_tracked, len(self._tenants))
        return state

    def _sweep(self) -> None:
        # Amortized: a sweep runs only when the table has doubled since the last one.
        for tenant_id, state in list(self._tenants.items()):
            if state.users == 0 and self._pristine(state):
                del self._tenants[tenant_id]
        self._sweep_at = max(64, 2 * len(self._tenants))

    def _drop(self, tenant_id: str, state: _Tenant) -> None:
        if self._tenants.get(tenant_id) is state:
            del self._tenants[tenant_id]

    def _pristine(self, state: _Tenant) -> bool:
        """Whether a fresh state would behave the same: bucket full again, not paused, full rate."""
        now = self.clock()
        self._refill(state, now)
        return state.tokens >= self.burst and state.paused_until <= now and state.rate >= self.base_rate

    def _refill(self, state: _Tenant, now: float) -> None:
        if now > state.updated:
            state.tokens = min(float(self.burst), state.tokens + (now - state.updated) * state.rate)
            state.updated = now

    async def _take_token(self, state: _Tenant) -> None:
        while True:
            now = self.clock()
            if state.paused_until > now:
                await self.sleep(state.paused_until - now)
                continue
            self._refill(state, now)
            if state.tokens >= 1.0:
                state.tokens -= 1.0
                return
            await self.sleep((1.0 - state.tokens) / state.rate)

"""How many Graph requests may be in flight, overall and per tenant, and how fast each tenant may go.

`Limits.slot(tenant_id)` is held around each HTTP exchange. It takes the tenant's own things first (one of
its `per_tenant_concurrency` places, then a token from its bucket) and the global slot last, so a tenant
waiting on its bucket or a `Retry-After` holds none of the `concurrency` slots and the other tenants go on.
A free global slot goes to a waiting token request (`Limits.global_slot`) before a waiting Graph request:
a token starts a tenant, and tenants started late are what keeps a run going after most of its slots
fall idle (its tail); see `Slots`.

The bucket allows a small burst, then `per_tenant_rate` requests a minute. A 429 (`throttled`) drains
the tenant's bucket to one request, pauses it until the `Retry-After` passes, and halves its rate, which then recovers a
little with each success. Per-tenant state is made on first use and dropped once it is idle and holds
nothing a fresh state would not (or at once by `forget`, when the caller is done with the tenant), so a
run over thousands of tenants keeps only the busy ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import os
import resource
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fetcher.config import FetchConfig
from fetcher.errors import ConfigError, LocalResourceError

log = logging.getLogger("fetcher.limits")

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


class Slots:
    """`count` slots, handed to waiters in two lanes: every `first` waiter before any other, each lane in
    arrival order. Cancelling a waiter never loses a slot (one handed to it as it was cancelled passes on).

    Why two lanes: a run's requests come in chains, one a tenant (a token, then its pages one after the
    other). When every waiter is served in arrival order, the tenants taken last start their chains late,
    and the run ends with a tail of them while most slots are idle. Serving the chains' starts first puts
    every tenant in progress sooner; the ones in progress then keep the slots busy to the end. With 100
    tenants of three requests at `concurrency = 16`, a model of the scheduler (fixed latency, no CPU) ends
    after 20 latencies instead of 21 (the floor is 19); with 1,000 tenants the two orders tie.
    """

    def __init__(self, count: int) -> None:
        self._free = count
        self._lanes: tuple[deque[asyncio.Future[None]], deque[asyncio.Future[None]]] = (deque(), deque())

    async def acquire(self, *, first: bool = False) -> None:
        if self._free > 0 and not (self._lanes[0] or self._lanes[1]):
            self._free -= 1
            return
        lane = self._lanes[0 if first else 1]
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        lane.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot as it was cancelled: pass it on
            else:
                # A release between the cancellation and this handler has already dropped it from its lane.
                with contextlib.suppress(ValueError):
                    lane.remove(waiter)
            raise

    def release(self) -> None:
        for lane in self._lanes:
            while lane:
                waiter = lane.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self._free += 1


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
    _global: Slots = field(init=False, repr=False)
    _tenants: dict[str, _Tenant] = field(default_factory=dict, init=False, repr=False)
    _sweep_at: int = field(default=64, init=False, repr=False)

    def __post_init__(self) -> None:
        self._global = Slots(self.concurrency)

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
    async def global_slot(self, *, first: bool = True) -> AsyncIterator[None]:
        """One of the `concurrency` slots alone, for a request that is not to Graph (a token from Entra ID);
        `first`: before the Graph requests waiting (`Slots`)."""
        await self._global.acquire(first=first)
        self.in_flight += 1
        self.peaks.in_flight = max(self.peaks.in_flight, self.in_flight)
        try:
            yield
        finally:
            self.in_flight -= 1
            self._global.release()

    @asynccontextmanager
    async def slot(self, tenant_id: str) -> AsyncIterator[None]:
        """Wait for the tenant's place and token, then a global slot; hold them around one exchange."""
        state = self._state(tenant_id)
        state.users += 1
        try:
            async with state.places:
                await self._take_token(state)
                async with self.global_slot(first=False):
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


# ------------------------------------------------------------------------------------------ open files

# What a run keeps open besides its Graph connections, measured from the code's pools: the database
# (SQLite: up to a few connections of three files each; PostgreSQL: its writers, the lock and the
# planner), token connections beyond `concurrency` (fetcher.http.TOKEN_CONNECTIONS), and a margin for
# DNS, certificate files and logs.
DATABASE_FILES = 16
TOKEN_SOCKETS = 8
MARGIN_FILES = 8
# errno values that say this machine, not the peer, ran out of something.
EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS, errno.ENOSPC})


def files_needed(concurrency: int, already_open: int) -> int:
    """File descriptors a run with `concurrency` Graph connections needs, on top of `already_open`."""
    return already_open + concurrency + TOKEN_SOCKETS + DATABASE_FILES + MARGIN_FILES


def _open_files() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # not Linux: stdio and the interpreter's own files
        return 16


def fit_open_files(fetch: FetchConfig) -> FetchConfig:
    """`fetch` as this process can run it within its open-file limit (`ulimit -n`, `LimitNOFILE=`).

    The soft limit is raised towards the hard limit when that is enough. If the hard limit is too low,
    `concurrency` is lowered to what fits, with a warning that says how to raise the limit; if not even
    one connection fits, `ConfigError`. Without this, tenants fail with "Too many open files" mid-run.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    already = _open_files()
    needed = files_needed(fetch.concurrency, already)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return fetch
    ceiling = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
        soft = ceiling
    if soft >= needed:
        log.debug("raised the open-file limit to %d for [fetch] concurrency = %d", soft, fetch.concurrency)
        return fetch
    fits = soft - files_needed(0, already)
    advice = f"raise it to {needed} (`ulimit -n {needed}`, or LimitNOFILE={needed} in a systemd unit)"
    if fits < 1:
        raise ConfigError(f"the open-file limit ({soft}) is too low for a run: {advice}")
    log.warning(
        "[fetch] concurrency = %d needs about %d open files, but this process may open %d: running with "
        "concurrency = %d; %s, or lower [fetch] concurrency",
        fetch.concurrency,
        needed,
        soft,
        fits,
        advice,
    )
    return dataclasses.replace(fetch, concurrency=fits, per_tenant_concurrency=min(fetch.per_tenant_concurrency, fits))


def exhausted_resource(error: BaseException | None) -> OSError | None:
    """The OSError in `error`'s chain (causes, azure-core's `inner_exception`, aiohttp's `os_error`) that
    says this machine ran out of open files, memory, buffers or disk; None when there is none."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in EXHAUSTED:
            return error
        nested = getattr(error, "os_error", None) or getattr(error, "inner_exception", None)
        error = nested if isinstance(nested, BaseException) else (error.__cause__ or error.__context__)
    return None


def local_resource_error(error: OSError, *, doing: str, tenant_id: str | None = None) -> LocalResourceError:
    """A one-line error for `exhausted_resource`'s finding: the machine's limit, not the tenant's fault."""
    name = errno.errorcode.get(error.errno or 0, "OSError")
    fix = (
        "raise the open-file limit (`ulimit -n`, LimitNOFILE=) or lower [fetch] concurrency"
        if error.errno in (errno.EMFILE, errno.ENFILE)
        else "free memory or disk on this machine, or lower [fetch] concurrency"
    )
    return LocalResourceError(
        f"{doing}: this machine ran out of a resource ({name}: {error.strerror}); {fix}", tenant_id=tenant_id
    )

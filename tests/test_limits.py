"""Request limits: global and per-tenant concurrency, per-tenant token buckets, 429 back-off, memory."""

from __future__ import annotations

import asyncio
import errno

import aiohttp
import pytest
from azure.core.exceptions import ServiceRequestError

from fetcher.config import AuthConfig, FetchConfig, TenantConfig
from fetcher.limits import Limits, Slots, exhausted_resource, local_resource_error


class VirtualTime:
    """A clock that only moves when someone sleeps: exact for one task at a time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def virtual_limits(rate: float = 60.0, burst: int = 3) -> tuple[Limits, VirtualTime]:
    vt = VirtualTime()
    return Limits(4, 4, rate, burst=burst, clock=vt.clock, sleep=vt.sleep), vt


async def hold(limits: Limits, tenant_id: str, seconds: float) -> None:
    async with limits.slot(tenant_id):
        await asyncio.sleep(seconds)


async def test_global_concurrency_is_never_exceeded() -> None:
    limits = Limits(concurrency=3, per_tenant_concurrency=2, per_tenant_rate=6000, burst=100)
    await asyncio.gather(*(hold(limits, f"t{t}", 0.01) for t in range(20) for _ in range(5)))
    assert (limits.peaks.in_flight, limits.in_flight) == (3, 0)


async def test_per_tenant_concurrency_is_never_exceeded() -> None:
    limits = Limits(concurrency=16, per_tenant_concurrency=2, per_tenant_rate=6000, burst=100)
    await asyncio.gather(*(hold(limits, "one", 0.01) for _ in range(10)))
    assert (limits.peaks.tenant_in_flight, limits.peaks.in_flight) == (2, 2)


async def acquire_times(limits: Limits, vt: VirtualTime, tenant_id: str, n: int) -> list[float]:
    start, times = vt.now, []
    for _ in range(n):
        async with limits.slot(tenant_id):
            times.append(round(vt.now - start, 6))
    return times


async def test_the_bucket_allows_a_burst_then_the_steady_rate() -> None:
    limits, vt = virtual_limits(rate=60.0, burst=3)  # one a second after three at once
    assert await acquire_times(limits, vt, "t", 6) == [0.0, 0.0, 0.0, 1.0, 2.0, 3.0]


async def test_tenants_have_buckets_of_their_own() -> None:
    limits, vt = virtual_limits(rate=60.0, burst=2)
    await acquire_times(limits, vt, "a", 2)
    assert await acquire_times(limits, vt, "b", 2) == [0.0, 0.0]


async def test_a_429_pauses_the_tenant_then_halves_its_rate() -> None:
    limits, vt = virtual_limits(rate=60.0, burst=3)
    limits.throttled("t", retry_after=10.0)
    # Paused 10 s, then the retry, then a bucket refilling at 30 a minute: one every two seconds.
    assert await acquire_times(limits, vt, "t", 3) == [10.0, 12.0, 14.0]


async def test_a_429_without_retry_after_pauses_briefly() -> None:
    limits, vt = virtual_limits(rate=60.0, burst=3)
    limits.throttled("t", retry_after=None)
    assert await acquire_times(limits, vt, "t", 2) == [1.0, 3.0]


async def test_successes_recover_the_rate_gradually() -> None:
    limits, vt = virtual_limits(rate=60.0, burst=3)
    limits.throttled("t", retry_after=0.0)
    limits.throttled("t", retry_after=0.0)  # a quarter of the rate
    for _ in range(3):
        limits.succeeded("t")
    await acquire_times(limits, vt, "t", 1)
    state = limits._tenants["t"]
    assert state.rate == pytest.approx((0.25 + 3 / 8) * 1.0)
    for _ in range(10):
        limits.succeeded("t")
    assert state.rate == pytest.approx(1.0)


async def test_a_tenant_waiting_out_a_retry_after_holds_no_global_slot() -> None:
    """With one global slot, five tenants are served while a throttled tenant waits out its Retry-After."""
    vt, waiting, release = VirtualTime(), asyncio.Event(), asyncio.Event()

    async def sleep(seconds: float) -> None:  # the throttled tenant's pause: it ends when the test says so
        waiting.set()
        await release.wait()
        vt.now += seconds

    limits = Limits(concurrency=1, per_tenant_concurrency=4, per_tenant_rate=1200, clock=vt.clock, sleep=sleep)
    limits.throttled("slow", retry_after=0.5)
    served: list[str] = []

    async def run(tenant_id: str) -> None:
        async with limits.slot(tenant_id):
            served.append(tenant_id)

    slow = asyncio.create_task(run("slow"))
    await waiting.wait()
    # Were the pause holding the only slot, these would never be served: the guard ends the test instead.
    await asyncio.wait_for(asyncio.gather(*(run(f"other{i}") for i in range(5))), timeout=30)
    assert served == [f"other{i}" for i in range(5)]
    release.set()
    await slow
    assert served[-1] == "slow"
    assert vt.now == 1000.5


async def test_a_tenant_waiting_for_its_bucket_holds_no_global_slot() -> None:
    limits = Limits(concurrency=1, per_tenant_concurrency=1, per_tenant_rate=600, burst=1)
    order: list[str] = []

    async def run(tenant_id: str) -> None:
        await hold(limits, tenant_id, 0.0)
        order.append(tenant_id)

    await asyncio.gather(run("a"), run("a"), run("b"), run("c"))
    assert order == ["a", "b", "c", "a"]


async def test_an_idle_tenant_with_a_full_bucket_is_dropped() -> None:
    limits, vt = virtual_limits(rate=60.0, burst=3)
    async with limits.slot("t"):
        vt.now += 5  # a slow answer: the bucket is full again when it ends
    assert limits.tenants_tracked == 0


async def test_an_idle_tenant_with_a_spent_bucket_is_kept() -> None:
    """Dropping it would hand the tenant a fresh burst."""
    limits, vt = virtual_limits(rate=60.0, burst=3)
    await acquire_times(limits, vt, "t", 1)
    assert limits.tenants_tracked == 1


async def test_forget_drops_a_done_tenant() -> None:
    limits, _ = virtual_limits()
    limits.throttled("t", retry_after=30.0)
    limits.forget("t")
    assert limits.tenants_tracked == 0


async def test_forget_keeps_a_tenant_with_waiting_requests() -> None:
    limits, _ = virtual_limits()
    async with limits.slot("t"):
        limits.forget("t")
        assert limits.tenants_tracked == 1


async def test_thousands_of_tenants_leave_little_state_behind() -> None:
    limits, vt = virtual_limits(rate=150.0, burst=5)
    for i in range(3000):
        async with limits.slot(f"tenant{i}"):
            pass
        vt.now += 0.01
    assert limits.tenants_tracked < 200
    assert limits.peaks.tenants_tracked < 300


async def test_a_cancelled_waiter_leaves_nothing_held() -> None:
    limits = Limits(concurrency=1, per_tenant_concurrency=1, per_tenant_rate=150)
    limits.throttled("t", retry_after=30.0)
    waiter = asyncio.create_task(hold(limits, "t", 0.0))
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await asyncio.wait_for(hold(limits, "other", 0.0), timeout=1.0)
    assert (limits.in_flight, limits._tenants["t"].users) == (0, 0)


def test_limits_come_from_the_fetch_configuration() -> None:
    limits = Limits.from_config(FetchConfig(concurrency=8, per_tenant_concurrency=3, per_tenant_rate=120))
    assert (limits.concurrency, limits.per_tenant_concurrency, limits.base_rate) == (8, 3, 2.0)


TENANT = "11111111-1111-1111-1111-111111111111"


def test_running_out_of_open_files_is_a_local_resource_error_not_authentication() -> None:
    """However EMFILE arrives (raw, wrapped by azure-core, or by aiohttp), it names this machine's limit."""
    emfile = OSError(errno.EMFILE, "Too many open files")
    wrapped = ServiceRequestError("connection failed", error=emfile)
    connector = aiohttp.ClientConnectorError(
        aiohttp.client_reqrep.ConnectionKey("h", 443, True, True, None, None, None, None), emfile
    )
    tenant = TenantConfig(TENANT, "Contoso", AuthConfig())

    found = [exhausted_resource(e) for e in (emfile, wrapped, connector, ServiceRequestError("refused"))]
    error = local_resource_error(emfile, doing=f"tenant {tenant.label}: asking Entra ID for a token")

    assert [f.errno if f else None for f in found] == [errno.EMFILE, errno.EMFILE, errno.EMFILE, None]
    assert (error.kind, str(error)) == (
        "local_resource",
        f"tenant {TENANT} (Contoso): asking Entra ID for a token: this machine ran out of a resource "
        "(EMFILE: Too many open files); raise the open-file limit (`ulimit -n`, LimitNOFILE=) or lower "
        "[fetch] concurrency",
    )


async def test_a_free_global_slot_goes_to_a_waiting_token_request_before_waiting_graph_requests() -> None:
    """Token requests start tenants: served before Graph requests that waited longer, each lane in order."""
    limits = Limits(concurrency=1, per_tenant_concurrency=4, per_tenant_rate=6000, burst=100)
    order: list[str] = []
    release = asyncio.Event()

    async def graph(name: str) -> None:
        async with limits.slot(name):
            order.append(name)
            await release.wait()

    async def token(name: str) -> None:
        async with limits.global_slot():
            order.append(name)

    holder = asyncio.create_task(graph("holder"))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(graph("page-1")), asyncio.create_task(graph("page-2"))]
    await asyncio.sleep(0)
    waiting += [asyncio.create_task(token("token-1")), asyncio.create_task(token("token-2"))]
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(holder, *waiting)
    assert order == ["holder", "token-1", "token-2", "page-1", "page-2"]
    assert limits.in_flight == 0


@pytest.mark.parametrize("first", [True, False])
async def test_a_waiter_cancelled_in_either_lane_leaves_no_slot_lost(first: bool) -> None:
    slots = Slots(1)
    await slots.acquire()
    waiter = asyncio.create_task(slots.acquire(first=first))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    slots.release()
    await asyncio.wait_for(slots.acquire(first=not first), timeout=1.0)


async def test_a_slot_handed_to_a_waiter_as_it_is_cancelled_passes_to_the_next() -> None:
    slots = Slots(1)
    await slots.acquire()
    cancelled = asyncio.create_task(slots.acquire(first=True))
    following = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    slots.release()  # hands the slot to `cancelled`, which has not run yet
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    await asyncio.wait_for(following, timeout=1.0)


@pytest.mark.parametrize("first", [True, False])
async def test_a_slot_released_before_a_cancelled_waiter_runs_again_stays_free(first: bool) -> None:
    """The release drops the cancelled waiter from its lane; the waiter's own clean-up must not fail on it."""
    slots = Slots(1)
    await slots.acquire()
    waiter = asyncio.create_task(slots.acquire(first=first))
    await asyncio.sleep(0)
    waiter.cancel()
    slots.release()  # before the waiter has seen its cancellation
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await asyncio.wait_for(slots.acquire(first=not first), timeout=1.0)

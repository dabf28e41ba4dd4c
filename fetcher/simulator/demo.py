"""A ready-made cast for `fetcher demo`: mostly healthy tenants and a few with the trouble a real
estate of tenants shows (throttling, partial data, missing consent, no data yet)."""

from __future__ import annotations

import dataclasses

from fetcher.simulator.faults import Fault
from fetcher.simulator.simulator import Simulator
from fetcher.simulator.tenants import SimTenant, generate_tenants

# Which tenant (by position) gets which trouble; the rest stay healthy.
_THROTTLED, _PARTIAL, _NO_CONSENT, _EMPTY = 1, 2, 3, 4


def _troubled(index: int, tenant: SimTenant) -> SimTenant:
    if index == _THROTTLED:
        # A short burst: three 429s with a one-second Retry-After, then normal answers.
        return dataclasses.replace(tenant, faults=(Fault.status(429, retry_after=1, endpoint="list", times=3),))
    if index == _PARTIAL:
        return dataclasses.replace(tenant, faults=(Fault.partial(endpoint="list"),))
    if index == _NO_CONSENT:
        return dataclasses.replace(tenant, consent=False)
    if index == _EMPTY:
        return dataclasses.replace(tenant, empty=True)
    return tenant


def demo_tenants(n_tenants: int = 25, *, seed: int = 7) -> list[SimTenant]:
    return [_troubled(index, tenant) for index, tenant in enumerate(generate_tenants(n_tenants, seed=seed))]


def demo_simulator(n_tenants: int = 25, *, seed: int = 7) -> Simulator:
    """About 25 tenants, four of them in scripted trouble (positions 1 to 4), the rest healthy."""
    return Simulator(demo_tenants(n_tenants, seed=seed), seed=seed)

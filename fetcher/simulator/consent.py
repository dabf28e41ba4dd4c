"""A ready-made cast for `fetcher tenants check`: one customer tenant in each state the check tells apart.

Each state is made with what the simulator already has: the tenant's own flags (`registered`,
`app_installed`, `consent`, `empty`) or a scripted fault (a token refusal, a status), so the answers are
the ones Entra ID and Graph give: AADSTS700016 for an app never consented in the tenant, a token
without roles and Graph's 403 for a consent that lacks the permission, AADSTS7000112 for a disabled
app, AADSTS90002 and AADSTS90038 for an unknown tenant and one of another cloud, an empty list, 429s,
and 503s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from fetcher.simulator.entra import TokenRefusal
from fetcher.simulator.faults import Fault
from fetcher.simulator.tenants import SimTenant, generate_tenants

_Make = Callable[[SimTenant], SimTenant]

# scenario -> how a healthy tenant is put in it; the check's state for each is in `CONSENT_STATES`.
_SCENARIOS: dict[str, _Make] = {
    "ok": lambda t: t,
    "no consent": lambda t: dataclasses.replace(t, app_installed=False),
    "consent required": lambda t: _faulty(t, Fault.token_refusal(TokenRefusal.CONSENT_REQUIRED)),
    "permission missing": lambda t: dataclasses.replace(t, consent=False),
    "app disabled": lambda t: _faulty(t, Fault.token_refusal(TokenRefusal.APP_DISABLED)),
    "tenant not found": lambda t: dataclasses.replace(t, registered=False),
    "wrong cloud": lambda t: _faulty(t, Fault.token_refusal(TokenRefusal.OTHER_CLOUD)),
    "no data yet": lambda t: dataclasses.replace(t, empty=True),
    "throttled": lambda t: _faulty(t, Fault.status(429, retry_after=0, endpoint="list")),
    "unreachable": lambda t: _faulty(t, Fault.status(503, endpoint="list")),
}

# scenario -> the state `fetcher tenants check` must report for it
CONSENT_STATES: dict[str, str] = {
    "ok": "ok",
    "no consent": "no consent",
    "consent required": "no consent",
    "permission missing": "permission missing",
    "app disabled": "app disabled",
    "tenant not found": "tenant not found / wrong cloud",
    "wrong cloud": "tenant not found / wrong cloud",
    "no data yet": "no data yet",
    "throttled": "throttled",
    "unreachable": "unreachable",
}


def _faulty(tenant: SimTenant, fault: Fault) -> SimTenant:
    return dataclasses.replace(tenant, faults=(*tenant.faults, fault))


def in_scenario(tenant: SimTenant, scenario: str) -> SimTenant:
    """`tenant` put in `scenario` (a key of `CONSENT_STATES`)."""
    return _SCENARIOS[scenario](tenant)


def consent_tenants(*, seed: int = 16) -> dict[str, SimTenant]:
    """One tenant per scenario, by scenario, with deterministic ids and names."""
    healthy = generate_tenants(len(_SCENARIOS), seed=seed)
    return {scenario: make(tenant) for (scenario, make), tenant in zip(_SCENARIOS.items(), healthy, strict=True)}

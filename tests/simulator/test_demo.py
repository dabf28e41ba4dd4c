"""Ready-made casts: deterministic tenants, and the demo's few troubled tenants among healthy ones."""

from __future__ import annotations

from fetcher.simulator import FaultKind, demo_simulator, generate_tenants


def test_generated_tenants_are_deterministic() -> None:
    assert generate_tenants(50, seed=3) == generate_tenants(50, seed=3)
    assert generate_tenants(5, seed=3) != generate_tenants(5, seed=4)


def test_generated_tenants_have_unique_ids_and_names_at_scale() -> None:
    tenants = generate_tenants(1500, seed=1)
    assert len({t.tenant_id for t in tenants}) == len({t.name for t in tenants}) == 1500


def test_demo_has_one_of_each_trouble_and_healthy_rest() -> None:
    tenants = list(demo_simulator().tenants.values())
    kinds = [fault.kind for tenant in tenants for fault in tenant.faults]
    throttles = [fault for tenant in tenants for fault in tenant.faults if fault.status_code == 429]
    assert len(tenants) == 25
    assert sorted(kinds) == sorted([FaultKind.STATUS, FaultKind.PARTIAL])
    assert throttles[0].retry_after is not None
    assert 1 <= throttles[0].retry_after <= 2
    assert sum(not t.consent for t in tenants) == 1
    assert sum(t.empty for t in tenants) == 1
    healthy = [t for t in tenants if t.consent and not t.empty and not t.faults and t.registered and t.app_installed]
    assert len(healthy) == 21

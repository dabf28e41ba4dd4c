"""Discovery's cache: customers are upserted, never deleted, marked gone and back; failures keep the list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from fetcher.discovery import Customer
from fetcher.store.engine import transaction
from fetcher.store.partner import KnownCustomers, known_customers, save_discovery, save_discovery_failure
from fetcher.store.schema import partner_customers, partner_discoveries
from tests.dbutil import rows

PARTNER = "aaaaaaaa-0000-4000-8000-000000000001"
A = "0b7c1e2a-1111-4222-8333-444455556666"
B = "7e4f0c2b-2222-4333-8444-555566667777"
T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
T1 = T0 + timedelta(days=1)
T2 = T0 + timedelta(days=2)


async def test_no_discovery_means_no_known_list(engine: AsyncEngine) -> None:
    async with transaction(engine) as conn:
        await save_discovery_failure(conn, PARTNER, "gdap", T0, "server_error", "503")
        assert await known_customers(conn, PARTNER) is None


async def test_a_customer_no_longer_listed_is_kept_gone_and_comes_back(engine: AsyncEngine) -> None:
    async with transaction(engine) as conn:
        await save_discovery(conn, PARTNER, "gdap", [Customer(A, "Contoso"), Customer(B, "Fabrikam")], T0)
        await save_discovery(conn, PARTNER, "gdap", [Customer(A, "Contoso Ltd")], T1)
        assert await known_customers(conn, PARTNER) == KnownCustomers("gdap", T1, (Customer(A, "Contoso Ltd"),))
    assert await rows(engine, partner_customers) == [
        {"partner_tenant_id": PARTNER, "tenant_id": A, "display_name": "Contoso Ltd", "previous_display_name": None,
         "first_seen_at": T0, "last_seen_at": T1, "gone_since": None},
        {"partner_tenant_id": PARTNER, "tenant_id": B, "display_name": "Fabrikam", "previous_display_name": None,
         "first_seen_at": T0, "last_seen_at": T0, "gone_since": T1},
    ]  # fmt: skip
    async with transaction(engine) as conn:
        await save_discovery(conn, PARTNER, "gdap", [Customer(B, "Fabrikam"), Customer(A, "Contoso Ltd")], T2)
        known = await known_customers(conn, PARTNER)
    assert known is not None
    assert known.customers == (Customer(A, "Contoso Ltd"), Customer(B, "Fabrikam"))  # first seen first
    assert [r["gone_since"] for r in await rows(engine, partner_customers)] == [None, None]


async def test_a_failure_keeps_the_last_list_and_records_the_error(engine: AsyncEngine) -> None:
    async with transaction(engine) as conn:
        await save_discovery(conn, PARTNER, "gdap", [Customer(A, "Contoso")], T0)
        await save_discovery_failure(conn, PARTNER, "gdap", T1, "permission", "403: no permission")
        assert await known_customers(conn, PARTNER) == KnownCustomers("gdap", T0, (Customer(A, "Contoso"),))
    assert await rows(engine, partner_discoveries) == [
        {"partner_tenant_id": PARTNER, "source": "gdap", "discovered_at": T0, "customers": 1, "attempted_at": T1,
         "error_kind": "permission", "error_message": "403: no permission"}
    ]  # fmt: skip


async def test_a_customers_name_before_its_latest_rename_is_kept_until_the_next_rename(engine: AsyncEngine) -> None:
    """`previous_display_name`: set by the discovery that saw the rename, kept by the ones after it."""
    async with transaction(engine) as conn:
        await save_discovery(conn, PARTNER, "gdap", [Customer(A, "Contoso"), Customer(B, "Fabrikam")], T0)
        await save_discovery(conn, PARTNER, "gdap", [Customer(A, "Contoso Ltd"), Customer(B, "Fabrikam")], T1,
                             {A: "Contoso"})  # fmt: skip
        await save_discovery(conn, PARTNER, "gdap", [Customer(A, "Contoso Ltd"), Customer(B, "Fabrikam")], T2)
        known = await known_customers(conn, PARTNER)
    assert known is not None
    assert known.earlier == {A: "Contoso"}

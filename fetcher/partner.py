"""Discovery's I/O: the partner tenant's GDAP relationships and contracts read through the run's
`GraphClient` (its paging guards, retries and limits), then `fetcher.discovery` decides.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fetcher.config import Config, PartnerConfig, TenantConfig
from fetcher.discovery import (
    CONTRACTS_PATH,
    CONTRACTS_PERMISSION,
    RELATIONSHIPS_PAGE_SIZE,
    RELATIONSHIPS_PATH,
    RELATIONSHIPS_PERMISSION,
    Found,
    select_customers,
)
from fetcher.errors import PermissionDenied
from fetcher.http import GraphClient, open_graph
from fetcher.models import RequestStats, TenantRef

# Paged to the end: $top asks for Graph's largest page, the pager follows @odata.nextLink (refusing a
# foreign or repeated link) until Graph sends none.
RELATIONSHIPS_QUERY = f"{RELATIONSHIPS_PATH}?$top={RELATIONSHIPS_PAGE_SIZE}"


def partner_ref(partner: PartnerConfig) -> TenantRef:
    return TenantRef(partner.tenant_id, "partner")


@asynccontextmanager
async def open_partner_graph(config: Config, partner: PartnerConfig) -> AsyncIterator[GraphClient]:
    """The run's Graph client, able to get a token for the partner tenant as well as the customers'."""
    own = TenantConfig(partner.tenant_id, "partner", partner.auth, enabled=False)
    async with open_graph(dataclasses.replace(config, tenants=(*config.tenants, own))) as client:
        yield client


async def _collect(
    client: GraphClient, tenant: TenantRef, path: str, permission: str, stats: RequestStats
) -> list[Any]:
    """Every object of a collection; a 403 names the partner-side permission it needs."""
    objects: list[Any] = []
    try:
        async for page in client.list_pages(tenant, path, None, stats):
            objects.extend(page.objects)
    except PermissionDenied as denied:
        endpoint = path.partition("?")[0]
        raise PermissionDenied(
            f"partner tenant {tenant.tenant_id}: Graph denied {endpoint} (403): the app lacks the application "
            f"permission {permission} with admin consent in the partner tenant; add it under API permissions "
            f"and grant admin consent in {tenant.tenant_id}",
            tenant_id=tenant.tenant_id,
            status=403,
            url=denied.url,
        ) from None
    return objects


async def discover(client: GraphClient, partner: PartnerConfig, stats: RequestStats | None = None) -> Found:
    """The partner's customers from `[partner] source`; raises the GraphError of a refused request."""
    stats = stats or RequestStats()
    tenant = partner_ref(partner)
    relationships: list[Any] = []
    contracts: list[Any] = []
    if partner.source in ("gdap", "both"):
        relationships = await _collect(client, tenant, RELATIONSHIPS_QUERY, RELATIONSHIPS_PERMISSION, stats)
    if partner.source in ("contracts", "both"):
        contracts = await _collect(client, tenant, CONTRACTS_PATH, CONTRACTS_PERMISSION, stats)
    return select_customers(relationships, contracts)
